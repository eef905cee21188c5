"""The Lightning modules of the training stages: what differs between the β-VAE, the regressor on
its frozen encoder and the ResNet-18 is the network and its loss; seeded noise, the input rule,
augmentation and the optimiser (AdamW, plateau or cosine schedule) are shared."""

from __future__ import annotations

import functools
import math

import lightning as L
import numpy as np
import torch
from torch import nn
from torch.nn import functional as F
from torch.utils.data import DataLoader, TensorDataset

from fcinvert.data.dataset import StoredDataset
from fcinvert.models.augment import augment
from fcinvert.models.datasource import EpochShuffle
from fcinvert.models.preprocess import TargetScaler, prepare_input
from fcinvert.models.training.config import TrainConfig
from fcinvert.models.vae import SpectrumVAE, vae_loss


class Stage(L.LightningModule):
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


class VAEStage(Stage):
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


class RegressorStage(Stage):
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


class ResNetStage(Stage):
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


def stage_module(
    stage: str,
    networks,
    config: TrainConfig,
    scaler: TargetScaler,
    target: FastTarget | None = None,
) -> Stage:
    """The LightningModule that trains ``networks[stage]`` (stage: vae, regressor or resnet);
    ``target`` makes the VAE reconstruct fast-model spectra (``vae_target="fast"``)."""
    if stage == "vae":
        return VAEStage(networks["vae"], config, stage, target)
    if stage == "regressor":
        return RegressorStage(networks["regressor"], config, stage, networks["vae"], scaler)
    return ResNetStage(networks["resnet"], config, stage, scaler)


def stage_loaders(
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
