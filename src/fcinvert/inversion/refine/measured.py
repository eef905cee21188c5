"""The measured side of a refinement: a spectrum's energy bins, the one-σ errors its pixels are
weighted by, wider bins for a coarse stage, the smoothing of a continuation stage, and the
noise of one pixel."""

from __future__ import annotations

import numpy as np

from fcinvert.data.spectrum_file import Spectrum
from fcinvert.errors import FcinvertError
from fcinvert.physics.material import EnergyGrid, Material

#: Noise floor per normalised pixel (data are divided by their RMS): noise-free physical
#: spectra are explained by the free branch intensities at the true θ to ~0.5 % of their RMS
#: (README main job); a fit that good counts as explaining the data (``fit_quality``).
NOISE_FLOOR = 1e-2


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


def merged_bins(
    intensity: np.ndarray, error: np.ndarray, grid: EnergyGrid, factor: int
) -> tuple[np.ndarray, np.ndarray, EnergyGrid]:
    """Intensity and one-σ errors (nq, nE) on bins ``factor`` times wider: the mean of each run
    of ``factor`` adjacent bins (a trailing remainder is dropped), its error √(Σσ²)/factor, NaN
    when any pixel of the run is unmeasured; and the wider grid (same resolution).

    The model is bin-integrated (``peaks``), so on the wider bins it is the mean of the narrow
    ones' and the fit sees the same information on θ from a factor fewer pixels: what a coarse
    stage, whose extra width the narrow bins do not resolve, needs."""
    if factor <= 1:
        return intensity, error, grid
    centres = bin_runs(grid.centres[None, :], factor).mean(axis=-1)[0]
    wide = EnergyGrid(centres, grid.width * factor, grid.fwhm0, grid.slope)
    merged_error = np.sqrt(np.sum(bin_runs(error, factor) ** 2, axis=-1)) / factor
    return bin_runs(intensity, factor).mean(axis=-1), merged_error, wide


def bin_runs(values: np.ndarray, factor: int) -> np.ndarray:
    """Pixels (nq, nE) as runs of ``factor`` adjacent energy bins (nq, nE // factor, factor),
    a trailing remainder dropped: the bins ``merged_bins`` merges."""
    kept = values.shape[1] // factor * factor
    return values[:, :kept].reshape(len(values), kept // factor, factor)


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
