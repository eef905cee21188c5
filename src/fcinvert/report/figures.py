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
    *,
    log: bool = False,
    colour_bar: str | None = None,
    band: tuple[np.ndarray, np.ndarray] | None = None,
    line_colour: str = "white",
) -> None:
    """I(q, E) (nq, nE) as an image against path distance, optional ħω (nq, nb) meV on top.

    log: a logarithmic colour scale (from the 2nd percentile of the positive pixels, at most
    three decades below the brightest), so weak
    optical branches show beside the acoustic ones; unmeasured (NaN) pixels are grey, never a
    colour of the scale. colour_bar: its label (None: no colour bar). band: (low, high) (nq, nb)
    meV shaded around the lines.
    """
    x = np.arange(len(path.qpoints))
    shown = np.ma.masked_invalid(intensity.T)
    colours = matplotlib.colormaps["viridis"].with_extremes(bad="0.55")
    norm = None
    positive = intensity[np.isfinite(intensity) & (intensity > 0)]
    if log and positive.size:
        low = max(float(np.percentile(positive, 2.0)), 1e-3 * float(np.percentile(positive, 99.9)))
        norm = matplotlib.colors.LogNorm(vmin=low, vmax=max(float(positive.max()), 1.01 * low))
        clipped = np.where(np.isfinite(intensity), np.maximum(intensity, low), np.nan)
        shown = np.ma.masked_invalid(clipped.T)
    mesh = axis.pcolormesh(
        x, energy, shown, shading="nearest", cmap=colours, norm=norm, rasterized=True
    )
    if colour_bar is not None:
        axis.figure.colorbar(mesh, ax=axis, label=colour_bar, pad=0.01)
    for start, stop in _pieces(path, len(x)):
        if band is not None:
            for low_line, high_line in zip(band[0].T, band[1].T, strict=True):
                axis.fill_between(
                    x[start:stop],
                    low_line[start:stop],
                    high_line[start:stop],
                    color=line_colour,
                    alpha=0.35,
                    lw=0,
                )
        if frequencies is not None:
            axis.plot(x[start:stop], frequencies[start:stop], color=line_colour, lw=0.8)
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
