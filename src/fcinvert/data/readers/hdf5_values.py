"""Values read from HDF5 datasets and attributes of measurement files, each failure one line."""

from __future__ import annotations

from pathlib import Path

import h5py
import numpy as np

from fcinvert.errors import FcinvertError


def read_numbers(path: Path, dataset: h5py.Dataset) -> np.ndarray:
    try:
        values = np.asarray(dataset[()])
    except (OSError, ValueError, TypeError) as error:
        first = str(error).splitlines()[0] if str(error) else type(error).__name__
        raise FcinvertError(f"{path}: cannot read {dataset.name} ({first})") from None
    if not (np.issubdtype(values.dtype, np.number) or values.dtype == bool):
        raise FcinvertError(f"{path}: {dataset.name} holds {values.dtype} values, not numbers")
    return values


def text_value(value: object) -> str:
    if isinstance(value, np.ndarray):
        value = value.ravel()[0] if value.size else ""
    return value.decode(errors="replace") if isinstance(value, bytes) else str(value)


def int_value(value: object) -> int:
    try:
        return int(np.ravel(value)[0])
    except (TypeError, ValueError, IndexError):
        return -1
