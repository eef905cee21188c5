"""Put a measured I(q, E) on a model's grid, and count what does not fit on it.

q: each input q-point goes to the nearest q-point of the model's path when it lies within
``tolerance`` (1/Å, without 2π; default half the path's point spacing, so any point on the
path qualifies); input q-points assigned to the same model point are averaged. Model points
that coincide (a path passes Γ or X twice) all take the inputs of that place. Points are
compared as given, in reduced coordinates of the standard primitive cell: a spectrum must
already be folded onto the path (symmetry-equivalent q elsewhere is not recognised).
E: linear interpolation between input bin centres; model bins outside the input's energy
range stay unmeasured. Model pixels that no input reaches are NaN, the marker the models'
input rule expects; input pixels off the path or outside the model's energy window are counted.
"""

from __future__ import annotations

import warnings

import numpy as np
from pydantic import BaseModel, ConfigDict, computed_field
from scipy.spatial import cKDTree

from fcinvert.physics.material import EnergyGrid, Material, QPath
from fcinvert.physics.reciprocal import reciprocal_basis


class Coverage(BaseModel):
    """How an input spectrum maps onto a model grid (pixel counts; tolerance in 1/Å); as it is
    in the result JSON (``result_file.InversionFile``)."""

    model_config = ConfigDict(frozen=True)
    input_pixels: int
    off_path_pixels: int
    off_energy_pixels: int
    model_pixels: int
    unmeasured_model_pixels: int
    q_tolerance: float

    @computed_field
    @property
    def outside_pixels(self) -> int:
        """Measured input pixels that fall outside the model's grid."""
        return self.off_path_pixels + self.off_energy_pixels

    def as_dict(self) -> dict:
        return self.model_dump()


def default_tolerance(qpoints: np.ndarray, reciprocal: np.ndarray) -> float:
    """Half the largest spacing (1/Å) between consecutive path points, jumps at breaks excluded."""
    steps = np.linalg.norm(np.diff(qpoints @ reciprocal, axis=0), axis=1)
    steps = steps[steps > 1e-12]
    if len(steps) == 0:
        return 1e-3
    regular = steps[steps <= 3.0 * np.median(steps)]
    return 0.5 * float(regular.max())


def grid_path(material: Material, qpoints: np.ndarray) -> QPath:
    """A labelled QPath for q-points (nq, 3): the material's own path when they are its
    points, else each of the material's labels on the nearest of them (within half the
    spacing) and breaks where consecutive points jump."""
    path = material.path
    if qpoints.shape == path.qpoints.shape and np.allclose(qpoints, path.qpoints, atol=1e-8):
        return path
    reciprocal = reciprocal_basis(material.atoms.cell[:])
    cartesian = qpoints @ reciprocal
    steps = np.linalg.norm(np.diff(cartesian, axis=0), axis=1)
    jump = steps > 3.0 * np.median(steps) if len(steps) else np.zeros(0, dtype=bool)
    breaks = [int(i) + 1 for i in np.flatnonzero(jump)]
    distances = np.concatenate([[0.0], np.cumsum(np.where(jump, 0.0, steps))])
    tolerance = default_tolerance(qpoints, reciprocal)
    labels: dict[int, str] = {}
    for index, label in path.labels:
        gaps = np.linalg.norm(cartesian - path.qpoints[index] @ reciprocal, axis=1)
        nearest = int(gaps.argmin())
        if gaps[nearest] <= tolerance and nearest not in labels:
            labels[nearest] = label
    return QPath(qpoints, distances, sorted(labels.items()), breaks)


def resample(
    intensity: np.ndarray,
    qpoints: np.ndarray,
    energy: np.ndarray,
    model_qpoints: np.ndarray,
    model_energy: EnergyGrid,
    reciprocal: np.ndarray,
    tolerance: float | None = None,
) -> tuple[np.ndarray, Coverage]:
    """(I on the model grid (nq_m, nE_m) with NaN where unmeasured, coverage).

    intensity: (nq, nE) with NaN unmeasured; qpoints: (nq, 3) reduced; energy: (nE,) meV bin
    centres, increasing; model_qpoints: (nq_m, 3) reduced; reciprocal: (3, 3) rows b_i in 1/Å
    (without 2π) of the standard primitive cell.
    """
    intensity = np.asarray(intensity, dtype=float)
    tolerance = default_tolerance(model_qpoints, reciprocal) if tolerance is None else tolerance
    cartesian = np.asarray(qpoints, dtype=float) @ reciprocal
    model_cartesian = np.asarray(model_qpoints, dtype=float) @ reciprocal
    places, place_of = coinciding_points(model_cartesian)
    gap, nearest = cKDTree(model_cartesian[places]).query(cartesian)
    on_path = gap <= tolerance

    centres = model_energy.centres
    rows = _interpolate_rows(intensity[on_path], np.asarray(energy, dtype=float), centres)
    sums = np.zeros((len(places), len(centres)))
    counts = np.zeros_like(sums)
    if len(rows):  # add up the rows landing on each model q-point
        order = np.argsort(nearest[on_path], kind="stable")
        targets, starts = np.unique(nearest[on_path][order], return_index=True)
        finite = np.isfinite(rows[order])
        sums[targets] = np.add.reduceat(np.where(finite, rows[order], 0.0), starts, axis=0)
        counts[targets] = np.add.reduceat(finite.astype(float), starts, axis=0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        image = np.where(counts > 0, sums / counts, np.nan)[place_of]

    measured = np.isfinite(intensity)
    low, high = model_energy.edges[0], model_energy.edges[-1]
    in_window = (energy >= low) & (energy <= high)
    coverage = Coverage(
        input_pixels=int(measured.sum()),
        off_path_pixels=int(measured[~on_path].sum()),
        off_energy_pixels=int((measured[on_path] & ~in_window[None, :]).sum()),
        model_pixels=int(image.size),
        unmeasured_model_pixels=int(np.isnan(image).sum()),
        q_tolerance=float(tolerance),
    )
    return image, coverage


def coinciding_points(cartesian: np.ndarray, atol: float = 1e-9) -> tuple[np.ndarray, np.ndarray]:
    """Distinct places among points (n, 3): (index of each place's first point (m,),
    place of every point (n,)), points closer than ``atol`` sharing a place."""
    pairs = cKDTree(cartesian).query_pairs(atol, output_type="ndarray")
    first = np.arange(len(cartesian))
    for a, b in sorted(map(tuple, pairs.tolist())):  # a < b: b joins a's place
        first[b] = first[a]
    places, place_of = np.unique(first, return_inverse=True)
    return places, place_of.ravel()


def _interpolate_rows(rows: np.ndarray, energy: np.ndarray, centres: np.ndarray) -> np.ndarray:
    """Linear interpolation of rows (n, nE) from ``energy`` onto ``centres``; NaN propagates and
    centres outside [energy[0], energy[-1]] are NaN. Returns (n, len(centres))."""
    if len(energy) == 1:
        same = np.isclose(centres, energy[0])
        return np.where(same[None, :], rows[:, :1], np.nan)
    upper = np.clip(np.searchsorted(energy, centres), 1, len(energy) - 1)
    lower = upper - 1
    weight = (centres - energy[lower]) / (energy[upper] - energy[lower])
    with np.errstate(invalid="ignore"):
        values = rows[:, lower] * (1.0 - weight) + rows[:, upper] * weight
    values = np.where(
        weight <= 0.0, rows[:, lower], np.where(weight >= 1.0, rows[:, upper], values)
    )
    inside = (centres >= energy[0]) & (centres <= energy[-1])
    return np.where(inside[None, :], values, np.nan)
