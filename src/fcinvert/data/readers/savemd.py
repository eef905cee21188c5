"""Mantid SaveMD (version 2) MDHistoWorkspaces: read (alone or as an MDNorm data/normalisation
pair) and write.

The layout (read from Mantid's SaveMD2/LoadMD source; ../shared/notes/mantid-savemd.md):
``/MDHistoWorkspace/data`` holds one bin-edge dataset per dimension (named by the dimension id)
and ``signal``, ``errors_squared``, ``num_events`` (float64) and ``mask`` (int8) in *reversed*
dimension order, with ``@axes = "ID3:ID2:ID1:ID0"``. A UB matrix sits in
``experiment0/sample/oriented_lattice`` when the sample was saved. ``write_savemd`` writes the
same layout (used by the tests and by ``fcinvert measure``).
"""

from __future__ import annotations

import math
import re
from pathlib import Path

import h5py
import numpy as np

from fcinvert.data.readers.hdf5_values import int_value, read_numbers, text_value
from fcinvert.data.readers.measured import Volume, check_measured
from fcinvert.data.readers.ub import read_ub, read_w_matrix, write_lattice
from fcinvert.errors import FcinvertError
from fcinvert.iohelpers import atomic_path, open_hdf5

ENERGY_UNITS = ("mev", "deltae")
HKL_UNITS = ("r.l.u.", "rlu", "r.l.u", "")
INVERSE_ANGSTROM = ("angstrom^-1", "a^-1", "å^-1", "1/angstrom", "1/a", "momentumtransfer")
ENTRY = "MDHistoWorkspace"
LETTERS = "HKL"


def read_savemd(path: str | Path) -> Volume:
    """Read one MDHistoWorkspace written by Mantid's SaveMD (version 2) as a Volume."""
    path = Path(path)
    handle = open_hdf5(path, "file")
    with handle:
        if ENTRY not in handle:
            if "MDEventWorkspace" in handle:
                raise FcinvertError(
                    f"{path}: holds an MDEventWorkspace (events); bin it first (MDNorm or BinMD) "
                    "and save the MDHistoWorkspace"
                )
            raise FcinvertError(f"{path}: not a Mantid SaveMD file (no /{ENTRY} group)")
        entry = handle[ENTRY]
        version = int_value(entry.attrs.get("SaveMDVersion", 0))
        if version != 2:
            raise FcinvertError(
                f"{path}: SaveMD version {version} is not supported (save with SaveMD version 2)"
            )
        if "data" not in entry or "signal" not in entry["data"]:
            raise FcinvertError(f"{path}: missing dataset {ENTRY}/data/signal")
        data = entry["data"]
        signal_set = data["signal"]
        ids = _axis_ids(path, signal_set)
        if len(ids) != 4 or signal_set.ndim != 4:
            raise FcinvertError(
                f"{path}: the workspace has {max(len(ids), signal_set.ndim)} dimensions; fcinvert "
                "folds 4-D (3 Q axes + energy) volumes"
            )
        ids = ids[::-1]  # @axes lists the dimensions slowest first; D0 is the last one
        edges, units, names, frames = [], [], [], []
        for index, dim in enumerate(ids):
            if dim not in data:
                raise FcinvertError(f"{path}: missing bin edges {ENTRY}/data/{dim}")
            values = read_numbers(path, data[dim]).astype(float)
            expected = signal_set.shape[3 - index] + 1
            if values.shape != (expected,):
                raise FcinvertError(
                    f"{path}: bin edges of '{dim}' have shape {values.shape}, expected "
                    f"({expected},)"
                )
            if not np.all(np.isfinite(values)) or np.any(np.diff(values) <= 0):
                raise FcinvertError(f"{path}: bin edges of '{dim}' are not finite and increasing")
            edges.append(values)
            units.append(text_value(data[dim].attrs.get("units", "")))
            names.append(text_value(data[dim].attrs.get("long_name", dim)) or dim)
            frames.append(text_value(data[dim].attrs.get("frame", "")))
        arrays = {}
        for key in ("signal", "errors_squared", "mask"):
            if key in data:
                stored = read_numbers(path, data[key])
                if stored.shape != signal_set.shape:
                    raise FcinvertError(
                        f"{path}: {key} has shape {stored.shape}, signal {signal_set.shape}"
                    )
                arrays[key] = np.ascontiguousarray(stored.transpose(3, 2, 1, 0))
        ub = read_ub(path, entry)
        w_matrix = read_w_matrix(path, entry)
    energy_axis = _energy_axis(path, ids, names, units)
    q_axes = [i for i in range(4) if i != energy_axis]
    order = [*q_axes, energy_axis]
    projection = _projection(
        path,
        [ids[i] for i in q_axes],
        [names[i] for i in q_axes],
        [units[i] for i in q_axes],
        [frames[i] for i in q_axes],
        ub,
        w_matrix,
    )
    signal = np.moveaxis(arrays["signal"].astype(float), order, range(4))
    variance = arrays.get("errors_squared")
    mask = arrays.get("mask")
    volume = Volume(
        signal=np.ascontiguousarray(signal),
        edges=[edges[i] for i in order],
        projection=projection,
        names=[names[i] for i in order],
        variance=None if variance is None else np.moveaxis(variance.astype(float), order, range(4)),
        mask=None if mask is None else np.moveaxis(mask != 0, order, range(4)),
        ub=ub,
    )
    return volume


