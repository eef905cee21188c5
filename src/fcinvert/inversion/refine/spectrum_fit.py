"""The least-squares problem of one continuation stage: θ ↦ weighted residual and its analytic
Jacobian, from one eigen-solve of D(θ).

Rows: the data (the intensity model's residual after its linear unknowns are eliminated), the
intensity ridge, the prior σ_n (θ − centre)/width, and guards that push back branches far above
the energy window or imaginary off Γ. The Hellmann–Feynman theorem gives dω²_j/dθ_k =
e_j† D_k e_j; the intensity model differentiates through its linear unknowns.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from fcinvert.inversion.prior import Prior
from fcinvert.inversion.refine.intensities import (
    FastIntensities,
    FreeIntensities,
    Intensities,
    IntensityModel,
    PhysicalIntensities,
)
from fcinvert.inversion.refine.measured import noise_level, smooth
from fcinvert.inversion.refine.normal_equations import ColumnTerms, from_rows
from fcinvert.inversion.refine.peaks import PeakShape
from fcinvert.physics.dynamics import FREQUENCY_TO_MEV, DynamicsBasis
from fcinvert.physics.material import FWHM_TO_SIGMA, EnergyGrid

#: Branches above this multiple of the window's top are pushed back (runaway guard).
GUARD_ABOVE = 1.3
_LAMBDA_FLOOR = (0.01 / FREQUENCY_TO_MEV) ** 2  # ω² (eV/Å²/amu) of 0.01 meV
#: Trial θ per eigen-solve in ``SpectrumFit.misfits`` (bounds its memory: ~50 MB at 25 columns).
MISFIT_CHUNK = 100


@dataclass
class Derivatives:
    """∂r/∂θ at one θ, as Gauss–Newton uses it: ``columns``, the per-q-column terms of the data
    and ridge rows (``normal_equations``); curvature JᵀJ (P, P) and gradient Jᵀr (P,) over all
    rows (prior and guard rows added); ``rows()``: J itself (n_rows, P), formed on request."""

    columns: ColumnTerms
    curvature: np.ndarray
    gradient: np.ndarray
    rows: Callable[[], np.ndarray]

    @classmethod
    def of_rows(cls, jacobian: np.ndarray, residual: np.ndarray, nq: int, nb: int) -> Derivatives:
        """From a formed J (n_rows, P) and r (n_rows,) of a fit with nq columns and nb branches
        (rows laid out as in ``Evaluation``)."""
        n_params = jacobian.shape[1]
        n_data = len(residual) - nq * nb - n_params - 2 * nq * nb
        ridge = slice(n_data, n_data + nq * nb)
        columns = from_rows(
            jacobian[:n_data].reshape(nq, -1, n_params),
            jacobian[ridge].reshape(nq, nb, n_params),
            residual[:n_data].reshape(nq, -1),
            residual[ridge].reshape(nq, nb),
        )
        return cls(columns, jacobian.T @ jacobian, jacobian.T @ residual, lambda: jacobian)


@dataclass
class Evaluation:
    """The fit at one θ (P,). residual: (n_rows,) data rows first (nq·nE, zero where unmeasured),
    then intensity-ridge (nq·nb), prior (P) and guard (nq·nb·2) rows; derivatives: ∂r/∂θ or
    None; frequencies (nq, nb) meV; amplitudes (nq, nb) and background (nq,) in normalised data
    units; model: (nq, nE) normalised; rss: Σ data residual²; n_linear: linear unknowns fitted."""

    theta: np.ndarray
    residual: np.ndarray
    derivatives: Derivatives | None
    frequencies: np.ndarray
    amplitudes: np.ndarray
    background: np.ndarray
    model: np.ndarray
    rss: float
    n_linear: int


class SpectrumFit:
    """The least-squares problem of one continuation stage: θ ↦ weighted residual (+ Jacobian).

    intensity, error: (nq, nE) data and one-σ errors (None: unit weights), NaN = unmeasured
    (a non-finite error too; errors ≤ 0 are raised to the smallest positive one);
    basis: D_k at the data's q-points; grid: the energy bins and resolution; prior: the Gaussian
    prior on θ; noise: σ_n of one normalised pixel (None: ``noise_level`` of the data), which
    weighs the prior rows against the data rows. intensities: the intensity model's name
    (``fcinvert.inversion.refine.intensities``); branch_weights: for ``physical``, the weights
    (nq, nb) of phonon creation (at +ħω) and annihilation (at −ħω) of every branch. extra_fwhm:
    the stage's extra model width (meV), the data smoothed by the same. Data are divided by
    ``norm`` internally so the residual is O(1).
    """

    def __init__(
        self,
        basis: DynamicsBasis,
        grid: EnergyGrid,
        intensity: np.ndarray,
        error: np.ndarray | None,
        prior: Prior,
        *,
        noise: float | None = None,
        intensities: Intensities = "free",
        extra_fwhm: float = 0.0,
        ridge: float = 1e-5,
        guard: float = 1.0,
        branch_weights: tuple[np.ndarray, np.ndarray] | None = None,
    ) -> None:
        if (intensities == "physical") != (branch_weights is not None):
            raise ValueError("branch weights go with, and only with, physical intensities")
        self.basis = basis
        self.prior = prior
        self.intensities = intensities
        measured = np.isfinite(intensity)
        if error is not None:  # non-finite errors mark unmeasured pixels; zeros get the floor
            measured &= np.isfinite(error)
            positive = error[measured & (error > 0)]
            error = np.where(error > 0, error, positive.min() if positive.size else 1.0)
        self.measured = measured
        self.norm = float(np.sqrt(np.mean(intensity[measured] ** 2))) or 1.0
        data = np.where(measured, intensity, 0.0) / self.norm
        if error is None:
            weight = measured.astype(float)
        else:
            weight = np.where(measured, self.norm / np.where(measured, error, 1.0), 0.0)
        #: residual² → data units² (weighted residuals are already in units of σ: χ²)
        self.variance_unit = self.norm**2 if error is None else 1.0
        sigma_extra = extra_fwhm * FWHM_TO_SIGMA
        self.noise = noise_level(data * weight, measured) if noise is None else noise
        self.edges = grid.edges
        self.peaks = PeakShape(grid, sigma_extra)
        self.n_forward = 0
        self.intensity_model = self._intensity_model(
            weight, smooth(data, measured, grid, sigma_extra), ridge, branch_weights
        )
        energy = float(np.sum(self.intensity_model.centred_data**2))
        self.prior_scale = self.noise / np.asarray(prior.width, dtype=float)
        self.guard = guard * np.sqrt(energy)  # per meV outside the allowed range
        self.off_gamma = np.any(np.abs(basis.qpoints) > 1e-9, axis=1)
        n_params = len(prior.centre)
        matrices = np.moveaxis(basis.matrices, 0, -1).reshape(len(basis.qpoints), -1, n_params)
        #: D_k(q) as real (nq, 2·nb², P): [Re D; Im D], so e†D_k e is one real matmul
        self._hellmann_feynman = np.concatenate([matrices.real, matrices.imag], axis=1)

    def _intensity_model(
        self,
        weight: np.ndarray,
        data: np.ndarray,
        ridge: float,
        branch_weights: tuple[np.ndarray, np.ndarray] | None,
    ) -> IntensityModel:
        """The intensity model named by ``self.intensities`` on the smoothed normalised data;
        the free one's ridge is set from the peaks at the prior's centre (one forward model)."""
        if self.intensities == "physical":
            return PhysicalIntensities(weight, data, self.peaks, branch_weights)
        if self.intensities == "fast":
            return FastIntensities(weight, data)
        self.n_forward += 1
        reference, _ = self.peaks(self.basis.frequencies(self.prior.centre), derivative=False)
        return FreeIntensities(weight, data, reference, ridge)

    def evaluate(self, theta: np.ndarray, jacobian: bool = True) -> Evaluation:
        """Residual (and Jacobian) at θ (P,): one eigen-solve."""
        self.n_forward += 1
        theta = np.asarray(theta, dtype=float)
        matrices = self.basis.dynamical_matrices(theta)[0]
        if jacobian:
            values, vectors = np.linalg.eigh(matrices)
        else:
            values, vectors = np.linalg.eigvalsh(matrices), None
        frequencies = _pinned_frequencies(values)
        peaks, slopes = self.peaks(frequencies, jacobian)
        linear = self.intensity_model.linear(frequencies, peaks, slopes)
        guard_rows, guard_sign = self._guard(frequencies)
        prior_residual = self.prior_scale * (theta - self.prior.centre)
        residual = np.concatenate(
            [linear.residual.ravel(), linear.ridge.ravel(), prior_residual, guard_rows.ravel()]
        )
        derivatives = None
        if jacobian:
            d_omega = self.frequency_derivatives(values, vectors)

            def rows() -> np.ndarray:
                guard_jacobian = guard_sign[..., None] * d_omega[:, :, None, :] * self.guard
                return np.concatenate(
                    [
                        *linear.jacobian(d_omega),
                        np.diag(self.prior_scale),
                        guard_jacobian.reshape(-1, len(theta)),
                    ]
                )

            columns = linear.normal(d_omega)
            held = np.nonzero(guard_sign)  # the few rows a guard holds: (q, branch, side)
            guarded = guard_sign[held][:, None] * d_omega[held[:2]] * self.guard  # (n, P)
            derivatives = Derivatives(
                columns,
                columns.curvature + np.diag(self.prior_scale**2) + guarded.T @ guarded,
                columns.scores.sum(axis=0)
                + self.prior_scale * prior_residual
                + guarded.T @ guard_rows[held],
                rows,
            )
        return Evaluation(
            theta,
            residual,
            derivatives,
            frequencies,
            linear.amplitudes,
            self.intensity_model.background(linear.model),
            linear.model,
            float(np.sum(linear.residual**2)),
            linear.n_linear,
        )

    def misfits(self, thetas: np.ndarray) -> np.ndarray:
        """Σ data residual² (B,) at each θ of ``thetas`` (B, P): ``evaluate(θ, jacobian=False)
        .rss`` for many θ at once, MISFIT_CHUNK to an eigen-solve (screening hundreds of starts
        costs a few of the per-θ calls)."""
        thetas = np.atleast_2d(np.asarray(thetas, dtype=float))
        self.n_forward += len(thetas)
        out = []
        for first in range(0, len(thetas), MISFIT_CHUNK):
            matrices = self.basis.dynamical_matrices(thetas[first : first + MISFIT_CHUNK])
            frequencies = _pinned_frequencies(np.linalg.eigvalsh(matrices))
            peaks, _ = self.peaks(frequencies, derivative=False)
            out.append(self.intensity_model.misfits(frequencies, peaks))
        return np.concatenate(out) if out else np.zeros(0)

    def frequency_derivatives(self, values: np.ndarray, vectors: np.ndarray) -> np.ndarray:
        """∂ħω_j/∂θ_k (nq, nb, P) meV per eV/Å² from the eigenvalues (nq, nb) and eigenvector
        columns (nq, nb, nb) of D(θ), by Hellmann–Feynman: ∂ω²_j/∂θ_k = e_j† D_k e_j (modes
        pinned at 0, the acoustic ones at Γ, get 0)."""
        outer = vectors.conj()[:, :, None, :] * vectors[:, None, :, :]  # (nq, a, b, j)
        outer = outer.reshape(len(values), -1, values.shape[-1])
        stacked = np.concatenate([outer.real, -outer.imag], axis=1)  # (nq, 2·nb², nb)
        d_lambda = np.swapaxes(stacked, 1, 2) @ self._hellmann_feynman
        still = np.abs(values) < _LAMBDA_FLOOR
        magnitude = np.sqrt(np.maximum(np.abs(values), _LAMBDA_FLOOR))
        per_lambda = np.where(still, 0.0, FREQUENCY_TO_MEV / (2.0 * magnitude))  # dω/dω²
        return d_lambda * per_lambda[..., None]

    def _guard(self, frequencies: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Penalty rows (nq, nb, 2) for branches far above the window (GUARD_ABOVE × its top:
        a measurement's window may cut the highest branch, Ei being chosen) or imaginary off Γ,
        and the sign of ∂row/∂ω."""
        above = frequencies - GUARD_ABOVE * self.edges[-1]
        below = -frequencies * self.off_gamma[:, None]
        rows = np.stack([np.maximum(above, 0.0), np.maximum(below, 0.0)], axis=-1) * self.guard
        sign = np.stack([(above > 0).astype(float), -(below > 0).astype(float)], axis=-1)
        return rows, sign


