"""Phonon frequencies for many FC parameter sets at once.

D(q; θ) is linear in θ, so the per-parameter dynamical matrices D_k(q) are computed once (by
phonopy, so conventions agree with it exactly) and a batch of θ costs one matrix product and a
batched Hermitian eigen-solve in complex128 (complex64 is not accurate enough: ~1e-2 meV for Ge).
A torch twin gives the same numbers with autograd, for refinement and sensitivity.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import numpy as np
from phonopy.physical_units import get_physical_units

from fcinvert.physics.blocks import BlockedEigenvalues
from fcinvert.physics.fcspace import FCSpace

if TYPE_CHECKING:  # torch is imported only when the differentiable twin is used
    import torch

UNITS = get_physical_units()
#: meV per sqrt(eV/Å²/amu): phonopy's own factor, so frequencies agree with phonopy exactly.
FREQUENCY_TO_MEV = UNITS.DefaultToTHz * UNITS.THzToEv * 1000.0
#: Frequencies below this (meV) mark a dynamically unstable FC set.
UNSTABLE_BELOW = -0.1
#: From this batch size on, the symmetry-blocked solver (set up once, ~0.3 s) is used.
BLOCKED_FROM = 32


@dataclass
class DynamicsBasis:
    """Per-parameter dynamical matrices at fixed q-points.

    qpoints: (nq, 3) reduced coordinates of the primitive reciprocal basis.
    matrices: (n_params, nq, 3n, 3n) complex128, eV/Å²/amu per unit θ (mass-weighted).
    """

    qpoints: np.ndarray
    matrices: np.ndarray
    _blocked: BlockedEigenvalues | None = field(default=None, repr=False)

    def __post_init__(self) -> None:
        # contiguous (a no-op unless sliced), so that D(θ) is one real product over (Re, Im)
        self.matrices = np.ascontiguousarray(self.matrices, dtype=np.complex128)

    @property
    def n_branches(self) -> int:
        return self.matrices.shape[-1]

    def dynamical_matrices(self, theta: np.ndarray) -> np.ndarray:
        """D(q; θ) for θ of shape (B, n_params): (B, nq, 3n, 3n) complex128."""
        theta = np.atleast_2d(np.asarray(theta, dtype=float))
        pairs = self.matrices.reshape(len(self.matrices), -1).view(np.float64)  # Re, Im, Re, …
        product = (theta @ pairs).view(np.complex128)
        return product.reshape(len(theta), *self.matrices.shape[1:])

    def frequencies(self, theta: np.ndarray, chunk: int = 256) -> np.ndarray:
        """ħω (meV) for θ (n_params,) or (B, n_params): (nq, 3n) or (B, nq, 3n), ascending;
        imaginary modes are negative. Large batches use the symmetry-blocked solver (same
        numbers to ~1e-12 relative, ~10× faster for Ge), small ones a dense eigen-solve."""
        theta = np.asarray(theta, dtype=float)
        batch = np.atleast_2d(theta)
        if len(batch) >= BLOCKED_FROM and self._blocked is None:
            self._blocked = BlockedEigenvalues(self.matrices)
        out = np.empty((len(batch), len(self.qpoints), self.n_branches))
        for start in range(0, len(batch), chunk):
            part = batch[start : start + chunk]
            if len(batch) >= BLOCKED_FROM:
                values = self._blocked(part)
            else:
                values = np.linalg.eigvalsh(self.dynamical_matrices(part))
            out[start : start + chunk] = eigenvalues_to_mev(values)
        return out[0] if theta.ndim == 1 else out

    def modes(self, theta: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """ħω (nq, 3n) meV and eigenvectors (nq, 3n, 3n), columns, phonopy convention, of one θ."""
        values, vectors = np.linalg.eigh(self.dynamical_matrices(theta)[0])
        return eigenvalues_to_mev(values), vectors

    def torch(self) -> TorchDynamics:
        import torch

        return TorchDynamics(torch.from_numpy(self.matrices))


def eigenvalues_to_mev(eigenvalues: np.ndarray) -> np.ndarray:
    """Eigenvalues of D (eV/Å²/amu) → ħω in meV, negative for imaginary modes."""
    return np.sign(eigenvalues) * np.sqrt(np.abs(eigenvalues)) * FREQUENCY_TO_MEV


class TorchDynamics:
    """The torch twin of DynamicsBasis.frequencies, differentiable in θ."""

    def __init__(self, matrices: torch.Tensor) -> None:
        import torch

        self.matrices = matrices.to(torch.complex128)

    def frequencies(self, theta: torch.Tensor) -> torch.Tensor:
        """ħω (meV) for θ (..., n_params) float64: (..., nq, 3n)."""
        import torch

        matrices = torch.einsum("...p,pqij->...qij", theta.to(self.matrices.dtype), self.matrices)
        values = torch.linalg.eigvalsh(matrices)
        magnitude = torch.sqrt(values.abs().clamp_min(1e-300))
        return torch.sign(values) * magnitude * FREQUENCY_TO_MEV


def dynamics_basis(fcspace: FCSpace, qpoints: np.ndarray, chunk: int = 64) -> DynamicsBasis:
    """D_k(q) for every parameter k at ``qpoints`` (nq, 3): phonopy's Fourier sum (its
    smallest image vectors, each image of an atom weighted equally, the result Hermitised),
    done for every k at once, ``chunk`` q-points at a time (one phonopy run per k took 4× as
    long for Ge; the same matrices to 2e-16, tested)."""
    qpoints = np.atleast_2d(np.asarray(qpoints, dtype=float))
    primitive = fcspace.phonopy.primitive
    p2s, s2p = np.asarray(primitive.p2s_map), np.asarray(primitive.s2p_map)
    vectors, multiplicity = primitive.get_smallest_vectors()  # compact: (count, offset)
    count, offset = multiplicity[..., 0], multiplicity[..., 1]  # (n_super, n_prim)
    image = np.arange(count.max())
    images = vectors[np.minimum(offset[..., None] + image, len(vectors) - 1)]  # (s, i, l, 3)
    weights = (image < count[..., None]) / count[..., None]  # 1/count on real images, else 0
    owner = (s2p[:, None] == p2s[None, :]).astype(float)  # (n_super, n_prim): atom s is j's
    rows = fcspace.basis[:, p2s]  # (P, n_prim, n_super, 3, 3): Φ_k(i, s)
    masses = np.asarray(primitive.masses)
    root_mass = np.sqrt(np.outer(masses, masses))[:, None, :, None]  # (i, ·, j, ·)
    n = 3 * len(p2s)
    matrices = np.empty((fcspace.n_params, len(qpoints), n, n), dtype=complex)
    for first in range(0, len(qpoints), chunk):
        q = qpoints[first : first + chunk]
        phases = np.exp(2j * np.pi * np.einsum("qx,silx->qsil", q, images))
        phase = np.einsum("qsil,sil->qsi", phases, weights)  # image-averaged e^{2πi q·r}
        block = np.einsum("kisab,qsi,sj->kqiajb", rows, phase, owner, optimize=True)
        block = (block / root_mass).reshape(fcspace.n_params, len(q), n, n)
        matrices[:, first : first + chunk] = 0.5 * (block + np.conj(np.swapaxes(block, -1, -2)))
    return DynamicsBasis(qpoints, matrices)


def stability_mesh(divisions: int = 6) -> np.ndarray:
    """A Γ-centred (divisions³ − 1)-point q mesh (reduced), Γ itself left out."""
    grid = np.arange(divisions) / divisions
    mesh = np.stack(np.meshgrid(grid, grid, grid, indexing="ij"), -1).reshape(-1, 3)
    return mesh[1:]


@dataclass
class StabilityCheck:
    """Decides whether FC sets are dynamically stable on the path and on a coarse mesh."""

    path: DynamicsBasis
    mesh: DynamicsBasis

    @classmethod
    def build(
        cls, fcspace: FCSpace, path_qpoints: np.ndarray, divisions: int = 6
    ) -> StabilityCheck:
        return cls(
            dynamics_basis(fcspace, path_qpoints),
            dynamics_basis(fcspace, stability_mesh(divisions)),
        )

    def lowest(self, theta: np.ndarray) -> np.ndarray:
        """Lowest frequency (meV) off Γ over path and mesh, per θ row: (B,)."""
        batch = np.atleast_2d(theta)
        off_gamma = np.any(np.abs(self.path.qpoints) > 1e-9, axis=1)
        path = self.path.frequencies(batch)[:, off_gamma].min(axis=(1, 2))
        mesh = self.mesh.frequencies(batch).min(axis=(1, 2))
        return np.minimum(path, mesh)

    def is_stable(self, theta: np.ndarray) -> np.ndarray:
        """(B,) bool: no imaginary mode below UNSTABLE_BELOW meV anywhere off Γ."""
        return self.lowest(theta) > UNSTABLE_BELOW
