"""Synthetic time-of-flight measurements: counts on a 4-D (H, K, L, E) grid, folded onto the path.

Each orientation ψ of the crystal sends every detector pixel (``Spectrometer``) along a
trajectory through (Q, E); each (pixel, energy bin) sample falls into one voxel of a regular grid
(step ``q_step`` r.l.u. along H, K, L; the material's energy bins) and adds its solid angle to that
voxel's normalisation, as MDNorm would. Only voxels that fold onto the path are simulated. The
expected counts of a voxel are P · norm · (S + B): S the coherent one-phonon S(Q, E) at the path
image of the voxel (``StructureFactorModel``; scaled like the fast model), B a constant background
(``background`` × mean S over the measured pixels), P set so that one orientation collects
``counts`` counts on average; counts are Poisson draws. Folding sums counts and P · norm over all
contributions (``fold``'s ratio of sums), per orientation and over all of them.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field, replace

import numpy as np

from fcinvert.data.fold import (
    DEFAULT_PERPENDICULAR,
    FoldResult,
    Matches,
    PathMapper,
    finish_spectrum,
    zone_coverage,
)
from fcinvert.data.progress import StageCallback
from fcinvert.data.readers import Volume, dimension_name
from fcinvert.data.spectrum_file import Spectrum
from fcinvert.errors import FcinvertError
from fcinvert.physics.instrument import Orientation, Spectrometer, transfer
from fcinvert.physics.material import Material
from fcinvert.physics.spectra import render
from fcinvert.physics.structure_factor import StructureFactorModel

BOX_LIMIT = 400_000_000  # voxels of the H, K, L box the instrument can reach
VOLUME_LIMIT = 50_000_000  # voxels × energy bins of a dense volume kept in memory


@dataclass
class ScanSet:
    """The folded spectra of a set of orientations and their combination.

    psi: (n,) degrees; single: one folded spectrum per orientation (mostly NaN); combined: all
    orientations together with its per-zone coverage; volume: the combined 4-D data and
    normalisation (voxels that fold onto the path only) when asked for.
    """

    psi: np.ndarray
    single: list[Spectrum]
    combined: FoldResult
    volume: Volume | None = None
    info: dict = field(default_factory=dict)


#: the most crystal orientations one ``measure`` simulates
MAX_ORIENTATIONS = 10_000


def parse_orientations(text: str) -> np.ndarray:
    """ "start:stop:step" (stop excluded, degrees) or a comma list → ψ values (n,)."""
    try:
        if ":" in text:
            start, stop, step = (float(x) for x in text.split(":"))
            if not math.isfinite(start + stop + step) or step <= 0 or stop <= start:
                raise ValueError
            if (stop - start) / step > MAX_ORIENTATIONS:
                raise FcinvertError(f"orientations '{text}': more than {MAX_ORIENTATIONS:,} angles")
            values = np.arange(start, stop - 1e-9 * step, step)
        else:
            values = np.array([float(x) for x in text.split(",")])
            if not np.all(np.isfinite(values)):
                raise ValueError
    except ValueError:
        raise FcinvertError(
            f"orientations '{text}': expected start:stop:step (e.g. 0:120:1) or a list (0,30,60)"
        ) from None
    if len(values) == 0:
        raise FcinvertError(f"orientations '{text}': no angle")
    return values


@dataclass(frozen=True)
class _Box:
    """The H, K, L voxel indices an instrument can reach, flattened into one int64 each."""

    half: np.ndarray  # (3,) largest |index| along each axis

    @property
    def shape(self) -> tuple[int, int, int]:
        return tuple(int(x) for x in 2 * self.half + 1)  # type: ignore[return-value]

    @property
    def size(self) -> int:
        return int(np.prod(self.shape))

    def flat(self, indices: np.ndarray) -> np.ndarray:
        shifted = indices.astype(np.int64) + self.half
        return (shifted[:, 0] * self.shape[1] + shifted[:, 1]) * self.shape[2] + shifted[:, 2]

    def indices(self, flat: np.ndarray) -> np.ndarray:
        return np.stack(np.unravel_index(flat, self.shape), axis=1) - self.half


def simulate_scans(
    material: Material,
    model: StructureFactorModel,
    theta: np.ndarray,
    spectrometer: Spectrometer,
    orientation: Orientation,
    psi: np.ndarray,
    counts: float,
    background: float = 0.1,
    temperature: float | None = None,
    q_step: float = 0.05,
    perpendicular: float = DEFAULT_PERPENDICULAR,
    seed: int = 0,
    keep_volume: bool = False,
    progress: StageCallback | None = None,
) -> ScanSet:
    """Simulate and fold measurements at rotations ``psi`` (degrees); see the module docstring."""
    started = time.perf_counter()
    if not counts > 0:
        raise FcinvertError(f"counts must be positive, got {counts}")
    if background < 0:
        raise FcinvertError(f"background must be ≥ 0, got {background}")
    if not q_step > 0:
        raise FcinvertError(f"q step must be positive, got {q_step}")
    temperature = material.settings.temperature_K if temperature is None else temperature
    grid = material.energy
    energy = grid.centres
    n_energy = len(energy)
    direction, solid_angle = spectrometer.directions()
    q_lab, valid = transfer(spectrometer.ei, direction, energy)
    energy_index = np.broadcast_to(np.arange(n_energy), valid.shape)[valid]
    sample_weight = np.broadcast_to(solid_angle[:, None], valid.shape)[valid]
    q_lab = q_lab[valid]
    if len(q_lab) == 0:
        raise FcinvertError(f"Ei = {spectrometer.ei} meV reaches no bin of the energy window")

    q_max = float(np.max(np.linalg.norm(q_lab, axis=1)))
    rows = np.linalg.norm(np.linalg.inv(2 * np.pi * orientation.ub), axis=1)
    box = _Box(np.ceil(q_max * rows / q_step).astype(np.int64) + 1)
    if box.size > BOX_LIMIT:
        raise FcinvertError(
            f"a {q_step} r.l.u. grid over the reachable Q needs {box.size:,} voxels (limit "
            f"{BOX_LIMIT:,}); use a coarser --q-step"
        )

    strides = np.array([box.shape[1] * box.shape[2], box.shape[2], 1], dtype=float)
    origin = float(box.half @ strides)

    def voxel_keys(angle: float) -> np.ndarray:
        to_index = orientation.hkl_from_lab(np.eye(3), angle).T / q_step  # hkl/step = M q_lab
        indices = np.rint(q_lab @ to_index.T)
        return (indices @ strides + origin).astype(np.int64)  # exact: integers below 2^53

    # pass 1: every voxel any orientation touches, and which of them fold onto the path
    touched = np.zeros(box.size, bool)
    for i, angle in enumerate(psi):
        touched[voxel_keys(angle)] = True
        if progress:
            progress("coverage", i + 1, len(psi))
    touched = np.flatnonzero(touched)
    mapper = PathMapper(material, perpendicular, voxel=q_step * np.eye(3))
    matches = mapper.match(box.indices(touched) * q_step)
    if len(matches.point) == 0:
        raise FcinvertError("no measured voxel folds onto the path (try more orientations)")
    matched, voxel_of_match = np.unique(matches.point, return_inverse=True)
    voxel_of_match = voxel_of_match.ravel()
    keys = touched[matched]
    lookup = np.full(box.size, -1, dtype=np.int32)
    lookup[keys] = np.arange(len(keys), dtype=np.int32)
    n_touched = len(touched)
    del touched
    # S(Q, E) of each voxel at its nearest path image
    order = np.lexsort((matches.distance, voxel_of_match))
    best = order[np.r_[True, voxel_of_match[order][1:] != voxel_of_match[order][:-1]]]
    pair = np.concatenate([matches.path[best, None], matches.path_zone[best]], axis=1)
    pairs, spectrum_of_voxel = np.unique(pair, axis=0, return_inverse=True)
    spectra = model.pixel_spectra(theta, temperature, pairs[:, 0], pairs[:, 1:], grid)
    frequencies = model.path.frequencies(theta)
    scale = float(np.mean(render(frequencies, grid))) / max(float(np.mean(spectra)), 1e-300)
    spectra *= scale
    spectrum_of_voxel = spectrum_of_voxel.ravel()
    # the matches of each voxel, as CSR rows
    by_voxel = np.argsort(voxel_of_match, kind="stable")
    row_start = np.searchsorted(voxel_of_match[by_voxel], np.arange(len(keys) + 1))
    path_of = matches.path[by_voxel]

    rng = np.random.default_rng(seed)
    n_path = len(material.path.qpoints)
    size = n_path * n_energy
    total_numerator = np.zeros(size)
    total_denominator = np.zeros(size)
    seen = np.zeros((len(keys), n_energy), bool)
    dense = None
    if keep_volume:
        dense = _DenseVolume(box.indices(keys), n_energy)
    single: list[Spectrum] = []
    reachable = energy < spectrometer.ei
    level = background * float(np.mean(spectra[:, reachable]))
    for i, angle in enumerate(psi):
        position = lookup[voxel_keys(angle)]
        hit = position >= 0
        cell = position[hit].astype(np.int64) * n_energy + energy_index[hit]
        cells, norm = np.unique(cell, return_inverse=True)
        norm = np.bincount(norm.ravel(), weights=sample_weight[hit])
        voxel, e = cells // n_energy, cells % n_energy
        signal = spectra[spectrum_of_voxel[voxel], e]
        expected_shape = norm * (signal + level)
        scale_p = counts / max(float(expected_shape.sum()), 1e-300)
        drawn = rng.poisson(scale_p * expected_shape).astype(float)
        seen[voxel, e] = True
        if dense is not None:
            dense.add(voxel, e, drawn, scale_p * norm)
        repeat = row_start[voxel + 1] - row_start[voxel]
        starts = np.repeat(row_start[voxel], repeat)
        offsets = np.arange(len(starts)) - np.repeat(np.cumsum(repeat) - repeat, repeat)
        target = path_of[starts + offsets] * n_energy + np.repeat(e, repeat)
        numerator = np.bincount(target, weights=np.repeat(drawn, repeat), minlength=size)
        denominator = np.bincount(target, weights=np.repeat(scale_p * norm, repeat), minlength=size)
        total_numerator += numerator
        total_denominator += denominator
        single.append(_spectrum(material, numerator, denominator, temperature))
        if progress:
            progress("counting", i + 1, len(psi))
    zones = zone_coverage(material, _rebase(matches, voxel_of_match), voxel_of_match, seen, n_path)
    numerator = total_numerator.reshape(n_path, n_energy)
    denominator = total_denominator.reshape(n_path, n_energy)
    combined = finish_spectrum(
        material,
        numerator,
        denominator,
        _poisson_variance(numerator),
        zones,
        temperature,
        started,
        {"perpendicular_rlu": perpendicular, "q_step_rlu": q_step, "source": "simulated"},
    )
    info = {
        "ei_meV": spectrometer.ei,
        "orientations": len(psi),
        "counts_per_orientation": counts,
        "background": level,
        "background_fraction": background,
        "voxels_touched": n_touched,
        "voxels_folded": len(keys),
        "intensity_scale": scale,
        "seconds": time.perf_counter() - started,
    }
    volume = None
    if dense is not None:
        volume = dense.volume(orientation.ub, q_step, grid)
    return ScanSet(np.asarray(psi, float), single, combined, volume, info)


def _rebase(matches: Matches, voxel_of_match: np.ndarray) -> Matches:
    """Matches whose ``point`` indexes the folded voxels (for the zone coverage)."""
    return replace(matches, point=voxel_of_match)


def signal_to_noise(spectrum: Spectrum) -> float:
    """√(Σ I² / Σ σ²) over the measured pixels: one number for how noisy a spectrum is."""
    finite = np.isfinite(spectrum.intensity) & np.isfinite(spectrum.error)
    if not finite.any():
        return float("nan")
    power = np.sum(spectrum.intensity[finite] ** 2) / np.sum(spectrum.error[finite] ** 2)
    return float(np.sqrt(power))


def _poisson_variance(counts: np.ndarray) -> np.ndarray:
    """Variance of Poisson counts, at least one count's worth where none was seen."""
    return np.maximum(counts, 1.0)


