"""The evaluation report: every figure of an ``Evaluation`` (PNG + SVG) with its caption,
``metrics.json`` (every number the report shows) and ``index.html`` in one folder.

``write_evaluation(material, models, data, out)`` runs the evaluation
(``fcinvert.analysis.evaluate``) and writes its report, as ``fcinvert evaluate`` does.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from pathlib import Path

import numpy as np

from fcinvert.analysis.evaluate import Evaluation, EvaluationSettings, evaluate
from fcinvert.analysis.noise_grid import GridScores
from fcinvert.data.progress import StageCallback
from fcinvert.iohelpers import atomic_write_text, relative_path
from fcinvert.physics.material import QPath
from fcinvert.report import evaluation_figures as figures
from fcinvert.report.html import headline_rows, paper_expectations, write_report


def write_evaluation(
    material: str,
    models: list[str | Path],
    data: str | Path,
    out: str | Path,
    measured: list[str | Path] | tuple = (),
    settings: EvaluationSettings | None = None,
    progress: StageCallback | None = None,
) -> dict:
    """Evaluate ``models`` for ``material`` on the test split of ``data`` (see ``evaluate``)
    and write the report into ``out``; returns the metrics (metrics.json)."""
    evaluation = evaluate(material, models, data, measured, settings, progress)
    return write_evaluation_report(evaluation, out, progress)


def write_evaluation_report(
    evaluation: Evaluation, out: str | Path, progress: StageCallback | None = None
) -> dict:
    """Draw every figure of ``evaluation`` into ``out``, then write metrics.json and
    index.html (last); returns the metrics, whose dataset and bundle paths are made relative
    to ``out``."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    metrics = evaluation.metrics
    metrics.dataset = relative_path(metrics.dataset, out)
    for model in metrics.models.values():
        model.bundle = relative_path(model.bundle, out)
    metrics.paper = paper_expectations(metrics.material, len(metrics.parameters))
    metrics.headline = headline_rows(metrics.to_dict())
    vaes = len(evaluation.latent)
    total, done = 4 + 5 * vaes, 0

    def advance() -> None:
        nonlocal done
        done += 1
        if progress is not None:
            progress("figures", done, total)

    with evaluation.clock("figures"):
        metrics.figures = draw_figures(
            out,
            evaluation.path,
            evaluation.energy,
            evaluation.truth,
            evaluation.clean,
            evaluation.noise,
            evaluation.anchor,
            evaluation.latent,
            evaluation.images,
            metrics.to_dict(),  # its latent parts are metrics.latent's: figures may add to them
            advance,
        )
    metrics.timing_s, metrics.cpu_s = evaluation.clock.seconds, evaluation.clock.cpu
    content = metrics.to_dict()
    atomic_write_text(out / "metrics.json", json.dumps(content, indent=1) + "\n")
    write_report(out, content)
    return content


