"""The intensity models of a refinement: how the branch peaks G_j (nq, nb, nE) of a trial θ
become a model image, with the linear unknowns (branch intensities, background) solved exactly
(variable projection) and differentiated through (Golub–Pereyra).

Every model eliminates a background by weighted centring and answers ``linear`` with the data
residual, the intensities and the Jacobian of the residual in ħω (``LinearPart``):

- ``FreeIntensities``: a non-negative intensity per branch and per column plus a background per
  column (NNLS with a weak ridge). It absorbs eigenvector, Debye–Waller and zone weighting that
  the paper's fast model ignores, which is what makes fitting real intensities work
  (../shared/notes/refinement.md).
- ``FastIntensities``: the paper's equal-weight model, one global scale ≥ 0 and one global
  background.
- ``PhysicalIntensities``: the coherent one-phonon cross-section per branch (``branch_weights``:
  eigenvectors, Debye–Waller, Bose, folded over the measured zones; phonon creation at +ħω and
  annihilation at −ħω), one global scale and one background. The weights are fixed inputs: the
  refinement driver evaluates them where each stage starts.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable
from dataclasses import dataclass
from typing import ClassVar, Literal

import numpy as np

from fcinvert.inversion.refine.nnls import batched_nnls, restricted
from fcinvert.inversion.refine.normal_equations import ColumnTerms, from_rows, from_sensitivities
from fcinvert.inversion.refine.peaks import PeakShape
from fcinvert.physics.structure_factor import StructureFactorModel

Intensities = Literal["free", "fast", "physical"]
INTENSITY_MODELS = ("free", "fast", "physical")


@dataclass
class LinearPart:
    """The eliminated linear part at one θ: data residual (nq, nE), ridge rows (nq, nb),
    amplitudes (nq, nb), model image without background (nq, nE), number of linear unknowns;
    given dω/dθ (nq, nb, P): ``jacobian`` → (data rows (nq·nE, P), ridge rows (nq·nb, P)) and
    ``normal`` → their ``ColumnTerms`` (without forming them where the model allows)."""

    residual: np.ndarray
    ridge: np.ndarray
    amplitudes: np.ndarray
    model: np.ndarray
    n_linear: int
    jacobian: Callable[[np.ndarray], tuple[np.ndarray, np.ndarray]]
    normal: Callable[[np.ndarray], ColumnTerms]


class IntensityModel(ABC):
    """The linear part of the model of normalised ``data`` (nq, nE) with pixel weights
    ``weight`` (nq, nE) (0: unmeasured): a background per column (``per_column``) or one for
    the whole image, eliminated by centring, and the branch intensities of ``linear``."""

    per_column: ClassVar[bool]

    def __init__(self, weight: np.ndarray, data: np.ndarray) -> None:
        self.weight = weight
        self.data = data
        w2 = weight**2
        axes = -1 if self.per_column else (0, -1)
        #: w² / Σw² per column or over the image: b̂ = Σ_E (this · x)
        self._mean_weights = w2 / np.maximum(w2.sum(axis=axes, keepdims=True), 1e-300)
        self.centred_data = self.centre(data)

    def centre(self, x: np.ndarray) -> np.ndarray:
        """Weighted removal of a free background: w·(x − b̂) with b̂ the weighted mean per
        column or over the whole image. x: (nq, ..., nE)."""
        if self.per_column:
            mean = np.einsum("q...e,qe->q...", x, self._mean_weights)[..., None]
        else:
            mean = np.einsum("q...e,qe->...", x, self._mean_weights)[None, ..., None]
        out = np.subtract(x, mean)
        out *= self.weight.reshape(len(x), *(1,) * (x.ndim - 2), -1)
        return out

    def background(self, model: np.ndarray) -> np.ndarray:
        """Background (nq,) (normalised units) that the centring eliminated, for the model image
        ``model`` (nq, nE) without background."""
        w2 = self.weight**2
        difference = self.data - model
        if self.per_column:
            total = np.maximum(w2.sum(axis=1), 1e-300)
            return (w2 * difference).sum(axis=1) / total
        value = float((w2 * difference).sum() / max(w2.sum(), 1e-300))
        return np.full(len(model), value)

    @abstractmethod
    def linear(
        self, frequencies: np.ndarray, peaks: np.ndarray, slopes: np.ndarray | None
    ) -> LinearPart:
        """The linear unknowns solved for the branches at ``frequencies`` (nq, nb) meV with unit
        peaks ``peaks`` (nq, nb, nE) and their ω-derivatives ``slopes`` (None: no Jacobian)."""

    def misfits(self, frequencies: np.ndarray, peaks: np.ndarray) -> np.ndarray:
        """Σ data residual² (B,) of a batch of trial dispersions: ``frequencies`` (B, nq, nb)
        meV with unit peaks ``peaks`` (B, nq, nb, nE); what ``linear`` leaves at each."""
        parts = [self.linear(f, p, None) for f, p in zip(frequencies, peaks, strict=True)]
        return np.array([float(np.sum(part.residual**2)) for part in parts])


class FreeIntensities(IntensityModel):
    """Per-column NNLS branch intensities with a ridge μ‖a‖²: μ (nq,) is ``ridge`` times the
    largest ‖centred branch peak‖² of each column in ``reference_peaks`` (nq, nb, nE, the peaks
    at the prior's centre), so the ridge is equally weak whatever the weights (floor for empty
    columns) and the same for every start."""

    per_column = True

    def __init__(
        self, weight: np.ndarray, data: np.ndarray, reference_peaks: np.ndarray, ridge: float
    ) -> None:
        super().__init__(weight, data)
        norms = np.sum(self.centre(reference_peaks) ** 2, axis=-1).max(axis=1)
        self.mu = ridge * np.maximum(norms, 1e-6 * max(float(norms.max()), 1e-300))

    def linear(
        self, frequencies: np.ndarray, peaks: np.ndarray, slopes: np.ndarray | None
    ) -> LinearPart:
        """Background eliminated by centring; the Jacobian is Golub–Pereyra's:
        ∂r = −P⊥(∂A)a − A⁺ᵀ(∂A)ᵀr on the free set. Branch vectors are rows here: design
        (nq, nb, nE)."""
        design = self.centre(peaks)
        gram, amplitudes, free, residual = _column_fits(design, self.centred_data, self.mu)
        model = (amplitudes[:, None, :] @ peaks)[:, 0]
        n_linear = int(free.sum()) + int(np.sum(self.weight.sum(axis=1) > 0))
        root_mu = np.sqrt(self.mu)

        ridge = -root_mu[:, None] * amplitudes

        def sensitivities() -> tuple[np.ndarray, np.ndarray]:
            """∂r/∂ω_j of the data rows (nq, nb, nE), row j, and of the ridge rows (nq, nb, nb),
            [i, j]."""
            design_free = design * free[..., None]
            inverse = np.linalg.inv(restricted(gram, free))
            inverse *= free[:, :, None] & free[:, None, :]
            derivative = self.centre(slopes)  # row j: ∂A_j/∂ω_j
            moved = derivative * amplitudes[..., None]  # row j: ∂A_j/∂ω_j · a_j
            projected = inverse @ (design_free @ np.swapaxes(moved, 1, 2))  # A⁺ moved, [i, j]
            overlap = (derivative @ residual[..., None])[..., 0] * free  # (∂A_j)ᵀ r
            transposed = inverse * overlap[:, None, :]  # [i, j]: A⁺ᵀ e_j (∂A_j)ᵀ r on row i
            coefficients = np.swapaxes(transposed - projected, 1, 2)  # [j, i]
            u_data = -(moved + coefficients @ design_free)
            return u_data, root_mu[:, None, None] * (projected - transposed)

        def jacobian(d_omega: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
            u_data, u_ridge = sensitivities()
            n_params = d_omega.shape[-1]
            return (
                np.matmul(np.swapaxes(u_data, 1, 2), d_omega).reshape(-1, n_params),
                np.matmul(u_ridge, d_omega).reshape(-1, n_params),
            )

        def normal(d_omega: np.ndarray) -> ColumnTerms:
            return from_sensitivities(d_omega, *sensitivities(), residual, ridge)

        return LinearPart(residual, ridge, amplitudes, model, n_linear, jacobian, normal)

    def misfits(self, frequencies: np.ndarray, peaks: np.ndarray) -> np.ndarray:
        """Σ data residual² (B,) of a batch (see ``IntensityModel.misfits``): every column of
        every trial solved in one batched NNLS, as ``linear`` solves one trial's columns."""
        batch, nq, nb, n_energy = peaks.shape
        design = self.centre(np.swapaxes(peaks, 0, 1)).reshape(nq * batch, nb, n_energy)
        target = np.repeat(self.centred_data, batch, axis=0)  # (nq·B, nE), q-major as design
        *_, residual = _column_fits(design, target, np.repeat(self.mu, batch))
        return np.sum(residual.reshape(nq, batch, n_energy) ** 2, axis=(0, 2))