def _pinned_frequencies(values: np.ndarray) -> np.ndarray:
    """ħω (meV, imaginary negative) from eigenvalues ω² (..., nb) of D(θ); modes below 0.01 meV
    (the acoustic ones at Γ, zero by the sum rule) are pinned at 0 so that rounding noise in
    their ω does not reach a finite-difference Jacobian."""
    still = np.abs(values) < _LAMBDA_FLOOR
    frequencies = np.where(still, 0.0, np.sign(values) * np.sqrt(np.abs(values)))
    return frequencies * FREQUENCY_TO_MEV


def residual_variance(evaluation: Evaluation, n_params: int, fit: SpectrumFit) -> float:
    """Residual variance of the data rows per degree of freedom (normalised units²)."""
    dof = int(fit.measured.sum()) - evaluation.n_linear - n_params
    return evaluation.rss / max(dof, 1)


def objective(evaluation: Evaluation, fit: SpectrumFit) -> float:
    """−2 log posterior up to a constant: (data, ridge and prior rows)² / σ_n² (guards out)."""
    kept = evaluation.residual[: evaluation.residual.size - 2 * evaluation.frequencies.size]
    return float(kept @ kept) / fit.noise**2


def column_misfit(evaluation: Evaluation, fit: SpectrumFit) -> np.ndarray:
    """Σ r² of the data rows of each q column (nq,), normalised units² / σ_n²: what two fits of
    one spectrum are compared by, column against column."""
    nq, n_energy = fit.measured.shape
    residual = evaluation.residual[: nq * n_energy].reshape(nq, n_energy)
    return np.sum(residual**2, axis=1) / fit.noise**2
