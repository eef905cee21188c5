"""Training-time augmentation: counting noise on a background, and unmeasured pixels.

Both are off by default (the paper trained on clean spectra). Noise follows the paper's SI
model: the spectrum x is normalised to its maximum, a constant background B is added and
counts are drawn, Poisson(P · (x/max x + B)) / P, with B uniform in [0, background_max] and the
peak count P log-uniform in [counts_min, counts_max] per spectrum; a share ``clean_share`` of
the spectra (drawn per spectrum) is left clean, so that a network trained for noise keeps its
accuracy on clean input. Masking sets pixels to NaN
— the same marker a measurement uses — so the input rule of ``preprocess`` handles them exactly
as at inference: a random fraction (uniform in [0, pixel_fraction_max]) of single pixels, plus
up to ``regions_max`` rectangles of at most ``region_size`` of each axis.
"""

from __future__ import annotations

import math

import torch
from pydantic import BaseModel, ConfigDict, Field


class AugmentConfig(BaseModel):
    """Augmentation switches and ranges (stored in the bundle's training summary)."""

    model_config = ConfigDict(extra="forbid")
    noise: bool = False
    background_max: float = Field(default=0.2, ge=0)
    counts_min: float = Field(default=5.0, gt=0)
    counts_max: float = Field(default=1000.0, gt=0)
    clean_share: float = Field(default=0.0, ge=0, lt=1)
    mask: bool = False
    pixel_fraction_max: float = Field(default=0.3, ge=0, le=1)
    regions_max: int = Field(default=3, ge=0)
    region_size: float = Field(default=0.3, gt=0, le=1)

    @property
    def active(self) -> bool:
        return self.noise or self.mask


def augment(
    spectra: torch.Tensor, config: AugmentConfig, generator: torch.Generator
) -> torch.Tensor:
    """Augmented copy of spectra (B, nq, nE) (any intensity unit); NaN marks masked pixels."""
    out = spectra.to(torch.float32)
    if config.noise:
        out = _counting_noise(out, config, generator)
    if config.mask:
        out = _mask(out, config, generator)
    return out


def _uniform(n: int, generator: torch.Generator, device: torch.device) -> torch.Tensor:
    return torch.rand(n, generator=generator, device=device)


def _counting_noise(
    x: torch.Tensor, config: AugmentConfig, generator: torch.Generator
) -> torch.Tensor:
    n = len(x)
    peak = torch.nan_to_num(x, nan=0.0).flatten(1).amax(dim=1).clamp_min(1e-12)
    background = config.background_max * _uniform(n, generator, x.device)
    low, high = math.log(config.counts_min), math.log(config.counts_max)
    counts = torch.exp(low + (high - low) * _uniform(n, generator, x.device))
    rate = counts[:, None, None] * (x / peak[:, None, None] + background[:, None, None])
    noisy = torch.poisson(rate.clamp_min(0.0).nan_to_num(0.0), generator=generator)
    out = torch.where(torch.isfinite(x), noisy / counts[:, None, None], x)
    if config.clean_share <= 0:
        return out
    clean = _uniform(n, generator, x.device) < config.clean_share
    return torch.where(clean[:, None, None], x / peak[:, None, None], out)


def _mask(x: torch.Tensor, config: AugmentConfig, generator: torch.Generator) -> torch.Tensor:
    n, nq, n_energy = x.shape
    fraction = config.pixel_fraction_max * _uniform(n, generator, x.device)
    hidden = torch.rand(x.shape, generator=generator, device=x.device) < fraction[:, None, None]
    q_index = torch.arange(nq, device=x.device)
    e_index = torch.arange(n_energy, device=x.device)
    for _ in range(config.regions_max):
        present = _uniform(n, generator, x.device) < 0.5
        q_size = (config.region_size * nq * _uniform(n, generator, x.device)).long()
        e_size = (config.region_size * n_energy * _uniform(n, generator, x.device)).long()
        q_start = ((nq - q_size) * _uniform(n, generator, x.device)).long()
        e_start = ((n_energy - e_size) * _uniform(n, generator, x.device)).long()
        in_q = (q_index >= q_start[:, None]) & (q_index < (q_start + q_size)[:, None])
        in_e = (e_index >= e_start[:, None]) & (e_index < (e_start + e_size)[:, None])
        hidden |= present[:, None, None] & in_q[:, :, None] & in_e[:, None, :]
    return torch.where(hidden, torch.full_like(x, torch.nan), x)
