"""NXSPE files: per-detector S(2θ, φ, E) of one crystal orientation, turned into ``Points`` in
conventional hkl through the orientation (u, v, ψ).
"""

from __future__ import annotations

import math
from pathlib import Path

import h5py
import numpy as np

from fcinvert.data.readers.hdf5_values import read_numbers
from fcinvert.data.readers.measured import Points, check_measured
from fcinvert.errors import FcinvertError
from fcinvert.iohelpers import open_hdf5
from fcinvert.physics.instrument import Orientation, momentum_transfer_lab


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
        ei = float(np.ravel(read_numbers(path, info["fixed_energy"]))[0])
        file_psi = (
            float(np.ravel(read_numbers(path, info["psi"]))[0]) if "psi" in info else math.nan
        )
        signal = read_numbers(path, group["data"]).astype(float)
        error = read_numbers(path, group["error"]).astype(float)
        energy = read_numbers(path, group["energy"]).astype(float)
        polar = read_numbers(path, group["polar"]).astype(float)
        azimuthal = read_numbers(path, group["azimuthal"]).astype(float)
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
