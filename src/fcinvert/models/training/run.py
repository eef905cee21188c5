"""The training loop: ``train_model`` runs the stages of an architecture with one ``Trainer``
set-up and writes the bundle (see the package docstring)."""

from __future__ import annotations

import functools
import json
import shutil
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import lightning as L
import numpy as np
from lightning.pytorch.callbacks import Callback, EarlyStopping, RichProgressBar
from safetensors.torch import load_file
from torch.utils.data import DataLoader, Subset

from fcinvert.data.dataset import read_dataset
from fcinvert.errors import FcinvertError
from fcinvert.iohelpers import atomic_write_text, file_sha256
from fcinvert.models.bundle import (
    CONFIG_NAME,
    ModelBundle,
    build_networks,
    find_bundle,
    round_to_storage,
    save_bundle,
)
from fcinvert.models.datasource import ArraySpectra, EpochShuffle, rendered, split_indices
from fcinvert.models.preprocess import TargetScaler
from fcinvert.models.resnet import load_torchvision_weights
from fcinvert.models.training.callbacks import AtomicCheckpoint, StageRecord, quiet_lightning
from fcinvert.models.training.config import LOGS, STAGES, WORK, TrainConfig, resolve_input_rule
from fcinvert.models.training.resume import (
    check_checkpoint,
    check_continuable,
    check_resumable,
    latest_checkpoint,
    stage_pending,
)
from fcinvert.models.training.sources import adopt_encoder, source_bundle, with_source_settings
from fcinvert.models.training.stages import FastTarget, Stage, stage_loaders, stage_module
from fcinvert.models.training.summary import evaluate, new_bundle_config, training_summary


@dataclass
class TrainingResult:
    """The trained bundle (already saved in ``folder``) and per-stage summaries."""

    bundle: ModelBundle
    folder: Path
    stages: dict[str, dict]


def train_model(
    data: str | Path,
    out: str | Path,
    config: TrainConfig,
    material: str | None = None,
    pretrained: str | Path | None = None,
    progress: bool = True,
) -> TrainingResult:
    """Train ``config.architecture`` on the dataset file ``data``; the bundle goes into ``out``.

    ``material`` (a name), when given, must be the dataset's. ``pretrained``: a torchvision
    resnet18 state dict to start the ResNet from (ImageNet transfer). Re-running with the same
    ``out`` resumes a killed run, or continues a finished one when more epochs are asked for.
    """
    out = Path(out)
    info = read_dataset(data)
    if material is not None and material != info.material:
        raise FcinvertError(f"{data}: a dataset for '{info.material}', not '{material}'")
    if pretrained is not None and config.architecture != "resnet":
        raise FcinvertError("--pretrained applies to the ResNet only")
    start = None
    if config.init_from is not None:
        if pretrained is not None:
            raise FcinvertError("--init-from and --pretrained exclude each other")
        start = source_bundle(config, info, "init_from")
        config = with_source_settings(config, start)
    source = None
    if config.encoder is not None:
        source = source_bundle(config, info, "encoder")
        config = with_source_settings(config, source)
    config = resolve_input_rule(config, info)
    work = out / WORK
    if (out / CONFIG_NAME).exists():
        check_continuable(out, config)
    check_resumable(work / "train_config.json", config, info)
    (out / LOGS).mkdir(parents=True, exist_ok=True)

    n = info.sizes["train"] if config.limit is None else min(config.limit, info.sizes["train"])
    fit_idx, val_idx = split_indices(n, config.val_fraction, config.seed)
    if config.render:  # fresh draws to fit; the first stored spectra validate
        fit_set = rendered(info, len(fit_idx), config.seed)
        val_set = ArraySpectra.read(info, "train", len(val_idx))
        scaler = TargetScaler.fit(info.theta("train")[:n, info.selected])
    else:
        stored = ArraySpectra.read(info, "train", n)
        fit_set, val_set = Subset(stored, fit_idx), Subset(stored, val_idx)
        scaler = TargetScaler.fit(stored.targets.numpy())
    loaders = (
        DataLoader(
            fit_set,
            batch_size=config.batch_size,
            sampler=EpochShuffle(np.arange(len(fit_idx)), config.seed),
        ),
        DataLoader(val_set, batch_size=max(config.batch_size, 256)),
    )
    if start is not None:  # the source's head predicts θ standardised its way
        scaler = TargetScaler(
            np.asarray(start.config.target_mean), np.asarray(start.config.target_std)
        )
    bundle_config = new_bundle_config(info, config, scaler)
    L.seed_everything(config.seed, workers=True, verbose=False)
    networks = build_networks(bundle_config)
    description = None
    if pretrained is not None:
        description = load_torchvision_weights(networks["resnet"], pretrained)
    if start is not None:
        networks["resnet"].load_state_dict(start.networks["resnet"].float().state_dict())
        digest = file_sha256(find_bundle(str(config.init_from)) / "resnet.safetensors")[:16]
        description = f"fine-tuned from bundle {config.init_from} (sha256 {digest}…)"
    if description is not None:
        bundle_config.resnet = bundle_config.resnet.model_copy(update={"pretrained": description})
    if source is not None:
        adopt_encoder(source, str(config.encoder), work / "vae", out / LOGS)

    summaries: dict[str, dict] = {}
    upstream_trained = False
    for stage in STAGES[config.architecture]:
        if upstream_trained:  # the encoder moved on: its regressor starts afresh
            shutil.rmtree(work / stage, ignore_errors=True)
            (out / LOGS / f"{stage}.csv").unlink(missing_ok=True)
        target = FastTarget(info) if stage == "vae" and config.vae_target == "fast" else None
        module = stage_module(stage, networks, config, scaler, target)
        make_loaders = functools.partial(stage_loaders, stage, loaders, networks, config)
        summaries[stage], trained = run_stage(
            stage, module, make_loaders, work, out / LOGS, config, progress
        )
        upstream_trained |= trained
        networks[stage].eval()

    for network in networks.values():  # back from the GPU, if training used one
        network.cpu()
    round_to_storage(networks)
    bundle = ModelBundle(bundle_config, networks)
    bundle_config.training = training_summary(info, config, summaries, len(fit_idx), len(val_idx))
    if info.sizes.get("test", 0) > 0:
        bundle_config.training["test"] = evaluate(bundle, info, config)
    save_bundle(bundle, out)
    for mid_epoch in work.glob("*/steps.ckpt"):  # the end-of-epoch checkpoints suffice now
        mid_epoch.unlink()
    return TrainingResult(bundle, out, summaries)


