"""The paper's fast spectrum model: I(q, E) = Σ_j G(E − ħω_j(q); σ(ħω_j)).

No eigenvectors, Debye–Waller or polarisation: every branch has unit weight. Each Gaussian is
integrated exactly over each energy bin (differences of the normal CDF) and truncated at
±TRUNCATION σ, so only a few bins per peak are touched; I is a density in 1/meV, so
Σ_E I(q, E)·ΔE equals the number of branches inside the window.
"""

from __future__ import annotations

import numpy as np
import torch
from scipy.special import ndtr

from fcinvert.physics.material import EnergyGrid

TRUNCATION = 4.0


def render(frequencies: np.ndarray, grid: EnergyGrid) -> np.ndarray:
    """Spectra for ħω of shape (..., nq, n_branches) meV: (..., nq, nE) float32, 1/meV."""
    frequencies = np.asarray(frequencies, dtype=np.float32)
    *lead, nq, nb = frequencies.shape
    n_energy = len(grid.centres)
    low = grid.centres[0] - 0.5 * grid.width
    peaks = frequencies.reshape(-1, nb)  # (M, nb) rows are (spectrum, q) pairs
    sigma = grid.sigma(peaks).astype(np.float32)
    reach = int(np.ceil(TRUNCATION * grid.sigma(np.abs(peaks).max(initial=0.0)) / grid.width)) + 1
    first = np.floor((peaks - low) / grid.width).astype(np.int64) - reach + 1  # (M, nb)
    offsets = np.arange(-1, 2 * reach, dtype=np.int64)  # window bins, plus one edge below
    bins = first[..., None] + offsets  # (M, nb, W)
    edges = (low + grid.width * (bins + 1)).astype(np.float32)  # upper edge of each bin
    cdf = ndtr((edges - peaks[..., None]) / sigma[..., None]).astype(np.float32)
    weights = np.diff(cdf, axis=-1) / np.float32(grid.width)  # (M, nb, W-1)
    bins = bins[..., 1:]
    inside = (bins >= 0) & (bins < n_energy)
    rows = np.broadcast_to(np.arange(len(peaks))[:, None, None], bins.shape)
    flat = (rows * n_energy + bins)[inside]
    image = np.bincount(flat, weights=weights[inside], minlength=len(peaks) * n_energy)
    return image.astype(np.float32).reshape(*lead, nq, n_energy)


def render_torch(frequencies: torch.Tensor, grid: EnergyGrid, width_scale: float = 1.0) -> torch.Tensor:
    """Differentiable twin of ``render`` over every bin (no truncation): (..., nq, nE).

    ``width_scale`` widens σ (coarse-to-fine fitting); 1.0 gives the model's resolution.
    """
    dtype = frequencies.dtype
    edges = torch.as_tensor(
        np.append(grid.centres - 0.5 * grid.width, grid.centres[-1] + 0.5 * grid.width),
        dtype=dtype,
    )
    sigma = (grid.fwhm0 + grid.slope * frequencies.abs()) * width_scale / 2.3548200450309493
    z = (edges - frequencies[..., None]) / sigma[..., None]
    cdf = 0.5 * (1.0 + torch.erf(z / np.sqrt(2.0)))
    return (cdf[..., 1:] - cdf[..., :-1]).sum(dim=-2) / grid.width
