"""Text tables (h k l E I [err], whitespace or comma separated) as ``Points``."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from fcinvert.data.readers.measured import Points, check_measured
from fcinvert.errors import FcinvertError

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