def run_stage(
    stage: str,
    module: Stage,
    make_loaders: Callable[[], tuple[DataLoader, DataLoader]],
    work: Path,
    logs: Path,
    config: TrainConfig,
    progress: bool,
) -> tuple[dict, bool]:
    """Fit one stage (resuming from its checkpoint), then load its best weights. Returns the
    stage summary and whether it trained in this call."""
    folder = work / stage
    done = folder / "done.json"
    best = folder / "best.safetensors"
    epochs = config.regressor_epochs if stage == "regressor" else config.epochs
    if not stage_pending(folder, epochs):
        module.network.load_state_dict(load_file(best))
        return json.loads(done.read_text()), False
    done.unlink(missing_ok=True)  # a finished stage asked for more epochs continues
    folder.mkdir(parents=True, exist_ok=True)
    module.network.train()
    record = StageRecord(folder, logs / f"{stage}.csv")
    epoch_checkpoint = AtomicCheckpoint(
        dirpath=folder,
        filename="last",
        save_top_k=1,
        enable_version_counter=False,
        save_on_train_epoch_end=True,
    )
    callbacks: list[Callback] = [
        record,
        EarlyStopping(monitor="val_loss", patience=config.patience, mode="min"),
        epoch_checkpoint,
    ]
    if config.checkpoint_every:
        callbacks.append(
            AtomicCheckpoint(
                dirpath=folder,
                filename="steps",
                save_top_k=1,
                enable_version_counter=False,
                every_n_train_steps=config.checkpoint_every,
            )
        )
    if progress:
        callbacks.append(RichProgressBar(leave=True))
    resume = latest_checkpoint(folder)
    if resume is not None:
        check_checkpoint(resume)
    with quiet_lightning():
        trainer = L.Trainer(
            max_epochs=epochs,
            accelerator=config.accelerator,
            devices=1,
            deterministic="warn",
            logger=False,
            callbacks=callbacks,
            enable_progress_bar=progress,
            enable_model_summary=False,
            num_sanity_val_steps=0,
            default_root_dir=folder,
        )
        trainer.fit(module, *make_loaders(), ckpt_path=resume)
    module.network.load_state_dict(load_file(best))
    summary = {
        "epochs": trainer.current_epoch,
        "best_epoch": record.best_epoch,
        "best_val_loss": record.best,
        "stopped_early": trainer.current_epoch < epochs,
        "wall_s": round(record.elapsed, 1),
        "resumed_from_epoch": record.started_at_epoch if resume else None,
        "device": str(trainer.strategy.root_device),
    }
    atomic_write_text(done, json.dumps(summary, indent=1) + "\n")
    return summary, True
