"""Small Ge datasets in the Stage I file layout, for model and inversion tests.

The selected parameters are sampled uniformly within ±20 % of the reference, the rest held at
it; spectra are rendered with the fast model on every ``q_stride``-th point of Ge's path and a
coarse energy grid, so a model trains on them in seconds.
"""

from __future__ import annotations

from pathlib import Path

import h5py
import numpy as np

from fcinvert.physics.dynamics import dynamics_basis
from fcinvert.physics.fcspace import FCSpace
from fcinvert.physics.material import EnergyGrid, Material
from fcinvert.physics.spectra import render

SELECTED = (
    "shell1_(0.25,0.25,0.25)_xx",
    "shell1_(0.25,0.25,0.25)_xy",
    "shell2_(0.5,0.5,0)_zz",
    "shell2_(0.5,0.5,0)_xz",
)


def small_grid(
    material: Material, q_stride: int = 5, bins: int = 40
) -> tuple[np.ndarray, EnergyGrid]:
    """(q-points (nq, 3), energy grid) of a coarse version of the material's grid."""
    full = material.energy
    low = full.centres[0] - 0.5 * full.width
    high = full.centres[-1] + 0.5 * full.width
    width = (high - low) / bins
    centres = low + width * (np.arange(bins) + 0.5)
    return material.path.qpoints[::q_stride], EnergyGrid(centres, width, full.fwhm0, full.slope)


def sample_theta(
    fcspace: FCSpace, reference: np.ndarray, n: int, seed: int, spread: float = 0.2
) -> np.ndarray:
    """θ (n, P): the SELECTED parameters uniform in ±spread around the reference."""
    rng = np.random.default_rng(seed)
    selected = [fcspace.names.index(name) for name in SELECTED]
    theta = np.tile(reference, (n, 1))
    factors = rng.uniform(1.0 - spread, 1.0 + spread, size=(n, len(selected)))
    theta[:, selected] = reference[selected] * factors
    return theta


def write_small_dataset(
    path: Path,
    material: Material,
    fcspace: FCSpace,
    reference: np.ndarray,
    n_train: int = 800,
    n_test: int = 200,
    seed: int = 0,
    q_stride: int = 5,
    bins: int = 40,
) -> Path:
    """Write a dataset file in the Stage I layout and return its path."""
    qpoints, grid = small_grid(material, q_stride, bins)
    basis = dynamics_basis(fcspace, qpoints)
    selected = np.array([fcspace.names.index(name) for name in SELECTED], dtype=np.int64)
    with h5py.File(path, "w") as handle:
        handle.attrs.update(format="fcinvert-dataset", version=1, material=material.name, seed=seed)
        handle["parameter_names"] = np.array(fcspace.names, dtype=h5py.string_dtype())
        handle["selected"] = selected
        handle["reference"] = reference
        ratio = reference[selected]
        handle["domain/low"] = np.minimum(0.8 * ratio, 1.2 * ratio)
        handle["domain/high"] = np.maximum(0.8 * ratio, 1.2 * ratio)
        handle["qpoints"] = qpoints
        energy = handle.create_dataset("energy", data=grid.centres)
        energy.attrs.update(width=grid.width, fwhm0=grid.fwhm0, slope=grid.slope)
        for split, n, offset in (("train", n_train, 0), ("test", n_test, 1)):
            theta = sample_theta(fcspace, reference, n, seed + offset)
            handle[f"{split}/theta"] = theta
            handle[f"{split}/spectra"] = render(basis.frequencies(theta), grid)
    return path
