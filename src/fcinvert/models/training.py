"""One Lightning loop trains both inverters: β-VAE then frozen-encoder regressor, or ResNet-18.

``train_model(data, out, config)`` runs the stages of an architecture (``vae`` → ``regressor``,
or ``resnet``) with the same ``Trainer`` set-up: a seeded validation split of the training
spectra, AdamW with learning-rate halving on plateaus (or, with ``schedule="cosine"``, a linear
warm-up then cosine decay to zero over the run's steps), early stopping on the validation loss,
a checkpoint after every epoch (and every ``checkpoint_every`` steps), and a per-epoch CSV log
(``out/logs/<stage>.csv``). Randomness comes only from the seed: the epoch order from
(seed, epoch), latent and augmentation noise from (seed, stage, global step), so a run killed
and resumed from its checkpoint gives the same weights as an uninterrupted one. Re-running the
same command resumes; finished stages are skipped. CPU by default, a GPU when there is one.
``config.encoder`` names a trained VAE bundle whose frozen encoder is reused: only a regressor
trains (for more epochs, or for another selection of parameters). ``config.init_from`` names a
trained ResNet bundle whose weights (and target scaling) start a ResNet run: fine-tuning with a
fresh schedule, recorded as the bundle's ``resnet.pretrained``.

When the stages are done the best weights (lowest validation loss) go into a model bundle in
``out`` (see ``bundle``), evaluated on the dataset's test split (R² and MAE per parameter). The
last checkpoint of each stage stays in ``out/checkpoints``: re-running with more epochs trains a
finished bundle further (a continued VAE retrains its regressor from scratch), exactly as one
longer run would have; deleting the folder frees the space and ends that option.
"""

from __future__ import annotations

import contextlib
import csv
import functools
import hashlib
import json
import logging
import math
import os
import shutil
import time
import warnings
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import lightning as L
import numpy as np
import torch
from lightning.pytorch.callbacks import Callback, EarlyStopping, ModelCheckpoint, RichProgressBar
from pydantic import BaseModel, ConfigDict, Field
from safetensors.torch import load_file, save_file
from torch import nn
from torch.nn import functional as F
from torch.utils.data import DataLoader, Subset, TensorDataset

from fcinvert import __version__
from fcinvert.data.dataset import StoredDataset, read_dataset
from fcinvert.errors import FcinvertError
from fcinvert.iohelpers import atomic_path, atomic_write_text
from fcinvert.models.augment import AugmentConfig, augment
from fcinvert.models.bundle import (
    CONFIG_NAME,
    BundleConfig,
    EnergyConfig,
    ModelBundle,
    build_networks,
    find_bundle,
    load_bundle,
    round_to_storage,
    save_bundle,
)
from fcinvert.models.datasource import ArraySpectra, EpochShuffle, rendered, split_indices
from fcinvert.models.preprocess import REALISTIC_RULE, InputRule, TargetScaler, prepare_input
from fcinvert.models.regressor import RegressorConfig
from fcinvert.models.resnet import ResNetConfig, load_torchvision_weights
from fcinvert.models.vae import SpectrumVAE, VAEConfig, vae_loss

WORK = "checkpoints"
LOGS = "logs"
STAGES = {"vae": ("vae", "regressor"), "resnet": ("resnet",)}
#: Lightning warnings about things done on purpose: data in memory (no workers needed), the
#: frozen encoder in eval mode, resuming into a checkpoint folder, deterministic fallbacks
QUIET = (
    ".*does not have many workers.*",
    ".*LeafSpec.*",
    ".*deterministic.*",
    ".*module\\(s\\) in eval mode.*",
    ".*exists and is not empty.*",
)
#: settings that may change between a run and its resumption or continuation
RESUMABLE_CHANGES = {"epochs", "regressor_epochs", "patience", "accelerator", "checkpoint_every"}


