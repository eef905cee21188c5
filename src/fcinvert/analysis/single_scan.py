"""Single-orientation scans (paper Fig. 4): invert each scan on its own and compare it with the
inversion of all of them together.

Input: a folder as ``fcinvert measure`` writes it: ``scans.json`` listing the spectrum files of
the single orientations (``scans[i].file``, ``scans[i].psi_deg``) and the file of all of them
folded together (``all``). Every scan and the whole are inverted with one model bundle, all with
the same latent draws (one seed), so that scans differ by their data, not by sampling. A scan
is compared with the all-orientations inversion by the mean squared error of the K selected
parameters (the model's outputs; the others are held at the reference and would only dilute it)::

    MSE_std = mean_k ((θ_k − θ_all,k) / s_k)²      MSE_raw = mean_k (θ_k − θ_all,k)²  (eV/Å²)²

s_k is the training scaler's standard deviation of parameter k. The standardised MSE weighs
every FC by the spread it had in training; the raw one is dominated by the largest FCs. Best /
median / worst are the lowest, the middle (position (n − 1) // 2 of the sorted values) and the
highest under the ranking metric (standardised by default). A scan with no measured pixel on
the model's grid is listed as skipped, with the reason.

When the folder records the θ it was simulated from (``fcinvert measure`` writes it into each
file's ``parameters`` attribute), every inversion is also compared with that truth, as MSE and
as dispersion RMS (meV, over the material's path and all branches). The physics refinement
(``fcinvert.inversion.refine``), optional, fits every parameter to the full data and to the
best, median and worst scans, starting from their ML estimates.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

import numpy as np

from fcinvert.analysis.single_scan_results import SingleScanResults
from fcinvert.data.progress import StageCallback
from fcinvert.data.spectrum_file import Spectrum, read_spectrum
from fcinvert.errors import FcinvertError
from fcinvert.inversion.invert import InversionResult, invert_spectrum, model_material
from fcinvert.inversion.refine import RefineResult, refine_spectrum
from fcinvert.iohelpers import open_hdf5
from fcinvert.models.bundle import ModelBundle
from fcinvert.physics.dynamics import DynamicsBasis, dynamics_basis

Ranking = Literal["standardised", "raw"]
RANKINGS = ("standardised", "raw")
PICKS = ("best", "median", "worst")
LISTING = "scans.json"
#: √3: a uniform distribution of standard deviation s spans mean ± √3 s
UNIFORM_HALF_WIDTH = float(np.sqrt(3.0))


@dataclass(frozen=True)
class ScanFolder:
    """What a scan folder holds.

    files: (n,) spectrum files of the single orientations; psi: (n,) rotation, degrees;
    combined: the all-orientations file; truth: θ by name (eV/Å²) the scans were simulated
    from, or None for a measurement; listing: the ``scans.json`` row of each scan.
    """

    folder: Path
    material: str
    files: list[Path]
    psi: np.ndarray
    combined: Path
    truth: dict[str, float] | None
    listing: list[dict]


def read_scan_folder(folder: str | Path) -> ScanFolder:
    """Read ``folder``/scans.json and check that the files it lists are there."""
    folder = Path(folder)
    listing_file = folder / LISTING
    if not listing_file.is_file():
        raise FcinvertError(f"{folder}: no {LISTING} (write the scans with 'fcinvert measure')")
    try:
        content = json.loads(listing_file.read_text())
        rows = list(content["scans"])
        files = [folder / str(row["file"]) for row in rows]
        psi = np.array([float(row["psi_deg"]) for row in rows])
        combined = folder / str(content["all"])
    except (OSError, ValueError, KeyError, TypeError, RecursionError) as error:
        raise FcinvertError(f"{listing_file}: not a scan listing ({error!r})") from None
    if not rows:
        raise FcinvertError(f"{listing_file}: lists no scan")
    missing = [str(path.name) for path in [*files, combined] if not path.is_file()]
    if missing:
        raise FcinvertError(
            f"{folder}: missing {', '.join(missing[:3])}" + " …" * (len(missing) > 3)
        )
    truth = content.get("parameters")
    if truth is None:
        truth = _recorded_parameters(combined)
    return ScanFolder(folder, str(content.get("material", "")), files, psi, combined, truth, rows)


def _recorded_parameters(path: Path) -> dict[str, float] | None:
    """θ by name from a spectrum file's ``parameters`` attribute (JSON), or None."""
    with open_hdf5(path, "spectrum file") as handle:
        text = handle.attrs.get("parameters")
    if text is None:
        return None
    text = text.decode() if isinstance(text, bytes) else str(text)
    try:
        values = json.loads(text)
        return {str(name): float(value) for name, value in values.items()}
    except (ValueError, AttributeError, TypeError, RecursionError):
        raise FcinvertError(f"{path}: attribute 'parameters' is not a JSON object") from None


