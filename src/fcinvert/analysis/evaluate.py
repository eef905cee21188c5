"""The paper's whole evaluation of trained inverters (its figures 2, 3, 5, 6) as one call.

``evaluate(material, models, data, out)`` scores every model on the dataset's test split:
reconstructions (VAE), parity, R² and MAE per parameter on clean spectra, the same over the 5×5
(B, P) noise grid (every model sees the same noisy spectra), and for each VAE its latent space:
per-dimension statistics and active dimensions, a UMAP map coloured by FC0–FC3, a decoded latent
ray, and a cross-domain map of noisy and measured spectra. It writes the figures (PNG + SVG),
``metrics.json`` (every number the report shows), ``index.html`` and ``headline.md`` into
``out``, with a rich progress bar on stderr.

Names: FC*i* is the *i*-th selected parameter of the dataset (the sensitivity order), as in the
paper.
"""

from __future__ import annotations

import contextlib
import json
import re
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from fcinvert import __version__
from fcinvert.analysis.latent import (
    LatentSummary,
    cross_domain,
    fit_umap,
    latent_ray,
    nearest_spectrum,
    umap_settings,
)
from fcinvert.analysis.metrics import ParameterScores
from fcinvert.analysis.noise_grid import (
    GridScores,
    NoiseGrid,
    column_peak_fraction,
    score_grid,
)
from fcinvert.data.dataset import StoredDataset, read_dataset
from fcinvert.data.spectrum_file import read_spectrum
from fcinvert.errors import FcinvertError
from fcinvert.inversion.invert import reciprocal_basis
from fcinvert.inversion.plot import grid_path
from fcinvert.inversion.resample import resample
from fcinvert.iohelpers import atomic_write_text
from fcinvert.models.bundle import ModelBundle, find_bundle, load_bundle
from fcinvert.models.preprocess import prepare_input
from fcinvert.physics.material import Material, QPath, load_material
from fcinvert.report import evaluation_figures as figures
from fcinvert.report.html import headline_rows, paper_expectations, write_report

METRICS_FORMAT = "fcinvert-evaluation"
BATCH = 256
MIN_TEST = 8


@dataclass(frozen=True)
class EvaluationSettings:
    """Choices of an evaluation run.

    samples: latent draws per spectrum (VAE); seed: noise, latent draws and UMAP;
    limit: evaluate the first N test spectra only; reconstructions: how many diverse test
    spectra to reconstruct; ray_steps: points decoded along the latent ray.
    """

    samples: int = 50
    seed: int = 0
    limit: int | None = None
    reconstructions: int = 4
    ray_steps: int = 6
    grid: NoiseGrid = field(default_factory=NoiseGrid)