def read_mdnorm_pair(data_path: str | Path, norm_path: str | Path) -> Volume:
    """MDNorm's data and normalisation workspaces (two SaveMD files) as one Volume."""
    data = read_savemd(data_path)
    norm = read_savemd(norm_path)
    if data.shape != norm.shape or not all(
        np.allclose(a, b, rtol=1e-9, atol=1e-12)
        for a, b in zip(data.edges, norm.edges, strict=True)
    ):
        raise FcinvertError(
            f"{norm_path}: its grid {norm.shape} / bin edges differ from those of {data_path}"
        )
    if not np.allclose(data.projection, norm.projection):
        raise FcinvertError(f"{norm_path}: its Q axes ({norm.names[:3]}) differ from {data_path}")
    data.normalisation = norm.signal
    if norm.mask is not None:
        data.mask = norm.mask if data.mask is None else data.mask | norm.mask
    check_measured(data_path, data.measured)
    return data


def read_volume(path: str | Path, norm: str | Path | None = None) -> Volume:
    """A SaveMD file, or an MDNorm data/normalisation pair when ``norm`` is given."""
    volume = read_mdnorm_pair(path, norm) if norm is not None else read_savemd(path)
    check_measured(path, volume.measured)
    return volume


def write_savemd(path: str | Path, volume: Volume, normalisation: bool = False) -> None:
    """Write ``volume`` in SaveMD version 2 layout (atomically).

    With ``normalisation=True`` the file holds ``volume.normalisation`` as its signal, as MDNorm's
    OutputNormalizationWorkspace (errors_squared and num_events 0). Otherwise it holds the signal
    with errors_squared = variance (0 when None) and num_events = 1 where measured.
    """
    if normalisation and volume.normalisation is None:
        raise FcinvertError(f"{path}: the volume has no normalisation to write")
    signal = volume.normalisation if normalisation else volume.signal
    variance = None if normalisation else volume.variance
    mask = (
        np.zeros(volume.shape, dtype=np.int8)
        if volume.mask is None
        else volume.mask.astype(np.int8)
    )
    events = np.zeros(volume.shape) if normalisation else volume.measured.astype(float)
    ids = list(volume.names)
    with atomic_path(path) as temporary, h5py.File(temporary, "w") as handle:
        handle.attrs["NeXus_version"] = np.bytes_("4.4.3")
        handle.attrs["file_name"] = np.bytes_(str(path))
        entry = handle.create_group(ENTRY)
        entry.attrs["NX_class"] = np.bytes_("NXentry")
        entry.attrs["SaveMDVersion"] = np.int32(2)
        entry.attrs["QConvention"] = np.bytes_("Inelastic")
        entry.create_dataset("coordinate_system", data=np.array([3], dtype=np.uint32))
        entry.create_dataset("visual_normalization", data=np.array([0], dtype=np.uint32))
        experiment = entry.create_group("experiment0")
        experiment.attrs["version"] = np.int32(1)
        logs = experiment.create_group("logs")
        logs.attrs["NX_class"] = np.bytes_("NXgroup")
        logs.attrs["version"] = np.int32(1)
        w_matrix = logs.create_group("W_MATRIX")
        w_matrix.attrs["NX_class"] = np.bytes_("NXlog")
        w_matrix.create_dataset("value", data=np.asarray(volume.projection, float).ravel())
        if volume.ub is not None:
            write_lattice(experiment, np.asarray(volume.ub, float))
        data = entry.create_group("data")
        data.attrs["NX_class"] = np.bytes_("NXdata")
        for index, (name, edges) in enumerate(zip(ids, volume.edges, strict=True)):
            dataset = data.create_dataset(name, data=np.asarray(edges, float))
            energy = index == 3
            dataset.attrs["units"] = np.bytes_("DeltaE" if energy else "r.l.u.")
            dataset.attrs["long_name"] = np.bytes_(name)
            dataset.attrs["frame"] = np.bytes_("General Frame" if energy else "HKL")
        reverse = (3, 2, 1, 0)
        shape = tuple(volume.shape[i] for i in reverse)
        chunks = (1, *shape[1:])
        stored = {
            "signal": np.asarray(signal, float),
            "errors_squared": np.zeros(volume.shape) if variance is None else variance,
            "num_events": events,
            "mask": mask,
        }
        for key, values in stored.items():
            dataset = data.create_dataset(
                key,
                data=np.ascontiguousarray(np.transpose(values, reverse)),
                chunks=chunks,
                compression="gzip",
                compression_opts=6,
            )
            if key == "signal":
                dataset.attrs["signal"] = np.int32(1)
                dataset.attrs["axes"] = np.bytes_(":".join(ids[::-1]))