def draw_figures(
    out: Path,
    path: QPath,
    energy: np.ndarray,
    truth: np.ndarray,
    clean: dict[str, np.ndarray],
    noise: GridScores,
    anchor: np.ndarray,
    latent: dict[str, dict],
    images: dict[str, np.ndarray],
    metrics: dict,
    advance: Callable[[], None],
) -> list[dict]:
    """Draw every figure into ``out``; returns [{"file", "svg", "caption", "section"}].

    anchor: (nq, nE) the clean test spectrum whose noisy versions the grid kept.
    """
    fc, names = metrics["fc_labels"], metrics["parameters"]
    architectures = {label: m["architecture"] for label, m in metrics["models"].items()}
    noise_info = metrics["noise"]
    rep = noise_info["representative"]
    i, j = rep["index"]
    listed: list[dict] = []

    def add(name: str, section: str, caption: str) -> None:
        listed.append(
            {"file": f"{name}.png", "svg": f"{name}.svg", "section": section, "caption": caption}
        )
        advance()

    clean_r2 = {
        label: np.array([m["clean"]["r2"][n] for n in names], dtype=float)
        for label, m in metrics["models"].items()
    }
    noisy_r2 = {label: noise.r2[label][i, j] for label in clean}
    figures.r2_bars(fc, clean_r2, noisy_r2, architectures, out / "r2_bars")
    add(
        "r2_bars",
        "accuracy",
        f"R² per FC on the {metrics['test_spectra']} clean test spectra (bars) and with mild "
        f"noise B = {rep['background']}, P = {rep['counts']:g}, SNR = {rep['snr']:.1f} "
        "(circles); compare the paper's Fig. 2b/3b.",
    )
    scores = {
        label: (clean_r2[label], np.array([m["clean"]["mae_eV_A2"][n] for n in names], dtype=float))
        for label, m in metrics["models"].items()
    }
    figures.parity(fc, truth, clean, scores, out / "parity")
    add(
        "parity",
        "accuracy",
        "Predicted against true value of every inferred parameter (eV/Å²) on the clean test "
        "set, every FC of each model in turn, with R² and MAE (the paper's SI Fig. 16/18); FC*i* "
        "names the parameter in the tables above.",
    )
    figures.noisy_examples(
        path, energy, noise.examples[:, :, 0], noise_info, out / "noise_examples"
    )
    add(
        "noise_examples",
        "noise",
        f"Test spectrum {noise_info['example_index']} under every noise setting: background B "
        "(rows, fraction of the peak) and peak counts P (columns), SNR in each title "
        "(the paper's Fig. 2c).",
    )
    figures.r2_heatmaps(fc, noise_info, noise.r2, architectures, out / "noise_r2")
    add(
        "noise_r2",
        "noise",
        f"R² of every FC over the {len(noise_info['backgrounds'])}×{len(noise_info['counts'])} "
        "(B, P) grid for each model in turn, clipped to [0, 1] "
        "(entries ≤ 0 shown as 0); the last panel is the SNR of each setting (the paper's "
        "Fig. 2d and SI Fig. 17/19).",
    )
    for label, space in latent.items():
        info = metrics["latent"][label]
        stem = re.sub(r"[^A-Za-z0-9._-]+", "_", label)
        shown, inputs, outputs = space["reconstruction"]
        figures.reconstructions(path, energy, shown, inputs, outputs, out / f"{stem}_recon")
        add(
            f"{stem}_recon",
            "reconstruction",
            f"{label}: diverse test spectra (left, input-rule scaling) beside the VAE "
            f"reconstruction from the posterior mean (right); mean squared error over the test "
            f"set {info['reconstruction']['test_mean_mse']:.2e} (the paper's Fig. 2a/3a).",
        )
        figures.latent_statistics(space["summary"], out / f"{stem}_latent_stats")
        add(
            f"{stem}_latent_stats",
            "latent",
            f"{label}: posterior μ and log σ² of every latent dimension over the test set; "
            "black: mean ± std; dashed: the N(0, 1) prior; shaded: active dimensions "
            f"({info['n_active']} of {info['dimensions']}; {info['active_criterion']}) "
            "(the paper's Fig. 5a,b).",
        )
        figures.umap_by_fc(space["embedding"], truth, fc, out / f"{stem}_umap")
        add(
            f"{stem}_umap",
            "latent",
            f"{label}: UMAP of the test set's latent means, coloured by FC0–FC3 "
            "(the paper's Fig. 5c–f).",
        )
        figures.latent_ray(
            path,
            energy,
            space["embedding"],
            space["ray"],
            space["ray_map"],
            fc[0],
            out / f"{stem}_ray",
        )
        add(
            f"{stem}_ray",
            "latent",
            f"{label}: a straight latent ray from the test spectrum with the lowest FC0 to the "
            "one with the highest, on the UMAP map, and spectra decoded along it with the FC0 "
            "the regressor gives (the paper's Fig. 5g,h).",
        )
        shown_noisy = figures.cross_domain(
            path,
            energy,
            space["cross"],
            anchor,
            noise.examples[:, :, 0],
            noise_info,
            images,
            out / f"{stem}_cross_domain",
        )
        info["cross_domain"]["shown_noisy_index"] = list(shown_noisy)
        add(
            f"{stem}_cross_domain",
            "latent",
            f"{label}: the clean test set (grey), test spectrum {space['cross'].anchor} (star), "
            "its noisy versions (coloured by SNR) and any measured spectra (diamonds) "
            "projected with the same UMAP, and the inputs themselves (the paper's Fig. 6).",
        )
    return listed
