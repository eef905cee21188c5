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

What is known now: Λ = diag(1/width²) (the ensemble prior) + F_measured, F_measured from the
fitted model over the folded data with the refinement's pixel errors. A candidate adds F_ψ
(its own intensities profiled out separately: a slight overestimate for pixels already
measured). Its gain is the expected information in nats, ½ log det(I + Λ⁻¹F_ψ) — how much the
posterior volume of θ shrinks (objective "theta") — or the expected reduction of the mean
dispersion variance over the path (objective "band", meV²). A candidate that repeats measured
pixels adds information along directions already known and gains little; one that reaches an
unmeasured branch gains much.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal

import numpy as np

from fcinvert.data.measurement import simulate_scans
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
    progress: Callable[[str, int, int], None] | None = None,
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
    jacobian = fit.evaluate(theta).jacobian[: intensity.size]
    return jacobian.T @ jacobian


@dataclass
class Ranking:
    """Candidates best first: rows of {psi, gain, information_nats, band_reduction_meV2,
    dispersion_std_meV, pixels, new_pixels, measured}; and the dispersion σ (meV, RMS over
    path and branches) before any of them."""

    rows: list[dict]
    dispersion_std_now: float
    objective: str


def rank_candidates(
    candidates: Candidates,
    counts: float,
    theta: np.ndarray,
    prior: Prior,
    basis: DynamicsBasis,
    material: Material,
    measured: tuple[Spectrum, np.ndarray] | None,
    measured_psi: list[float] | None = None,
    objective: Objective = "theta",
) -> Ranking:
    """Rank ``candidates`` by the expected gain (module docstring) of ``counts`` counts each.

    theta: (P,) eV/Å² current estimate; basis: D_k on the material's path; measured: the
    folded spectrum and the model fitted over it (n_path, nE) at θ, or None before any data.
    measured_psi: rotations already measured (marked in the rows).
    """
    grid = material.energy
    precision = np.diag(1.0 / prior.width**2)
    measured_pixels = np.zeros(candidates.share.shape[1:], bool)
    if measured is not None:
        spectrum, fitted = measured
        grid = spectrum_grid(material, spectrum)
        errors = pixel_errors(spectrum.intensity, spectrum.error, grid)
        precision = precision + fisher_information(basis, grid, fitted, errors, prior, theta)
        measured_pixels = np.isfinite(spectrum.intensity)
    covariance = np.linalg.inv(precision)
    slopes = _dispersion_slopes(basis, grid, prior, theta)  # (nq·nb, P)
    std_now = float(np.sqrt(np.mean(np.einsum("ip,pq,iq->i", slopes, covariance, slopes))))
    _, logdet_now = np.linalg.slogdet(precision)
    done = {round(float(p), 6) for p in (measured_psi or []) if p is not None}
    rows = []
    for psi, share, intensity in zip(
        candidates.psi, candidates.share, candidates.intensity, strict=True
    ):
        expected = counts * share.astype(float)
        reached = np.isfinite(intensity) & (expected > 0) & (intensity > 0)
        error = np.where(reached, intensity / np.sqrt(np.where(reached, expected, 1.0)), np.nan)
        image = np.where(reached, intensity, np.nan)
        added = fisher_information(basis, grid, image, error, prior, theta) if reached.any() else 0
        after = precision + added
        _, logdet = np.linalg.slogdet(after)
        cov_after = np.linalg.inv(after)
        variance = np.einsum("ip,pq,iq->i", slopes, cov_after, slopes)
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
                "new_pixels": int((reached & ~measured_pixels).sum()),
                "measured": round(float(psi), 6) in done,
            }
        )
    rows.sort(key=lambda row: -row["gain"])
    return Ranking(rows, std_now, objective)


def _dispersion_slopes(basis: DynamicsBasis, grid, prior: Prior, theta: np.ndarray) -> np.ndarray:
    """∂ħω/∂θ (nq·nb, P) meV per eV/Å² on the basis' q-points (Hellmann–Feynman)."""
    nq, n_energy = len(basis.qpoints), len(grid.centres)
    fit = SpectrumFit(basis, grid, np.ones((nq, n_energy)), None, prior, noise=1.0)
    values, vectors = np.linalg.eigh(basis.dynamical_matrices(theta)[0])
    return fit.frequency_derivatives(values, vectors).reshape(-1, len(theta))