def evaluate(
    material: str,
    models: list[str | Path],
    data: str | Path,
    out: str | Path,
    measured: list[str | Path] | tuple = (),
    settings: EvaluationSettings | None = None,
    progress: bool = True,
) -> dict:
    """Evaluate ``models`` (bundle folders or shipped names) for ``material`` (a name or folder)
    on the test split of the dataset file ``data``; ``measured``: spectrum files for the
    cross-domain map. Writes the report into ``out`` and returns the metrics (metrics.json)."""
    settings = settings or EvaluationSettings()
    out = Path(out)
    clock = _Clock()
    with _progress(progress) as step:
        with clock("load"):
            crystal = load_material(material)
            material = crystal.name
            bundles, folders = _load_models(models)
            info = read_dataset(data)
            _check(material, bundles, info)
            first = next(iter(bundles.values()))
            names = first.config.selected
            columns = [info.parameter_names.index(name) for name in names]
            spectra = info.spectra("test", slice(0, settings.limit))
            truth = info.theta("test")[: len(spectra), columns]
            if len(truth) < MIN_TEST:
                raise FcinvertError(f"{data}: {len(truth)} test spectra; at least {MIN_TEST}")
            path = grid_path(crystal, info.qpoints)
            images, coverage = _measured(measured, first, crystal)
            diverse = diverse_indices(truth, max(settings.reconstructions, 1))
            anchor = (
                nearest_spectrum(spectra, next(iter(images.values()))) if images else diverse[0]
            )

        clean: dict[str, np.ndarray] = {}
        with clock("clean predictions"), step("clean test set", len(bundles)) as advance:
            for label, bundle in bundles.items():
                clean[label] = _predictor(bundle, settings)(spectra, 0)
                advance()
        scores = {label: ParameterScores.of(names, truth, p) for label, p in clean.items()}

        grid = settings.grid
        with clock("noise grid"), step("noise grid (B, P)", len(list(grid.settings()))) as advance:
            noise = score_grid(
                grid,
                spectra,
                truth,
                {label: _predictor(b, settings, offset=1) for label, b in bundles.items()},
                settings.seed,
                keep=[anchor],
                advance=advance,
            )

        vaes = {label: b for label, b in bundles.items() if b.architecture == "vae"}
        latent: dict[str, dict] = {}
        with clock("latent space"), step("latent space (UMAP)", 3 * len(vaes)) as advance:
            for label, bundle in vaes.items():
                latent[label] = _latent_space(
                    bundle,
                    spectra,
                    truth,
                    diverse,
                    anchor,
                    noise.examples[:, :, 0],
                    images,
                    settings,
                    advance,
                )

        metrics = _metrics(
            material,
            data,
            settings,
            bundles,
            folders,
            names,
            scores,
            noise,
            spectra,
            latent,
            coverage,
        )
        with clock("figures"), step("figures", 4 + 5 * len(vaes)) as advance:
            metrics["figures"] = _figures(
                out,
                path,
                info.energy.centres,
                truth,
                clean,
                noise,
                spectra[anchor],
                latent,
                images,
                metrics,
                advance,
            )
        metrics["timing_s"], metrics["cpu_s"] = clock.seconds, clock.cpu
        out.mkdir(parents=True, exist_ok=True)
        atomic_write_text(out / "metrics.json", json.dumps(metrics, indent=1) + "\n")
        write_report(out, metrics)
    return metrics


def diverse_indices(theta: np.ndarray, n: int) -> list[int]:
    """n indices of θ rows (N, K) spread over the domain: the row nearest the median first,
    then each time the row farthest (standardised Euclidean) from all chosen so far."""
    scale = theta.std(axis=0)
    z = (theta - np.median(theta, axis=0)) / np.where(scale > 0, scale, 1.0)
    chosen = [int(np.argmin(np.linalg.norm(z, axis=1)))]
    distance = np.linalg.norm(z - z[chosen[0]], axis=1)
    while len(chosen) < min(n, len(theta)):
        chosen.append(int(np.argmax(distance)))
        distance = np.minimum(distance, np.linalg.norm(z - z[chosen[-1]], axis=1))
    return chosen


def _load_models(models: list[str | Path]) -> tuple[dict[str, ModelBundle], dict[str, str]]:
    """label → bundle and label → its folder; the label is the name given or the folder's name."""
    if not models:
        raise FcinvertError("no model given (--models)")
    bundles: dict[str, ModelBundle] = {}
    folders: dict[str, str] = {}
    for model in models:
        label = Path(model).name if Path(model).is_dir() else str(model)
        if label in bundles:
            raise FcinvertError(f"{model}: given twice")
        bundles[label] = load_bundle(model)
        folders[label] = str(find_bundle(model).resolve())
    return bundles, folders


def _check(material: str, bundles: dict[str, ModelBundle], info: StoredDataset) -> None:
    if info.material != material:
        raise FcinvertError(f"{info.path}: a dataset for '{info.material}', not '{material}'")
    if "test" not in info.sizes or info.sizes["test"] == 0:
        raise FcinvertError(f"{info.path}: the dataset has no test spectra")
    selected = None
    for label, bundle in bundles.items():
        config = bundle.config
        if config.material != material:
            raise FcinvertError(f"{label}: a model for '{config.material}', not '{material}'")
        if config.parameter_names != info.parameter_names:
            raise FcinvertError(f"{label}: trained on other FC parameters than {info.path} has")
        shape = (len(info.qpoints), len(info.energy.centres))
        if bundle.shape != shape or not np.allclose(bundle.qpoints, info.qpoints):
            raise FcinvertError(f"{label}: its grid {bundle.shape} is not the dataset's")
        if not np.allclose(bundle.energy.centres, info.energy.centres):
            raise FcinvertError(f"{label}: its energy bins are not the dataset's")
        if selected is not None and config.selected != selected:
            raise FcinvertError(f"{label}: infers other parameters than the first model")
        selected = config.selected


