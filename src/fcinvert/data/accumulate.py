"""A measurement that grows file by file: the running fold of every orientation read so far.

Folding is a ratio of sums (``fcinvert.data.fold``): per (path point, energy bin) pixel the
summed signal over the summed normalisation. Adding an orientation therefore only adds its own
sums — nothing already folded is read again. Each file contributes ``FileSums``:

- Mantid SaveMD (with its MDNorm normalisation), NXSPE, text tables: folded as ``fcinvert fold``
  folds them, their numerator, denominator and variance sums kept.
- fcinvert spectrum files already on the material's path and energy grid (one per orientation,
  as ``fcinvert measure`` writes them): their exposure is recovered from counting statistics,
  error² = counts / exposure² (and error = 1 / exposure where no count was seen), so that the
  sums are those of the counts; without errors every measured pixel weighs 1.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import h5py
import numpy as np

from fcinvert.data.fold import DEFAULT_PERPENDICULAR, finish_spectrum, fold_points, fold_volume
from fcinvert.data.readers import Volume, read_measurement
from fcinvert.data.spectrum_file import Spectrum, read_spectrum
from fcinvert.errors import FcinvertError
from fcinvert.physics.material import Material
from fcinvert.physics.reciprocal import conventional_lattice

#: suffixes of the files a measurement folder may hold (HDF5 spectra, SaveMD, NXSPE, tables)
SUFFIXES = (".h5", ".hdf5", ".nxs", ".nxspe", ".txt", ".csv", ".dat")


@dataclass(frozen=True)
class FileSums:
    """What one file adds: numerator, denominator (n_path, nE) and the summed variance of the
    numerator (n_path, nE, or None when the file gives none); psi: its rotation (degrees) when
    the file records one; counts: the counts it holds (Σ numerator) when they are counts."""

    numerator: np.ndarray
    denominator: np.ndarray
    spread: np.ndarray | None
    psi: float | None
    counts: float | None


@dataclass(frozen=True)
class Geometry:
    """How to fold a file onto ``material``: the half-width across the path (r.l.u.), and for
    NXSPE the crystal's ``u`` and ``v`` (conventional hkl, None: not given)."""

    material: Material
    width: float = DEFAULT_PERPENDICULAR
    u: np.ndarray | None = None
    v: np.ndarray | None = None


def is_spectrum_file(path: Path) -> bool:
    """True for an HDF5 file in the spectrum contract (it has ``intensity`` and ``qpoints``)."""
    try:
        with h5py.File(path, "r") as handle:
            return "intensity" in handle and "qpoints" in handle
    except OSError:
        return False


def read_file_sums(path: Path, geometry: Geometry, norm: Path | None = None) -> FileSums:
    """The sums one file adds (module docstring); every problem is one FcinvertError line."""
    material = geometry.material
    if norm is None and path.suffix.lower() in (".h5", ".hdf5") and is_spectrum_file(path):
        return _spectrum_sums(path, material)
    measurement = read_measurement(
        path, norm, conventional_lattice(material), geometry.u, geometry.v
    )
    if isinstance(measurement, Volume):
        result = fold_volume(measurement, material, geometry.width)
    else:
        result = fold_points(measurement, material, geometry.width)
    return FileSums(result.numerator, result.denominator, result.spread, None, None)


def _spectrum_sums(path: Path, material: Material) -> FileSums:
    spectrum = read_spectrum(path)
    if spectrum.material and spectrum.material != material.name:
        raise FcinvertError(f"{path}: a spectrum of '{spectrum.material}', not {material.name}")
    grid = material.energy.centres
    same_grid = spectrum.energy.shape == grid.shape and np.allclose(spectrum.energy, grid)
    path_q = material.path.qpoints
    same_path = spectrum.qpoints.shape == path_q.shape and np.allclose(spectrum.qpoints, path_q)
    if not (same_grid and same_path):
        raise FcinvertError(
            f"{path}: not on {material.name}'s path and energy grid; watch the raw files "
            "(SaveMD, NXSPE) or fold it first"
        )
    return spectrum_sums(spectrum, _psi(path))