def dimension_name(vector: np.ndarray, letter: str) -> str:
    """Mantid MDNorm's name of a Q axis, e.g. (1, 1, 0) with 'H' → "[H,H,0]"."""
    parts = []
    for value in vector:
        if abs(value) < 1e-12:
            parts.append("0")
        elif abs(value - 1) < 1e-12:
            parts.append(letter)
        elif abs(value + 1) < 1e-12:
            parts.append(f"-{letter}")
        else:
            parts.append(f"{value:.3g}{letter}")
    return "[" + ",".join(parts) + "]"


def _axis_ids(path: Path, signal: h5py.Dataset) -> list[str]:
    axes = text_value(signal.attrs.get("axes", ""))
    if not axes:
        raise FcinvertError(f"{path}: the signal has no @axes attribute (dimension ids)")
    return axes.split(":")


def _energy_axis(path: Path, ids: list[str], names: list[str], units: list[str]) -> int:
    found = [
        i
        for i in range(4)
        if units[i].strip().lower() in ENERGY_UNITS or ids[i] == "DeltaE" or names[i] == "DeltaE"
    ]
    if len(found) != 1:
        listed = ", ".join(f"{i} [{u}]" for i, u in zip(ids, units, strict=True))
        raise FcinvertError(
            f"{path}: expected exactly one energy-transfer axis (units meV or DeltaE), got {listed}"
        )
    unit = units[found[0]].strip().lower()
    if unit and unit not in ENERGY_UNITS:
        raise FcinvertError(f"{path}: energy axis in '{units[found[0]]}', expected meV")
    return found[0]


_COMPONENT = re.compile(r"^([+-]?(?:\d+\.?\d*|\.\d+)(?:e[+-]?\d+)?)?\*?([+-]?)([A-Za-z]+)$")


def _parse_vector(name: str) -> np.ndarray | None:
    """The hkl vector in an MDNorm-style name like "[0.5H,-H,0]", else None."""
    text = name.strip().replace(" ", "")
    if not (text.startswith("[") and text.endswith("]")):
        return None
    parts = text[1:-1].split(",")
    if len(parts) != 3:
        return None
    vector = np.zeros(3)
    for i, part in enumerate(parts):
        try:
            vector[i] = float(part)
            continue
        except ValueError:
            pass
        match = _COMPONENT.match(part)
        if match is None:
            return None
        number, sign, _ = match.groups()
        value = 1.0 if number in (None, "", "+") else -1.0 if number == "-" else float(number)
        vector[i] = -value if sign == "-" else value
    return vector


def _projection(
    path: Path,
    ids: list[str],
    names: list[str],
    units: list[str],
    frames: list[str],
    ub: np.ndarray | None,
    w_matrix: np.ndarray | None,
) -> np.ndarray:
    """(3, 3) columns = conventional hkl per unit of each Q axis."""
    frame_set = {f.strip() for f in frames if f.strip()}
    unit_set = {u.strip().lower() for u in units}
    if frame_set & {"QLab", "Q_lab"} or any(i.lower().startswith("q_lab") for i in ids):
        raise FcinvertError(
            f"{path}: Q axes in the lab frame need the goniometer; convert to HKL "
            "(e.g. MDNorm with RLU=True)"
        )
    if (
        frame_set & {"QSample", "Q_sample"}
        or unit_set & set(INVERSE_ANGSTROM)
        or any(i.lower().startswith("q_sample") for i in ids)
    ):
        if ub is None:
            raise FcinvertError(
                f"{path}: Q axes are in Q_sample (1/Å) but the file holds no UB matrix"
            )
        return np.linalg.inv(2 * math.pi * ub)
    bad = [
        u for u in units if u.strip().lower() not in HKL_UNITS and not u.strip().startswith("in ")
    ]
    if bad:
        raise FcinvertError(
            f"{path}: Q axes must be in r.l.u. (HKL frame) or 1/Å (Q_sample); got '{bad[0]}'"
        )
    columns = []
    for dim, name in zip(ids, names, strict=True):
        vector = _parse_vector(name)
        if vector is None:
            vector = _parse_vector(dim)
        if vector is None and name.strip().upper() in LETTERS:
            vector = np.eye(3)[LETTERS.index(name.strip().upper())]
        columns.append(vector)
    if any(c is None for c in columns):
        if w_matrix is None:
            unknown = [n for n, c in zip(names, columns, strict=True) if c is None]
            raise FcinvertError(
                f"{path}: cannot tell the hkl direction of axis '{unknown[0]}' (no [H,K,L]-style "
                "name and no W_MATRIX log)"
            )
        return w_matrix
    projection = np.array(columns, dtype=float).T
    if abs(np.linalg.det(projection)) < 1e-9:
        raise FcinvertError(f"{path}: the Q axes {names} are not independent")
    return projection
