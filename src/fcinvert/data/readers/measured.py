"""What the readers return: a 4-D histogram (``Volume``) or free points (``Points``).

Q is in reciprocal lattice units of the conventional cell (Mantid's H, K, L), energy in meV;
unmeasured pixels are non-finite, zero-normalised or masked, never zero intensity.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from fcinvert.errors import FcinvertError


@dataclass
class Volume:
    """I(Q, E) on a regular 4-D grid; Q axes first, energy last.

    signal: (n0, n1, n2, nE) float64. Without ``normalisation`` it is a normalised intensity per
        voxel; with it, the summed data whose ratio to the normalisation is the intensity
        (MDNorm's OutputDataWorkspace / OutputNormalizationWorkspace pair).
    variance: same shape (Mantid's errors_squared) or None.
    normalisation: same shape or None; 0 means not measured.
    mask: same shape, bool, True where Mantid's mask flag is set (or None).
    edges: four bin-edge arrays: coordinates along the three Q axes, then energy (meV).
    projection: (3, 3); column i is the conventional (h, k, l) of one unit along Q axis i, so
        hkl = projection @ x.
    names: the four axis names (e.g. "[H,H,0]", "[0,0,L]", "[H,-H,0]", "DeltaE").
    ub: (3, 3) Mantid UB matrix (1/Å, without 2π) or None when the file holds no sample.
    """

    signal: np.ndarray
    edges: list[np.ndarray]
    projection: np.ndarray
    names: list[str]
    variance: np.ndarray | None = None
    normalisation: np.ndarray | None = None
    mask: np.ndarray | None = None
    ub: np.ndarray | None = None

    @property
    def shape(self) -> tuple[int, int, int, int]:
        return tuple(len(e) - 1 for e in self.edges)  # type: ignore[return-value]

    @property
    def measured(self) -> np.ndarray:
        """(n0, n1, n2, nE) bool: finite signal, normalisation > 0 and not masked."""
        good = np.isfinite(self.signal)
        if self.normalisation is not None:
            good &= np.isfinite(self.normalisation) & (self.normalisation > 0)
        if self.mask is not None:
            good &= ~self.mask
        return good

    def q_centres(self) -> np.ndarray:
        """(n0 n1 n2, 3) conventional hkl of every Q voxel centre, C order over (n0, n1, n2)."""
        centres = [0.5 * (e[1:] + e[:-1]) for e in self.edges[:3]]
        grid = np.stack(np.meshgrid(*centres, indexing="ij"), -1).reshape(-1, 3)
        return grid @ self.projection.T


@dataclass
class Points:
    """I(Q, E) at scattered points (one detector and energy bin each, or one text row each).

    hkl: (M, 3) conventional r.l.u.; energy: (M,) meV; signal: (M,); variance: (M,) or None;
    weight: (M,) normalisation of each point (1 for an already normalised intensity).
    """

    hkl: np.ndarray
    energy: np.ndarray
    signal: np.ndarray
    variance: np.ndarray | None
    weight: np.ndarray

    @property
    def measured(self) -> np.ndarray:
        return np.isfinite(self.signal) & np.isfinite(self.weight) & (self.weight > 0)


def check_measured(path: str | Path, measured: np.ndarray) -> None:
    if not np.any(measured):
        raise FcinvertError(f"{path}: nothing was measured (every pixel is NaN, masked or norm 0)")
