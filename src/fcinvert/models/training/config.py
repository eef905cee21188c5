"""What decides a training run: ``TrainConfig`` (recorded in the bundle), the stages of each
architecture, and the "auto" settings made concrete for a dataset."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from fcinvert.data.dataset import StoredDataset
from fcinvert.models.augment import AugmentConfig
from fcinvert.models.preprocess import REALISTIC_RULE, InputRule
from fcinvert.models.regressor import RegressorConfig
from fcinvert.models.resnet import ResNetConfig
from fcinvert.models.vae import VAEConfig

#: folders of a bundle that hold the stages' checkpoints and their per-epoch CSV logs
WORK = "checkpoints"
LOGS = "logs"
STAGES = {"vae": ("vae", "regressor"), "resnet": ("resnet",)}


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
