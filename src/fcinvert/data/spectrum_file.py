"""The spectrum file contract (HDF5): one I(q, E) map on a list of q-points.

Datasets: ``intensity`` (nq, nE), optional ``error`` (nq, nE), ``energy`` (nE,) meV bin centres,
``qpoints`` (nq, 3) reduced coordinates of the standard primitive reciprocal basis, optional
``frequencies`` (nq, n_branches) meV (simulated files). Attributes: ``material``,
``temperature_K``, optionally the instrument's Gaussian energy resolution as
``resolution_fwhm0_meV`` and ``resolution_slope`` (FWHM(E) = fwhm0 + slope·E, the material's
form; ``material init --data`` takes it) and the sample's conventional cubic
``lattice_parameter_A`` (``build`` checks it against the structure). NaN marks unmeasured
pixels.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import h5py
import numpy as np

from fcinvert import __version__, validate
from fcinvert.errors import FcinvertError
from fcinvert.iohelpers import atomic_path, open_hdf5
from fcinvert.physics.material import (
    EnergySettings,
    ResolutionSettings,
    energy_settings_from_centres,
)


@dataclass
class Spectrum:
    """I(q, E) on arbitrary q-points and energy bins.

    intensity, error: (nq, nE) (error is one standard deviation, or None); energy: (nE,) meV;
    qpoints: (nq, 3) reduced; frequencies: (nq, n_branches) meV when simulated, else None;
    temperature_K: NaN when the file does not say; resolution: (fwhm0 meV, slope) of
    FWHM(E) = fwhm0 + slope·E when the file says, else None; lattice_parameter_A: the
    sample's conventional cubic a (Å) when the file says, else None.
    """

    intensity: np.ndarray
    energy: np.ndarray
    qpoints: np.ndarray
    material: str
    temperature_K: float = 5.0
    error: np.ndarray | None = None
    frequencies: np.ndarray | None = None
    resolution: tuple[float, float] | None = None
    lattice_parameter_A: float | None = None

    def __post_init__(self) -> None:
        nq, n_energy = np.shape(self.intensity)
        if np.shape(self.energy) != (n_energy,) or np.shape(self.qpoints) != (nq, 3):
            raise FcinvertError(
                f"spectrum shapes disagree: intensity {np.shape(self.intensity)}, energy "
                f"{np.shape(self.energy)}, qpoints {np.shape(self.qpoints)}"
            )


def write_spectrum(path: str | Path, spectrum: Spectrum, attrs: dict | None = None) -> None:
    """Write ``spectrum`` atomically; ``attrs`` adds file attributes (provenance)."""
    with atomic_path(path) as temporary, h5py.File(temporary, "w") as handle:
        handle.attrs["format"] = "fcinvert-spectrum"
        handle.attrs["material"] = spectrum.material
        handle.attrs["temperature_K"] = float(spectrum.temperature_K)
        handle.attrs["fcinvert_version"] = __version__
        for key, value in (attrs or {}).items():
            handle.attrs[key] = value
        handle.create_dataset("intensity", data=spectrum.intensity, compression="gzip")
        handle.create_dataset("energy", data=spectrum.energy).attrs["units"] = "meV"
        handle.create_dataset("qpoints", data=spectrum.qpoints).attrs["units"] = "r.l.u."
        if spectrum.error is not None:
            handle.create_dataset("error", data=spectrum.error, compression="gzip")
        if spectrum.frequencies is not None:
            handle.create_dataset("frequencies", data=spectrum.frequencies).attrs["units"] = "meV"
        if spectrum.resolution is not None:
            handle.attrs["resolution_fwhm0_meV"] = float(spectrum.resolution[0])
            handle.attrs["resolution_slope"] = float(spectrum.resolution[1])
        if spectrum.lattice_parameter_A is not None:
            handle.attrs["lattice_parameter_A"] = float(spectrum.lattice_parameter_A)


@validate.reads_file("spectrum file")
def read_spectrum(path: str | Path) -> Spectrum:
    """Read and validate a spectrum file; every problem is one FcinvertError line."""
    path = Path(path)
    with open_hdf5(path, "spectrum file") as handle:
        missing = [key for key in ("intensity", "energy", "qpoints") if key not in handle]
        if missing:
            raise FcinvertError(f"{path}: not a spectrum file (missing {', '.join(missing)})")
        try:
            intensity = np.asarray(handle["intensity"][()], dtype=float)
            energy = np.asarray(handle["energy"][()], dtype=float)
            qpoints = np.asarray(handle["qpoints"][()], dtype=float)
            error = np.asarray(handle["error"][()], dtype=float) if "error" in handle else None
            frequencies = (
                np.asarray(handle["frequencies"][()], dtype=float)
                if "frequencies" in handle
                else None
            )
        except (OSError, ValueError, TypeError) as problem:
            raise FcinvertError(f"{path}: unreadable dataset ({problem})") from None
        material = _text(handle.attrs.get("material", ""))
        temperature_given = "temperature_K" in handle.attrs
        try:
            temperature = float(handle.attrs.get("temperature_K", np.nan))
        except (TypeError, ValueError):
            raise FcinvertError(f"{path}: temperature_K is not a number") from None
        resolution = _resolution(path, handle.attrs)
        lattice = _lattice_parameter(path, handle.attrs)
    if intensity.ndim != 2:
        raise FcinvertError(f"{path}: intensity must be 2-D (nq, nE), got shape {intensity.shape}")
    nq, n_energy = intensity.shape
    if energy.shape != (n_energy,):
        raise FcinvertError(f"{path}: energy has shape {energy.shape}, expected ({n_energy},)")
    if qpoints.shape != (nq, 3):
        raise FcinvertError(f"{path}: qpoints has shape {qpoints.shape}, expected ({nq}, 3)")
    if error is not None and error.shape != intensity.shape:
        raise FcinvertError(f"{path}: error has shape {error.shape}, expected {intensity.shape}")
    if not np.all(np.isfinite(energy)) or np.any(np.diff(energy) <= 0):
        raise FcinvertError(f"{path}: energy bins must be finite and increasing")
    if not np.all(np.isfinite(qpoints)):
        raise FcinvertError(f"{path}: qpoints contain non-finite values")
    validate.spectrum_content(str(path), intensity, qpoints, error, temperature, temperature_given)
    if not np.any(np.isfinite(intensity)):
        raise FcinvertError(f"{path}: every intensity pixel is NaN (nothing measured)")
    return Spectrum(
        intensity, energy, qpoints, material, temperature, error, frequencies, resolution, lattice
    )


def _lattice_parameter(path: Path, attrs: h5py.AttributeManager) -> float | None:
    """The file's ``lattice_parameter_A`` (finite, > 0), or None when it has none."""
    if "lattice_parameter_A" not in attrs:
        return None
    try:
        value = float(attrs["lattice_parameter_A"])
    except (TypeError, ValueError):
        raise FcinvertError(f"{path}: lattice_parameter_A is not a number") from None
    if not np.isfinite(value) or value <= 0:
        raise FcinvertError(f"{path}: lattice_parameter_A must be > 0, got {value}")
    return value


