"""The UB matrix (Mantid convention, without 2π: Q_sample = 2π UB hkl) and the lattice it
implies, as SaveMD files store them in ``experiment0/sample/oriented_lattice``.
"""

from __future__ import annotations

from pathlib import Path

import h5py
import numpy as np

from fcinvert.data.readers.hdf5_values import read_numbers
from fcinvert.errors import FcinvertError


def read_ub(path: Path, entry: h5py.Group) -> np.ndarray | None:
    key = "experiment0/sample/oriented_lattice/orientation_matrix"
    if key not in entry:
        return None
    ub = read_numbers(path, entry[key]).astype(float)
    if ub.size != 9 or not np.all(np.isfinite(ub)) or abs(np.linalg.det(ub.reshape(3, 3))) < 1e-12:
        raise FcinvertError(f"{path}: {key} is not an invertible 3×3 UB matrix")
    return ub.reshape(3, 3)


def read_w_matrix(path: Path, entry: h5py.Group) -> np.ndarray | None:
    key = "experiment0/logs/W_MATRIX/value"
    if key not in entry:
        return None
    values = read_numbers(path, entry[key]).astype(float)
    if values.size != 9 or abs(np.linalg.det(values.reshape(3, 3))) < 1e-12:
        raise FcinvertError(f"{path}: {key} is not an invertible 3×3 matrix")
    return values.reshape(3, 3)  # MDNorm: columns are the projection vectors


def write_lattice(experiment: h5py.Group, ub: np.ndarray) -> None:
    sample = experiment.create_group("sample")
    sample.attrs["NX_class"] = np.bytes_("NXsample")
    sample.attrs["version"] = np.int32(1)
    sample.create_dataset("num_oriented_lattice", data=np.array([1], dtype=np.int32))
    lattice = sample.create_group("oriented_lattice")
    lattice.attrs["NX_class"] = np.bytes_("NXcrystal")
    a, b, c, alpha, beta, gamma = lattice_from_ub(ub)
    for key, value in (
        ("a", a),
        ("b", b),
        ("c", c),
        ("alpha", alpha),
        ("beta", beta),
        ("gamma", gamma),
    ):
        lattice.create_dataset(f"unit_cell_{key}", data=np.array([value]))
        lattice.create_dataset(f"unit_cell_{key}_error", data=np.array([0.0]))
    lattice.create_dataset("orientation_matrix", data=ub)


def lattice_from_ub(ub: np.ndarray) -> tuple[float, float, float, float, float, float]:
    """a, b, c (Å), α, β, γ (degrees) of the direct lattice whose UB (without 2π) is given."""
    metric = np.linalg.inv(ub.T @ ub)  # direct metric tensor G = (B^T B)^-1
    lengths = np.sqrt(np.diag(metric))
    cosines = [
        metric[1, 2] / (lengths[1] * lengths[2]),
        metric[0, 2] / (lengths[0] * lengths[2]),
        metric[0, 1] / (lengths[0] * lengths[1]),
    ]
    angles = np.degrees(np.arccos(np.clip(cosines, -1, 1)))
    return (*[float(x) for x in lengths], *[float(x) for x in angles])  # type: ignore[return-value]