def _measured(
    files: list[str | Path] | tuple, bundle: ModelBundle, crystal: Material
) -> tuple[dict[str, np.ndarray], dict]:
    """Measured spectra resampled onto the model grid (name → (nq, nE)) and their coverage."""
    images: dict[str, np.ndarray] = {}
    coverage: dict[str, dict] = {}
    for file in files:
        spectrum = read_spectrum(file)
        if spectrum.material and spectrum.material != bundle.config.material:
            raise FcinvertError(f"{file}: a spectrum of '{spectrum.material}'")
        image, cover = resample(
            spectrum.intensity,
            spectrum.qpoints,
            spectrum.energy,
            bundle.qpoints,
            bundle.energy,
            reciprocal_basis(crystal),
        )
        if cover.unmeasured_model_pixels == cover.model_pixels:
            raise FcinvertError(f"{file}: no measured pixel falls on the model's grid")
        name = Path(file).stem if Path(file).stem not in images else str(file)
        images[name] = image.astype(np.float32)
        coverage[name] = cover.as_dict()
    return images, coverage


def _predictor(
    bundle: ModelBundle, settings: EvaluationSettings, offset: int = 0
) -> Callable[[np.ndarray, int], np.ndarray]:
    """(spectra, chunk) → mean predicted θ (n, K) eV/Å²; latent draws seeded per chunk."""

    def predict(spectra: np.ndarray, chunk: int) -> np.ndarray:
        seed = settings.seed + offset + chunk
        return bundle.predict(spectra, n_samples=settings.samples, seed=seed).mean

    return predict


def _latent_space(
    bundle: ModelBundle,
    spectra: np.ndarray,
    truth: np.ndarray,
    diverse: list[int],
    anchor: int,
    noisy_anchor: np.ndarray,
    images: dict[str, np.ndarray],
    settings: EvaluationSettings,
    advance: Callable[[], None],
) -> dict:
    """Everything one VAE's latent space shows (arrays for the figures, numbers for the JSON)."""
    parts = [bundle.latent(spectra[i : i + BATCH]) for i in range(0, len(spectra), BATCH)]
    mu = np.concatenate([p[0] for p in parts])
    log_var = np.concatenate([p[1] for p in parts])
    errors = []
    for i in range(0, len(spectra), BATCH):
        chunk = spectra[i : i + BATCH]
        scaled = prepare_input(torch.from_numpy(chunk), mask_channel=False)[:, 0].numpy()
        errors.append(((bundle.reconstruct(chunk) - scaled) ** 2).mean(axis=(1, 2)))
    reconstruction_mse = np.concatenate(errors)
    inputs = prepare_input(torch.from_numpy(spectra[diverse]), mask_channel=False)[:, 0].numpy()
    advance()
    reducer, embedding = fit_umap(mu, settings.seed)
    advance()
    ray = latent_ray(bundle, mu, truth, settings.ray_steps)
    ray_map = np.asarray(reducer.transform(ray.z.astype(np.float32)), dtype=float)
    cross = cross_domain(bundle, reducer, embedding, anchor, noisy_anchor, images)
    advance()
    return {
        "summary": LatentSummary(mu, log_var),
        "embedding": embedding,
        "ray": ray,
        "ray_map": ray_map,
        "cross": cross,
        "reconstruction": (diverse, inputs, bundle.reconstruct(spectra[diverse])),
        "reconstruction_mse": reconstruction_mse,
    }


