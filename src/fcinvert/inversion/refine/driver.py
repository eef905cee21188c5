"""The refinement driver: coarse-to-fine continuation of Levenberg–Marquardt fits, from a start θ
to a ``RefineResult`` with its posterior.

Each stage broadens the model by an extra FWHM (default 2 → 1 → 0 meV) and smooths the data by
the same Gaussian, starting where the last stopped. With physical intensities the branch weights
are evaluated at the θ where each stage starts and held during it (so the Jacobian stays exact);
last stages re-weight at the converged θ until it no longer moves.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

import numpy as np

from fcinvert.data.spectrum_file import Spectrum
from fcinvert.errors import FcinvertError
from fcinvert.inversion.prior import Prior
from fcinvert.inversion.refine.intensities import INTENSITY_MODELS, Intensities, branch_weights
from fcinvert.inversion.refine.levenberg_marquardt import METHODS, Method, levenberg_marquardt
from fcinvert.inversion.refine.measured import pixel_errors, spectrum_grid
from fcinvert.inversion.refine.spectrum_fit import (
    SpectrumFit,
    column_misfit,
    objective,
    residual_variance,
)
from fcinvert.inversion.refine.uncertainty import posterior
from fcinvert.physics.dynamics import DynamicsBasis, dynamics_basis
from fcinvert.physics.fcspace import FCSpace
from fcinvert.physics.material import EnergyGrid, Material
from fcinvert.physics.structure_factor import StructureFactorModel, gamma_mesh

#: Extra model FWHM (meV) of each continuation stage, coarse to fine; 0 is the resolution.
CONTINUATION = (2.0, 1.0, 0.0)
#: Times the last stage is repeated with re-evaluated physical branch weights, at most.
REWEIGHTS = 3
#: Relative cost change that ends a coarse stage and the final one.
COARSE_TOLERANCE = 1e-3
FINE_TOLERANCE = 1e-6


@dataclass(frozen=True)
class StageLog:
    """One continuation stage: extra model FWHM (meV), forward models run, optimiser
    iterations, residual variance at its end (data units², see RefineResult.misfit), seconds."""

    extra_fwhm: float
    n_forward: int
    iterations: int
    misfit: float
    seconds: float


@dataclass
class RefineResult:
    """A refined θ and everything needed to judge it.

    theta, sigma: (P,) eV/Å², σ the posterior's (``uncertainty``); covariance (P, P) (eV/Å²)²;
    prior_share: (P,) σ_k² / width_k², near 1 where the data do not constrain θ_k (its value then
    comes from the prior). frequencies: (nq, nb) meV of θ. amplitudes: (nq, nb) fitted
    integrated intensity of each branch (data units × meV); background: (nq,) data units;
    scale: mean amplitude of the branches inside the window. fitted: (nq, nE) model image,
    NaN where the data are unmeasured. misfit: weighted residual variance Σ r²/(n − n_fitted)
    (data units², or reduced χ² when errors were given). n_forward: forward models run
    (eigen-solves); seconds: wall time; stages: per-stage log.
    """

    theta: np.ndarray
    sigma: np.ndarray
    covariance: np.ndarray
    prior_share: np.ndarray
    frequencies: np.ndarray
    amplitudes: np.ndarray
    background: np.ndarray
    scale: float
    fitted: np.ndarray
    misfit: float
    noise: float
    objective: float
    column_misfit: np.ndarray
    n_forward: int
    seconds: float
    intensities: str
    method: str
    stages: list[StageLog] = field(default_factory=list)


def refine(
    material: Material,
    fcspace: FCSpace,
    spectrum_intensity: np.ndarray,
    qpoints: np.ndarray,
    start_theta: np.ndarray,
    *,
    intensities: Intensities = "free",
    method: Method = "analytic",
    error: np.ndarray | None = None,
    continuation: tuple[float, ...] = CONTINUATION,
    prior: Prior | None = None,
    noise: float | None = None,
    partial: bool = False,
    max_iterations: int = 40,
    basis: DynamicsBasis | None = None,
    zones: np.ndarray | None = None,
    zone_weights: np.ndarray | None = None,
    temperature: float | None = None,
    structure: StructureFactorModel | None = None,
    grid: EnergyGrid | None = None,
) -> RefineResult:
    """Fit all free θ to a measured I(q, E), starting from ``start_theta``.

    spectrum_intensity: (nq, nE) on the material's energy bins, NaN = unmeasured; error:
    (nq, nE) one-σ errors or None (unit weights); qpoints: (nq, 3) reduced; start_theta: (P,)
    eV/Å² (the ML estimate). intensities: "free", "fast" or "physical" (``intensities``).
    method: "analytic" (Hellmann–Feynman Jacobian) or "iterative" (finite differences).
    continuation: extra model FWHM (meV) per stage, ending with 0 unless ``partial`` (a coarse
    run whose θ another call continues; its covariance is then the prior's, not computed).
    prior: the Gaussian prior on θ (default: centred on the start, as wide as each |θ_k|);
    noise: σ of one normalised pixel (default estimated from the data). max_iterations: trial
    steps per stage. basis: D_k at ``qpoints`` (built when None).
    For "physical": zones (nz, 3) reduced integer G the measurement folds, zone_weights (nz,)
    (default equal), temperature K (default the material's), structure: a prebuilt
    StructureFactorModel on ``qpoints`` (built when None: Debye–Waller on an 8³ mesh).
    grid: the data's energy bins and resolution (default the material's).
    """
    started = time.perf_counter()
    grid = material.energy if grid is None else grid
    intensity = np.asarray(spectrum_intensity, dtype=float)
    qpoints = np.atleast_2d(np.asarray(qpoints, dtype=float))
    start = np.asarray(start_theta, dtype=float)
    _check_inputs(
        intensity, error, qpoints, start, grid, fcspace, intensities, method, continuation, partial
    )
    prior = Prior.around(start) if prior is None else prior
    basis = dynamics_basis(fcspace, qpoints) if basis is None else basis
    weigh = None
    if intensities == "physical":
        if zones is None:
            raise FcinvertError("physical intensities: give the zones (G, reduced) the data fold")
        if structure is None:
            structure = StructureFactorModel(
                material, basis, dynamics_basis(fcspace, gamma_mesh(8))
            )
        kelvin = material.settings.temperature_K if temperature is None else temperature
        zone_rows = np.atleast_2d(np.asarray(zones))

        def weigh(theta: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
            return branch_weights(structure, theta, kelvin, zone_rows, zone_weights)

    theta = start.copy()
    stages: list[StageLog] = []
    schedule = list(continuation) + ([0.0] * REWEIGHTS if weigh is not None else [])
    for number, extra in enumerate(schedule):
        stage_start = time.perf_counter()
        fit = SpectrumFit(
            basis,
            grid,
            intensity,
            error,
            prior,
            noise=noise,
            intensities=intensities,
            extra_fwhm=extra,
            branch_weights=None if weigh is None else weigh(theta),
        )
        tolerance = FINE_TOLERANCE if extra == 0.0 else COARSE_TOLERANCE
        final, iterations = levenberg_marquardt(fit, theta, method, max_iterations, tolerance)
        moved = np.abs(final.theta - theta).max() / max(np.abs(theta).max(), 1e-300)
        theta = final.theta
        stages.append(
            StageLog(
                extra,
                fit.n_forward + (weigh is not None),
                iterations,
                residual_variance(final, len(theta), fit) * fit.variance_unit,
                time.perf_counter() - stage_start,
            )
        )
        if number >= len(continuation) and moved < 1e-4:
            break  # physical weights re-evaluated at θ no longer move it
    if partial:  # a coarse stage that another call continues: no posterior wanted
        covariance, prior_share = np.diag(prior.width**2), np.ones(len(theta))
    else:
        covariance, prior_share = posterior(final, fit, len(theta))
    inside = (final.frequencies > grid.centres[0]) & (final.frequencies < grid.centres[-1])
    amplitudes = final.amplitudes * fit.norm
    return RefineResult(
        theta=theta,
        sigma=np.sqrt(np.diag(covariance)),
        covariance=covariance,
        prior_share=prior_share,
        frequencies=final.frequencies,
        amplitudes=amplitudes,
        background=final.background * fit.norm,
        scale=float(amplitudes[inside].mean()) if inside.any() else 0.0,
        fitted=np.where(fit.measured, (final.model + final.background[:, None]) * fit.norm, np.nan),
        misfit=residual_variance(final, len(theta), fit) * fit.variance_unit,
        noise=fit.noise**2 * fit.variance_unit,
        objective=objective(final, fit),
        column_misfit=column_misfit(final, fit),
        n_forward=sum(stage.n_forward for stage in stages),
        seconds=time.perf_counter() - started,
        intensities=intensities,
        method=method,
        stages=stages,
    )


def refine_spectrum(
    material: Material,
    fcspace: FCSpace,
    spectrum: Spectrum,
    start_theta: np.ndarray,
    **options: object,
) -> RefineResult:
    """``refine`` on a Spectrum as read from a file: its own q-points and energy bins (which
    must be uniform; the material's resolution), weighted by ``pixel_errors`` (from the file's
    errors when it has them) unless ``error`` is given."""
    grid = spectrum_grid(material, spectrum)
    options.setdefault("error", pixel_errors(spectrum.intensity, spectrum.error, grid))
    return refine(
        material, fcspace, spectrum.intensity, spectrum.qpoints, start_theta, grid=grid, **options
    )


def iterative_baseline(
    material: Material,
    fcspace: FCSpace,
    spectrum_intensity: np.ndarray,
    qpoints: np.ndarray,
    **options: object,
) -> RefineResult:
    """The paper's traditional iterative optimisation: the same fit started from the
    force-field reference with a finite-difference Jacobian."""
    reference = fcspace.reference_theta(material)
    return refine(
        material, fcspace, spectrum_intensity, qpoints, reference, method="iterative", **options
    )


def _check_inputs(
    intensity: np.ndarray,
    error: np.ndarray | None,
    qpoints: np.ndarray,
    start: np.ndarray,
    grid: EnergyGrid,
    fcspace: FCSpace,
    intensities: str,
    method: str,
    continuation: tuple[float, ...],
    partial: bool = False,
) -> None:
    if intensity.ndim != 2 or intensity.shape[1] != len(grid.centres):
        raise FcinvertError(
            f"spectrum: intensity of shape {intensity.shape}; the energy grid needs "
            f"(nq, {len(grid.centres)})"
        )
    if qpoints.shape != (len(intensity), 3):
        raise FcinvertError(
            f"spectrum: qpoints of shape {qpoints.shape}, expected ({len(intensity)}, 3)"
        )
    if error is not None and np.shape(error) != intensity.shape:
        raise FcinvertError(
            f"spectrum: error of shape {np.shape(error)}, expected {intensity.shape}"
        )
    if not np.any(np.isfinite(intensity)):
        raise FcinvertError("spectrum: every intensity pixel is NaN (nothing measured)")
    if start.shape != (fcspace.n_params,) or not np.all(np.isfinite(start)):
        raise FcinvertError(
            f"start θ: need {fcspace.n_params} finite parameters, got shape {start.shape}"
        )
    if intensities not in INTENSITY_MODELS:
        raise FcinvertError(
            f"intensities '{intensities}': choose one of {', '.join(INTENSITY_MODELS)}"
        )
    if method not in METHODS:
        raise FcinvertError(f"method '{method}': choose one of {', '.join(METHODS)}")
    if not continuation or (continuation[-1] != 0.0 and not partial) or min(continuation) < 0.0:
        raise FcinvertError(
            f"continuation {continuation}: extra widths must be ≥ 0 and end with 0 (the resolution)"
        )