def _column_fits(
    design: np.ndarray, target: np.ndarray, mu: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Ridge NNLS of every column: design (n, m, nE) (rows are the m branch vectors), target
    (n, nE), ridge μ (n,). Returns the gram matrices (n, m, m) = design designᵀ + μI, the
    amplitudes (n, m), their free set (n, m) bool and the residual target − aᵀ design (n, nE)."""
    gram = design @ np.swapaxes(design, 1, 2) + mu[:, None, None] * np.eye(design.shape[1])
    rhs = (design @ target[..., None])[..., 0]
    amplitudes, free = batched_nnls(gram, rhs, design, target, mu)
    return gram, amplitudes, free, target - (amplitudes[:, None, :] @ design)[:, 0]


class ScaledIntensities(IntensityModel):
    """One global scale s ≥ 0 on a fixed-weight image Σ_j w_j G_j (``image``) and one global
    background."""

    per_column = False

    @abstractmethod
    def image(
        self, frequencies: np.ndarray, peaks: np.ndarray, slopes: np.ndarray | None
    ) -> tuple[np.ndarray, np.ndarray | None, np.ndarray]:
        """Σ_j w_j G_j (nq, nE), its derivatives ∂/∂ω_j (nq, nb, nE), and w (nq, nb)."""

    def linear(
        self, frequencies: np.ndarray, peaks: np.ndarray, slopes: np.ndarray | None
    ) -> LinearPart:
        """The scale by linear least squares, clipped at 0; the weights w give the branch
        amplitudes s·w."""
        image, derivative, weights = self.image(frequencies, peaks, slopes)
        design = self.centre(image)
        norm2 = max(float(np.sum(design**2)), 1e-300)
        scale = max(float(np.sum(design * self.centred_data)) / norm2, 0.0)
        residual = self.centred_data - scale * design
        nq, nb = weights.shape

        def jacobian(d_omega: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
            n_params = d_omega.shape[-1]
            moved = self.centre(np.swapaxes(d_omega, 1, 2) @ derivative)  # ∂(C m)/∂θ_k
            flat = np.swapaxes(moved, 1, 2).reshape(-1, n_params)
            ridge = np.zeros((nq * nb, n_params))
            if scale <= 0.0:
                return np.zeros_like(flat), ridge
            d = design.ravel()
            term1 = scale * (flat - np.outer(d, d @ flat) / norm2)
            term2 = np.outer(d, residual.ravel() @ flat) / norm2
            return -(term1 + term2), ridge

        def normal(d_omega: np.ndarray) -> ColumnTerms:
            data_rows, ridge_rows = jacobian(d_omega)
            n_params = d_omega.shape[-1]
            return from_rows(
                data_rows.reshape(nq, -1, n_params),
                ridge_rows.reshape(nq, nb, n_params),
                residual,
                np.zeros((nq, nb)),
            )

        return LinearPart(
            residual,
            np.zeros((nq, nb)),
            scale * weights,
            scale * image,
            1 + int(scale > 0),
            jacobian,
            normal,
        )


class FastIntensities(ScaledIntensities):
    """The paper's model: every branch of equal weight."""

    def image(
        self, frequencies: np.ndarray, peaks: np.ndarray, slopes: np.ndarray | None
    ) -> tuple[np.ndarray, np.ndarray | None, np.ndarray]:
        return peaks.sum(axis=1), slopes, np.ones(peaks.shape[:2])


class PhysicalIntensities(ScaledIntensities):
    """Branches weighted by the coherent one-phonon cross-section: ``weights`` = (creation,
    annihilation) (nq, nb) each, the anti-Stokes peaks at −ħω drawn with ``peak_shape``."""

    def __init__(
        self,
        weight: np.ndarray,
        data: np.ndarray,
        peak_shape: PeakShape,
        weights: tuple[np.ndarray, np.ndarray],
    ) -> None:
        super().__init__(weight, data)
        self.peak_shape = peak_shape
        self.weights = weights

    def image(
        self, frequencies: np.ndarray, peaks: np.ndarray, slopes: np.ndarray | None
    ) -> tuple[np.ndarray, np.ndarray | None, np.ndarray]:
        creation, annihilation = self.weights
        image = (creation[:, None, :] @ peaks)[:, 0]
        derivative = None if slopes is None else creation[..., None] * slopes
        if np.any(annihilation > 0):
            anti_peaks, anti_slopes = self.peak_shape(-frequencies, slopes is not None)
            image += (annihilation[:, None, :] @ anti_peaks)[:, 0]
            if derivative is not None:
                derivative -= annihilation[..., None] * anti_slopes
        return image, derivative, creation


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