@dataclass(frozen=True)
class TrainingBox:
    """The range of each selected parameter in training: low, high (K,) eV/Å², and where it
    comes from (the training dataset's domain, or the scaler's mean ± √3 std)."""

    low: np.ndarray
    high: np.ndarray
    source: str


def training_box(bundle: ModelBundle, dataset: str | Path | None = None) -> TrainingBox:
    """The sampling box of the selected parameters: from ``dataset`` (a training dataset file)
    when given (any problem with it is an error), else the training dataset's domain as the
    bundle records it (``StoredDataset.record``), else estimated from the target scaler as
    mean ± √3 std (exact for a uniform draw)."""
    from fcinvert.data.dataset import read_dataset

    selected = bundle.config.selected
    if dataset is not None:
        stored = read_dataset(dataset)
        if stored.selected_names != selected:
            raise FcinvertError(
                f"{dataset}: its selected parameters are not the model's ({', '.join(selected)})"
            )
        return TrainingBox(stored.low.copy(), stored.high.copy(), f"domain of {dataset}")
    recorded = bundle.config.training.get("dataset")
    if isinstance(recorded, dict) and len(recorded.get("low", ())) == len(selected):
        low, high = np.asarray(recorded["low"], float), np.asarray(recorded["high"], float)
        return TrainingBox(low, high, f"domain of {recorded['file']}")
    scaler = bundle.scaler
    half = UNIFORM_HALF_WIDTH * scaler.std
    return TrainingBox(
        scaler.mean - half,
        scaler.mean + half,
        "training targets' mean ± √3 std (the model records no training domain)",
    )


def fc_mse(theta: np.ndarray, target: np.ndarray, scale: np.ndarray | None = None) -> np.ndarray:
    """Mean over the last axis of ((θ − target) / scale)²: θ (..., K), target (K,), scale (K,)
    (None: 1, giving (eV/Å²)²). Returns (...)."""
    difference = np.asarray(theta, dtype=float) - np.asarray(target, dtype=float)
    if scale is not None:
        difference = difference / np.asarray(scale, dtype=float)
    return np.mean(difference**2, axis=-1)


