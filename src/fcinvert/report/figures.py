"""Figures people look at: spectra on a labelled path with dispersions laid over them."""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import itertools

import matplotlib.pyplot as plt
import numpy as np

from fcinvert.iohelpers import atomic_path
from fcinvert.physics.material import QPath


def draw_path_map(
    axis: plt.Axes,
    path: QPath,
    energy: np.ndarray,
    intensity: np.ndarray,
    frequencies: np.ndarray | None = None,
    title: str = "",
) -> None:
    """I(q, E) (nq, nE) as an image against path distance, optional ħω (nq, nb) meV on top."""
    x = np.arange(len(path.qpoints))
    shown = np.ma.masked_invalid(intensity.T)
    axis.pcolormesh(x, energy, shown, shading="nearest", cmap="viridis", rasterized=True)
    if frequencies is not None:
        for start, stop in _pieces(path, len(x)):
            axis.plot(x[start:stop], frequencies[start:stop], color="white", lw=0.7, alpha=0.8)
    ticks, names = [], []
    for index, label in path.labels:
        if index in path.breaks:  # the two ends of a break share one tick: "U|K"
            names[-1] += f"|{label}"
            continue
        ticks.append(index)
        names.append(label)
    axis.set_xticks(ticks, names)
    for tick in ticks:
        axis.axvline(tick, color="0.8", lw=0.5)
    axis.set_ylim(energy[0], energy[-1])
    axis.set_ylabel("Energy transfer (meV)")
    axis.set_title(title)


def _pieces(path: QPath, n: int) -> list[tuple[int, int]]:
    starts = [0, *path.breaks, n]
    return list(itertools.pairwise(starts))


def save_figure(figure: plt.Figure, path: str | Path) -> None:
    """Save atomically (format from the suffix) and close."""
    path = Path(path)
    with atomic_path(path) as temporary:
        figure.savefig(temporary, dpi=150, bbox_inches="tight", format=path.suffix.lstrip("."))
    plt.close(figure)


def spectrum_figure(
    path: QPath,
    energy: np.ndarray,
    intensity: np.ndarray,
    frequencies: np.ndarray | None,
    title: str,
    out: str | Path,
) -> None:
    """One labelled I(q, E) map with its dispersion, written to ``out`` (PNG or SVG)."""
    figure, axis = plt.subplots(figsize=(8, 4))
    draw_path_map(axis, path, energy, intensity, frequencies, title)
    save_figure(figure, out)