def spectrum_sums(spectrum: Spectrum, psi: float | None = None) -> FileSums:
    """The sums of one orientation's folded spectrum (on the material's path and grid), its
    exposure recovered from counting statistics (module docstring)."""
    intensity = spectrum.intensity
    measured = np.isfinite(intensity)
    if spectrum.error is None:
        denominator = measured.astype(float)
        numerator = np.where(measured, intensity, 0.0)
        return FileSums(numerator, denominator, None, psi, None)
    error = spectrum.error
    measured &= np.isfinite(error) & (error > 0)
    safe = np.where(measured, error, 1.0)
    positive = measured & (intensity > 0)
    denominator = np.where(positive, intensity / safe**2, np.where(measured, 1.0 / safe, 0.0))
    numerator = np.where(measured, intensity, 0.0) * denominator
    spread = (np.where(measured, error, 0.0) * denominator) ** 2
    return FileSums(numerator, denominator, spread, psi, float(numerator.sum()))


def _psi(path: Path) -> float | None:
    """The file's ``psi_deg`` attribute as one angle; a list (a combined file) is refused."""
    with h5py.File(path, "r") as handle:
        value = handle.attrs.get("psi_deg")
    if value is None:
        return None
    if isinstance(value, bytes | str):
        text = value.decode() if isinstance(value, bytes) else value
        try:
            value = json.loads(text)
        except ValueError:
            raise FcinvertError(
                f"{path}: attribute psi_deg '{text[:40]}' is not a number"
            ) from None
    values = np.ravel(np.asarray(value, dtype=float))
    if len(values) != 1:
        raise FcinvertError(
            f"{path}: holds {len(values)} orientations together (a combined file), not one"
        )
    return float(values[0])


class RunningFold:
    """The sums of every file added so far, on ``material``'s path (n_path) and energy grid
    (nE). files: names added, in order; psi: their rotations (None where unknown); counts: the
    total counts when every file gave them (else None)."""

    def __init__(self, material: Material) -> None:
        shape = (len(material.path.qpoints), len(material.energy.centres))
        self.material = material
        self.numerator = np.zeros(shape)
        self.denominator = np.zeros(shape)
        self.spread: np.ndarray | None = np.zeros(shape)
        self.files: list[str] = []
        self.psi: list[float | None] = []
        self.counts: float | None = 0.0

    def add(self, name: str, sums: FileSums) -> None:
        """Add one file's sums (the running totals only grow)."""
        self.numerator += sums.numerator
        self.denominator += sums.denominator
        if sums.spread is None or self.spread is None:
            self.spread = None  # one file without variances: errors from the counts alone
        else:
            self.spread += sums.spread
        self.counts = (
            None if sums.counts is None or self.counts is None else self.counts + sums.counts
        )
        self.files.append(name)
        self.psi.append(sums.psi)

    @property
    def measured(self) -> np.ndarray:
        """(n_path, nE) bool: pixels with a positive normalisation."""
        return self.denominator > 0

    def spectrum(self, temperature: float | None = None) -> Spectrum:
        """The folded spectrum of everything added: Σ numerator / Σ denominator, NaN where
        nothing was measured; error √(Σ counts) / Σ denominator for counts (one count's worth
        at least), else √(Σ variance) / Σ denominator when the files give variances."""
        if not self.files:
            raise FcinvertError("no file has been folded yet")
        spread = self.spread
        if self.counts is not None:  # Poisson on the summed counts (at least one count's worth)
            spread = np.maximum(self.numerator, 1.0)
        folded = finish_spectrum(
            self.material, self.numerator, self.denominator, spread, [], temperature, 0.0, {}
        )
        return folded.spectrum