class TrainConfig(BaseModel):
    """Everything that decides a training run (recorded in the bundle)."""

    model_config = ConfigDict(extra="forbid")
    architecture: Literal["vae", "resnet"]
    epochs: int = Field(default=100, gt=0, description="VAE or ResNet epochs (at most)")
    regressor_epochs: int = Field(default=200, gt=0, description="regressor epochs (at most)")
    batch_size: int = Field(default=64, gt=0)
    learning_rate: float = Field(default=1e-3, gt=0, description="initial, or peak (cosine)")
    schedule: Literal["plateau", "cosine"] = Field(
        default="plateau",
        description="learning rate: halved when the validation loss stalls (plateau), or a "
        "linear warm-up over warmup_epochs then cosine decay to zero at the last epoch",
    )
    warmup_epochs: float = Field(default=0.0, ge=0, description="cosine warm-up length")
    weight_decay: float = Field(default=0.0, ge=0)
    val_fraction: float = Field(default=0.1, gt=0, lt=1)
    patience: int = Field(default=10, gt=0, description="epochs without improvement before stop")
    seed: int = 0
    mask_channel: bool = False
    input_rule: Literal["auto"] | InputRule = Field(
        default="auto",
        description="network input rule (preprocess); auto: minmax for the paper's fast "
        "spectra, sqrt-column with the mask channel for measurement-like (realistic) ones",
    )
    vae_target: Literal["auto", "input", "fast"] = Field(
        default="auto",
        description="what the VAE reconstructs: its own (clean) input, or the fast-model "
        "spectrum of the sample's θ (denoising: the latent keeps what θ decides, not counts, "
        "zones or gaps); auto: input for fast datasets, fast for realistic ones",
    )
    render: bool = Field(default=False, description="fit on fresh θ of the domain, rendered")
    limit: int | None = Field(default=None, gt=1, description="use the first N train spectra")
    checkpoint_every: int | None = Field(default=None, gt=0, description="also every N steps")
    accelerator: str = "auto"
    test_samples: int = Field(default=100, gt=0, description="latent samples in the test scores")
    encoder: str | None = Field(
        default=None, description="VAE bundle whose frozen encoder is reused (no VAE stage)"
    )
    init_from: str | None = Field(
        default=None, description="ResNet bundle whose weights start the ResNet (fine-tuning)"
    )
    vae: VAEConfig = VAEConfig()
    regressor: RegressorConfig = RegressorConfig()
    resnet: ResNetConfig = ResNetConfig()
    augment: AugmentConfig = AugmentConfig()


@dataclass
class TrainingResult:
    """The trained bundle (already saved in ``folder``) and per-stage summaries."""

    bundle: ModelBundle
    folder: Path
    stages: dict[str, dict]


