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
    low = float(grid.edges[0])
    _accumulate(
        peaks,
        low,
        float(grid.width),
        float(grid.fwhm0),
        float(grid.slope),
        reach,
        _CDF_PIECES,
        image,
    )
    return image.reshape(*lead, nq, len(grid.centres))


def _normal_cdf_table() -> np.ndarray:
    """Cubic pieces of Φ (standard normal CDF) on z = −Z … Z in steps of h = 1/_CDF_STEPS:
    (n, 4) coefficients c with Φ(z_i + t h) = c0 + c1 t + c2 t² + c3 t³ for t in [0, 1).

    Each piece is the Hermite cubic matching Φ and its exact derivative φ at both ends, so the
    error is below h⁴ max|Φ⁗| / 384 ≈ 1e-10.
    """
    z = np.arange(-_CDF_LIMIT * _CDF_STEPS, _CDF_LIMIT * _CDF_STEPS + 1) / _CDF_STEPS
    value = ndtr(z)
    slope = np.exp(-0.5 * z**2) / math.sqrt(2.0 * math.pi) / _CDF_STEPS  # dΦ/dt
    rise = value[1:] - value[:-1]
    return np.stack(
        [
            value[:-1],
            slope[:-1],
            3.0 * rise - 2.0 * slope[:-1] - slope[1:],
            -2.0 * rise + slope[:-1] + slope[1:],
        ],
        axis=1,
    )


@numba.njit(nogil=True, cache=True)
def _normal_cdf(z: float, pieces: np.ndarray) -> float:
    """Φ(z) from the table of cubic pieces; 0 or 1 beyond its ends (Φ(−8.5) ≈ 1e-17)."""
    x = (z + _CDF_LIMIT) * _CDF_STEPS
    if x <= 0.0:
        return 0.0
    i = int(x)
    if i >= pieces.shape[0]:
        return 1.0
    t = x - i
    return pieces[i, 0] + t * (pieces[i, 1] + t * (pieces[i, 2] + t * pieces[i, 3]))


@numba.njit(nogil=True, cache=True)
def _add_peak(
    row: np.ndarray,
    peak: float,
    weight: float,
    inverse_sigma: float,
    low: float,
    width: float,
    reach: int,
    pieces: np.ndarray,
) -> None:
    """Add ``weight`` × the bin integrals of a Gaussian at ``peak`` (1/σ = inverse_sigma) to
    ``row`` (nE,): the 2·reach bins from floor((peak − low)/width) − reach + 1 on, each CDF
    value shared by adjacent bins."""
    n_energy = row.shape[0]
    first = math.floor((peak - low) / width) - reach + 1
    start = max(first, 0)
    stop = min(first + 2 * reach, n_energy)
    if start >= stop:
        return
    below = _normal_cdf((low + width * start - peak) * inverse_sigma, pieces)
    for b in range(start, stop):
        above = _normal_cdf((low + width * (b + 1) - peak) * inverse_sigma, pieces)
        row[b] += (above - below) * weight
        below = above


@numba.njit(nogil=True, cache=True)
def _accumulate(
    peaks: np.ndarray,
    low: float,
    width: float,
    fwhm0: float,
    slope: float,
    reach: int,
    pieces: np.ndarray,
    image: np.ndarray,
) -> None:
    """Bin-integrated Gaussians: image[m, b] = Σ_j ∫_bin b G(E − peaks[m, j]) dE / width.

    peaks: (M, nb) meV; image: (M, nE) float32, overwritten. Each peak touches the 2·reach
    bins from floor((p − low)/width) − reach + 1 on; a CDF value is shared by adjacent bins,
    and equal adjacent peaks (degenerate branches) are computed once.
    """
    n_energy = image.shape[1]
    n_branches = peaks.shape[1]
    row = np.empty(n_energy)
    for m in range(peaks.shape[0]):
        row[:] = 0.0
        j = 0
        while j < n_branches:
            peak = peaks[m, j]
            copies = 1  # degenerate branches (equal and adjacent when sorted) are drawn once
            while j + copies < n_branches and peaks[m, j + copies] == peak:
                copies += 1
            j += copies
            inverse_sigma = 1.0 / ((fwhm0 + slope * abs(peak)) * FWHM_TO_SIGMA)
            _add_peak(row, peak, copies / width, inverse_sigma, low, width, reach, pieces)
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
    edges = torch.as_tensor(grid.edges, dtype=dtype)
    sigma = (grid.fwhm0 + grid.slope * frequencies.abs()) * width_scale / 2.3548200450309493
    z = (edges - frequencies[..., None]) / sigma[..., None]
    cdf = 0.5 * (1.0 + torch.erf(z / np.sqrt(2.0)))
    return (cdf[..., 1:] - cdf[..., :-1]).sum(dim=-2) / grid.width


_CDF_PIECES = _normal_cdf_table()


def render_weighted(
    frequencies: np.ndarray,
    weights: np.ndarray,
    grid: EnergyGrid,
    resolution_scale: np.ndarray | float = 1.0,
) -> np.ndarray:
    """Spectra with a weight per peak: I(q, E) = Σ_j w_j G(E − ħω_j(q); s·σ(ħω_j)).

    frequencies, weights: (B, nq, nb) meV and any unit (a weight-1 peak integrates to 1 over E,
    as in ``render``); resolution_scale: s, a scalar or (B,) factor on the grid's FWHM. Peaks
    at negative energies are drawn there (anti-Stokes); zero weights cost nothing.
    Returns (B, nq, nE) float32.
    """
    peaks = np.asarray(frequencies, dtype=np.float64)
    batch, nq, _ = peaks.shape
    strength = np.broadcast_to(np.asarray(weights, dtype=np.float64), peaks.shape)
    scale = np.broadcast_to(np.asarray(resolution_scale, dtype=np.float64), (batch,))
    highest = float(np.abs(peaks).max(initial=0.0))
    reach = int(np.ceil(TRUNCATION * grid.sigma(highest) * scale.max() / grid.width)) + 1
    image = np.empty((batch, nq, len(grid.centres)), dtype=np.float32)
    _accumulate_weighted(
        np.ascontiguousarray(peaks),
        np.ascontiguousarray(strength),
        np.ascontiguousarray(scale),
        float(grid.edges[0]),
        float(grid.width),
        float(grid.fwhm0),
        float(grid.slope),
        reach,
        _CDF_PIECES,
        image,
    )
    return image


@numba.njit(nogil=True, cache=True)
def _accumulate_weighted(
    peaks: np.ndarray,
    weights: np.ndarray,
    scale: np.ndarray,
    low: float,
    width: float,
    fwhm0: float,
    slope: float,
    reach: int,
    pieces: np.ndarray,
    image: np.ndarray,
) -> None:
    """``_accumulate`` with a weight per peak and a resolution factor per spectrum.

    peaks, weights: (B, nq, nb); scale: (B,); image: (B, nq, nE) float32, overwritten."""
    n_energy = image.shape[2]
    row = np.empty(n_energy)
    for s in range(peaks.shape[0]):
        for m in range(peaks.shape[1]):
            row[:] = 0.0
            for j in range(peaks.shape[2]):
                weight = weights[s, m, j]
                if weight == 0.0:
                    continue
                peak = peaks[s, m, j]
                inverse_sigma = 1.0 / ((fwhm0 + slope * abs(peak)) * scale[s] * FWHM_TO_SIGMA)
                _add_peak(row, peak, weight / width, inverse_sigma, low, width, reach, pieces)
            for b in range(n_energy):
                image[s, m, b] = row[b]
