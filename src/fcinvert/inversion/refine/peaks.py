"""The refinement's line shape: a branch at ħω is a bin-integrated Gaussian of the material's
resolution, broadened by the continuation stage's extra width, with its derivative in ω."""

from __future__ import annotations

import numpy as np
from scipy.special import ndtr

from fcinvert.physics.material import FWHM_TO_SIGMA, EnergyGrid

#: Model peaks reach ±TRUNCATION σ (Φ(−6) ≈ 1e-9: smooth enough for derivatives).
TRUNCATION = 6.0
_SQRT_2PI = np.sqrt(2.0 * np.pi)


class PeakShape:
    """Unit peaks on ``grid``'s energy bins, of σ² = σ_res(ω)² + ``sigma_extra``² (meV)."""

    def __init__(self, grid: EnergyGrid, sigma_extra: float) -> None:
        self.grid = grid
        self.sigma_extra = sigma_extra
        self.edges = grid.edges

    def __call__(
        self, frequencies: np.ndarray, derivative: bool
    ) -> tuple[np.ndarray, np.ndarray | None]:
        """Bin-integrated unit Gaussians G_j(E) (nq, nb, nE) 1/meV at ``frequencies`` (nq, nb)
        meV, and ∂G_j/∂ω_j (1/meV²) when ``derivative``.

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
        width = n_energy + 2 * reach
        padded = np.zeros(first.size * width)
        starts = np.arange(first.size) * width + first.ravel()  # flat index of each window
        padded[starts[:, None] + np.arange(2 * reach)] = values.reshape(first.size, -1)
        return padded.reshape(*first.shape, width)[..., reach : reach + n_energy]
