"""Trained bundles a run starts from: a VAE whose frozen encoder is reused (``--encoder``: only a
regressor trains), or a ResNet whose weights and target scaling start a fine-tuning run
(``--init-from``). Either must be of the dataset's material and (q, E) grid."""

from __future__ import annotations

import json
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import numpy as np
from safetensors.torch import save_file

from fcinvert.data.dataset import StoredDataset
from fcinvert.errors import FcinvertError
from fcinvert.iohelpers import atomic_path, atomic_write_text, file_sha256
from fcinvert.models.bundle import ModelBundle, find_bundle, load_bundle
from fcinvert.models.training.config import LOGS, TrainConfig


@dataclass(frozen=True)
class SourceUse:
    """How a source bundle is used: the option that names it, the architecture it must be and
    train, that architecture's name in messages, what a bundle of another one is told, and
    whether it must predict the dataset's selected parameters (its head is kept)."""

    option: str
    architecture: str
    label: str
    mismatch: str
    same_targets: bool


SOURCE_USES = {
    "encoder": SourceUse("--encoder", "vae", "VAE", " has no encoder", False),
    "init_from": SourceUse("--init-from", "resnet", "ResNet", ", not a ResNet", True),
}


def source_bundle(
    config: TrainConfig, info: StoredDataset, use: Literal["encoder", "init_from"]
) -> ModelBundle:
    """The bundle named by ``config.encoder`` or ``config.init_from`` (``use``), checked
    against the run (its architecture) and the dataset (material, grid and, for a ResNet,
    selected parameters)."""
    rule = SOURCE_USES[use]
    if config.architecture != rule.architecture:
        raise FcinvertError(f"{rule.option} applies to the {rule.label} only")
    name = getattr(config, use)
    source = load_bundle(name)
    where = f"{rule.option} {name}"
    if source.architecture != rule.architecture:
        raise FcinvertError(f"{where}: a {source.architecture} model{rule.mismatch}")
    if source.config.material != info.material:
        material = source.config.material
        raise FcinvertError(f"{where}: a model of '{material}', not '{info.material}'")
    same_grid = source.qpoints.shape == info.qpoints.shape and np.allclose(
        source.qpoints, info.qpoints, atol=1e-9
    )
    if not same_grid or not np.allclose(source.energy.centres, info.energy.centres, atol=1e-9):
        raise FcinvertError(f"{where}: its (q, E) grid is not the dataset's {info.path}")
    if rule.same_targets and list(source.config.selected) != list(info.selected_names):
        raise FcinvertError(f"{where}: predicts other parameters than the dataset {info.path}")
    return source


def with_source_settings(config: TrainConfig, source: ModelBundle) -> TrainConfig:
    """``config`` with the source bundle's network settings (its VAE's or ResNet's), mask
    channel and input rule: the weights taken from it fit only those."""
    network = source.architecture
    return config.model_copy(
        update={
            network: getattr(source.config, network),
            "mask_channel": source.config.mask_channel,
            "input_rule": source.config.input_rule,
        }
    )


def adopt_encoder(source: ModelBundle, name: str, folder: Path, logs: Path) -> None:
    """Make the source bundle's VAE the finished VAE stage of this run (weights, summary, log)."""
    if (folder / "done.json").exists():
        return
    folder.mkdir(parents=True, exist_ok=True)
    state = {k: v.float().contiguous() for k, v in source.networks["vae"].state_dict().items()}
    with atomic_path(folder / "best.safetensors") as temporary:
        save_file(state, str(temporary))
    directory = find_bundle(name)
    summary = {
        **source.config.training.get("stages", {}).get("vae", {}),
        "encoder_from": name,
        "encoder_sha256": file_sha256(directory / "vae.safetensors"),
    }
    summary.setdefault("epochs", 0)
    log = directory / LOGS / "vae.csv"
    if log.exists():
        shutil.copyfile(log, logs / "vae.csv")
    atomic_write_text(folder / "done.json", json.dumps(summary, indent=1) + "\n")
