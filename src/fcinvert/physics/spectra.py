"""The paper's fast spectrum model: I(q, E) = Σ_j G(E − ħω_j(q); σ(ħω_j)).

No eigenvectors, Debye–Waller or polarisation: every branch has unit weight. Each Gaussian is
integrated exactly over each energy bin (differences of the normal CDF) and truncated at
±TRUNCATION σ, so only a few bins per peak are touched; I is a density in 1/meV, so
Σ_E I(q, E)·ΔE equals the number of branches inside the window.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

import numba
import numpy as np
from scipy.special import ndtr

from fcinvert.physics.material import FWHM_TO_SIGMA, EnergyGrid

if TYPE_CHECKING:
    import torch

TRUNCATION = 4.0
_CDF_LIMIT = 8.5  # the table of Φ spans z = ±_CDF_LIMIT
_CDF_STEPS = 64  # table points per unit z


def render(frequencies: np.ndarray, grid: EnergyGrid) -> np.ndarray:
    """Spectra for ħω of shape (..., nq, n_branches) meV: (..., nq, nE) float32, 1/meV.

    Every peak is integrated over the same window of bins around it, wide enough for
    ±TRUNCATION σ of the broadest peak in the batch.
    """
    peaks32 = np.asarray(frequencies, dtype=np.float32)
    *lead, nq, nb = peaks32.shape
    peaks = peaks32.reshape(-1, nb).astype(np.float64)  # (M, nb) rows are (spectrum, q) pairs
    highest = float(np.abs(peaks32).max(initial=0.0))
    reach = int(np.ceil(TRUNCATION * grid.sigma(highest) / grid.width)) + 1
    image = np.empty((len(peaks), len(grid.centres)), dtype=np.float32)
    low = float(grid.centres[0] - 0.5 * grid.width)
    _accumulate(
        peaks,
        low,
        float(grid.width),
        float(grid.fwhm0),
        float(grid.slope),
        reach,
        *_CDF_TABLE,
        image,
    )
    return image.reshape(*lead, nq, len(grid.centres))


def _normal_cdf_table() -> tuple[np.ndarray, np.ndarray]:
    """Φ and φ (standard normal CDF and density) at z = −Z … Z in steps of 1/_CDF_STEPS."""
    z = np.arange(-_CDF_LIMIT * _CDF_STEPS, _CDF_LIMIT * _CDF_STEPS + 1) / _CDF_STEPS
    return ndtr(z), np.exp(-0.5 * z**2) / math.sqrt(2.0 * math.pi)


@numba.njit(nogil=True, cache=True)
def _normal_cdf(z: float, cdf: np.ndarray, density: np.ndarray) -> float:
    """Φ(z) by cubic Hermite interpolation of the table (error < 1e-10; the exact
    derivatives φ make it so); 0 or 1 beyond its ends (Φ(−8.5) ≈ 1e-17)."""
    x = (z + _CDF_LIMIT) * _CDF_STEPS
    if x <= 0.0:
        return 0.0
    i = int(x)
    if i >= cdf.size - 1:
        return 1.0
    t = x - i
    h = 1.0 / _CDF_STEPS
    t2 = t * t
    t3 = t2 * t
    return (
        (2 * t3 - 3 * t2 + 1) * cdf[i]
        + (t3 - 2 * t2 + t) * h * density[i]
        + (3 * t2 - 2 * t3) * cdf[i + 1]
        + (t3 - t2) * h * density[i + 1]
    )


@numba.njit(nogil=True, cache=True)
def _accumulate(
    peaks: np.ndarray,
    low: float,
    width: float,
    fwhm0: float,
    slope: float,
    reach: int,
    cdf: np.ndarray,
    density: np.ndarray,
    image: np.ndarray,
) -> None:
    """Bin-integrated Gaussians: image[m, b] = Σ_j ∫_bin b G(E − peaks[m, j]) dE / width.

    peaks: (M, nb) meV; image: (M, nE) float32, overwritten. Each peak touches the 2·reach
    bins from floor((p − low)/width) − reach + 1 on; a CDF value is shared by adjacent bins.
    """
    n_energy = image.shape[1]
    row = np.empty(n_energy)
    for m in range(peaks.shape[0]):
        row[:] = 0.0
        for j in range(peaks.shape[1]):
            peak = peaks[m, j]
            inverse_sigma = 1.0 / ((fwhm0 + slope * abs(peak)) * FWHM_TO_SIGMA)
            first = math.floor((peak - low) / width) - reach + 1
            start = max(first, 0)
            stop = min(first + 2 * reach, n_energy)
            if start >= stop:
                continue
            below = _normal_cdf((low + width * start - peak) * inverse_sigma, cdf, density)
            for b in range(start, stop):
                above = _normal_cdf((low + width * (b + 1) - peak) * inverse_sigma, cdf, density)
                row[b] += (above - below) / width
                below = above
        for b in range(n_energy):
            image[m, b] = row[b]


def render_torch(
    frequencies: torch.Tensor, grid: EnergyGrid, width_scale: float = 1.0
) -> torch.Tensor:
    """Differentiable twin of ``render`` over every bin (no truncation): (..., nq, nE).

    ``width_scale`` widens σ (coarse-to-fine fitting); 1.0 gives the model's resolution.
    """
    import torch

    dtype = frequencies.dtype
    edges = torch.as_tensor(
        np.append(grid.centres - 0.5 * grid.width, grid.centres[-1] + 0.5 * grid.width),
        dtype=dtype,
    )
    sigma = (grid.fwhm0 + grid.slope * frequencies.abs()) * width_scale / 2.3548200450309493
    z = (edges - frequencies[..., None]) / sigma[..., None]
    cdf = 0.5 * (1.0 + torch.erf(z / np.sqrt(2.0)))
    return (cdf[..., 1:] - cdf[..., :-1]).sum(dim=-2) / grid.width


_CDF_TABLE = _normal_cdf_table()
