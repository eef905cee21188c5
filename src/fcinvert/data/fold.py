"""Fold a measured S(Q, E) onto the material's high-symmetry path.

Every Q (conventional r.l.u., as Mantid's H, K, L) is converted to the standard primitive cell,
reduced to the first Brillouin zone, and compared with every image of the path under the Laue
group (the point group plus inversion, under which a one-phonon S(Q, E) is invariant). A Q within
``perpendicular`` (r.l.u.) of a path line and within half a path step along it contributes to
that path point. Signal and normalisation are summed over all contributions and divided: the
ratio of sums, which is what a data/normalisation pair needs; pixels no contribution reaches
are NaN. Each contribution also records its zone, so coverage is reported per zone, and the
reciprocal lattice vector G' with Q ≈ R (q_path + G'), where the physical model evaluates S.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field

import numpy as np
from scipy.sparse import csr_matrix
from scipy.spatial import cKDTree

from fcinvert.data.readers import Points, Volume, lattice_from_ub
from fcinvert.data.spectrum_file import Spectrum
from fcinvert.errors import FcinvertError
from fcinvert.physics.material import Material
from fcinvert.physics.reciprocal import (
    conventional_lattice,
    conventional_transform,
    laue_rotations,
    reciprocal_basis,
    reduced_to_hkl,
)

DEFAULT_PERPENDICULAR = 0.05  # r.l.u. of the conventional cell: half-width across the path
CHUNK = 100_000


@dataclass
class Matches:
    """Which path point each Q contributes to.

    point: (K,) index of the input Q; path: (K,) path index; zone: (K, 3) int, reduced G of the
    zone the Q lies in; path_zone: (K, 3) int, reduced G' with Q ≈ R(q_path + G') for some Laue
    rotation R (S(Q) = S(q_path + G')); distance: (K,) 1/Å (no 2π) from Q to that path image.
    """

    point: np.ndarray
    path: np.ndarray
    zone: np.ndarray
    path_zone: np.ndarray
    distance: np.ndarray


class PathMapper:
    """Maps Q-points (conventional hkl) onto the material's path through the Laue group.

    perpendicular: half-width (r.l.u. of the conventional cell) across a path line. Along a line,
    a path point takes a Q within half its step, or, for voxels, any voxel whose extent along the
    line reaches the point: ``voxel`` (3, 3) rows are the voxel's edge vectors in conventional
    hkl (None for points).
    """

    def __init__(
        self,
        material: Material,
        perpendicular: float = DEFAULT_PERPENDICULAR,
        voxel: np.ndarray | None = None,
    ) -> None:
        if not perpendicular > 0:
            raise FcinvertError(f"perpendicular width must be positive, got {perpendicular}")
        self.material = material
        self.transform = conventional_transform(material)
        self.reciprocal = reciprocal_basis(material.atoms.cell[:])  # rows b_i, 1/Å (no 2π)
        conventional = reciprocal_basis(conventional_lattice(material))
        self.rlu = float(np.mean(np.linalg.norm(conventional, axis=1)))  # 1/Å per r.l.u.
        self.width = perpendicular * self.rlu
        self.rotations = laue_rotations(material)
        edges = None
        if voxel is not None:  # edge vectors in Cartesian 1/Å
            edges = np.asarray(voxel, float) @ self.transform @ self.reciprocal
        self._build(edges)

    def _build(self, edges: np.ndarray | None) -> None:
        path = self.material.path
        cart = path.qpoints @ self.reciprocal
        n = len(cart)
        starts = [0, *path.breaks]
        first = np.zeros(n, bool)
        first[starts] = True
        last = np.zeros(n, bool)
        last[[s - 1 for s in starts[1:]] + [n - 1]] = True
        index, direction, half = [], [], []
        for i in range(n):
            for j, ok in ((i + 1, not last[i]), (i - 1, not first[i])):
                if not ok:
                    continue
                step = cart[j] - cart[i]
                length = np.linalg.norm(step)
                if length < 1e-12:
                    continue
                index.append(i)
                direction.append(step / length)
                half.append(0.5 * length)
        index, direction, half = np.array(index), np.array(direction), np.array(half)
        # images under every Laue rotation
        positions = np.einsum("rij,pj->rpi", self.rotations, cart[index]).reshape(-1, 3)
        directions = np.einsum("rij,pj->rpi", self.rotations, direction).reshape(-1, 3)
        n_rot = len(self.rotations)
        sample_path = np.tile(index, n_rot)
        sample_half = np.tile(half, n_rot)
        if edges is not None:  # the voxel's extent along each rotated direction
            extent = 0.5 * np.abs(directions @ edges.T).sum(axis=1)
            sample_half = np.maximum(sample_half, extent)
        sample_rotation = np.repeat(np.arange(n_rot), len(index))
        # translated images that can lie within reach of a first-zone Q
        reach = np.sqrt(self.width**2 + sample_half.max() ** 2)
        radius = self._zone_radius() + reach
        shifts = _lattice_points(self.reciprocal, 2)
        images = positions[None] + (shifts @ self.reciprocal)[:, None]
        keep = np.linalg.norm(images, axis=-1) <= radius
        shift_index, sample_index = np.nonzero(keep)
        positions = images[shift_index, sample_index]
        signs = np.sign(directions[sample_index] @ np.array([1.0, 1e-3, 1e-6]))[:, None]
        key = np.concatenate(
            [
                sample_path[sample_index, None],
                np.round(positions, 7),
                np.round(directions[sample_index] * signs, 7),
            ],
            axis=1,
        )
        _, unique = np.unique(key, axis=0, return_index=True)
        sample_index, shift_index = sample_index[unique], shift_index[unique]
        self.sample_position = positions[unique]
        self.sample_direction = directions[sample_index]
        self.sample_path = sample_path[sample_index]
        self.sample_half = sample_half[sample_index]
        self.sample_rotation = sample_rotation[sample_index]
        self.sample_shift = shifts[shift_index]
        self.reach = reach
        self.tree = cKDTree(self.sample_position)
        self.shifts = shifts
        self.shift_tree = cKDTree(shifts @ self.reciprocal)

    def _zone_radius(self) -> float:
        """Largest |q| (1/Å, no 2π) in the first Brillouin zone (Wigner–Seitz cell)."""
        from scipy.spatial import Voronoi

        points = _lattice_points(self.reciprocal, 2) @ self.reciprocal
        voronoi = Voronoi(points)
        centre = int(np.argmin(np.linalg.norm(points, axis=1)))
        region = voronoi.regions[voronoi.point_region[centre]]
        return float(np.max(np.linalg.norm(voronoi.vertices[region], axis=1)))

    def match(self, hkl: np.ndarray) -> Matches:
        """Every (Q, path point) contribution for Q at conventional ``hkl`` (M, 3)."""
        hkl = np.asarray(hkl, dtype=float).reshape(-1, 3)
        parts = [self._match_chunk(hkl[s : s + CHUNK], s) for s in range(0, len(hkl), CHUNK)]
        if not parts:
            empty = np.zeros(0, np.int64)
            return Matches(
                empty, empty, np.zeros((0, 3), np.int64), np.zeros((0, 3), np.int64), np.zeros(0)
            )
        return Matches(*[np.concatenate([p[i] for p in parts]) for i in range(5)])

    def _match_chunk(self, hkl: np.ndarray, offset: int) -> tuple[np.ndarray, ...]:
        reduced = hkl @ self.transform
        rounded = np.round(reduced)
        fraction = (reduced - rounded) @ self.reciprocal
        _, nearest = self.shift_tree.query(fraction)
        zone = (rounded + self.shifts[nearest]).astype(np.int64)
        first = fraction - self.shifts[nearest] @ self.reciprocal
        k = 32
        rows = np.arange(len(first))
        found: list[tuple[np.ndarray, np.ndarray, np.ndarray]] = []
        while len(rows):
            distance, neighbour = self.tree.query(
                first[rows], k=min(k, len(self.sample_position)), distance_upper_bound=self.reach
            )
            distance, neighbour = np.atleast_2d(distance), np.atleast_2d(neighbour)
            saturated = np.isfinite(distance[:, -1]) & (k < len(self.sample_position))
            done = ~saturated
            r, c = np.nonzero(np.isfinite(distance) & done[:, None])
            found.append((rows[r], neighbour[r, c], distance[r, c]))
            rows, k = rows[saturated], 2 * k
        row = np.concatenate([f[0] for f in found])
        sample = np.concatenate([f[1] for f in found])
        delta = first[row] - self.sample_position[sample]
        along = np.einsum("ij,ij->i", delta, self.sample_direction[sample])
        across = np.sqrt(np.maximum(np.einsum("ij,ij->i", delta, delta) - along**2, 0.0))
        ok = (np.abs(along) <= self.sample_half[sample] + 1e-12) & (across <= self.width + 1e-12)
        row, sample = row[ok], sample[ok]
        distance = np.linalg.norm(delta[ok], axis=1)
        order = np.lexsort((distance, self.sample_path[sample], row))
        row, sample, distance = row[order], sample[order], distance[order]
        pair = row * len(self.material.path.qpoints) + self.sample_path[sample]
        _, keep = np.unique(pair, return_index=True)
        row, sample, distance = row[keep], sample[keep], distance[keep]
        actual = zone[row] + self.sample_shift[sample]
        # G' = R^-1 (G + T), in reduced coordinates (R^-1 = R^T for a Cartesian rotation)
        cart = actual @ self.reciprocal
        rotated = np.einsum("nji,nj->ni", self.rotations[self.sample_rotation[sample]], cart)
        path_zone = np.round(rotated @ np.linalg.inv(self.reciprocal)).astype(np.int64)
        return row + offset, self.sample_path[sample], actual, path_zone, distance


def _lattice_points(reciprocal: np.ndarray, reach: int) -> np.ndarray:
    grid = np.arange(-reach, reach + 1)
    return np.stack(np.meshgrid(grid, grid, grid, indexing="ij"), -1).reshape(-1, 3).astype(float)


@dataclass
class ZoneCoverage:
    """What one Brillouin zone contributed. hkl: the zone centre (conventional, integers)."""

    hkl: tuple[int, int, int]
    voxels: int  # Q-points (voxels or detector points) that fold onto the path
    pixels: int  # (Q, E) contributions with data
    path_pixels: int  # (path point, E) pixels this zone reaches


@dataclass
class FoldResult:
    """A folded spectrum and how it came about. numerator, denominator: (n_path, nE) the sums
    whose ratio is the intensity (signal and normalisation), spread: (n_path, nE) the summed
    variance or None; so that foldings of several files add up (``fcinvert.data.accumulate``)."""

    spectrum: Spectrum
    zones: list[ZoneCoverage]
    measured_fraction: float  # fraction of (path, E) pixels with data
    seconds: float
    info: dict = field(default_factory=dict)
    numerator: np.ndarray | None = None
    denominator: np.ndarray | None = None
    spread: np.ndarray | None = None

    def coverage_json(self) -> str:
        """Zones and totals as JSON (stored in the spectrum file's ``coverage`` attribute)."""
        return json.dumps(
            {
                "measured_fraction": self.measured_fraction,
                "zones": [
                    {
                        "hkl": z.hkl,
                        "voxels": z.voxels,
                        "pixels": z.pixels,
                        "path_pixels": z.path_pixels,
                    }
                    for z in self.zones
                ],
                **self.info,
            }
        )


def energy_overlap(edges_in: np.ndarray, edges_out: np.ndarray) -> np.ndarray:
    """(nE_in, nE_out) fraction of each input energy bin that falls in each output bin."""
    low = np.maximum(edges_in[:-1, None], edges_out[None, :-1])
    high = np.minimum(edges_in[1:, None], edges_out[None, 1:])
    return np.clip(high - low, 0.0, None) / np.diff(edges_in)[:, None]


def fold_volume(
    volume: Volume,
    material: Material,
    perpendicular: float = DEFAULT_PERPENDICULAR,
    temperature: float | None = None,
) -> FoldResult:
    """Fold a 4-D Volume onto ``material``'s path and energy grid."""
    started = time.perf_counter()
    check_lattice(volume, material)
    steps = [np.max(np.diff(volume.edges[i])) for i in range(3)]
    mapper = PathMapper(material, perpendicular, voxel=(volume.projection * steps).T)
    n_energy_in = volume.shape[3]
    measured = volume.measured.reshape(-1, n_energy_in)
    rows = np.flatnonzero(measured.any(axis=1))  # Q voxels with any data
    n_measured = len(rows)
    matches = mapper.match(volume.q_centres()[rows])
    used, inverse = np.unique(matches.point, return_inverse=True)
    matches.point = inverse.ravel()
    rows = rows[used]
    measured = measured[rows]
    signal = np.where(measured, volume.signal.reshape(-1, n_energy_in)[rows], 0.0)
    if volume.normalisation is None:
        weight = measured.astype(float)
    else:
        weight = np.where(measured, volume.normalisation.reshape(-1, n_energy_in)[rows], 0.0)
    variance = None
    if volume.variance is not None:
        variance = np.where(measured, volume.variance.reshape(-1, n_energy_in)[rows], 0.0)
    overlap = energy_overlap(volume.edges[3], material.energy.edges)
    return _accumulate(
        material,
        matches,
        signal,
        weight,
        variance,
        overlap,
        temperature,
        started,
        {
            "perpendicular_rlu": perpendicular,
            "source": "volume",
            "measured_q_voxels": int(n_measured),
            "folded_q_voxels": len(rows),
            "energy_outside_window": _outside_fraction(volume.edges[3], material),
        },
    )


def check_lattice(volume: Volume, material: Material, tolerance: float = 0.03) -> None:
    """Refuse a file whose UB lattice differs from the material's conventional cell."""
    if volume.ub is None:
        return
    theirs = np.array(lattice_from_ub(volume.ub))
    ours = conventional_lattice(material)
    lengths = np.linalg.norm(ours, axis=1)
    cosines = [
        ours[1] @ ours[2] / (lengths[1] * lengths[2]),
        ours[0] @ ours[2] / (lengths[0] * lengths[2]),
        ours[0] @ ours[1] / (lengths[0] * lengths[1]),
    ]
    angles = np.degrees(np.arccos(np.clip(cosines, -1, 1)))
    length_error = np.max(np.abs(np.sort(theirs[:3]) / np.sort(lengths) - 1))
    angle_error = np.max(np.abs(np.sort(theirs[3:]) - np.sort(angles)))
    if length_error > tolerance or angle_error > 1.0:
        shown = ", ".join(f"{x:.3f}" for x in theirs)
        mine = ", ".join(f"{x:.3f}" for x in (*lengths, *angles))
        raise FcinvertError(
            f"the file's lattice (a, b, c, α, β, γ = {shown}) is not {material.name}'s "
            f"conventional cell ({mine}): wrong material?"
        )


def _outside_fraction(edges: np.ndarray, material: Material) -> float:
    """Fraction of the input energy range outside the material's window."""
    window = material.energy.edges
    inside = np.clip(np.minimum(edges[1:], window[-1]) - np.maximum(edges[:-1], window[0]), 0, None)
    return float(1.0 - inside.sum() / (edges[-1] - edges[0]))


def fold_points(
    points: Points,
    material: Material,
    perpendicular: float = DEFAULT_PERPENDICULAR,
    temperature: float | None = None,
) -> FoldResult:
    """Fold scattered (hkl, E) points (NXSPE detectors, text rows) onto the path."""
    started = time.perf_counter()
    edges = material.energy.edges
    bin_index = np.searchsorted(edges, points.energy, side="right") - 1
    inside = (bin_index >= 0) & (bin_index < len(edges) - 1) & points.measured
    if not np.any(inside):
        raise FcinvertError("no measured point lies inside the material's energy window")
    chosen = np.nonzero(inside)[0]
    mapper = PathMapper(material, perpendicular)
    matches = mapper.match(points.hkl[chosen])
    n_path, n_energy = len(material.path.qpoints), len(edges) - 1
    source = chosen[matches.point]
    flat = matches.path * n_energy + bin_index[source]
    size = n_path * n_energy

    def total(values: np.ndarray) -> np.ndarray:
        return np.bincount(flat, weights=values[source], minlength=size).reshape(n_path, n_energy)

    numerator, denominator = total(points.signal), total(points.weight)
    spread = None if points.variance is None else total(points.variance)
    zones, zone_index = np.unique(matches.zone, axis=0, return_inverse=True)
    zone_index = zone_index.ravel()
    pixels = np.bincount(zone_index, minlength=len(zones))
    reached = np.unique(zone_index * size + flat) // size
    voxels = np.unique(zone_index * len(points.hkl) + source) // len(points.hkl)
    coverage = _coverage_list(
        material,
        zones,
        np.bincount(voxels, minlength=len(zones)),
        pixels,
        np.bincount(reached, minlength=len(zones)),
    )
    return finish_spectrum(
        material,
        numerator,
        denominator,
        spread,
        coverage,
        temperature,
        started,
        {
            "perpendicular_rlu": perpendicular,
            "source": "points",
            "measured_points": int(points.measured.sum()),
            "points_in_window": int(inside.sum()),
            "folded_points": len(np.unique(matches.point)),
        },
    )


def _accumulate(
    material: Material,
    matches: Matches,
    signal: np.ndarray,
    weight: np.ndarray,
    variance: np.ndarray | None,
    overlap: np.ndarray,
    temperature: float | None,
    started: float,
    info: dict,
) -> FoldResult:
    """Σ signal / Σ weight per (path point, output energy bin) over all matches."""
    n_path = len(material.path.qpoints)
    n_energy = overlap.shape[1]
    voxels, inverse = np.unique(matches.point, return_inverse=True)
    numerator = np.zeros((n_path, n_energy))
    denominator = np.zeros((n_path, n_energy))
    spread = np.zeros((n_path, n_energy))
    has_data = np.zeros((len(voxels), n_energy), bool)
    for start in range(0, len(voxels), CHUNK):
        chunk = slice(start, start + CHUNK)
        rows = voxels[chunk]
        in_chunk = (inverse >= start) & (inverse < start + len(rows))
        operator = csr_matrix(
            (np.ones(int(in_chunk.sum())), (matches.path[in_chunk], inverse[in_chunk] - start)),
            shape=(n_path, len(rows)),
        )
        weight_out = weight[rows] @ overlap
        numerator += operator @ (signal[rows] @ overlap)
        denominator += operator @ weight_out
        if variance is not None:
            spread += operator @ (variance[rows] @ overlap**2)
        has_data[chunk] = weight_out > 0
    zones = zone_coverage(material, matches, inverse, has_data, n_path)
    return finish_spectrum(
        material,
        numerator,
        denominator,
        spread if variance is not None else None,
        zones,
        temperature,
        started,
        info,
    )


def finish_spectrum(
    material: Material,
    numerator: np.ndarray,
    denominator: np.ndarray,
    spread: np.ndarray | None,
    zones: list[ZoneCoverage],
    temperature: float | None,
    started: float,
    info: dict,
) -> FoldResult:
    """Divide sums into a Spectrum (NaN where nothing was measured)."""
    with np.errstate(invalid="ignore", divide="ignore"):
        intensity = np.where(denominator > 0, numerator / denominator, np.nan)
        error = None
        if spread is not None:
            error = np.where(denominator > 0, np.sqrt(spread) / denominator, np.nan)
    if not np.any(np.isfinite(intensity)):
        raise FcinvertError(
            "no measured pixel folds onto the path (check the Q axes, energy range and width)"
        )
    temperature = material.settings.temperature_K if temperature is None else temperature
    spectrum = Spectrum(
        intensity=intensity,
        energy=material.energy.centres.copy(),
        qpoints=material.path.qpoints.copy(),
        material=material.name,
        temperature_K=float(temperature),
        error=error,
    )
    fraction = float(np.mean(np.isfinite(intensity)))
    seconds = time.perf_counter() - started
    return FoldResult(spectrum, zones, fraction, seconds, info, numerator, denominator, spread)


def zone_coverage(
    material: Material, matches: Matches, inverse: np.ndarray, has_data: np.ndarray, n_path: int
) -> list[ZoneCoverage]:
    if len(matches.point) == 0:
        return []
    zones, zone_index = np.unique(matches.zone, axis=0, return_inverse=True)
    zone_index = zone_index.ravel()
    data = has_data[inverse]  # (K, nE)
    pixels = np.bincount(zone_index, weights=data.sum(axis=1), minlength=len(zones))
    group = zone_index * n_path + matches.path
    order = np.argsort(group, kind="stable")
    group_sorted = group[order]
    starts = np.nonzero(np.r_[True, group_sorted[1:] != group_sorted[:-1]])[0]
    reached = np.logical_or.reduceat(data[order], starts, axis=0).sum(axis=1)
    path_pixels = np.bincount(zone_index[order][starts], weights=reached, minlength=len(zones))
    first_voxel = np.unique(np.stack([zone_index, matches.point]), axis=1)[0]
    voxels = np.bincount(first_voxel, minlength=len(zones))
    return _coverage_list(material, zones, voxels, pixels, path_pixels)


def _coverage_list(
    material: Material,
    zones: np.ndarray,
    voxels: np.ndarray,
    pixels: np.ndarray,
    path_pixels: np.ndarray,
) -> list[ZoneCoverage]:
    hkl = np.round(reduced_to_hkl(material, zones)).astype(int)
    result = [
        ZoneCoverage(
            tuple(int(x) for x in hkl[i]), int(voxels[i]), int(pixels[i]), int(path_pixels[i])
        )
        for i in range(len(zones))
    ]
    return sorted(result, key=lambda z: -z.path_pixels)
