"""What a bundle records of its training: the ``BundleConfig`` of the networks and data it was
trained for, the run's summary (dataset, settings, stages, versions) and its scores on the
dataset's test split."""

from __future__ import annotations

import numpy as np
import torch

from fcinvert import __version__
from fcinvert.data.dataset import StoredDataset
from fcinvert.models.bundle import BundleConfig, EnergyConfig, ModelBundle
from fcinvert.models.datasource import ArraySpectra
from fcinvert.models.preprocess import TargetScaler
from fcinvert.models.training.config import TrainConfig


def evaluate(bundle: ModelBundle, info: StoredDataset, config: TrainConfig) -> dict:
    """R² and MAE (eV/Å²) per selected parameter on the test split, with the VAE's
    ``test_samples`` latent draws per spectrum (the ResNet is deterministic)."""
    test = ArraySpectra.read(info, "test")
    truth = test.targets.numpy().astype(float)
    predicted = bundle.predict(test.spectra.numpy(), config.test_samples, config.seed).mean
    residual = ((truth - predicted) ** 2).sum(axis=0)
    spread = ((truth - truth.mean(axis=0)) ** 2).sum(axis=0)
    r2 = 1.0 - residual / np.where(spread > 0, spread, np.nan)
    mae = np.abs(truth - predicted).mean(axis=0)
    return {
        "spectra": len(truth),
        "r2": dict(zip(bundle.config.selected, np.round(r2, 5).tolist(), strict=True)),
        "mae_eV_A2": dict(zip(bundle.config.selected, np.round(mae, 6).tolist(), strict=True)),
    }


def new_bundle_config(
    info: StoredDataset, config: TrainConfig, scaler: TargetScaler
) -> BundleConfig:
    """The bundle's configuration for networks trained by ``config`` on the dataset ``info``,
    whose targets the ``scaler`` standardises."""
    vae = config.architecture == "vae"
    return BundleConfig(
        architecture=config.architecture,
        material=info.material,
        qpoints=[tuple(q) for q in info.qpoints.tolist()],
        energy=EnergyConfig.from_grid(info.energy),
        parameter_names=info.parameter_names,
        selected=info.selected_names,
        reference=info.reference.tolist(),
        target_mean=scaler.mean.tolist(),
        target_std=scaler.std.tolist(),
        mask_channel=config.mask_channel,
        input_rule=config.input_rule,
        vae=config.vae if vae else None,
        regressor=config.regressor if vae else None,
        resnet=None if vae else config.resnet,
    )


def training_summary(
    info: StoredDataset, config: TrainConfig, stages: dict, n_fit: int, n_val: int
) -> dict:
    """The bundle's ``training`` record: the dataset (``StoredDataset.record``: name, SHA-256,
    domain, no path), fit and validation sizes, the settings, the stage summaries and the
    versions."""
    return {
        "dataset": info.record(),
        "train_spectra": n_fit,
        "validation_spectra": n_val,
        "config": config.model_dump(mode="json"),
        "stages": stages,
        "fcinvert_version": __version__,
        "torch_version": torch.__version__,
    }