def _resolution(path: Path, attrs: h5py.AttributeManager) -> tuple[float, float] | None:
    """(fwhm0 meV, slope) from the file's resolution attributes, None when it has none; both
    must be finite, fwhm0 > 0 and slope ≥ 0."""
    keys = ("resolution_fwhm0_meV", "resolution_slope")
    given = [key in attrs for key in keys]
    if not any(given):
        return None
    if not all(given):
        raise FcinvertError(f"{path}: give both {' and '.join(keys)}, or neither")
    try:
        fwhm0, slope = (float(attrs[key]) for key in keys)
    except (TypeError, ValueError):
        raise FcinvertError(f"{path}: {' and '.join(keys)} must be numbers") from None
    if not (np.isfinite(fwhm0) and np.isfinite(slope) and fwhm0 > 0 and slope >= 0):
        raise FcinvertError(
            f"{path}: resolution_fwhm0_meV must be > 0 and resolution_slope ≥ 0, got "
            f"{fwhm0} and {slope}"
        )
    return fwhm0, slope


def _text(value: object) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


@dataclass(frozen=True)
class MeasurementGrid:
    """What a new material takes from a measurement: its energy bins unchanged, and its
    resolution and temperature when the file states them (None otherwise)."""

    energy: EnergySettings
    resolution: ResolutionSettings | None
    temperature_K: float | None


def measurement_grid(spectrum: Spectrum, where: str) -> MeasurementGrid:
    """The grid of ``spectrum`` (read from ``where``) for ``material init --data``: uniform
    bins are required (no silent rebinning); resolution and temperature as the file says."""
    energy = energy_settings_from_centres(spectrum.energy, where)
    resolution = None
    if spectrum.resolution is not None:
        fwhm0, slope = spectrum.resolution
        resolution = ResolutionSettings(fwhm0_meV=fwhm0, slope=slope)
    temperature = spectrum.temperature_K if np.isfinite(spectrum.temperature_K) else None
    return MeasurementGrid(energy, resolution, temperature)
