"""Which crystal orientation to measure next: the expected information each candidate adds.

For every candidate rotation ψ the coverage simulator (``simulate_scans``, at the current
estimate θ̂, with so many counts that the Poisson noise vanishes) gives the pixels it would
reach on the path, the share of an orientation's counts each receives, and the intensity it
would see there (coherent one-phonon S(Q, E) of the zones it reaches, plus background). With
``counts`` per orientation, a pixel's expected counts are μ = counts · share and its intensity
error I/√μ. The information that data carry about θ is the Fisher matrix JᵀJ of the
refinement's own weighted residual (``SpectrumFit``: free branch intensities and backgrounds
profiled out, Golub–Pereyra Jacobian) at θ̂ — what the refinement can learn from peak
positions once it has fitted every intensity freely.

Counting statistics alone would make a repeat of the measured pixels nearly as valuable as
new ones, while what limits a real measurement is the model error that more counts do not
average away. So every pixel's error is I·√(1/μ + f²): f, the model-error floor, is the
residual power beyond the noise in the current fit, as a fraction of the model's power
(``measured_state``; MODEL_ERROR_DEFAULT before any data).

What is known now: Λ = diag(1/width²) (the ensemble prior) + F(measured), F from the fitted
model over the folded data with the effective counts of each pixel ((I/σ)² with the
refinement's pixel errors). A candidate is judged on the data it would leave: the measured
pixels plus its own (counts added where they overlap, its intensities brought to the data's
units by the ratio of sums over the pixels both hold), F(measured + ψ) computed afresh, so
that the free intensities are profiled over all of it. Its gain is the expected information
in nats, ½ log det(Λ(ψ)) − ½ log det(Λ) — how much the posterior volume of θ shrinks
(objective "theta") — or the expected reduction of the mean dispersion variance over the path
(objective "band", meV²). A candidate that repeats measured pixels adds information along
directions already known, against the floor, and gains little; one that reaches a branch not
yet seen gains much.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import numpy as np

from fcinvert.data.measurement import simulate_scans
from fcinvert.data.progress import StageCallback
from fcinvert.data.spectrum_file import Spectrum
from fcinvert.inversion.prior import Prior
from fcinvert.inversion.refine import SpectrumFit, pixel_errors, spectrum_grid
from fcinvert.physics.dynamics import DynamicsBasis
from fcinvert.physics.instrument import Orientation, Spectrometer
from fcinvert.physics.material import Material
from fcinvert.physics.structure_factor import StructureFactorModel

Objective = Literal["theta", "band"]
OBJECTIVES = ("theta", "band")
#: counts per candidate in the simulation: Poisson noise ~1e-6 relative, i.e. the expectation
SIMULATED_COUNTS = 1e12
#: model-error floor (fraction of the intensity) before any data, and the least ever used
MODEL_ERROR_DEFAULT = 0.05
MODEL_ERROR_MIN = 0.01


@dataclass
class Candidates:
    """What each candidate orientation would measure.

    psi: (n,) degrees; share: (n, n_path, nE) expected counts of each path pixel per count
    of the orientation (0 where not reached; sums exceed 1 where a voxel folds onto several
    path points); intensity: (n, n_path, nE) expected intensity (simulator units), NaN where
    not reached.
    """

    psi: np.ndarray
    share: np.ndarray
    intensity: np.ndarray


def simulate_candidates(
    material: Material,
    structure: StructureFactorModel,
    theta: np.ndarray,
    spectrometer: Spectrometer,
    orientation: Orientation,
    psi: np.ndarray,
    *,
    background: float = 0.1,
    temperature: float | None = None,
    q_step: float = 0.05,
    width: float = 0.05,
    progress: StageCallback | None = None,
) -> Candidates:
    """The coverage and expected intensities of every ψ (degrees) at θ (P,) eV/Å²."""
    scans = simulate_scans(
        material,
        structure,
        theta,
        spectrometer,
        orientation,
        np.asarray(psi, float),
        SIMULATED_COUNTS,
        background,
        temperature,
        q_step,
        width,
        0,
        progress=progress,
    )
    shares, intensities = [], []
    for spectrum in scans.single:
        intensity, error = spectrum.intensity, spectrum.error
        reached = np.isfinite(intensity) & (error > 0)
        safe = np.where(reached, error, 1.0)
        # counts = intensity² / error² (Poisson, error = √counts / exposure)
        counts = np.where(reached, intensity**2 / safe**2, 0.0)
        shares.append(counts / SIMULATED_COUNTS)
        intensities.append(np.where(reached, intensity, np.nan))
    return Candidates(
        np.asarray(psi, float), np.array(shares, np.float32), np.array(intensities, np.float32)
    )


def fisher_information(
    basis: DynamicsBasis, grid, intensity: np.ndarray, error: np.ndarray, prior: Prior, theta
) -> np.ndarray:
    """JᵀJ (P, P) of the free-intensity refinement's data residual at θ, for noise-free data
    ``intensity`` (nq, nE) with one-σ ``error`` (NaN: unmeasured)."""
    fit = SpectrumFit(basis, grid, intensity, error, prior, noise=1.0)
    jacobian = fit.evaluate(theta).derivatives.rows()[: intensity.size]
    return jacobian.T @ jacobian


@dataclass
class Ranking:
    """Candidates best first: rows of {psi, gain, information_nats, band_reduction_meV2,
    dispersion_std_meV, pixels, new_pixels, measured}; the dispersion σ (meV, RMS over path and
    branches) before any of them; the model-error floor used (fraction of the intensity)."""

    rows: list[dict]
    dispersion_std_now: float
    model_error: float
    objective: str


@dataclass(frozen=True)
class Measured:
    """What the folded data hold, for planning: the model fitted over them (n_path, nE, data
    units, NaN unmeasured), the effective counts of every pixel (n_path, nE: (I/σ)² with the
    refinement's pixel errors), and the rotations measured (None where unknown)."""

    fitted: np.ndarray
    counts: np.ndarray
    psi: list[float | None]


def measured_state(
    spectrum: Spectrum, fitted: np.ndarray, material: Material, psi: list[float | None]
) -> tuple[Measured, float]:
    """The ``Measured`` of a folded spectrum and the model fitted over it, and the model-error
    floor f: the residual variance beyond the noise as a fraction of the model's power,
    f² = max(0, Σ(r² − σ²)) / Σ fitted² (at least MODEL_ERROR_MIN)."""
    grid = spectrum_grid(material, spectrum)
    errors = pixel_errors(spectrum.intensity, spectrum.error, grid)
    ok = np.isfinite(fitted) & np.isfinite(errors) & np.isfinite(spectrum.intensity)
    counts = np.where(ok, (np.where(ok, fitted, 0.0) / np.where(ok, errors, 1.0)) ** 2, 0.0)
    residual = spectrum.intensity[ok] - fitted[ok]
    excess = max(0.0, float(np.sum(residual**2 - errors[ok] ** 2)))
    floor = np.sqrt(excess / max(float(np.sum(fitted[ok] ** 2)), 1e-300))
    return Measured(np.where(ok, fitted, np.nan), counts, list(psi)), max(floor, MODEL_ERROR_MIN)


def rank_candidates(
    candidates: Candidates,
    counts: float,
    theta: np.ndarray,
    prior: Prior,
    basis: DynamicsBasis,
    material: Material,
    measured: Measured | None,
    model_error: float = MODEL_ERROR_DEFAULT,
    objective: Objective = "theta",
) -> Ranking:
    """Rank ``candidates`` by the expected gain (module docstring) of ``counts`` counts each.

    theta: (P,) eV/Å² current estimate; basis: D_k on the material's path; measured: the
    folded data (None before any); model_error: the floor f (fraction of the intensity)
    below which no pixel's error falls however often it is measured.
    """
    grid = material.energy
    shape = candidates.share.shape[1:]
    if measured is None:
        image, counts_now = np.full(shape, np.nan), np.zeros(shape)
        done: set[float] = set()
    else:
        image, counts_now = measured.fitted, measured.counts
        done = {round(float(p), 6) for p in measured.psi if p is not None}
    base = np.diag(1.0 / prior.width**2)
    information = _information(basis, grid, prior, theta, model_error)
    precision = base + information(image, counts_now)
    covariance = np.linalg.inv(precision)
    slopes = _dispersion_slopes(basis, grid, prior, theta)  # (nq·nb, P)
    std_now = float(np.sqrt(np.mean(np.einsum("ip,pq,iq->i", slopes, covariance, slopes))))
    _, logdet_now = np.linalg.slogdet(precision)
    have = np.isfinite(image)
    rows = []
    for psi, share, intensity in zip(
        candidates.psi, candidates.share, candidates.intensity, strict=True
    ):
        expected = counts * share.astype(float)
        reached = np.isfinite(intensity) & (expected > 0) & (intensity > 0)
        scale = _scale(image, intensity, have, reached)
        combined = np.where(have, image, np.where(reached, scale * intensity, np.nan))
        after = base + information(combined, counts_now + np.where(reached, expected, 0.0))
        _, logdet = np.linalg.slogdet(after)
        variance = np.einsum("ip,pq,iq->i", slopes, np.linalg.inv(after), slopes)
        nats = 0.5 * float(logdet - logdet_now)
        reduction = std_now**2 - float(np.mean(variance))
        rows.append(
            {
                "psi": float(psi),
                "gain": nats if objective == "theta" else reduction,
                "information_nats": nats,
                "band_reduction_meV2": reduction,
                "dispersion_std_meV": float(np.sqrt(np.mean(variance))),
                "pixels": int(reached.sum()),
                "new_pixels": int((reached & ~have).sum()),
                "measured": round(float(psi), 6) in done,
            }
        )
    rows.sort(key=lambda row: -row["gain"])
    return Ranking(rows, std_now, model_error, objective)


def _information(basis: DynamicsBasis, grid, prior: Prior, theta: np.ndarray, floor: float):
    """image (nq, nE), counts (nq, nE) ↦ Fisher matrix (P, P) with pixel errors
    I·√(1/counts + floor²); zero for an image with no pixel."""

    def information(image: np.ndarray, counts: np.ndarray) -> np.ndarray:
        ok = np.isfinite(image) & (counts > 0)
        if not ok.any():
            return np.zeros((len(theta), len(theta)))
        relative = np.sqrt(1.0 / np.where(ok, counts, 1.0) + floor**2)
        error = np.where(ok, np.abs(image) * relative, np.nan)
        return fisher_information(basis, grid, np.where(ok, image, np.nan), error, prior, theta)

    return information


def _scale(image: np.ndarray, intensity: np.ndarray, have: np.ndarray, reached: np.ndarray):
    """Factor from simulator to data units: the ratio of sums over pixels both hold (else
    over their own pixels; 1 before any data)."""
    both = have & reached
    if both.any():
        return float(np.sum(image[both]) / max(float(np.sum(intensity[both])), 1e-300))
    if have.any() and reached.any():
        return float(np.mean(image[have]) / max(float(np.mean(intensity[reached])), 1e-300))
    return 1.0


def _dispersion_slopes(basis: DynamicsBasis, grid, prior: Prior, theta: np.ndarray) -> np.ndarray:
    """∂ħω/∂θ (nq·nb, P) meV per eV/Å² on the basis' q-points (Hellmann–Feynman)."""
    nq, n_energy = len(basis.qpoints), len(grid.centres)
    fit = SpectrumFit(basis, grid, np.ones((nq, n_energy)), None, prior, noise=1.0)
    values, vectors = np.linalg.eigh(basis.dynamical_matrices(theta)[0])
    return fit.frequency_derivatives(values, vectors).reshape(-1, len(theta))