def _metrics(
    material: str,
    data: str | Path,
    settings: EvaluationSettings,
    bundles: dict[str, ModelBundle],
    folders: dict[str, str],
    names: list[str],
    scores: dict[str, ParameterScores],
    noise: GridScores,
    spectra: np.ndarray,
    latent: dict[str, dict],
    coverage: dict,
) -> dict:
    grid = settings.grid
    i, j = grid.representative
    fc = [f"FC{k}" for k in range(len(names))]
    models = {}
    for label, bundle in bundles.items():
        noisy = ParameterScores(names, noise.r2[label][i, j], noise.mae[label][i, j])
        models[label] = {
            "bundle": folders[label],
            "architecture": bundle.architecture,
            "clean": scores[label].as_dict(),
            "representative_noise": noisy.as_dict(),
            "noise_grid": {
                "r2": np.round(noise.r2[label], 5).tolist(),
                "mae_eV_A2": np.round(noise.mae[label], 6).tolist(),
            },
        }
    metrics: dict = {
        "format": METRICS_FORMAT,
        "version": 1,
        "fcinvert_version": __version__,
        "material": material,
        "dataset": str(Path(data).resolve()),
        "test_spectra": len(spectra),
        "seed": settings.seed,
        "latent_samples": settings.samples,
        "parameters": names,
        "fc_labels": fc,
        "models": models,
        "noise": {
            "model": "Poisson(P·(x/max x + B))/P per spectrum",
            "backgrounds": list(grid.backgrounds),
            "counts": list(grid.counts),
            "snr": np.round(noise.snr, 3).tolist(),
            "snr_definition": "SNR = ⟨P·s_q⟩ / sqrt(⟨P·(s_q + B)⟩) = sqrt(P)·m/sqrt(m + B), "
            "s_q = max_E x(q, E)/max x the peak fraction of each q-column, m = ⟨s_q⟩ over the "
            "q-columns of all test spectra",
            "column_peak_fraction": round(column_peak_fraction(spectra), 5),
            "representative": {
                "index": [i, j],
                "background": grid.backgrounds[i],
                "counts": grid.counts[j],
                "snr": round(float(noise.snr[i, j]), 3),
            },
            "example_index": noise.keep[0],
        },
        "latent": {},
        "measured": coverage,
    }
    for label, space in latent.items():
        ray = space["ray"]
        shown, inputs, outputs = space["reconstruction"]
        metrics["latent"][label] = {
            **space["summary"].as_dict(),
            "umap": umap_settings(settings.seed),
            "ray": {
                "start_index": ray.start,
                "end_index": ray.end,
                "theta": np.round(ray.theta, 6).tolist(),
                "map": np.round(space["ray_map"], 4).tolist(),
            },
            "cross_domain": space["cross"].as_dict(),
            "reconstruction": {
                "indices": shown,
                "mse": [round(float(v), 6) for v in ((outputs - inputs) ** 2).mean(axis=(1, 2))],
                "test_mean_mse": round(float(space["reconstruction_mse"].mean()), 6),
            },
        }
    metrics["paper"] = paper_expectations(material, len(names))
    metrics["headline"] = headline_rows(metrics)
    return metrics


def _figures(
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
    figures.parity(fc, names, truth, clean, scores, out / "parity")
    add(
        "parity",
        "accuracy",
        "Predicted against true value of every inferred parameter (eV/Å²) on the clean test "
        "set, one row per model, with R² and MAE (the paper's SI Fig. 16/18).",
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
        "(B, P) grid, one row per model, clipped to [0, 1] "
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


class _Clock:
    """Wall and process CPU time (s, all threads) per named part of the run."""

    def __init__(self) -> None:
        self.seconds: dict[str, float] = {}
        self.cpu: dict[str, float] = {}

    @contextlib.contextmanager
    def __call__(self, name: str) -> Iterator[None]:
        start, cpu = time.perf_counter(), time.process_time()
        yield
        self.seconds[name] = round(self.seconds.get(name, 0.0) + time.perf_counter() - start, 2)
        self.cpu[name] = round(self.cpu.get(name, 0.0) + time.process_time() - cpu, 2)


@contextlib.contextmanager
def _progress(show: bool) -> Iterator[Callable]:
    """A step factory: ``with step(description, total) as advance: ...``."""
    columns = (
        TextColumn("{task.description:<22}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
    )
    with Progress(*columns, console=Console(stderr=True), disable=not show) as bar:

        @contextlib.contextmanager
        def step(description: str, total: int) -> Iterator[Callable[[], None]]:
            task = bar.add_task(description, total=total)
            yield lambda: bar.advance(task)
            bar.update(task, completed=total)

        yield step
