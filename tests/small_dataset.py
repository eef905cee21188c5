"""Small Ge datasets in the Stage I file layout, and tiny models trained on them, for tests.

The selected parameters are sampled uniformly within ±20 % of the reference, the rest held at
it; spectra are rendered with the fast model on every ``q_stride``-th point of Ge's path and a
coarse energy grid, so a model trains on them in seconds.
"""

from __future__ import annotations

import functools
import sys
from pathlib import Path

import h5py
import numpy as np
import torch

from fcinvert.cli import main
from fcinvert.models.regressor import RegressorConfig
from fcinvert.models.resnet import ResNetConfig
from fcinvert.models.training import TrainConfig, train_model
from fcinvert.models.vae import VAEConfig
from fcinvert.physics.dynamics import dynamics_basis
from fcinvert.physics.fcspace import FCSpace, build_fcspace
from fcinvert.physics.material import EnergyGrid, Material, load_material
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
    low, high = full.edges[0], full.edges[-1]
    width = (high - low) / bins
    centres = low + width * (np.arange(bins) + 0.5)
    return material.path.qpoints[::q_stride], EnergyGrid(centres, width, full.fwhm0, full.slope)


def sample_theta(
    fcspace: FCSpace,
    reference: np.ndarray,
    n: int,
    seed: int,
    selected_names: tuple[str, ...] = SELECTED,
    spread: float = 0.2,
) -> np.ndarray:
    """θ (n, P): the selected parameters uniform in ±spread around the reference."""
    rng = np.random.default_rng(seed)
    selected = [fcspace.names.index(name) for name in selected_names]
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
    selected_names: tuple[str, ...] = SELECTED,
) -> Path:
    """Write a dataset file in the Stage I layout and return its path."""
    qpoints, grid = small_grid(material, q_stride, bins)
    basis = dynamics_basis(fcspace, qpoints)
    selected = np.array([fcspace.names.index(name) for name in selected_names], dtype=np.int64)
    with h5py.File(path, "w") as handle:
        handle.attrs.update(format="fcinvert-dataset", version=1, material=material.name, seed=seed)
        handle.attrs.update(n_rejected=0, rejection_rate=0.0)
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
            theta = sample_theta(fcspace, reference, n, seed + offset, selected_names)
            handle[f"{split}/theta"] = theta
            handle[f"{split}/spectra"] = render(basis.frequencies(theta), grid)
    return path


def tiny_config(architecture: str, **changes) -> TrainConfig:
    """Training settings small enough for a test: seconds on one CPU thread."""
    settings = dict(
        architecture=architecture,
        epochs=12,
        regressor_epochs=20,
        batch_size=16,
        learning_rate=3e-3,
        patience=6,
        vae=VAEConfig(channels=(8, 16), hidden=32, latent=4, beta=0.1),
        regressor=RegressorConfig(hidden=(64, 64)),
        resnet=ResNetConfig(width=8),
    )
    settings.update(changes)
    return TrainConfig(**settings)


@functools.cache
def trained_models(root: str) -> dict[str, Path]:
    """Train the tiny VAE and ResNet once per session on a 2-parameter dataset under ``root``;
    returns the paths of the dataset ("data") and of the two bundles ("vae", "resnet")."""
    torch.set_num_threads(1)
    material = load_material("ge")
    fcspace = build_fcspace(material)
    reference = fcspace.theta_from_dict(material.require_reference(), np.zeros(fcspace.n_params))
    folder = Path(root)
    folder.mkdir(parents=True, exist_ok=True)
    paths = {"data": folder / "data.h5"}
    write_small_dataset(
        paths["data"],
        material,
        fcspace,
        reference,
        n_train=400,
        n_test=200,
        q_stride=10,
        bins=24,
        selected_names=SELECTED[:2],
    )
    for architecture in ("vae", "resnet"):
        paths[architecture] = folder / architecture
        train_model(paths["data"], paths[architecture], tiny_config(architecture), progress=False)
    return paths


def run_cli(args: list[str], monkeypatch, capsys) -> tuple[int, str]:
    """Run ``fcinvert ARGS`` in this process: (exit code, stderr)."""
    monkeypatch.setattr(sys, "argv", ["fcinvert", *args])
    try:
        main()
        code = 0
    except SystemExit as stop:
        code = stop.code or 0
    return code, capsys.readouterr().err
