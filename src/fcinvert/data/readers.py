"""Measured S(Q, E) from files: Mantid SaveMD (version 2) MDHistoWorkspaces, NXSPE and text tables.

A 4-D histogram (three Q axes and energy transfer) becomes a ``Volume``; per-detector data (NXSPE)
and free (h, k, l, E, I) rows (text/CSV) become ``Points``. Q is always expressed in reciprocal
lattice units of the material's *conventional* cell (Mantid's H, K, L), energy in meV. Unmeasured
pixels are those with a non-finite signal, a zero normalisation, or Mantid's mask flag set; they are
never treated as zero intensity.

The SaveMD layout (read from Mantid's SaveMD2/LoadMD source; ../shared/notes/mantid-savemd.md):
``/MDHistoWorkspace/data`` holds one bin-edge dataset per dimension (named by the dimension id)
and ``signal``, ``errors_squared``, ``num_events`` (float64) and ``mask`` (int8) in *reversed*
dimension order, with ``@axes = "ID3:ID2:ID1:ID0"``. A UB matrix (Mantid convention, without 2π:
Q_sample = 2π UB hkl) sits in ``experiment0/sample/oriented_lattice`` when the sample was saved.
``write_savemd`` writes the same layout (used by the tests and by ``fcinvert measure``).
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from pathlib import Path

import h5py
import numpy as np

from fcinvert import validate
from fcinvert.errors import FcinvertError
from fcinvert.iohelpers import atomic_path, open_hdf5
from fcinvert.physics.instrument import Orientation, momentum_transfer_lab

ENERGY_UNITS = ("mev", "deltae")
HKL_UNITS = ("r.l.u.", "rlu", "r.l.u", "")
INVERSE_ANGSTROM = ("angstrom^-1", "a^-1", "å^-1", "1/angstrom", "1/a", "momentumtransfer")
ENTRY = "MDHistoWorkspace"
LETTERS = "HKL"


@dataclass
class Volume:
    """I(Q, E) on a regular 4-D grid; Q axes first, energy last.

    signal: (n0, n1, n2, nE) float64. Without ``normalisation`` it is a normalised intensity per
        voxel; with it, the summed data whose ratio to the normalisation is the intensity
        (MDNorm's OutputDataWorkspace / OutputNormalizationWorkspace pair).
    variance: same shape (Mantid's errors_squared) or None.
    normalisation: same shape or None; 0 means not measured.
    mask: same shape, bool, True where Mantid's mask flag is set (or None).
    edges: four bin-edge arrays: coordinates along the three Q axes, then energy (meV).
    projection: (3, 3); column i is the conventional (h, k, l) of one unit along Q axis i, so
        hkl = projection @ x.
    names: the four axis names (e.g. "[H,H,0]", "[0,0,L]", "[H,-H,0]", "DeltaE").
    ub: (3, 3) Mantid UB matrix (1/Å, without 2π) or None when the file holds no sample.
    """

    signal: np.ndarray
    edges: list[np.ndarray]
    projection: np.ndarray
    names: list[str]
    variance: np.ndarray | None = None
    normalisation: np.ndarray | None = None
    mask: np.ndarray | None = None
    ub: np.ndarray | None = None

    @property
    def shape(self) -> tuple[int, int, int, int]:
        return tuple(len(e) - 1 for e in self.edges)  # type: ignore[return-value]

    @property
    def measured(self) -> np.ndarray:
        """(n0, n1, n2, nE) bool: finite signal, normalisation > 0 and not masked."""
        good = np.isfinite(self.signal)
        if self.normalisation is not None:
            good &= np.isfinite(self.normalisation) & (self.normalisation > 0)
        if self.mask is not None:
            good &= ~self.mask
        return good

    def q_centres(self) -> np.ndarray:
        """(n0 n1 n2, 3) conventional hkl of every Q voxel centre, C order over (n0, n1, n2)."""
        centres = [0.5 * (e[1:] + e[:-1]) for e in self.edges[:3]]
        grid = np.stack(np.meshgrid(*centres, indexing="ij"), -1).reshape(-1, 3)
        return grid @ self.projection.T


@dataclass
class Points:
    """I(Q, E) at scattered points (one detector and energy bin each, or one text row each).

    hkl: (M, 3) conventional r.l.u.; energy: (M,) meV; signal: (M,); variance: (M,) or None;
    weight: (M,) normalisation of each point (1 for an already normalised intensity).
    """

    hkl: np.ndarray
    energy: np.ndarray
    signal: np.ndarray
    variance: np.ndarray | None
    weight: np.ndarray

    @property
    def measured(self) -> np.ndarray:
        return np.isfinite(self.signal) & np.isfinite(self.weight) & (self.weight > 0)


# ---------------------------------------------------------------- SaveMD (MDHistoWorkspace)


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
        version = _scalar(entry.attrs.get("SaveMDVersion", 0))
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
            values = _read(path, data[dim]).astype(float)
            expected = signal_set.shape[3 - index] + 1
            if values.shape != (expected,):
                raise FcinvertError(
                    f"{path}: bin edges of '{dim}' have shape {values.shape}, expected "
                    f"({expected},)"
                )
            if not np.all(np.isfinite(values)) or np.any(np.diff(values) <= 0):
                raise FcinvertError(f"{path}: bin edges of '{dim}' are not finite and increasing")
            edges.append(values)
            units.append(_text(data[dim].attrs.get("units", "")))
            names.append(_text(data[dim].attrs.get("long_name", dim)) or dim)
            frames.append(_text(data[dim].attrs.get("frame", "")))
        arrays = {}
        for key in ("signal", "errors_squared", "mask"):
            if key in data:
                stored = _read(path, data[key])
                if stored.shape != signal_set.shape:
                    raise FcinvertError(
                        f"{path}: {key} has shape {stored.shape}, signal {signal_set.shape}"
                    )
                arrays[key] = np.ascontiguousarray(stored.transpose(3, 2, 1, 0))
        ub = _read_ub(path, entry)
        w_matrix = _read_w_matrix(path, entry)
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


def check_measured(path: str | Path, measured: np.ndarray) -> None:
    if not np.any(measured):
        raise FcinvertError(f"{path}: nothing was measured (every pixel is NaN, masked or norm 0)")


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
            _write_lattice(experiment, np.asarray(volume.ub, float))
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
    axes = _text(signal.attrs.get("axes", ""))
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


def _read_ub(path: Path, entry: h5py.Group) -> np.ndarray | None:
    key = "experiment0/sample/oriented_lattice/orientation_matrix"
    if key not in entry:
        return None
    ub = _read(path, entry[key]).astype(float)
    if ub.size != 9 or not np.all(np.isfinite(ub)) or abs(np.linalg.det(ub.reshape(3, 3))) < 1e-12:
        raise FcinvertError(f"{path}: {key} is not an invertible 3×3 UB matrix")
    return ub.reshape(3, 3)


def _read_w_matrix(path: Path, entry: h5py.Group) -> np.ndarray | None:
    key = "experiment0/logs/W_MATRIX/value"
    if key not in entry:
        return None
    values = _read(path, entry[key]).astype(float)
    if values.size != 9 or abs(np.linalg.det(values.reshape(3, 3))) < 1e-12:
        raise FcinvertError(f"{path}: {key} is not an invertible 3×3 matrix")
    return values.reshape(3, 3)  # MDNorm: columns are the projection vectors


def _write_lattice(experiment: h5py.Group, ub: np.ndarray) -> None:
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


# ---------------------------------------------------------------- NXSPE


def read_nxspe(
    path: str | Path,
    conventional_lattice: np.ndarray,
    u: np.ndarray,
    v: np.ndarray,
    psi: float | None = None,
) -> Points:
    """One direct-geometry ToF run saved by Mantid's SaveNXSPE, as Points.

    NXSPE holds no UB: the crystal orientation comes from ``u`` (hkl along the beam at ψ = 0)
    and ``v`` (hkl in the horizontal plane), the lattice from ``conventional_lattice`` (3, 3)
    rows in Å; ψ (degrees) from the file unless given. Masked detectors (NaN or ≤ -1e10
    signal, as SaveNXSPE/LoadNXSPE mark them) are unmeasured.
    """
    path = Path(path)
    handle = open_hdf5(path, "file")
    with handle:
        entries = [k for k in handle if isinstance(handle[k], h5py.Group)]
        entry = next((handle[k] for k in entries if "NXSPE_info" in handle[k]), None)
        if entry is None:
            raise FcinvertError(f"{path}: not an NXSPE file (no entry with NXSPE_info)")
        info, group = entry["NXSPE_info"], entry.get("data")
        if group is None:
            raise FcinvertError(f"{path}: missing group {entry.name}/data")
        for key in ("data", "error", "energy", "polar", "azimuthal"):
            if key not in group:
                raise FcinvertError(f"{path}: missing dataset {group.name}/{key}")
        if "fixed_energy" not in info:
            raise FcinvertError(f"{path}: missing {info.name}/fixed_energy (Ei)")
        ei = float(np.ravel(_read(path, info["fixed_energy"]))[0])
        file_psi = float(np.ravel(_read(path, info["psi"]))[0]) if "psi" in info else math.nan
        signal = _read(path, group["data"]).astype(float)
        error = _read(path, group["error"]).astype(float)
        energy = _read(path, group["energy"]).astype(float)
        polar = _read(path, group["polar"]).astype(float)
        azimuthal = _read(path, group["azimuthal"]).astype(float)
    if signal.ndim != 2:
        raise FcinvertError(f"{path}: data must be 2-D (detectors, energy), got {signal.shape}")
    n_det, n_energy = signal.shape
    if error.shape != signal.shape:
        raise FcinvertError(f"{path}: error has shape {error.shape}, data {signal.shape}")
    if polar.shape != (n_det,) or azimuthal.shape != (n_det,):
        raise FcinvertError(f"{path}: polar/azimuthal must have one value per detector ({n_det})")
    if energy.shape == (n_energy + 1,):
        energy = 0.5 * (energy[1:] + energy[:-1])
    elif energy.shape != (n_energy,):
        raise FcinvertError(
            f"{path}: energy has shape {energy.shape}, expected ({n_energy + 1},) edges"
        )
    if not math.isfinite(ei) or ei <= 0:
        raise FcinvertError(f"{path}: incident energy {ei} meV is not positive")
    angle = file_psi if psi is None else float(psi)
    if not math.isfinite(angle):
        raise FcinvertError(f"{path}: the file holds no ψ; give it explicitly")
    signal[signal <= -1e10] = np.nan
    orientation = Orientation.from_vectors(conventional_lattice, u, v)
    q_lab, valid = momentum_transfer_lab(ei, polar, azimuthal, energy)  # (n_det, nE, 3)
    hkl = orientation.hkl_from_lab(q_lab.reshape(-1, 3), angle)
    signal = np.where(valid, signal, np.nan).ravel()
    points = Points(
        hkl=hkl,
        energy=np.broadcast_to(energy, (n_det, n_energy)).ravel().copy(),
        signal=signal,
        variance=error.ravel() ** 2,
        weight=np.ones(n_det * n_energy),
    )
    check_measured(path, points.measured)
    return points


# ---------------------------------------------------------------- text / CSV

_COLUMNS = {
    "h": ("h", "q_h", "qh", "H"),
    "k": ("k", "q_k", "qk", "K"),
    "l": ("l", "q_l", "ql", "L"),
    "energy": ("e", "energy", "deltae", "E", "w", "omega"),
    "signal": ("i", "intensity", "signal", "s", "I"),
    "error": ("err", "error", "sigma", "di", "dI"),
}


def read_table(path: str | Path) -> Points:
    """A text/CSV table with a header naming its columns: h, k, l (conventional r.l.u., also
    q_h, q_k, q_l), E (meV), I, optionally err (one σ). Lines starting with '#' are comments
    except a first '#'-prefixed header; NaN marks unmeasured rows."""
    path = Path(path)
    if not path.is_file():
        raise FcinvertError(f"{path}: no such file")
    try:
        lines = path.read_text().splitlines()
    except (OSError, UnicodeDecodeError) as error:
        raise FcinvertError(f"{path}: not a readable text table ({error})") from None
    rows = [line.strip() for line in lines if line.strip()]
    if not rows:
        raise FcinvertError(f"{path}: empty file")
    header = rows[0].lstrip("#").strip()
    body = [r for r in rows[1:] if not r.startswith("#")]
    delimiter = "," if "," in header else None
    names = [n.strip().strip('"') for n in header.split(delimiter)]
    lowered = [n.lower() for n in names]
    index = {}
    for key, aliases in _COLUMNS.items():
        hits = [i for i, n in enumerate(lowered) if n in {a.lower() for a in aliases}]
        if hits:
            index[key] = hits[0]
        elif key != "error":
            raise FcinvertError(
                f"{path}: header has no '{key}' column (header: {', '.join(names)}; expected "
                "h, k, l, E, I[, err])"
            )
    values = np.full((len(body), len(names)), np.nan)
    for row, line in enumerate(body):
        fields = [f.strip() for f in line.split(delimiter)]
        if len(fields) != len(names):
            raise FcinvertError(
                f"{path}: line {row + 2} has {len(fields)} fields, the header {len(names)}"
            )
        try:
            values[row] = [float(f) for f in fields]
        except ValueError:
            raise FcinvertError(f"{path}: line {row + 2} is not numeric: {line[:60]}") from None
    if len(values) == 0:
        raise FcinvertError(f"{path}: header but no data rows")
    hkl = values[:, [index["h"], index["k"], index["l"]]]
    energy = values[:, index["energy"]]
    if not np.all(np.isfinite(hkl)) or not np.all(np.isfinite(energy)):
        raise FcinvertError(f"{path}: h, k, l and E must be finite on every row")
    error = values[:, index["error"]] if "error" in index else None
    points = Points(
        hkl=hkl,
        energy=energy,
        signal=values[:, index["signal"]],
        variance=None if error is None else error**2,
        weight=np.ones(len(values)),
    )
    check_measured(path, points.measured)
    return points


# ---------------------------------------------------------------- any of them

TEXT_SUFFIXES = (".txt", ".csv", ".dat", ".tsv")


@validate.reads_file("measurement file")
def read_measurement(
    path: str | Path,
    norm: str | Path | None = None,
    lattice: np.ndarray | None = None,
    u: np.ndarray | None = None,
    v: np.ndarray | None = None,
    psi: float | None = None,
) -> Volume | Points:
    """Any supported file: SaveMD (with its MDNorm normalisation ``norm``), NXSPE (needs the
    conventional ``lattice`` and the orientation ``u``, ``v``) or a text table (by suffix)."""
    path = Path(path)
    if path.suffix.lower() in TEXT_SUFFIXES:
        if norm is not None:
            raise FcinvertError(f"{path}: a normalisation file goes with SaveMD data only")
        return read_table(path)
    handle = open_hdf5(path, "file")
    with handle:
        savemd = ENTRY in handle or "MDEventWorkspace" in handle
        nxspe = any(isinstance(handle[k], h5py.Group) and "NXSPE_info" in handle[k] for k in handle)
    if savemd:
        return read_volume(path, norm)
    if nxspe:
        if norm is not None:
            raise FcinvertError(f"{path}: a normalisation file goes with SaveMD data only")
        if u is None or v is None or lattice is None:
            raise FcinvertError(
                f"{path}: NXSPE holds no crystal orientation; give --u and --v (hkl along the "
                "beam and in the horizontal plane at ψ = 0)"
            )
        return read_nxspe(path, lattice, u, v, psi)
    raise FcinvertError(
        f"{path}: neither a Mantid SaveMD MDHistoWorkspace nor an NXSPE file (nor a "
        f"{'/'.join(TEXT_SUFFIXES)} table)"
    )


# ---------------------------------------------------------------- helpers


def _read(path: Path, dataset: h5py.Dataset) -> np.ndarray:
    try:
        values = np.asarray(dataset[()])
    except (OSError, ValueError, TypeError) as error:
        first = str(error).splitlines()[0] if str(error) else type(error).__name__
        raise FcinvertError(f"{path}: cannot read {dataset.name} ({first})") from None
    if not (np.issubdtype(values.dtype, np.number) or values.dtype == bool):
        raise FcinvertError(f"{path}: {dataset.name} holds {values.dtype} values, not numbers")
    return values


def _text(value: object) -> str:
    if isinstance(value, np.ndarray):
        value = value.ravel()[0] if value.size else ""
    return value.decode(errors="replace") if isinstance(value, bytes) else str(value)


def _scalar(value: object) -> int:
    try:
        return int(np.ravel(value)[0])
    except (TypeError, ValueError, IndexError):
        return -1
