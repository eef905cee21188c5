"""Feed-forward regressor from the frozen VAE's latent to the standardised selected θ.

It is trained on latent *samples* z ~ N(μ, σ²) of the frozen encoder, not only on μ, because
inference pushes many latent samples through it to turn the posterior width into an
uncertainty on θ: it must be accurate over the whole posterior, not at its centre only.
"""

from __future__ import annotations

import torch
from pydantic import BaseModel, ConfigDict, Field
from torch import nn


class RegressorConfig(BaseModel):
    """Widths of the hidden layers (stored in the model bundle)."""

    model_config = ConfigDict(extra="forbid")
    hidden: tuple[int, ...] = Field(default=(256, 256, 128), min_length=1)


class LatentRegressor(nn.Module):
    """Dense SiLU network: latent (B, latent) → standardised θ (B, K)."""

    def __init__(self, config: RegressorConfig, latent: int, outputs: int) -> None:
        super().__init__()
        self.config = config
        layers: list[nn.Module] = []
        previous = latent
        for width in config.hidden:
            layers += [nn.Linear(previous, width), nn.SiLU()]
            previous = width
        layers.append(nn.Linear(previous, outputs))
        self.layers = nn.Sequential(*layers)

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return self.layers(z)
