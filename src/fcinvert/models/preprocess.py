"""What a network sees: the one input rule for training and inference, and the target scaler.

A bundle records its rule (``BundleConfig.input_rule``); training, evaluation and
``fcinvert invert`` all call ``prepare_input`` with it, so a model always sees what it was
trained on. Bundles written before rules were named have no such entry and keep ``minmax``.

``minmax`` (the paper's clean spectra):
1. each spectrum (nq, nE) is min–max scaled to [0, 1] over its *measured* (finite) pixels, so
   that absolute intensity units never matter (a measurement has arbitrary counts);
2. unmeasured pixels (NaN) then become 0, the value of "no phonon here" after scaling;
3. optionally (``mask_channel``) a second input channel holds 1 where a pixel was measured and 0
   where it was not, so a network trained with masking can tell "no intensity" from "not seen".
A spectrum with no measured pixel, or a flat one (max = min), scales to all zeros.

``sqrt`` and ``sqrt-column`` (measurement-like spectra: counts, background, gaps):
1. negative pixels (background-subtracted noise) become 0, then the square root is taken —
   it stabilises Poisson noise and compresses the branch-intensity contrast (1/ω, Bose,
   |Q·e|²) that varies most between experiments;
2. ``sqrt`` divides by the spectrum's largest measured value; ``sqrt-column`` divides every
   q column by its own largest measured value, so which zones a column was folded from, the
   Debye–Waller fall-off and the acoustic divergence at zone centres no longer set its scale
   (a column with nothing measured, or all zero, stays 0);
3. unmeasured pixels become 0; the mask channel (as above) tells them from "no intensity".
Both are invariant to the overall intensity scale (not to an offset: the background stays).

Targets: the selected θ (eV/Å²) are standardised per parameter, z = (θ − mean) / std, with the
mean and std of the training split stored in the model bundle.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import numpy as np
import torch

#: the input rules a bundle can name; ``minmax`` is what bundles without a name used
INPUT_RULES = ("minmax", "sqrt", "sqrt-column")
InputRule = Literal["minmax", "sqrt", "sqrt-column"]
#: the rule training picks for measurement-like (realistic) datasets when asked for "auto"
REALISTIC_RULE: InputRule = "sqrt-column"


def prepare_input(
    spectra: torch.Tensor, mask_channel: bool, rule: InputRule = "minmax"
) -> torch.Tensor:
    """Network input (B, C, nq, nE) float32 from spectra (B, nq, nE) that may contain NaN.

    C is 2 with ``mask_channel`` (scaled intensity, measured mask), else 1. ``rule`` is one of
    INPUT_RULES (see the module docstring).
    """
    spectra = spectra.to(torch.float32)
    measured = torch.isfinite(spectra)
    if rule == "minmax":
        scaled = _minmax(spectra, measured)
    elif rule in ("sqrt", "sqrt-column"):
        root = torch.sqrt(torch.where(measured, spectra, torch.zeros_like(spectra)).clamp_min(0))
        root = torch.nan_to_num(root, nan=0.0, posinf=0.0)
        high = (
            root.amax(dim=2, keepdim=True)
            if rule == "sqrt-column"
            else root.amax(dim=(1, 2), keepdim=True)
        )
        scale = torch.where(high > 0, 1.0 / high.where(high > 0, torch.ones_like(high)), 0.0)
        scaled = root * scale
    else:
        raise ValueError(f"unknown input rule '{rule}' (known: {', '.join(INPUT_RULES)})")
    if mask_channel:
        return torch.stack([scaled, measured.to(torch.float32)], dim=1)
    return scaled[:, None]


def _minmax(spectra: torch.Tensor, measured: torch.Tensor) -> torch.Tensor:
    """(B, nq, nE) min–max scaled over the measured pixels, unmeasured 0."""
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
    return torch.where(measured, scaled, torch.zeros_like(scaled))


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

    def to_physical(self, z: np.ndarray) -> np.ndarray:
        """Standardised z (..., K) → θ (..., K) eV/Å² (float64)."""
        return np.asarray(z, dtype=float) * self.std + self.mean