def _spectrum(
    material: Material, numerator: np.ndarray, denominator: np.ndarray, temperature: float
) -> Spectrum:
    shape = (len(material.path.qpoints), len(material.energy.centres))
    numerator, denominator = numerator.reshape(shape), denominator.reshape(shape)
    with np.errstate(invalid="ignore", divide="ignore"):
        intensity = np.where(denominator > 0, numerator / denominator, np.nan)
        error = np.where(
            denominator > 0, np.sqrt(_poisson_variance(numerator)) / denominator, np.nan
        )
    return Spectrum(
        intensity=intensity,
        energy=material.energy.centres.copy(),
        qpoints=material.path.qpoints.copy(),
        material=material.name,
        temperature_K=float(temperature),
        error=error,
    )


class _DenseVolume:
    """Counts and normalisation of the folded voxels on their bounding box (H, K, L, E)."""

    def __init__(self, indices: np.ndarray, n_energy: int) -> None:
        self.indices = indices
        self.low = self.indices.min(axis=0)
        self.shape = (*(self.indices.max(axis=0) - self.low + 1), n_energy)
        if int(np.prod(self.shape)) > VOLUME_LIMIT:
            raise FcinvertError(
                f"the 4-D volume would have {int(np.prod(self.shape)):,} voxels (limit "
                f"{VOLUME_LIMIT:,}); use fewer orientations or a coarser --q-step"
            )
        self.counts = np.zeros(self.shape)
        self.norm = np.zeros(self.shape)

    def add(self, voxel: np.ndarray, e: np.ndarray, counts: np.ndarray, norm: np.ndarray) -> None:
        i, j, k = (self.indices[voxel] - self.low).T
        np.add.at(self.counts, (i, j, k, e), counts)
        np.add.at(self.norm, (i, j, k, e), norm)

    def volume(self, ub: np.ndarray, q_step: float, grid) -> Volume:
        edges = [(self.low[a] + np.arange(self.shape[a] + 1) - 0.5) * q_step for a in range(3)]
        names = [dimension_name(np.eye(3)[a], "HKL"[a]) for a in range(3)] + ["DeltaE"]
        return Volume(
            signal=self.counts,
            edges=[*edges, grid.edges],
            projection=np.eye(3),
            names=names,
            variance=self.counts.copy(),
            normalisation=self.norm,
            ub=np.asarray(ub, float),
        )