class _Stage(L.LightningModule):
    """What the stages share: seeded noise, the input rule, augmentation, the optimiser."""

    def __init__(self, network: nn.Module, config: TrainConfig, stage: str) -> None:
        super().__init__()
        self.network = network
        self.config = config
        self.stage_seed = [config.seed, sum(map(ord, stage))]

    def _generator(self, validation_batch: int | None = None) -> torch.Generator:
        step = self.global_step if validation_batch is None else 10**9 + validation_batch
        key = np.random.SeedSequence([*self.stage_seed, step]).generate_state(1, np.uint64)[0]
        return torch.Generator(device=self.device).manual_seed(int(key) >> 1)

    def _inputs(self, spectra: torch.Tensor, generator: torch.Generator, train: bool):
        """(network input, clean prepared input): augmented in training when switched on."""
        rule = self.config.input_rule
        clean = prepare_input(spectra, self.config.mask_channel, rule)
        if train and self.config.augment.active:
            noisy = augment(spectra, self.config.augment, generator)
            return prepare_input(noisy, self.config.mask_channel, rule), clean
        return clean, clean

    def training_step(self, batch, batch_index: int) -> torch.Tensor:
        losses = self._losses(batch, self._generator(), train=True)
        for name, value in losses.items():
            self.log(f"train_{name}", value, on_step=False, on_epoch=True, batch_size=len(batch[0]))
        return losses["loss"]

    def validation_step(self, batch, batch_index: int) -> None:
        losses = self._losses(batch, self._generator(batch_index), train=False)
        for name, value in losses.items():
            self.log(
                f"val_{name}",
                value,
                on_epoch=True,
                prog_bar=name == "loss",
                batch_size=len(batch[0]),
            )

    def configure_optimizers(self):
        trainable = [p for p in self.network.parameters() if p.requires_grad]
        optimizer = torch.optim.AdamW(
            trainable, lr=self.config.learning_rate, weight_decay=self.config.weight_decay
        )
        if self.config.schedule == "cosine":
            total = int(self.trainer.estimated_stepping_batches)
            warmup = round(self.config.warmup_epochs * total / max(1, self.trainer.max_epochs))
            factor = functools.partial(cosine_factor, total=total, warmup=warmup)
            cosine = torch.optim.lr_scheduler.LambdaLR(optimizer, factor)
            return {
                "optimizer": optimizer,
                "lr_scheduler": {"scheduler": cosine, "interval": "step"},
            }
        plateau = torch.optim.lr_scheduler.ReduceLROnPlateau(
            optimizer, factor=0.5, patience=max(1, self.config.patience // 3)
        )
        return {
            "optimizer": optimizer,
            "lr_scheduler": {"scheduler": plateau, "monitor": "val_loss"},
        }

    def _losses(self, batch, generator: torch.Generator, train: bool) -> dict[str, torch.Tensor]:
        raise NotImplementedError


def cosine_factor(step: int, total: int, warmup: int) -> float:
    """Learning-rate multiplier at optimiser ``step`` of ``total``: linear warm-up from
    1/(warmup + 1) to 1 over ``warmup`` steps, then cosine decay from 1 to 0 at ``total``."""
    if step < warmup:
        return (step + 1) / (warmup + 1)
    progress = min(1.0, (step - warmup) / max(1, total - warmup))
    return 0.5 * (1.0 + math.cos(math.pi * progress))


class FastTarget:
    """The paper's fast-model spectrum of each sample's θ, min–max scaled: the VAE's target
    when it learns to denoise measurement-like spectra (``vae_target="fast"``).

    basis: dynamics on the dataset's q-points; reference: (P,) θ of the unsampled parameters;
    selected: (K,) their indices (the batch holds the selected θ only)."""

    def __init__(self, info: StoredDataset) -> None:
        from fcinvert.physics.dynamics import dynamics_basis
        from fcinvert.physics.fcspace import build_fcspace
        from fcinvert.physics.material import load_material

        material = load_material(info.material)
        self.basis = dynamics_basis(build_fcspace(material), info.qpoints)
        self.grid = info.energy
        self.reference = np.asarray(info.reference, dtype=float)
        self.selected = np.asarray(info.selected)

    def __call__(self, theta: torch.Tensor) -> torch.Tensor:
        """(B, nq, nE) float32 in [0, 1] for selected θ (B, K)."""
        from fcinvert.physics.spectra import render

        full = np.repeat(self.reference[None], len(theta), axis=0)
        full[:, self.selected] = theta.detach().cpu().numpy().astype(float)
        spectra = render(self.basis.frequencies(full), self.grid)
        return prepare_input(torch.from_numpy(spectra), False, "minmax")[:, 0].to(theta.device)


class VAEStage(_Stage):
    """β-VAE: reconstruct the clean prepared spectrum from the (possibly augmented) input, or,
    with a ``target``, the fast-model spectrum of the sample's θ."""

    def __init__(self, network, config, stage, target: FastTarget | None = None) -> None:
        super().__init__(network, config, stage)
        self.target = target

    def _losses(self, batch, generator, train):
        spectra, theta = batch
        x, clean = self._inputs(spectra, generator, train)
        wanted = clean[:, 0] if self.target is None else self.target(theta)
        noise = torch.randn(len(x), self.config.vae.latent, generator=generator, device=x.device)
        logits, mu, log_var = self.network(x, noise)
        loss, reconstruction, kl = vae_loss(logits, wanted, mu, log_var, self.config.vae.beta)
        return {"loss": loss, "reconstruction": reconstruction, "kl": kl}


class RegressorStage(_Stage):
    """Regressor on latent samples of the frozen encoder → standardised θ (mean squared error)."""

    def __init__(
        self,
        network: nn.Module,
        config: TrainConfig,
        stage: str,
        vae: SpectrumVAE,
        scaler: TargetScaler,
    ) -> None:
        super().__init__(network, config, stage)
        self.vae = vae.eval().requires_grad_(False)
        self.register_buffer("target_mean", torch.as_tensor(scaler.mean, dtype=torch.float32))
        self.register_buffer("target_std", torch.as_tensor(scaler.std, dtype=torch.float32))

    def _losses(self, batch, generator, train):
        *inputs, theta = batch  # (spectra, θ), or (μ, log σ², θ) encoded once beforehand
        with torch.no_grad():
            if len(inputs) == 2:
                mu, log_var = inputs
            else:
                mu, log_var = self.vae.encode(self._inputs(inputs[0], generator, train)[0])
            noise = torch.randn(mu.shape, generator=generator, device=mu.device)
            z = mu + torch.exp(0.5 * log_var) * noise
        target = (theta - self.target_mean) / self.target_std
        return {"loss": F.mse_loss(self.network(z), target)}


class ResNetStage(_Stage):
    """ResNet-18 → standardised θ (mean squared error)."""

    def __init__(self, network, config, stage, scaler: TargetScaler) -> None:
        super().__init__(network, config, stage)
        self.register_buffer("target_mean", torch.as_tensor(scaler.mean, dtype=torch.float32))
        self.register_buffer("target_std", torch.as_tensor(scaler.std, dtype=torch.float32))

    def _losses(self, batch, generator, train):
        spectra, theta = batch
        x, _ = self._inputs(spectra, generator, train)
        target = (theta - self.target_mean) / self.target_std
        return {"loss": F.mse_loss(self.network(x), target)}


class StageRecord(Callback):
    """Keeps the best weights (safetensors), the wall time and the per-epoch CSV log of a stage;
    its state is part of the checkpoint, so all three survive a kill and resume."""

    def __init__(self, folder: Path, log_file: Path) -> None:
        self.folder = folder
        self.log_file = log_file
        self.best = math.inf
        self.best_epoch = -1
        self.elapsed = 0.0
        self.started_at_epoch = 0
        self._clock = 0.0

    def state_dict(self) -> dict:
        return {"best": self.best, "best_epoch": self.best_epoch, "elapsed": self.elapsed}

    def load_state_dict(self, state: dict) -> None:
        self.best, self.best_epoch = float(state["best"]), int(state["best_epoch"])
        self.elapsed = float(state["elapsed"])

    def on_train_start(self, trainer, module) -> None:
        self.started_at_epoch = trainer.current_epoch
        self._clock = time.perf_counter()  # a resume mid-epoch skips on_train_epoch_start
        if self.log_file.exists():  # drop epochs the checkpoint does not hold (killed mid-way)
            with self.log_file.open(newline="") as handle:
                rows = [
                    r for r in csv.DictReader(handle) if int(r["epoch"]) < trainer.current_epoch
                ]
            self._write(rows, "w")

    def on_train_epoch_start(self, trainer, module) -> None:
        self._clock = time.perf_counter()

    def on_validation_end(self, trainer, module) -> None:
        if trainer.sanity_checking:
            return
        value = float(trainer.callback_metrics["val_loss"])
        if value < self.best:
            self.best, self.best_epoch = value, trainer.current_epoch
            state = {
                k: v.detach().cpu().contiguous() for k, v in module.network.state_dict().items()
            }
            with atomic_path(self.folder / "best.safetensors") as temporary:
                save_file(state, str(temporary))

    def on_train_epoch_end(self, trainer, module) -> None:
        self.elapsed += time.perf_counter() - self._clock
        metrics = {k: float(v) for k, v in trainer.callback_metrics.items()}
        row = {
            "epoch": trainer.current_epoch,
            "step": trainer.global_step,
            "lr": trainer.optimizers[0].param_groups[0]["lr"],
            "elapsed_s": round(self.elapsed, 3),
            **{k: metrics[k] for k in sorted(metrics)},
        }
        self._write([row], "a")

    def _write(self, rows: list[dict], mode: str) -> None:
        fresh = mode == "w" or not self.log_file.exists()
        if not rows and not fresh:
            return
        fields = list(rows[0]) if rows else ["epoch"]
        with self.log_file.open("w" if fresh else "a", newline="") as handle:
            writer = csv.DictWriter(handle, fieldnames=fields, extrasaction="ignore")
            if fresh:
                writer.writeheader()
            writer.writerows(rows)


class AtomicCheckpoint(ModelCheckpoint):
    """A ModelCheckpoint whose file appears whole or not at all (written beside, then renamed):
    a kill while saving leaves the previous checkpoint intact."""

    def _save_checkpoint(self, trainer: L.Trainer, filepath: str) -> None:
        target = Path(filepath)
        temporary = target.with_name(f".{target.name}.partial")
        trainer.save_checkpoint(temporary, self.save_weights_only)
        if trainer.is_global_zero:
            os.replace(temporary, target)
        self._last_global_step_saved = trainer.global_step
        self._last_checkpoint_saved = filepath


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
        start = _init_source(config, info)
        config = config.model_copy(
            update={
                "resnet": start.config.resnet,
                "mask_channel": start.config.mask_channel,
                "input_rule": start.config.input_rule,
            }
        )
    source = None
    if config.encoder is not None:
        source = _encoder_source(config, info)
        config = config.model_copy(
            update={
                "vae": source.config.vae,
                "mask_channel": source.config.mask_channel,
                "input_rule": source.config.input_rule,
            }
        )
    config = resolve_input_rule(config, info)
    work = out / WORK
    if (out / CONFIG_NAME).exists():
        _check_continuable(out, config)
    _check_resumable(work / "train_config.json", config, info)
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
    bundle_config = _bundle_config(info, config, scaler)
    L.seed_everything(config.seed, workers=True, verbose=False)
    networks = build_networks(bundle_config)
    description = None
    if pretrained is not None:
        description = load_torchvision_weights(networks["resnet"], pretrained)
    if start is not None:
        networks["resnet"].load_state_dict(start.networks["resnet"].float().state_dict())
        weights = find_bundle(str(config.init_from)) / "resnet.safetensors"
        digest = hashlib.sha256(weights.read_bytes()).hexdigest()[:16]
        description = f"fine-tuned from bundle {config.init_from} (sha256 {digest}…)"
    if description is not None:
        bundle_config.resnet = bundle_config.resnet.model_copy(update={"pretrained": description})
    if source is not None:
        _adopt_encoder(source, str(config.encoder), work / "vae", out / LOGS)

    summaries: dict[str, dict] = {}
    upstream_trained = False
    for stage in STAGES[config.architecture]:
        if upstream_trained:  # the encoder moved on: its regressor starts afresh
            shutil.rmtree(work / stage, ignore_errors=True)
            (out / LOGS / f"{stage}.csv").unlink(missing_ok=True)
        target = FastTarget(info) if stage == "vae" and config.vae_target == "fast" else None
        module = stage_module(stage, networks, config, scaler, target)
        stage_loaders = functools.partial(_stage_loaders, stage, loaders, networks, config)
        summaries[stage], trained = _run_stage(
            stage, module, stage_loaders, work, out / LOGS, config, progress
        )
        upstream_trained |= trained
        networks[stage].eval()

    for network in networks.values():  # back from the GPU, if training used one
        network.cpu()
    round_to_storage(networks)
    bundle = ModelBundle(bundle_config, networks)
    bundle_config.training = _summary(info, config, summaries, len(fit_idx), len(val_idx))
    if info.sizes.get("test", 0) > 0:
        bundle_config.training["test"] = evaluate(bundle, info, config)
    save_bundle(bundle, out)
    for mid_epoch in work.glob("*/steps.ckpt"):  # the end-of-epoch checkpoints suffice now
        mid_epoch.unlink()
    return TrainingResult(bundle, out, summaries)


def resolve_input_rule(config: TrainConfig, info: StoredDataset) -> TrainConfig:
    """``config`` with "auto" input rule and VAE target made concrete for the dataset: minmax
    and the input itself for the paper's fast spectra; for measurement-like ones
    REALISTIC_RULE with the mask channel, and the fast-model spectrum of θ as the VAE target."""
    realistic = info.kind == "realistic"
    if config.vae_target == "auto":
        config = config.model_copy(update={"vae_target": "fast" if realistic else "input"})
    if config.input_rule != "auto":
        return config
    if realistic:
        return config.model_copy(update={"input_rule": REALISTIC_RULE, "mask_channel": True})
    return config.model_copy(update={"input_rule": "minmax"})


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


def _bundle_config(info: StoredDataset, config: TrainConfig, scaler: TargetScaler) -> BundleConfig:
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


def stage_module(
    stage: str,
    networks,
    config: TrainConfig,
    scaler: TargetScaler,
    target: FastTarget | None = None,
) -> _Stage:
    """The LightningModule that trains ``networks[stage]`` (stage: vae, regressor or resnet);
    ``target`` makes the VAE reconstruct fast-model spectra (``vae_target="fast"``)."""
    if stage == "vae":
        return VAEStage(networks["vae"], config, stage, target)
    if stage == "regressor":
        return RegressorStage(networks["regressor"], config, stage, networks["vae"], scaler)
    return ResNetStage(networks["resnet"], config, stage, scaler)


def _stage_loaders(
    stage: str,
    loaders: tuple[DataLoader, DataLoader],
    networks: dict[str, nn.Module],
    config: TrainConfig,
) -> tuple[DataLoader, DataLoader]:
    """(fit, validation) loaders of a stage. The regressor of a VAE whose inputs are neither
    augmented nor rendered afresh sees the same encoder outputs every epoch: those are computed
    once (μ, log σ² per spectrum; ~30× faster epochs), in the same batches and order."""
    if stage != "regressor" or config.augment.active or config.render:
        return loaders
    vae = networks["vae"].eval()
    device = next(vae.parameters()).device
    encoded = []
    for loader in loaders:
        parts: list[tuple[torch.Tensor, ...]] = []
        with torch.no_grad():
            for spectra, theta in DataLoader(loader.dataset, batch_size=256):
                x = prepare_input(spectra, config.mask_channel, config.input_rule).to(device)
                mu, log_var = vae.encode(x)
                parts.append((mu.cpu(), log_var.cpu(), theta))
        columns = TensorDataset(*(torch.cat(column) for column in zip(*parts, strict=True)))
        shuffle = loader.sampler if isinstance(loader.sampler, EpochShuffle) else None
        encoded.append(DataLoader(columns, batch_size=loader.batch_size, sampler=shuffle))
    return encoded[0], encoded[1]


def _run_stage(
    stage: str,
    module: _Stage,
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
    if not _stage_pending(folder, epochs):
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
    resume = _latest_checkpoint(folder)
    if resume is not None:
        _check_checkpoint(resume)
    with _quiet_lightning():
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


def _stage_pending(folder: Path, epochs: int) -> bool:
    """Whether a stage still has epochs to train: never finished, or finished short of
    ``epochs`` without early stopping (an adopted encoder is never trained further)."""
    done = folder / "done.json"
    if not done.exists():
        return True
    summary = json.loads(done.read_text())
    if "encoder_from" in summary:
        return False
    return not summary["stopped_early"] and summary["epochs"] < epochs


def _encoder_source(config: TrainConfig, info: StoredDataset) -> ModelBundle:
    """The VAE bundle named by ``config.encoder``, checked against the dataset."""
    if config.architecture != "vae":
        raise FcinvertError("--encoder applies to the VAE only")
    source = load_bundle(config.encoder)
    where = f"--encoder {config.encoder}"
    if source.architecture != "vae":
        raise FcinvertError(f"{where}: a {source.architecture} model has no encoder")
    _check_source_grid(source, info, where)
    return source


def _init_source(config: TrainConfig, info: StoredDataset) -> ModelBundle:
    """The ResNet bundle named by ``config.init_from``, checked against the dataset (same
    material, grid and selected parameters)."""
    if config.architecture != "resnet":
        raise FcinvertError("--init-from applies to the ResNet only")
    source = load_bundle(config.init_from)
    where = f"--init-from {config.init_from}"
    if source.architecture != "resnet":
        raise FcinvertError(f"{where}: a {source.architecture} model, not a ResNet")
    _check_source_grid(source, info, where)
    if list(source.config.selected) != list(info.selected_names):
        raise FcinvertError(f"{where}: predicts other parameters than the dataset {info.path}")
    return source


def _check_source_grid(source: ModelBundle, info: StoredDataset, where: str) -> None:
    """Refuse a source bundle of another material or (q, E) grid than the dataset's."""
    if source.config.material != info.material:
        material = source.config.material
        raise FcinvertError(f"{where}: a model of '{material}', not '{info.material}'")
    same_grid = source.qpoints.shape == info.qpoints.shape and np.allclose(
        source.qpoints, info.qpoints, atol=1e-9
    )
    if not same_grid or not np.allclose(source.energy.centres, info.energy.centres, atol=1e-9):
        raise FcinvertError(f"{where}: its (q, E) grid is not the dataset's {info.path}")


def _adopt_encoder(source: ModelBundle, name: str, folder: Path, logs: Path) -> None:
    """Make the source bundle's VAE the finished VAE stage of this run (weights, summary, log)."""
    if (folder / "done.json").exists():
        return
    folder.mkdir(parents=True, exist_ok=True)
    state = {k: v.float().contiguous() for k, v in source.networks["vae"].state_dict().items()}
    with atomic_path(folder / "best.safetensors") as temporary:
        save_file(state, str(temporary))
    weights = find_bundle(name) / "vae.safetensors"
    summary = {
        **source.config.training.get("stages", {}).get("vae", {}),
        "encoder_from": name,
        "encoder_sha256": hashlib.sha256(weights.read_bytes()).hexdigest(),
    }
    summary.setdefault("epochs", 0)
    log = weights.parent / LOGS / "vae.csv"
    if log.exists():
        shutil.copyfile(log, logs / "vae.csv")
    atomic_write_text(folder / "done.json", json.dumps(summary, indent=1) + "\n")


def _check_continuable(out: Path, config: TrainConfig) -> None:
    """A folder holding a finished bundle trains further only with its checkpoints and with
    more epochs asked for than a stage has had."""
    work = out / WORK
    if not (work / "train_config.json").exists():
        raise FcinvertError(
            f"{out}: already holds a trained model without its checkpoints; choose another --out"
        )
    stages = STAGES[config.architecture]
    epochs = {"regressor": config.regressor_epochs}
    if not any(_stage_pending(work / s, epochs.get(s, config.epochs)) for s in stages):
        raise FcinvertError(
            f"{out}: already trained as far as asked (stopped early, or no more epochs than "
            "before); raise --epochs to train further or choose another --out"
        )


@contextlib.contextmanager
def _quiet_lightning() -> Iterator[None]:
    """Silence Lightning's start-up chatter and the warnings that do not apply here."""
    log = logging.getLogger("lightning.pytorch")
    level = log.level
    log.setLevel(logging.WARNING)
    try:
        with warnings.catch_warnings():
            for pattern in QUIET:
                warnings.filterwarnings("ignore", pattern)
            yield
    finally:
        log.setLevel(level)


def _latest_checkpoint(folder: Path) -> Path | None:
    found = [p for p in (folder / "last.ckpt", folder / "steps.ckpt") if p.exists()]
    return max(found, key=lambda p: p.stat().st_mtime) if found else None


def _check_checkpoint(path: Path) -> None:
    """Refuse, as one line, a checkpoint that is not plain tensors and numbers (a pickle of
    arbitrary objects is never loaded) or that is damaged."""
    try:
        with warnings.catch_warnings():  # a foreign pickle protocol warns before it is refused
            warnings.simplefilter("ignore")
            torch.load(path, map_location="cpu", weights_only=True)
    except Exception as error:  # UnpicklingError, a damaged zip, … : all the same to a user
        why = (str(error).strip().splitlines() or [type(error).__name__])[0][:120]
        raise FcinvertError(
            f"{path}: not a checkpoint this run can resume ({why}); delete it to restart the stage"
        ) from None


def _check_resumable(path: Path, config: TrainConfig, info: StoredDataset) -> None:
    """Record the run's settings and data; an interrupted run resumes only with the same."""
    current = {**config.model_dump(mode="json"), "data": str(info.path.resolve())}
    if path.exists():
        previous = json.loads(path.read_text())
        if previous.get("input_rule", "auto") == "auto":  # recorded before it was resolved
            was = config.model_copy(
                update={"input_rule": "auto", "mask_channel": previous.get("mask_channel", False)}
            )
            resolved = resolve_input_rule(was, info)
            previous["input_rule"] = resolved.input_rule
            previous["mask_channel"] = resolved.mask_channel
        if previous.get("vae_target", "auto") == "auto":
            was = config.model_copy(update={"vae_target": "auto"})
            previous["vae_target"] = resolve_input_rule(was, info).vae_target
        changed = {k for k in current if current[k] != previous.get(k)} - RESUMABLE_CHANGES
        if changed:
            raise FcinvertError(
                f"{path.parent.parent}: holds an interrupted run with other settings "
                f"({', '.join(sorted(changed))}); resume it unchanged or choose another --out"
            )
    path.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_text(path, json.dumps(current, indent=1) + "\n")


def _summary(
    info: StoredDataset, config: TrainConfig, stages: dict, n_fit: int, n_val: int
) -> dict:
    return {
        "dataset": str(info.path.resolve()),
        "train_spectra": n_fit,
        "validation_spectra": n_val,
        "config": config.model_dump(mode="json"),
        "stages": stages,
        "fcinvert_version": __version__,
        "torch_version": torch.__version__,
    }
