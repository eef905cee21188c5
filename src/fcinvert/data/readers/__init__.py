"""Measured S(Q, E) from files: Mantid SaveMD (version 2) MDHistoWorkspaces, NXSPE and text tables.

A 4-D histogram (three Q axes and energy transfer) becomes a ``Volume``; per-detector data (NXSPE)
and free (h, k, l, E, I) rows (text/CSV) become ``Points``. Q is always expressed in reciprocal
lattice units of the material's *conventional* cell (Mantid's H, K, L), energy in meV. Unmeasured
pixels are those with a non-finite signal, a zero normalisation, or Mantid's mask flag set; they are
never treated as zero intensity.

One module per format: ``savemd`` (read and write, with the MDNorm data/normalisation pair),
``nxspe``, ``text``; ``measured`` holds what they return, ``ub`` the UB-matrix maths and
``hdf5_values`` the checked dataset reads. ``read_measurement`` picks the reader of a file.
"""

from __future__ import annotations

from pathlib import Path

import h5py
import numpy as np

from fcinvert import validate
from fcinvert.data.readers.measured import Points, Volume, check_measured
from fcinvert.data.readers.nxspe import read_nxspe
from fcinvert.data.readers.savemd import (
    ENTRY,
    dimension_name,
    read_mdnorm_pair,
    read_savemd,
    read_volume,
    write_savemd,
)
from fcinvert.data.readers.text import read_table
from fcinvert.data.readers.ub import lattice_from_ub
from fcinvert.errors import FcinvertError
from fcinvert.iohelpers import open_hdf5

__all__ = [
    "Points",
    "Volume",
    "check_measured",
    "dimension_name",
    "lattice_from_ub",
    "read_mdnorm_pair",
    "read_measurement",
    "read_nxspe",
    "read_savemd",
    "read_table",
    "read_volume",
    "write_savemd",
]

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