def pick_representatives(mse: np.ndarray) -> dict[str, int]:
    """Indices of the best (lowest), median ((n − 1) // 2 of the sorted) and worst (highest)
    entries of ``mse`` (n,); ties resolved by position (stable sort)."""
    mse = np.asarray(mse, dtype=float)
    if mse.ndim != 1 or len(mse) == 0 or not np.all(np.isfinite(mse)):
        raise FcinvertError("ranking needs at least one finite MSE")
    order = np.argsort(mse, kind="stable")
    return {
        "best": int(order[0]),
        "median": int(order[(len(mse) - 1) // 2]),
        "worst": int(order[-1]),
    }


def dispersion_rms(basis: DynamicsBasis, theta_a: np.ndarray, theta_b: np.ndarray) -> float:
    """RMS (meV) of ħω_a − ħω_b over the basis' q-points and all branches; θ (P,) eV/Å²."""
    return float(np.sqrt(np.mean((basis.frequencies(theta_a) - basis.frequencies(theta_b)) ** 2)))


@dataclass
class SingleScanStudy:
    """Every scan inverted alone and all of them together.

    results: the inversions of the scans that could be inverted, in folder order; index: (n,)
    their positions in ``scans.files``; skipped: (position, reason) of the others; full: the
    all-orientations inversion; mse_standardised, mse_raw: (n,) against ``full`` (module
    docstring); picks: best/median/worst → position in ``results``; truth: (P,) eV/Å² or None;
    refinement: "all" and the picks → RefineResult, when refined; seconds: wall time per step.
    """

    scans: ScanFolder
    bundle: ModelBundle
    model: str
    full: InversionResult
    results: list[InversionResult]
    index: np.ndarray
    skipped: list[tuple[int, str]]
    mse_standardised: np.ndarray
    mse_raw: np.ndarray
    ranked_by: Ranking
    picks: dict[str, int]
    truth: np.ndarray | None
    box: TrainingBox
    basis: DynamicsBasis
    n_samples: int
    seed: int
    refinement: dict[str, RefineResult] | None = None
    seconds: dict[str, float] = field(default_factory=dict)

    @property
    def selected(self) -> np.ndarray:
        """(K,) indices of the selected parameters."""
        return self.bundle.selected_indices

    @property
    def fc_labels(self) -> list[str]:
        return [f"FC{k}" for k in range(len(self.selected))]

    @property
    def psi(self) -> np.ndarray:
        """(n,) degrees, of the inverted scans."""
        return self.scans.psi[self.index]

    @property
    def theta(self) -> np.ndarray:
        """(n, K) eV/Å², the selected θ of the inverted scans."""
        return np.array([r.theta[self.selected] for r in self.results])

    @property
    def std(self) -> np.ndarray:
        """(n, K) eV/Å², their latent-sampling standard deviations."""
        return np.array([r.std[self.selected] for r in self.results])

    def measured_fraction(self, result: InversionResult) -> float:
        """Fraction of the model grid's pixels that ``result``'s input measured."""
        coverage = result.coverage
        return 1.0 - coverage.unmeasured_model_pixels / coverage.model_pixels

    def pick(self, name: str) -> tuple[int, InversionResult]:
        """(position in the folder, inversion) of the best, median or worst scan."""
        position = self.picks[name]
        return int(self.index[position]), self.results[position]


def run_single_scan(
    folder: str | Path,
    bundle: ModelBundle,
    model: str = "",
    n_samples: int = 100,
    seed: int = 0,
    ranked_by: Ranking = "standardised",
    refine: bool = False,
    dataset: str | Path | None = None,
    progress: StageCallback | None = None,
) -> SingleScanStudy:
    """Invert every scan of ``folder`` and all of them together with ``bundle`` (module
    docstring); ``model`` names the bundle in the results; ``dataset``: the training dataset
    for the domain boxes (see ``training_box``); ``progress(stage, done, total)``."""
    if ranked_by not in RANKINGS:
        raise FcinvertError(f"ranking '{ranked_by}': choose one of {', '.join(RANKINGS)}")
    clock = time.perf_counter()
    scans = read_scan_folder(folder)
    expected = bundle.config.material
    if scans.material and scans.material != expected:
        raise FcinvertError(
            f"{scans.folder}: scans of '{scans.material}', but the model is for '{expected}'"
        )
    box = training_box(bundle, dataset)
    context = model_material(bundle)
    material, fcspace = context
    reference = np.array(bundle.config.reference, dtype=float)
    truth = None
    if scans.truth is not None:
        truth = fcspace.theta_from_dict(scans.truth, reference)
    seconds = {"setup": time.perf_counter() - clock}

    clock = time.perf_counter()
    full = invert_spectrum(
        _read(scans.combined, expected),
        bundle,
        n_samples,
        seed,
        source=str(scans.combined),
        context=context,
    )
    results: list[InversionResult] = []
    index: list[int] = []
    skipped: list[tuple[int, str]] = []
    for i, path in enumerate(scans.files):
        try:
            spectrum = _read(path, expected)
            results.append(
                invert_spectrum(
                    spectrum, bundle, n_samples, seed, source=path.name, context=context
                )
            )
            index.append(i)
        except FcinvertError as error:
            if "but the model is for" in str(error):
                raise
            skipped.append((i, str(error)))
        if progress:
            progress("inverting scans", i + 1, len(scans.files))
    if not results:
        raise FcinvertError(f"{scans.folder}: no scan could be inverted ({skipped[0][1]})")
    seconds["inversion"] = time.perf_counter() - clock

    selected = bundle.selected_indices
    theta = np.array([r.theta[selected] for r in results])
    mse_standardised = fc_mse(theta, full.theta[selected], bundle.scaler.std)
    mse_raw = fc_mse(theta, full.theta[selected])
    picks = pick_representatives(mse_standardised if ranked_by == "standardised" else mse_raw)
    study = SingleScanStudy(
        scans=scans,
        bundle=bundle,
        model=model,
        full=full,
        results=results,
        index=np.array(index, dtype=np.int64),
        skipped=skipped,
        mse_standardised=mse_standardised,
        mse_raw=mse_raw,
        ranked_by=ranked_by,
        picks=picks,
        truth=truth,
        box=box,
        basis=dynamics_basis(fcspace, material.path.qpoints),
        n_samples=n_samples,
        seed=seed,
        seconds=seconds,
    )
    if refine:
        clock = time.perf_counter()
        study.refinement = refine_picks(study, progress)
        seconds["refinement"] = time.perf_counter() - clock
    return study


def refine_picks(
    study: SingleScanStudy, progress: StageCallback | None = None
) -> dict[str, RefineResult]:
    """Physics refinement (free branch intensities) of the full data and of the best, median
    and worst scans, each from its own ML estimate."""
    full = study.full
    jobs = {"all": (study.scans.combined, full)}
    for name in PICKS:
        position, result = study.pick(name)
        jobs[name] = (study.scans.files[position], result)
    fits: dict[str, RefineResult] = {}
    for done, (name, (path, result)) in enumerate(jobs.items(), start=1):
        spectrum = read_spectrum(path)
        fits[name] = refine_spectrum(full.material, full.fcspace, spectrum, result.theta)
        if progress:
            progress("refining", done, len(jobs))
    return fits


def _read(path: Path, expected: str) -> Spectrum:
    spectrum = read_spectrum(path)
    if spectrum.material and spectrum.material != expected:
        raise FcinvertError(
            f"{path}: a spectrum of '{spectrum.material}', but the model is for '{expected}'"
        )
    return spectrum


def _numbers(values: np.ndarray | float) -> list | float | None:
    """Arrays as nested lists and scalars as floats, non-finite values as None (JSON)."""
    array = np.asarray(values, dtype=float)
    if array.ndim == 0:
        return float(array) if np.isfinite(array) else None
    return [_numbers(v) for v in array]


def _latent(bundle: ModelBundle, result: InversionResult) -> list | None:
    """The VAE posterior mean (latent,) of an inversion's input (for latent maps), or None."""
    if bundle.architecture != "vae":
        return None
    return _numbers(bundle.latent(result.image[None])[0][0])


def _statistics(values: np.ndarray) -> dict[str, float | None]:
    return {
        "min": _numbers(np.min(values)),
        "median": _numbers(np.median(values)),
        "mean": _numbers(np.mean(values)),
        "max": _numbers(np.max(values)),
    }


def study_results(study: SingleScanStudy) -> SingleScanResults:
    """Every number of the study (the content of results.json)."""
    bundle, full, selected = study.bundle, study.full, study.selected
    scaler = bundle.scaler
    reference = np.array(bundle.config.reference, dtype=float)
    truth = study.truth
    basis = study.basis
    theta, std = study.theta, study.std

    def versus_truth(values: np.ndarray) -> dict | None:
        if truth is None:
            return None
        return {
            "mse_standardised": _numbers(fc_mse(values[selected], truth[selected], scaler.std)),
            "mse_raw": _numbers(fc_mse(values[selected], truth[selected])),
            "dispersion_rms_meV": dispersion_rms(basis, values, truth),
        }

    parameters = []
    for k, index in enumerate(selected):
        parameters.append(
            {
                "fc": study.fc_labels[k],
                "name": bundle.config.selected[k],
                "reference": float(reference[index]),
                "truth": None if truth is None else float(truth[index]),
                "all_orientations": {
                    "value": float(full.theta[index]),
                    "std": _numbers(full.std[index]),
                },
                "scans": {**_statistics(theta[:, k]), "std": float(np.std(theta[:, k]))},
                "training_box": [float(study.box.low[k]), float(study.box.high[k])],
                "scaler_std": float(scaler.std[k]),
            }
        )
    rows = []
    for n, result in enumerate(study.results):
        position = int(study.index[n])
        listed = study.scans.listing[position]
        row = {
            "file": study.scans.files[position].name,
            "psi_deg": float(study.scans.psi[position]),
            "theta": _numbers(theta[n]),
            "std": _numbers(std[n]),
            "measured_fraction_model_grid": study.measured_fraction(result),
            "signal_to_noise": _numbers(listed.get("signal_to_noise", np.nan)),
            "mse_standardised": float(study.mse_standardised[n]),
            "mse_raw": float(study.mse_raw[n]),
            "dispersion_rms_to_all_meV": dispersion_rms(basis, result.theta, full.theta),
            "versus_truth": versus_truth(result.theta),
        }
        row["latent_mean"] = _latent(bundle, result)
        rows.append(row)

    picks = {}
    for name in PICKS:
        position, result = study.pick(name)
        n = study.picks[name]
        picks[name] = {
            "file": study.scans.files[position].name,
            "psi_deg": float(study.scans.psi[position]),
            "mse_standardised": float(study.mse_standardised[n]),
            "mse_raw": float(study.mse_raw[n]),
            "measured_fraction_model_grid": study.measured_fraction(result),
            "dispersion_rms_to_all_meV": dispersion_rms(basis, result.theta, full.theta),
            "versus_truth": versus_truth(result.theta),
        }
    ranked = np.sort(study.mse_standardised if study.ranked_by == "standardised" else study.mse_raw)
    refinement = None
    if study.refinement is not None:
        refinement = {}
        for name, fit in study.refinement.items():
            start = full if name == "all" else study.pick(name)[1]
            refinement[name] = {
                "theta": _numbers(fit.theta),
                "sigma": _numbers(fit.sigma),
                "misfit": fit.misfit,
                "n_forward": fit.n_forward,
                "seconds": fit.seconds,
                "intensities": fit.intensities,
                "dispersion_rms_to_ml_meV": dispersion_rms(basis, fit.theta, start.theta),
                "dispersion_rms_to_refined_all_meV": dispersion_rms(
                    basis, fit.theta, study.refinement["all"].theta
                ),
                "ml_versus_truth": versus_truth(start.theta),
                "refined_versus_truth": versus_truth(fit.theta),
            }
    return SingleScanResults(
        material=full.material.name,
        scans_folder=str(study.scans.folder),
        all_orientations_file=study.scans.combined.name,
        model={
            "path": study.model,
            "architecture": bundle.architecture,
            "latent_samples": study.n_samples if bundle.architecture == "vae" else None,
            "seed": study.seed,
            "grid": list(bundle.shape),
        },
        unit="eV/Å²",
        mse_definition=(
            "mean over the selected parameters of ((θ_scan − θ_all) / s)² (standardised, s the "
            "training scaler's std) or of (θ_scan − θ_all)² in (eV/Å²)² (raw)"
        ),
        ranked_by=study.ranked_by,
        fc_labels=study.fc_labels,
        parameters=parameters,
        training_box_source=study.box.source,
        truth_known=truth is not None,
        all_orientations={
            "theta": _numbers(full.theta[selected]),
            "std": _numbers(full.std[selected]),
            "measured_fraction_model_grid": study.measured_fraction(full),
            "coverage": full.coverage.as_dict(),
            "versus_truth": versus_truth(full.theta),
            "dispersion_rms_reference_meV": dispersion_rms(basis, full.theta, reference),
            "latent_mean": _latent(bundle, full),
        },
        scans=rows,
        skipped=[
            {"file": study.scans.files[i].name, "psi_deg": float(study.scans.psi[i]), "reason": why}
            for i, why in study.skipped
        ],
        picks=picks,
        summary={
            "n_scans": len(study.scans.files),
            "n_inverted": len(study.results),
            "mse_standardised": _statistics(study.mse_standardised),
            "mse_raw": _statistics(study.mse_raw),
            "worst_over_next_worst": float(ranked[-1] / ranked[-2])
            if len(ranked) > 1 and ranked[-2] > 0
            else None,
            "scan_std_over_box_width": _numbers(
                np.std(theta, axis=0) / (study.box.high - study.box.low)
            ),
        },
        refinement=refinement,
        timing_s=dict(study.seconds),
    )
