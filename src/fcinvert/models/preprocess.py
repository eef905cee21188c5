"""What a network sees: the one input rule for training and inference, and the target scaler.

Input rule (the same in training, evaluation and ``fcinvert invert``):
1. each spectrum (nq, nE) is min–max scaled to [0, 1] over its *measured* (finite) pixels, so
   that absolute intensity units never matter (a measurement has arbitrary counts);
2. unmeasured pixels (NaN) then become 0, the value of "no phonon here" after scaling;
3. optionally (``mask_channel``) a second input channel holds 1 where a pixel was measured and 0
   where it was not, so a network trained with masking can tell "no intensity" from "not seen".
A spectrum with no measured pixel, or a flat one (max = min), scales to all zeros.

Targets: the selected θ (eV/Å²) are standardised per parameter, z = (θ − mean) / std, with the
mean and std of the training split stored in the model bundle.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch


def prepare_input(spectra: torch.Tensor, mask_channel: bool) -> torch.Tensor:
    """Network input (B, C, nq, nE) float32 from spectra (B, nq, nE) that may contain NaN.

    C is 2 with ``mask_channel`` (scaled intensity, measured mask), else 1.
    """
    spectra = spectra.to(torch.float32)
    measured = torch.isfinite(spectra)
    flat = spectra.flatten(1)
    finite = measured.flatten(1)
    high = torch.where(finite, flat, torch.full_like(flat, -torch.inf)).amax(dim=1)
    low = torch.where(finite, flat, torch.full_like(flat, torch.inf)).amin(dim=1)
    span = high - low
    usable = torch.isfinite(span) & (span > 0)
    low = torch.where(usable, low, torch.zeros_like(low))
    scale = torch.where(
        usable, 1.0 / span.where(usable, torch.ones_like(span)), torch.zeros_like(span)
    )
    scaled = (spectra - low[:, None, None]) * scale[:, None, None]
    scaled = torch.where(measured, scaled, torch.zeros_like(scaled))
    if mask_channel:
        return torch.stack([scaled, measured.to(torch.float32)], dim=1)
    return scaled[:, None]


def input_channels(mask_channel: bool) -> int:
    """Number of input channels the input rule produces."""
    return 2 if mask_channel else 1


@dataclass(frozen=True)
class TargetScaler:
    """Per-parameter standardisation of the selected θ. mean, std: (K,) eV/Å²."""

    mean: np.ndarray
    std: np.ndarray

    @classmethod
    def fit(cls, theta: np.ndarray) -> TargetScaler:
        """Scaler from training targets (N, K) eV/Å²; a constant column gets std 1."""
        theta = np.asarray(theta, dtype=float)
        std = theta.std(axis=0)
        return cls(theta.mean(axis=0), np.where(std > 0, std, 1.0))

    def to_standard(self, theta: torch.Tensor) -> torch.Tensor:
        """θ (..., K) eV/Å² → standardised z (..., K)."""
        mean = torch.as_tensor(self.mean, dtype=theta.dtype, device=theta.device)
        std = torch.as_tensor(self.std, dtype=theta.dtype, device=theta.device)
        return (theta - mean) / std

    def to_physical(self, z: np.ndarray) -> np.ndarray:
        """Standardised z (..., K) → θ (..., K) eV/Å² (float64)."""
        return np.asarray(z, dtype=float) * self.std + self.mean
