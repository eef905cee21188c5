"""β-VAE on I(q, E) images: compresses a spectrum to a ~20-d latent distribution (Stage II a).

Encoder: stride-2 3×3 convolutions (each halves nq and nE) → a hidden dense layer → μ and log σ²
(latent each). Decoder: the mirror image, with transposed convolutions sized so the output has
exactly the input's (nq, nE), and a sigmoid (the input rule scales spectra to [0, 1]).

Loss per spectrum = Σ_pixels (x̂ − x)² + β · KL(N(μ, σ²) ‖ N(0, 1)), averaged over the batch.
The squared error is *summed* over the ~20 000 pixels (a Gaussian likelihood), so β weighs one
nat of latent information against squared error in the same units. Default β = 0.1: measured
on Ge, it keeps ~15 of 20 latent dimensions active with log σ² around −3 to −6 (informative
but not collapsed to a deterministic autoencoder), while β = 1 switches off dimensions the
weaker force constants need. See ``VAEConfig``.
"""

from __future__ import annotations

import torch
from pydantic import BaseModel, ConfigDict, Field
from torch import nn


class VAEConfig(BaseModel):
    """Architecture and loss weight of the β-VAE (stored in the model bundle)."""

    model_config = ConfigDict(extra="forbid")
    latent: int = Field(default=20, gt=0, description="latent dimensions")
    channels: tuple[int, ...] = Field(
        default=(16, 32, 64, 128), min_length=1, description="conv channels per stride-2 stage"
    )
    hidden: int = Field(default=256, gt=0, description="width of the dense layer")
    beta: float = Field(default=0.1, ge=0, description="weight of the KL term")


class SpectrumVAE(nn.Module):
    """β-VAE for prepared inputs (B, C, nq, nE) (see ``preprocess.prepare_input``)."""

    def __init__(self, config: VAEConfig, in_channels: int, shape: tuple[int, int]) -> None:
        super().__init__()
        self.config = config
        self.shape = tuple(shape)
        sizes = [self.shape]
        for _ in config.channels:
            sizes.append(tuple((s - 1) // 2 + 1 for s in sizes[-1]))
        self.feature_shape = (config.channels[-1], *sizes[-1])
        flat = config.channels[-1] * sizes[-1][0] * sizes[-1][1]

        layers: list[nn.Module] = []
        previous = in_channels
        for width in config.channels:
            layers += [nn.Conv2d(previous, width, 3, stride=2, padding=1), nn.SiLU()]
            previous = width
        self.encoder = nn.Sequential(
            *layers,
            nn.Flatten(),
            nn.Linear(flat, config.hidden),
            nn.SiLU(),
            nn.Linear(config.hidden, 2 * config.latent),
        )

        self.expand = nn.Sequential(
            nn.Linear(config.latent, config.hidden),
            nn.SiLU(),
            nn.Linear(config.hidden, flat),
            nn.SiLU(),
        )
        up: list[nn.Module] = []
        widths = [*config.channels[::-1][1:], config.channels[0]]
        previous = config.channels[-1]
        for i, width in enumerate(widths):
            small, large = sizes[-1 - i], sizes[-2 - i]
            padding = tuple(b - (2 * a - 1) for a, b in zip(small, large, strict=True))
            last = i == len(widths) - 1
            out = 1 if last else width
            up.append(nn.ConvTranspose2d(previous, out, 3, 2, padding=1, output_padding=padding))
            if not last:
                up.append(nn.SiLU())
            previous = width
        self.decoder = nn.Sequential(*up)

    def encode(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """μ and log σ² (B, latent) of the posterior for prepared inputs (B, C, nq, nE)."""
        mu, log_var = self.encoder(x).chunk(2, dim=1)
        return mu, log_var.clamp(-20.0, 10.0)

    def decode(self, z: torch.Tensor) -> torch.Tensor:
        """Reconstructed scaled spectra (B, nq, nE) in [0, 1] from latents (B, latent)."""
        features = self.expand(z).view(-1, *self.feature_shape)
        return torch.sigmoid(self.decoder(features)[:, 0])

    def forward(
        self, x: torch.Tensor, noise: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """(reconstruction (B, nq, nE), μ, log σ²) with z = μ + σ·noise, noise (B, latent)."""
        mu, log_var = self.encode(x)
        z = mu + torch.exp(0.5 * log_var) * noise
        return self.decode(z), mu, log_var


def vae_loss(
    reconstruction: torch.Tensor,
    target: torch.Tensor,
    mu: torch.Tensor,
    log_var: torch.Tensor,
    beta: float,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """(loss, reconstruction term, KL term), each a batch mean of per-spectrum sums.

    reconstruction, target: (B, nq, nE) scaled intensities; mu, log_var: (B, latent).
    """
    squared = (reconstruction - target).pow(2).flatten(1).sum(dim=1).mean()
    kl = (-0.5 * (1.0 + log_var - mu.pow(2) - log_var.exp())).sum(dim=1).mean()
    return squared + beta * kl, squared, kl
