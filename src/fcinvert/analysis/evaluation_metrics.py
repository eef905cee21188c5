"""metrics.json: every number an evaluation report shows, as typed objects.

``EvaluationMetrics.to_dict`` gives the JSON (format ``fcinvert-evaluation``, version 1) and
``from_dict`` reads it back, refusing another format or version. The per-parameter scores,
noise-grid and latent-space parts stay plain JSON objects (their keys are documented where they
are made: ``metrics.ParameterScores``, ``noise_grid``, ``latent``); the report fills ``paper``,
``headline``, ``figures``, ``timing_s`` and ``cpu_s``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, ClassVar

import numpy as np

from fcinvert import __version__
from fcinvert.analysis.latent import umap_settings
from fcinvert.analysis.metrics import ParameterScores
from fcinvert.analysis.noise_grid import GridScores, column_peak_fraction
from fcinvert.iohelpers import JsonRecord

if TYPE_CHECKING:
    from fcinvert.analysis.evaluate import EvaluationSettings
    from fcinvert.models.bundle import ModelBundle


@dataclass
class ModelMetrics:
    """One model's scores. bundle: its folder; clean, representative_noise: R² and MAE
    (eV/Å²) by parameter name; noise_grid: ``r2`` and ``mae_eV_A2`` (nB, nP, K) lists;
    noise_augmented: trained on spectra with noise drawn afresh (``train --noise``)."""

    bundle: str
    architecture: str
    clean: dict
    representative_noise: dict
    noise_grid: dict
    noise_augmented: bool = False


@dataclass
class EvaluationMetrics(JsonRecord):
    """The content of metrics.json. dataset: the dataset file; parameters: the K inferred
    names (FC0… in ``fc_labels``); models: label → ModelMetrics; noise: the grid's settings and
    SNR; latent: VAE label → its latent-space numbers; measured: coverage per measured file."""

    material: str
    dataset: str
    test_spectra: int
    seed: int
    latent_samples: int
    parameters: list[str]
    fc_labels: list[str]
    models: dict[str, ModelMetrics]
    noise: dict
    latent: dict[str, dict]
    measured: dict
    paper: dict | None = None
    headline: list | None = None
    figures: list | None = None
    timing_s: dict | None = None
    cpu_s: dict | None = None
    fcinvert_version: str = field(default=__version__)

    FORMAT: ClassVar[str] = "fcinvert-evaluation"
    VERSION: ClassVar[int] = 1
    WHAT: ClassVar[str] = "evaluation metrics"


def evaluation_metrics(
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
) -> EvaluationMetrics:
    """The metrics of one evaluation from its scores (``evaluate``'s parts, see there)."""
    grid = settings.grid
    i, j = grid.representative
    fc = [f"FC{k}" for k in range(len(names))]
    models = {}
    for label, bundle in bundles.items():
        noisy = ParameterScores(names, noise.r2[label][i, j], noise.mae[label][i, j])
        models[label] = ModelMetrics(
            bundle=folders[label],
            architecture=bundle.architecture,
            clean=scores[label].as_dict(),
            representative_noise=noisy.as_dict(),
            noise_grid={
                "r2": np.round(noise.r2[label], 5).tolist(),
                "mae_eV_A2": np.round(noise.mae[label], 6).tolist(),
            },
            noise_augmented=bool(
                bundle.config.training.get("config", {}).get("augment", {}).get("noise")
            ),
        )
    latent_metrics: dict[str, dict] = {}
    for label, space in latent.items():
        ray = space["ray"]
        shown, inputs, outputs = space["reconstruction"]
        latent_metrics[label] = {
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
    return EvaluationMetrics(
        material=material,
        dataset=str(Path(data).resolve()),
        test_spectra=len(spectra),
        seed=settings.seed,
        latent_samples=settings.samples,
        parameters=names,
        fc_labels=fc,
        models=models,
        noise={
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
        latent=latent_metrics,
        measured=coverage,
    )
