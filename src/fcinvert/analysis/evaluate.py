"""The paper's whole evaluation of trained inverters (its figures 2, 3, 5, 6) as one call.

``evaluate(material, models, data)`` scores every model on the dataset's test split:
reconstructions (VAE), parity, R² and MAE per parameter on clean spectra, the same over the 5×5
(B, P) noise grid (every model sees the same noisy spectra), and for each VAE its latent space:
per-dimension statistics and active dimensions, a UMAP map coloured by FC0–FC3, a decoded latent
ray, and a cross-domain map of noisy and measured spectra. It returns an ``Evaluation``: the
metrics and the arrays the figures draw (``fcinvert.report.evaluation`` writes the report);
``progress(stage, done, total)`` hears how far each stage is.

Names: FC*i* is the *i*-th selected parameter of the dataset (the sensitivity order), as in the
paper.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from fcinvert.analysis.evaluation_metrics import EvaluationMetrics, evaluation_metrics
from fcinvert.analysis.latent import (
    LatentSummary,
    cross_domain,
    fit_umap,
    latent_ray,
    nearest_spectrum,
)
from fcinvert.analysis.metrics import ParameterScores
from fcinvert.analysis.noise_grid import (
    GridScores,
    NoiseGrid,
    score_grid,
)
from fcinvert.data.dataset import StoredDataset, read_dataset
from fcinvert.data.progress import StageCallback
from fcinvert.data.spectrum_file import read_spectrum
from fcinvert.errors import FcinvertError
from fcinvert.inversion.resample import grid_path, resample
from fcinvert.models.bundle import ModelBundle, find_bundle, load_bundle
from fcinvert.models.preprocess import prepare_input
from fcinvert.physics.material import Material, QPath, load_material
from fcinvert.physics.reciprocal import reciprocal_basis

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


@dataclass
class Evaluation:
    """What one evaluation found: ``metrics`` (metrics.json but its figure list, timing and
    the paper's expectations, which the report adds) and the arrays the report's figures draw.

    path: the model grid's labelled q-path; energy: (nE,) meV bin centres; truth: (n, K) eV/Å²
    θ of the test spectra; clean: model label → (n, K) mean predictions on clean spectra;
    noise: the noise grid's scores and kept noisy examples; anchor: (nq, nE) the clean test
    spectrum whose noisy versions the grid kept; latent: VAE label → its latent-space arrays;
    images: measured spectra on the model grid, name → (nq, nE); clock: time per part.
    """

    metrics: EvaluationMetrics
    path: QPath
    energy: np.ndarray
    truth: np.ndarray
    clean: dict[str, np.ndarray]
    noise: GridScores
    anchor: np.ndarray
    latent: dict[str, dict]
    images: dict[str, np.ndarray]
    clock: Clock


def evaluate(
    material: str,
    models: list[str | Path],
    data: str | Path,
    measured: list[str | Path] | tuple = (),
    settings: EvaluationSettings | None = None,
    progress: StageCallback | None = None,
) -> Evaluation:
    """Evaluate ``models`` (bundle folders or shipped names) for ``material`` (a name or folder)
    on the test split of the dataset file ``data``; ``measured``: spectrum files for the
    cross-domain map."""
    settings = settings or EvaluationSettings()
    clock = Clock()
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
        anchor = nearest_spectrum(spectra, next(iter(images.values()))) if images else diverse[0]

    clean: dict[str, np.ndarray] = {}
    with clock("clean predictions"):
        advance = _stage(progress, "clean test set", len(bundles))
        for label, bundle in bundles.items():
            clean[label] = _predictor(bundle, settings)(spectra, 0)
            advance()
    scores = {label: ParameterScores.of(names, truth, p) for label, p in clean.items()}

    grid = settings.grid
    with clock("noise grid"):
        noise = score_grid(
            grid,
            spectra,
            truth,
            {label: _predictor(b, settings, offset=1) for label, b in bundles.items()},
            settings.seed,
            keep=[anchor],
            advance=_stage(progress, "noise grid (B, P)", len(list(grid.settings()))),
        )

    vaes = {label: b for label, b in bundles.items() if b.architecture == "vae"}
    latent: dict[str, dict] = {}
    with clock("latent space"):
        advance = _stage(progress, "latent space (UMAP)", 3 * len(vaes))
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

    metrics = evaluation_metrics(
        material, data, settings, bundles, folders, names, scores, noise, spectra, latent, coverage
    )
    return Evaluation(
        metrics,
        path,
        info.energy.centres,
        truth,
        clean,
        noise,
        spectra[anchor],
        latent,
        images,
        clock,
    )


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
            reciprocal_basis(crystal.atoms.cell[:]),
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


class Clock:
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


def _stage(progress: StageCallback | None, description: str, total: int) -> Callable[[], None]:
    """A function that reports one more of ``total`` steps of ``description`` to ``progress``."""
    done = 0

    def advance() -> None:
        nonlocal done
        done += 1
        if progress is not None:
            progress(description, done, total)

    return advance
