"""Physics refinement: fit every free FC parameter θ to a measured I(q, E).

The model of one q column is Σ_j a_j G(E − ħω_j(q; θ)) + b: bin-integrated Gaussians at the
branch energies with the material's resolution. The linear unknowns (branch intensities a ≥ 0,
background b) are solved exactly inside the residual for every trial θ (variable projection),
so the optimiser only moves θ. Three intensity models:

- ``free``: a non-negative intensity per branch and per column plus a background per column
  (NNLS). It absorbs eigenvector, Debye–Waller and zone weighting that the paper's fast model
  ignores, which is what makes fitting real intensities work (../shared/notes/refinement.md).
- ``fast``: the paper's equal-weight model, one global scale ≥ 0 and one global background.
- ``physical``: the coherent one-phonon cross-section of ``fcinvert.physics.structure_factor``
  (eigenvectors, Debye–Waller, Bose, folded over given zones) per branch, one global scale and
  one background. The branch weights are evaluated at the θ where each stage starts and held
  during it (so the Jacobian stays exact); a last stage re-weights at the converged θ.

θ is fitted by Levenberg–Marquardt through coarse-to-fine continuation: the
model is broadened by an extra FWHM (default 2 → 1 → 0 meV) and the data smoothed by the
same Gaussian, each stage starting where the last stopped. The Jacobian is analytic: the
Hellmann–Feynman theorem gives dω²_j/dθ_k = e_j† D_k e_j from the one eigen-solve of the
forward model, and the Golub–Pereyra formula differentiates through the eliminated linear
unknowns. ``method="iterative"`` is the paper's traditional iterative optimisation: the same
fit with a finite-difference Jacobian (one forward model per parameter per iteration).
Runaway θ is kept out by penalties on branches above the energy window or imaginary.

A Gaussian prior N(centre, width²) on every θ_k (``Prior``; the force-field ensemble's, see
``fcinvert.inversion.multistart``) pins the directions the data do not constrain. It enters as
rows σ_n (θ − centre)/width beside the data rows, σ_n being the noise of one normalised data
pixel (``noise_level``: robust, from second differences along E), so that the objective is the
posterior's −log up to a factor: the data dominate wherever they determine θ, and the prior
wherever they do not, whatever the counting level. The same prior centre for every start makes
the objectives of different starts comparable (multi-start). σ(θ) is the posterior's:
(JᵀJ/σ² + diag(1/width²))⁻¹ with σ² the larger of the noise and the residual variance (so that a
model that cannot fit the data — shell truncation, intensity model — widens it).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Literal

import numpy as np
from scipy.optimize import nnls
from scipy.special import ndtr

from fcinvert.data.spectrum_file import Spectrum
from fcinvert.errors import FcinvertError
from fcinvert.inversion.prior import Prior
from fcinvert.physics.dynamics import FREQUENCY_TO_MEV, DynamicsBasis, dynamics_basis
from fcinvert.physics.fcspace import FCSpace
from fcinvert.physics.material import FWHM_TO_SIGMA, EnergyGrid, Material
from fcinvert.physics.structure_factor import StructureFactorModel, gamma_mesh

Intensities = Literal["free", "fast", "physical"]
Method = Literal["analytic", "iterative"]
INTENSITY_MODELS = ("free", "fast", "physical")
METHODS = ("analytic", "iterative")
#: Extra model FWHM (meV) of each continuation stage, coarse to fine; 0 is the resolution.
CONTINUATION = (2.0, 1.0, 0.0)
#: Branches above this multiple of the window's top are pushed back (runaway guard).
GUARD_ABOVE = 1.3
#: Blocks of adjacent q columns whose scores are resampled for the robust covariance.
CLUSTERS = 20
#: How well (meV) the forward model locates a branch in a real measurement, whatever the
#: statistics: intensity-model and resolution-shape error (see ``_model_floor``).
MODEL_FLOOR = 0.05
#: Noise floor per normalised pixel (data are divided by their RMS): noise-free physical
#: spectra are explained by the free branch intensities at the true θ to ~0.5 % of their RMS
#: (README main job); a fit that good counts as explaining the data (``fit_quality``).
NOISE_FLOOR = 1e-2
#: Times the last stage is repeated with re-evaluated physical branch weights, at most.
REWEIGHTS = 3
#: Relative cost change that ends a coarse stage and the final one.
COARSE_TOLERANCE = 1e-3
FINE_TOLERANCE = 1e-6
#: Model peaks reach ±TRUNCATION σ (Φ(−6) ≈ 1e-9: smooth enough for derivatives).
TRUNCATION = 6.0
_SQRT_2PI = np.sqrt(2.0 * np.pi)
_LAMBDA_FLOOR = (0.01 / FREQUENCY_TO_MEV) ** 2  # ω² (eV/Å²/amu) of 0.01 meV


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

    theta, sigma: (P,) eV/Å², σ the posterior's (module docstring); covariance (P, P) (eV/Å²)²;
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


@dataclass
class Evaluation:
    """The fit at one θ (P,). residual: (n_rows,) data rows first (nq·nE, zero where unmeasured),
    then intensity-ridge, prior and guard rows; jacobian: (n_rows, P) or None; frequencies
    (nq, nb) meV; amplitudes (nq, nb) and background (nq,) in normalised data units;
    model: (nq, nE) normalised; rss: Σ data residual²; n_linear: linear unknowns fitted."""

    theta: np.ndarray
    residual: np.ndarray
    jacobian: np.ndarray | None
    frequencies: np.ndarray
    amplitudes: np.ndarray
    background: np.ndarray
    model: np.ndarray
    rss: float
    n_linear: int


@dataclass
class _Linear:
    """The eliminated linear part at one θ: data residual (nq, nE), ridge rows (nq, nb),
    amplitudes (nq, nb), model image without background (nq, nE), number of linear unknowns,
    and ``jacobian(dω/dθ (nq, nb, P))`` → (data rows (nq·nE, P), ridge rows (nq·nb, P))."""

    residual: np.ndarray
    ridge: np.ndarray
    amplitudes: np.ndarray
    model: np.ndarray
    n_linear: int
    jacobian: Callable[[np.ndarray], tuple[np.ndarray, np.ndarray]]


class SpectrumFit:
    """The least-squares problem of one continuation stage: θ ↦ weighted residual (+ Jacobian).

    intensity, error: (nq, nE) data and one-σ errors (None: unit weights), NaN = unmeasured
    (a non-finite error too; errors ≤ 0 are raised to the smallest positive one);
    basis: D_k at the data's q-points; grid: the energy bins and resolution; prior: the Gaussian
    prior on θ; noise: σ_n of one normalised pixel (None: ``noise_level`` of the data), which
    weighs the prior rows against the data rows. branch_weights: for ``physical``, the weights
    (nq, nb) of phonon creation (at +ħω) and annihilation (at −ħω) of every branch. Data are
    divided by ``norm`` internally so the residual is O(1).
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
        self.grid = grid
        self.intensities = intensities
        self.branch_weights = branch_weights
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
        self.weight = weight
        #: residual² → data units² (weighted residuals are already in units of σ: χ²)
        self.variance_unit = self.norm**2 if error is None else 1.0
        self.sigma_extra = extra_fwhm * FWHM_TO_SIGMA
        self.noise = noise_level(data * weight, measured) if noise is None else noise
        self.data = smooth(data, measured, grid, self.sigma_extra)
        self.edges = grid.edges
        self.centred_data = self._centre(self.data)
        energy = float(np.sum(self.centred_data**2))
        self.prior = prior
        self.prior_scale = self.noise / np.asarray(prior.width, dtype=float)
        self.guard = guard * np.sqrt(energy)  # per meV outside the allowed range
        self.off_gamma = np.any(np.abs(basis.qpoints) > 1e-9, axis=1)
        n_params = len(prior.centre)
        matrices = np.moveaxis(basis.matrices, 0, -1).reshape(len(basis.qpoints), -1, n_params)
        #: D_k(q) as real (nq, 2·nb², P): [Re D; Im D], so e†D_k e is one real matmul
        self._hellmann_feynman = np.concatenate([matrices.real, matrices.imag], axis=1)
        self.n_forward = 0
        self.mu = self._ridge(ridge) if intensities == "free" else np.zeros(len(intensity))

    def _ridge(self, ridge: float) -> np.ndarray:
        """μ (nq,): ``ridge`` times the largest ‖branch column‖² of each column at the prior's
        centre, so the intensity ridge is equally weak whatever the weights (floor for empty
        columns) and the same for every start."""
        self.n_forward += 1
        peaks, _ = self._gaussians(self.basis.frequencies(self.prior.centre), derivative=False)
        norms = np.sum(self._centre(peaks) ** 2, axis=-1).max(axis=1)
        return ridge * np.maximum(norms, 1e-6 * max(float(norms.max()), 1e-300))

    def _centre(self, x: np.ndarray) -> np.ndarray:
        """Weighted removal of a free background: w·(x − b̂) with b̂ the weighted mean per
        column (free intensities) or over the whole image (fast, physical). x: (nq, ..., nE)."""
        w = self.weight.reshape(len(x), *(1,) * (x.ndim - 2), -1)
        w2 = w**2
        axes = -1 if self.intensities == "free" else (0, -1)
        total = np.maximum(w2.sum(axis=axes, keepdims=True), 1e-300)
        return w * (x - (w2 * x).sum(axis=axes, keepdims=True) / total)

    def evaluate(self, theta: np.ndarray, jacobian: bool = True) -> Evaluation:
        """Residual (and Jacobian) at θ (P,): one eigen-solve."""
        self.n_forward += 1
        theta = np.asarray(theta, dtype=float)
        matrices = self.basis.dynamical_matrices(theta)[0]
        if jacobian:
            values, vectors = np.linalg.eigh(matrices)
        else:
            values, vectors = np.linalg.eigvalsh(matrices), None
        # modes below 0.01 meV (the acoustic ones at Γ, zero by the sum rule) are pinned at 0
        # so that rounding noise in their ω does not reach a finite-difference Jacobian
        still = np.abs(values) < _LAMBDA_FLOOR
        frequencies = np.where(still, 0.0, np.sign(values) * np.sqrt(np.abs(values)))
        frequencies *= FREQUENCY_TO_MEV
        peaks, slopes = self._gaussians(frequencies, jacobian)
        if self.intensities == "free":
            linear = self._free(peaks, slopes)
        else:
            linear = self._scaled(*self._weighted_image(frequencies, peaks, slopes))
        guard_rows, guard_sign = self._guard(frequencies)
        residual = np.concatenate(
            [
                linear.residual.ravel(),
                linear.ridge.ravel(),
                self.prior_scale * (theta - self.prior.centre),
                guard_rows.ravel(),
            ]
        )
        jac = None
        if jacobian:
            d_omega = self.frequency_derivatives(values, vectors)
            jac_data, jac_ridge = linear.jacobian(d_omega)
            jac_guard = guard_sign[..., None] * d_omega[:, :, None, :] * self.guard
            jac = np.concatenate(
                [jac_data, jac_ridge, np.diag(self.prior_scale), jac_guard.reshape(-1, len(theta))]
            )
        return Evaluation(
            theta,
            residual,
            jac,
            frequencies,
            linear.amplitudes,
            self._background(linear.model),
            linear.model,
            float(np.sum(linear.residual**2)),
            linear.n_linear,
        )

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

    def _gaussians(
        self, frequencies: np.ndarray, derivative: bool
    ) -> tuple[np.ndarray, np.ndarray | None]:
        """Bin-integrated unit Gaussians G_j(E) (nq, nb, nE) 1/meV and ∂G_j/∂ω_j (1/meV²).

        Each peak is evaluated on the 2·reach bins around it (±TRUNCATION σ of the broadest
        peak; zero beyond), on a grid padded by reach bins so peaks near the edges keep theirs.
        """
        sigma_res = self.grid.sigma(frequencies)
        sigma = np.sqrt(sigma_res**2 + self.sigma_extra**2)
        n_energy, width = len(self.grid.centres), self.grid.width
        reach = int(np.ceil(TRUNCATION * sigma.max() / width)) + 1
        low = self.edges[0] - reach * width
        first = np.floor((frequencies - low) / width).astype(np.int64) - reach + 1
        first = np.clip(first, 0, n_energy)  # window inside the padded grid
        index = first[..., None] + np.arange(2 * reach + 1)  # edge indices (nq, nb, 2r+1)
        z = (low + width * index - frequencies[..., None]) / sigma[..., None]
        values = np.diff(ndtr(z), axis=-1) / width
        peaks = self._place(values, first, reach)
        if not derivative:
            return peaks, None
        d_sigma = sigma_res * self.grid.slope * FWHM_TO_SIGMA * np.sign(frequencies) / sigma
        dz = -(1.0 + z * d_sigma[..., None]) / sigma[..., None]
        density = np.exp(-0.5 * z**2) / _SQRT_2PI
        return peaks, self._place(np.diff(density * dz, axis=-1) / width, first, reach)

    def _place(self, values: np.ndarray, first: np.ndarray, reach: int) -> np.ndarray:
        """Windows (nq, nb, 2·reach) starting at bin ``first`` of the padded grid → (nq, nb, nE)."""
        n_energy = len(self.grid.centres)
        padded = np.zeros((*first.shape, n_energy + 2 * reach))
        np.put_along_axis(padded, first[..., None] + np.arange(2 * reach), values, axis=-1)
        return padded[..., reach : reach + n_energy]

    def _free(self, peaks: np.ndarray, slopes: np.ndarray | None) -> _Linear:
        """Per-column NNLS branch intensities with a ridge μ‖a‖², background eliminated by
        centring. The Jacobian is Golub–Pereyra's: ∂r = −P⊥(∂A)a − A⁺ᵀ(∂A)ᵀr on the free set.
        Branch vectors are rows here: design (nq, nb, nE)."""
        design = self._centre(peaks)
        nb = design.shape[1]
        gram = design @ np.swapaxes(design, 1, 2) + self.mu[:, None, None] * np.eye(nb)
        rhs = (design @ self.centred_data[..., None])[..., 0]
        amplitudes, free = batched_nnls(gram, rhs, design, self.centred_data, self.mu)
        residual = self.centred_data - (amplitudes[:, None, :] @ design)[:, 0]
        model = (amplitudes[:, None, :] @ peaks)[:, 0]
        n_linear = int(free.sum()) + int(np.sum(self.weight.sum(axis=1) > 0))
        root_mu = np.sqrt(self.mu)

        def jacobian(d_omega: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
            design_free = design * free[..., None]
            inverse = np.linalg.inv(restricted(gram, free))
            inverse *= free[:, :, None] & free[:, None, :]
            derivative = self._centre(slopes)  # row j: ∂A_j/∂ω_j
            moved = derivative * amplitudes[..., None]  # row j: ∂A_j/∂ω_j · a_j
            projected = inverse @ (design_free @ np.swapaxes(moved, 1, 2))  # A⁺ moved, [i, j]
            overlap = (derivative @ residual[..., None])[..., 0] * free  # (∂A_j)ᵀ r
            transposed = inverse * overlap[:, None, :]  # [i, j]: A⁺ᵀ e_j (∂A_j)ᵀ r on row i
            coefficients = np.swapaxes(transposed - projected, 1, 2)  # [j, i]
            u_data = -(moved + coefficients @ design_free)  # row j: ∂r/∂ω_j, (nq, nb, nE)
            u_ridge = root_mu[:, None, None] * (projected - transposed)  # [i, j]
            n_params = d_omega.shape[-1]
            return (
                np.matmul(np.swapaxes(u_data, 1, 2), d_omega).reshape(-1, n_params),
                np.matmul(u_ridge, d_omega).reshape(-1, n_params),
            )

        return _Linear(
            residual, -root_mu[:, None] * amplitudes, amplitudes, model, n_linear, jacobian
        )

    def _weighted_image(
        self, frequencies: np.ndarray, peaks: np.ndarray, slopes: np.ndarray | None
    ) -> tuple[np.ndarray, np.ndarray | None, np.ndarray]:
        """Σ_j w_j G_j (nq, nE) with unit weights (fast) or the branch weights (physical, with
        the anti-Stokes peaks at −ħω), its derivatives ∂/∂ω_j (nq, nb, nE), and w (nq, nb)."""
        if self.branch_weights is None:
            return peaks.sum(axis=1), slopes, np.ones(peaks.shape[:2])
        creation, annihilation = self.branch_weights
        image = (creation[:, None, :] @ peaks)[:, 0]
        derivative = None if slopes is None else creation[..., None] * slopes
        if np.any(annihilation > 0):
            anti_peaks, anti_slopes = self._gaussians(-frequencies, slopes is not None)
            image += (annihilation[:, None, :] @ anti_peaks)[:, 0]
            if derivative is not None:
                derivative -= annihilation[..., None] * anti_slopes
        return image, derivative, creation

    def _scaled(
        self, image: np.ndarray, derivative: np.ndarray | None, weights: np.ndarray
    ) -> _Linear:
        """One global scale s ≥ 0 on a fixed-weight image (nq, nE) and one background;
        derivative: ∂image/∂ω_j (nq, nb, nE); weights (nq, nb) give the branch amplitudes."""
        design = self._centre(image)
        norm2 = max(float(np.sum(design**2)), 1e-300)
        scale = max(float(np.sum(design * self.centred_data)) / norm2, 0.0)
        residual = self.centred_data - scale * design
        nq, nb = weights.shape

        def jacobian(d_omega: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
            n_params = d_omega.shape[-1]
            moved = self._centre(np.swapaxes(d_omega, 1, 2) @ derivative)  # ∂(C m)/∂θ_k
            flat = np.swapaxes(moved, 1, 2).reshape(-1, n_params)
            ridge = np.zeros((nq * nb, n_params))
            if scale <= 0.0:
                return np.zeros_like(flat), ridge
            d = design.ravel()
            term1 = scale * (flat - np.outer(d, d @ flat) / norm2)
            term2 = np.outer(d, residual.ravel() @ flat) / norm2
            return -(term1 + term2), ridge

        return _Linear(
            residual,
            np.zeros((nq, nb)),
            scale * weights,
            scale * image,
            1 + int(scale > 0),
            jacobian,
        )

    def _guard(self, frequencies: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Penalty rows (nq, nb, 2) for branches far above the window (GUARD_ABOVE × its top:
        a measurement's window may cut the highest branch, Ei being chosen) or imaginary off Γ,
        and the sign of ∂row/∂ω."""
        above = frequencies - GUARD_ABOVE * self.edges[-1]
        below = -frequencies * self.off_gamma[:, None]
        rows = np.stack([np.maximum(above, 0.0), np.maximum(below, 0.0)], axis=-1) * self.guard
        sign = np.stack([(above > 0).astype(float), -(below > 0).astype(float)], axis=-1)
        return rows, sign

    def _background(self, model: np.ndarray) -> np.ndarray:
        """Background (nq,) (normalised units) that the centring eliminated."""
        w2 = self.weight**2
        difference = self.data - model
        if self.intensities == "free":
            total = np.maximum(w2.sum(axis=1), 1e-300)
            return (w2 * difference).sum(axis=1) / total
        value = float((w2 * difference).sum() / max(w2.sum(), 1e-300))
        return np.full(len(model), value)


def smooth(data: np.ndarray, measured: np.ndarray, grid: EnergyGrid, sigma: float) -> np.ndarray:
    """Data (nq, nE) convolved along E with a Gaussian of σ (meV), normalised over measured
    pixels (unmeasured ones stay unused); σ = 0 returns the data."""
    if sigma <= 0.0:
        return data
    offset = (grid.centres[:, None] - grid.centres[None, :]) / sigma
    kernel = np.exp(-0.5 * offset**2)
    mask = measured.astype(float)
    total = mask @ kernel.T
    smoothed = (data * mask) @ kernel.T / np.maximum(total, 1e-300)
    return np.where(measured, smoothed, 0.0)


def restricted(gram: np.ndarray, free: np.ndarray) -> np.ndarray:
    """Gram matrices (nq, m, m) restricted to the free set (nq, m): other rows and columns
    replaced by the identity, so that solving gives zero there."""
    out = np.where(free[:, :, None] & free[:, None, :], gram, 0.0)
    index = np.arange(gram.shape[-1])
    out[:, index, index] = np.where(free, out[:, index, index], 1.0)
    return out


def batched_nnls(
    gram: np.ndarray, rhs: np.ndarray, design: np.ndarray, target: np.ndarray, mu: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """min ‖design a − target‖² + μ‖a‖² over a ≥ 0 for every column at once.

    gram: (nq, m, m) = design designᵀ + μI; rhs: (nq, m) = design target; design (nq, m, nE)
    (rows are the m basis vectors), target (nq, nE), mu (nq,). Drops negative components until
    none remain, checks the KKT conditions, and hands the few columns that fail them to scipy's
    exact NNLS. Returns a (nq, m) and the free set (nq, m) bool (a > 0).
    """
    nq, m = rhs.shape
    free = np.ones((nq, m), dtype=bool)
    for _ in range(m):
        solution = np.linalg.solve(restricted(gram, free), (rhs * free)[..., None])[..., 0]
        negative = free & (solution <= 0.0)
        if not negative.any():
            break
        free &= ~negative
    solution = np.linalg.solve(restricted(gram, free), (rhs * free)[..., None])[..., 0]
    solution = np.where(free, solution, 0.0)
    gradient = rhs - np.einsum("qij,qj->qi", gram, solution)
    tolerance = 1e-10 * (np.abs(rhs).max(axis=1, keepdims=True) + 1e-300)
    failed = np.any(free & (solution <= 0.0), axis=1) | np.any(
        ~free & (gradient > tolerance), axis=1
    )
    if failed.any():
        for q in np.flatnonzero(failed):
            matrix = np.vstack([design[q].T, np.sqrt(mu[q]) * np.eye(m)])
            values, _ = nnls(matrix, np.concatenate([target[q], np.zeros(m)]), maxiter=50 * m)
            solution[q] = values
            free[q] = values > 0.0
    return solution, free


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
    eV/Å² (the ML estimate). intensities: "free", "fast" or "physical" (module docstring).
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
        final, iterations = _levenberg_marquardt(fit, theta, method, max_iterations, tolerance)
        moved = np.abs(final.theta - theta).max() / max(np.abs(theta).max(), 1e-300)
        theta = final.theta
        stages.append(
            StageLog(
                extra,
                fit.n_forward + (weigh is not None),
                iterations,
                _variance(final, len(theta), fit) * fit.variance_unit,
                time.perf_counter() - stage_start,
            )
        )
        if number >= len(continuation) and moved < 1e-4:
            break  # physical weights re-evaluated at θ no longer move it
    if partial:  # a coarse stage that another call continues: no posterior wanted
        covariance, prior_share = np.diag(prior.width**2), np.ones(len(theta))
    else:
        covariance, prior_share = _posterior(final, fit, len(theta))
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
        misfit=_variance(final, len(theta), fit) * fit.variance_unit,
        noise=fit.noise**2 * fit.variance_unit,
        objective=_objective(final, fit),
        column_misfit=column_misfit(final, fit),
        n_forward=sum(stage.n_forward for stage in stages),
        seconds=time.perf_counter() - started,
        intensities=intensities,
        method=method,
        stages=stages,
    )


def branch_weights(
    structure: StructureFactorModel,
    theta: np.ndarray,
    temperature: float,
    zones: np.ndarray,
    zone_weights: np.ndarray | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Coherent one-phonon weights of every branch on the structure's q-points, folded over
    ``zones`` (nz, 3) reduced G with ``zone_weights`` (nz,) (default equal): creation (at +ħω)
    and annihilation (at −ħω), each (nq, nb), scaled so that creation averages 1."""
    zones = np.atleast_2d(np.asarray(zones, dtype=float))
    weights = (
        np.full(len(zones), 1.0 / len(zones)) if zone_weights is None else np.asarray(zone_weights)
    )
    nq, nz = len(structure.qpoints), len(zones)
    index = np.repeat(np.arange(nq), nz)
    _, creation, annihilation = structure.mode_intensities(
        theta, temperature, index, np.tile(zones, (nq, 1))
    )
    creation = np.einsum("z,qzj->qj", weights, creation.reshape(nq, nz, -1))
    annihilation = np.einsum("z,qzj->qj", weights, annihilation.reshape(nq, nz, -1))
    norm = float(creation.mean()) or 1.0
    return creation / norm, annihilation / norm


def spectrum_grid(material: Material, spectrum: Spectrum) -> EnergyGrid:
    """The spectrum's own energy bins (which must be uniform) with the material's resolution."""
    energy = np.asarray(spectrum.energy, dtype=float)
    steps = np.diff(energy)
    if len(energy) < 2 or np.ptp(steps) > 1e-6 * abs(float(steps.mean())):
        raise FcinvertError(
            f"spectrum of '{spectrum.material}': refinement needs uniform energy bins"
        )
    resolution = material.energy
    return EnergyGrid(energy, float(steps.mean()), resolution.fwhm0, resolution.slope)


def pixel_errors(intensity: np.ndarray, error: np.ndarray | None, grid: EnergyGrid) -> np.ndarray:
    """One-σ errors (nq, nE) to weight a fit by, NaN where unmeasured.

    The variance of each pixel is taken as the data (or the given errors², when there are)
    smoothed along E by the resolution: Poisson-like (variance ∝ expected intensity) without
    Neyman's bias (raw errors from observed counts give every downward fluctuation more weight;
    on a Ge test unit weights gave 0.06 meV, raw Poisson errors 0.14), and without letting the
    bright columns beside Bragg points swamp the rest (unit weights: a Ge spectrum at 100 K
    fitted 6.7 meV off, these weights 0.1 meV). Floor: 1 % of the 99th percentile variance.
    """
    intensity = np.asarray(intensity, dtype=float)
    measured = np.isfinite(intensity)
    if error is not None:
        measured &= np.isfinite(error)
    source = np.maximum(intensity, 0.0) if error is None else np.asarray(error, float) ** 2
    resolution = float(np.mean(grid.sigma(grid.centres)))
    variance = smooth(np.where(measured, source, 0.0), measured, grid, resolution)
    positive = variance[measured & (variance > 0)]
    floor = 1e-2 * float(np.percentile(positive, 99)) if positive.size else 1.0
    return np.where(measured, np.sqrt(np.maximum(variance, floor)), np.nan)


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
    reference = fcspace.theta_from_dict(material.require_reference(), np.zeros(fcspace.n_params))
    return refine(
        material, fcspace, spectrum_intensity, qpoints, reference, method="iterative", **options
    )


def _levenberg_marquardt(
    fit: SpectrumFit, theta: np.ndarray, method: Method, max_iterations: int, tolerance: float
) -> tuple[Evaluation, int]:
    """Minimise ½‖r(θ)‖² from θ by Levenberg–Marquardt with Marquardt's diagonal scaling and
    Nielsen's damping update, on the P×P normal equations (cheap: P ≪ rows).

    Stops when an accepted step lowers the cost by less than ``tolerance`` (relative) or moves
    θ by less than ``tolerance`` (scaled), or after ``max_iterations`` trial steps. Returns the
    evaluation at the final θ, Jacobian included, and the number of trial steps.
    """
    analytic = method == "analytic"
    current = _with_jacobian(fit, fit.evaluate(theta, jacobian=analytic), theta)
    cost = 0.5 * float(current.residual @ current.residual)
    damping, growth = 1e-3, 2.0
    scale = np.zeros(len(theta))
    iteration = 0
    for iteration in range(1, max_iterations + 1):
        jac = current.jacobian
        gradient = jac.T @ current.residual
        curvature = jac.T @ jac
        scale = np.maximum(scale, np.diag(curvature))
        floor = 1e-12 * max(float(scale.max()), 1e-300)
        step = -np.linalg.solve(curvature + damping * np.diag(np.maximum(scale, floor)), gradient)
        predicted = -(gradient @ step + 0.5 * step @ curvature @ step)
        trial = fit.evaluate(theta + step, jacobian=analytic)
        trial_cost = 0.5 * float(trial.residual @ trial.residual)
        ratio = (cost - trial_cost) / predicted if predicted > 0 else -1.0
        if ratio > 0:
            theta = theta + step
            current = _with_jacobian(fit, trial, theta)
            reduction = (cost - trial_cost) / max(cost, 1e-300)
            cost = trial_cost
            damping *= max(1.0 / 3.0, 1.0 - (2.0 * ratio - 1.0) ** 3)
            growth = 2.0
            moved = np.sqrt(scale) * np.abs(step)
            if (
                reduction < tolerance
                or moved.max() < tolerance * (np.sqrt(scale) * np.abs(theta)).max()
            ):
                return current, iteration
        else:
            damping *= growth
            growth *= 2.0
            if damping > 1e12:
                break
    return current, iteration


def _with_jacobian(fit: SpectrumFit, evaluation: Evaluation, theta: np.ndarray) -> Evaluation:
    """``evaluation`` with its Jacobian: the analytic one if present, else forward differences
    (one forward model per parameter, steps √ε·max(1, |θ_k|), as scipy's '2-point')."""
    if evaluation.jacobian is not None:
        return evaluation
    jacobian = np.empty((len(evaluation.residual), len(theta)))
    for k in range(len(theta)):
        shifted = theta.copy()
        shifted[k] += np.sqrt(np.finfo(float).eps) * max(1.0, abs(theta[k]))
        step = shifted[k] - theta[k]
        shifted_residual = fit.evaluate(shifted, jacobian=False).residual
        jacobian[:, k] = (shifted_residual - evaluation.residual) / step
    evaluation.jacobian = jacobian
    return evaluation


def _variance(evaluation: Evaluation, n_params: int, fit: SpectrumFit) -> float:
    """Residual variance of the data rows per degree of freedom (normalised units²)."""
    dof = int(fit.measured.sum()) - evaluation.n_linear - n_params
    return evaluation.rss / max(dof, 1)


def _objective(evaluation: Evaluation, fit: SpectrumFit) -> float:
    """−2 log posterior up to a constant: (data, ridge and prior rows)² / σ_n² (guards out)."""
    kept = evaluation.residual[: evaluation.residual.size - 2 * evaluation.frequencies.size]
    return float(kept @ kept) / fit.noise**2


def _posterior(
    evaluation: Evaluation, fit: SpectrumFit, n_params: int
) -> tuple[np.ndarray, np.ndarray]:
    """Posterior covariance (P, P) of θ (eV/Å²)² and the prior's share (P,) of each variance.

    The Gauss–Newton posterior A⁻¹, A = J_dᵀJ_d/σ² + W (J_d the data and ridge rows, σ² the
    larger of the noise and the residual variance, W = diag(1/width²) the prior's precision),
    widened per parameter to the robust sandwich A⁻¹ B A⁻¹ where that is wider: B = Σ_c g_c g_cᵀ
    /σ⁴ · G/(G − 1) + W, the scatter of the score g_c = J_cᵀ r_c over G blocks of adjacent q
    columns. With a right model and independent noise E[B] = A; where the model cannot fit the
    data (shell truncation, intensity model) the residuals are correlated along E and q and B,
    not the residual variance, says how far θ would move with another such residual pattern.
    Only widening: with few blocks the sandwich alone scatters low (Nb test: pull RMS 2.1
    against 1.5 for A⁻¹).
    """
    nq, n_energy = fit.measured.shape
    nb = evaluation.frequencies.shape[1]
    jac = evaluation.jacobian
    data_rows = (
        jac[: nq * n_energy].reshape(nq, n_energy, n_params),
        evaluation.residual[: nq * n_energy].reshape(nq, n_energy),
    )
    ridge_rows = (
        jac[nq * n_energy : nq * (n_energy + nb)].reshape(nq, nb, n_params),
        evaluation.residual[nq * n_energy : nq * (n_energy + nb)].reshape(nq, nb),
    )
    variance = max(fit.noise**2, _variance(evaluation, n_params, fit))
    inverse_width2 = 1.0 / np.asarray(fit.prior.width, dtype=float) ** 2
    curvature = np.zeros((n_params, n_params))
    score = np.zeros((nq, n_params))
    for rows, residual in (data_rows, ridge_rows):
        curvature += np.einsum("qek,qel->kl", rows, rows)
        score += np.einsum("qek,qe->qk", rows, residual)
    blocks = np.array_split(np.arange(nq), min(nq, CLUSTERS))
    clustered = np.array([score[block].sum(axis=0) for block in blocks])
    n_blocks = len(blocks)
    meat = clustered.T @ clustered * (n_blocks / max(n_blocks - 1, 1)) / variance**2
    bread = np.linalg.inv(curvature / variance + np.diag(inverse_width2))
    sandwich = bread @ (meat + np.diag(inverse_width2)) @ bread
    inflation = np.sqrt(np.maximum(np.diag(sandwich) / np.diag(bread), 1.0))
    covariance = bread * np.outer(inflation, inflation) + _model_floor(evaluation, fit)
    covariance = 0.5 * (covariance + covariance.T)
    share = np.clip(np.diag(bread) * inverse_width2, 0.0, 1.0)
    return fit.prior.cap(covariance), share


def _model_floor(evaluation: Evaluation, fit: SpectrumFit) -> np.ndarray:
    """Covariance (P, P) of θ from the forward model's own limit, whatever the statistics.

    Its errors (intensity model, resolution shape) shift branches smoothly along the path, so
    each branch is taken as located to MODEL_FLOOR meV once per block of adjacent q columns
    (CLUSTERS blocks), not once per q: (J_ωᵀJ_ω/δ² + W)⁻¹ with J_ω (blocks · branches, P) the
    block means of ∂ω/∂θ over the modes the data see (inside the window, measured columns) and
    W the prior precision."""
    values, vectors = np.linalg.eigh(fit.basis.dynamical_matrices(evaluation.theta)[0])
    d_omega = fit.frequency_derivatives(values, vectors)
    seen = (
        (evaluation.frequencies > fit.edges[0])
        & (evaluation.frequencies < fit.edges[-1])
        & fit.measured.any(axis=1)[:, None]
    )
    blocks = np.array_split(np.arange(len(seen)), min(len(seen), CLUSTERS))
    rows = np.concatenate(
        [
            np.sum(d_omega[block] * seen[block, :, None], axis=0)
            / np.maximum(seen[block].sum(axis=0), 1)[:, None]
            for block in blocks
        ]
    )
    precision = rows.T @ rows / MODEL_FLOOR**2 + np.diag(1.0 / fit.prior.width**2)
    return np.linalg.inv(precision)


def column_misfit(evaluation: Evaluation, fit: SpectrumFit) -> np.ndarray:
    """Σ r² of the data rows of each q column (nq,), normalised units² / σ_n²: what two fits of
    one spectrum are compared by, column against column."""
    nq, n_energy = fit.measured.shape
    residual = evaluation.residual[: nq * n_energy].reshape(nq, n_energy)
    return np.sum(residual**2, axis=1) / fit.noise**2


def noise_level(data: np.ndarray, measured: np.ndarray) -> float:
    """σ of one pixel of ``data`` (nq, nE), from second differences along E over triples of
    measured pixels: 1.4826 × MAD / √6 (a robust estimate; peaks are a minority of triples),
    at least NOISE_FLOOR × the data's RMS."""
    triple = measured[:, :-2] & measured[:, 1:-1] & measured[:, 2:]
    second = (data[:, :-2] - 2.0 * data[:, 1:-1] + data[:, 2:])[triple]
    rms = float(np.sqrt(np.mean(data[measured] ** 2))) if measured.any() else 1.0
    if second.size < 10:
        return max(NOISE_FLOOR * rms, 1e-12)
    mad = float(np.median(np.abs(second - np.median(second))))
    return max(1.4826 * mad / np.sqrt(6.0), NOISE_FLOOR * rms, 1e-12)


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
