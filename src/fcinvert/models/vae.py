"""β-VAE on I(q, E) images: compresses a spectrum to a ~20-d latent distribution (Stage II a).

Encoder: stride-2 3×3 convolutions (each halves nq and nE) with batch normalisation → a hidden
dense layer → μ and log σ² (latent each). Decoder: the mirror image, with transposed
convolutions sized so the output has exactly the input's (nq, nE); its output is a logit per
pixel (the input rule scales spectra to [0, 1]). Batch normalisation makes the encoder start
using the latent several times sooner (on small Ge tests: the second FC's R² 0.9 after 12
epochs with it, ≈ 0 without).

Loss per spectrum = Σ_pixels BCE(x̂, x) + β · KL(N(μ, σ²) ‖ N(0, 1)), averaged over the batch:
a Bernoulli likelihood on the [0, 1]-scaled intensities (the classic VAE choice), summed over
pixels. Cross-entropy rather than squared error because its gradient, x̂ − x, does not vanish
where the sigmoid saturates: through a sigmoid, squared error gave the sparse phonon peaks
(x ≈ 1 where x̂ ≈ 0) almost no gradient and the latent stayed unused for much longer.
β (default 0.1) weighs one nat of latent information against one nat of reconstruction;
β < 1 is the paper's "scaled KL term". Measured on Ge (4 sampled FCs, ±20 %, 40 q × 40 E,
800 spectra, latent 8, 20 epochs; test R² of the FCs in order of influence):
β = 1: 0.98, 0.97, 0.00, −0.01 with 4 of 8 dimensions active; β = 0.1: 1.00, 0.99, 0.48,
−0.01, all 8 active, log σ² ≈ −4 to −6; β = 0.01: 1.00, 0.99, 0.61, 0.01, log σ² ≈ −7 (a
nearly deterministic encoder, whose latent samples no longer express uncertainty). 0.1 keeps
the third FC and a posterior that still has width.
"""

from __future__ import annotations

import torch
from pydantic import BaseModel, ConfigDict, Field
from torch import nn
from torch.nn import functional as F


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
            layers += [nn.Conv2d(previous, width, 3, 2, 1), nn.BatchNorm2d(width), nn.SiLU()]
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
                up += [nn.BatchNorm2d(out), nn.SiLU()]
            previous = width
        self.decoder = nn.Sequential(*up)

    def encode(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """μ and log σ² (B, latent) of the posterior for prepared inputs (B, C, nq, nE)."""
        mu, log_var = self.encoder(x).chunk(2, dim=1)
        return mu, log_var.clamp(-20.0, 10.0)

    def logits(self, z: torch.Tensor) -> torch.Tensor:
        """Decoder logits (B, nq, nE) for latents (B, latent)."""
        features = self.expand(z).view(-1, *self.feature_shape)
        return self.decoder(features)[:, 0]

    def decode(self, z: torch.Tensor) -> torch.Tensor:
        """Reconstructed scaled spectra (B, nq, nE) in [0, 1] from latents (B, latent)."""
        return torch.sigmoid(self.logits(z))

    def forward(
        self, x: torch.Tensor, noise: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """(reconstruction logits (B, nq, nE), μ, log σ²) with z = μ + σ·noise (B, latent)."""
        mu, log_var = self.encode(x)
        z = mu + torch.exp(0.5 * log_var) * noise
        return self.logits(z), mu, log_var


def vae_loss(
    logits: torch.Tensor,
    target: torch.Tensor,
    mu: torch.Tensor,
    log_var: torch.Tensor,
    beta: float,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """(loss, reconstruction term, KL term), each a batch mean of per-spectrum sums.

    logits: (B, nq, nE) decoder output; target: (B, nq, nE) scaled intensities in [0, 1];
    mu, log_var: (B, latent).
    """
    cross = F.binary_cross_entropy_with_logits(logits, target, reduction="none")
    reconstruction = cross.flatten(1).sum(dim=1).mean()
    kl = (-0.5 * (1.0 + log_var - mu.pow(2) - log_var.exp())).sum(dim=1).mean()
    return reconstruction + beta * kl, reconstruction, kl
