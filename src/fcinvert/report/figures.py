"""Figures people look at: spectra on a labelled path with dispersions laid over them.

``draw_path_map`` draws every intensity map (simulate, fold, invert, evaluate, single-scan):
one ``MapScale`` (power, log or linear norm with percentile limits), a colour bar with units,
grey for unmeasured pixels, ``Lines`` in contrasting colours with a legend.
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Literal

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np
from matplotlib.lines import Line2D
from matplotlib.patches import Patch

from fcinvert.iohelpers import atomic_path
from fcinvert.physics.material import QPath


@dataclass(frozen=True)
class MapScale:
    """How intensities become colours: ``norm`` "power" (I^γ, γ = ``gamma``: weak optical
    branches show beside the acoustic ones), "log" (at most ``decades`` below the top) or
    "linear"; ``vmin``/``vmax`` in the data's units (None: the ``low``/``high`` percentiles of
    the measured pixels); ``cmap`` any matplotlib colour map."""

    norm: Literal["power", "log", "linear"] = "power"
    vmin: float | None = None
    vmax: float | None = None
    cmap: str = "viridis"
    gamma: float = 0.5
    low: float = 1.0
    high: float = 99.5
    decades: float = 3.0

    def colour_norm(self, intensity: np.ndarray) -> matplotlib.colors.Normalize:
        """The matplotlib norm for ``intensity`` (any shape, NaN = unmeasured)."""
        finite = intensity[np.isfinite(intensity)]
        if self.norm == "log":
            finite = finite[finite > 0]
        if finite.size == 0:
            finite = np.array([1e-3, 1.0])
        high = self.vmax if self.vmax is not None else float(np.percentile(finite, self.high))
        if self.norm == "log":
            floor = high * 10.0**-self.decades
            low = self.vmin if self.vmin is not None else float(np.percentile(finite, self.low))
            low = max(low, floor) if self.vmin is None else low
            return matplotlib.colors.LogNorm(vmin=low, vmax=max(high, 1.01 * low))
        low = self.vmin if self.vmin is not None else float(np.percentile(finite, self.low))
        if self.norm == "power":
            low = max(low, 0.0) if self.vmin is None else low
            return matplotlib.colors.PowerNorm(self.gamma, vmin=low, vmax=max(high, low + 1e-12))
        return matplotlib.colors.Normalize(vmin=low, vmax=max(high, low + 1e-12))


@dataclass(frozen=True)
class Lines:
    """A dispersion to draw over a map: ħω (nq, nb) meV, its legend label and style; band:
    (low, high) (nq, nb) meV shaded around it (a 5–95 % interval)."""

    frequencies: np.ndarray
    label: str
    colour: str = "#ff2d55"
    style: str = "-"
    band: tuple[np.ndarray, np.ndarray] | None = None


#: colours that stand out on viridis and on the grey of unmeasured pixels
REFINED_COLOUR, ML_COLOUR, TRUTH_COLOUR = "#ff2d55", "#00e5ff", "white"
UNMEASURED_GREY = "0.6"


def measured_energy_top(energy: np.ndarray, intensity: np.ndarray) -> float:
    """Top of the energy axis (meV): the upper edge of the highest bin with any measured pixel
    (the whole window when none is)."""
    width = float(energy[1] - energy[0]) if len(energy) > 1 else 1.0
    measured = np.flatnonzero(np.isfinite(intensity).any(axis=0))
    last = measured[-1] if len(measured) else len(energy) - 1
    return float(energy[last] + 0.5 * width)


def draw_path_map(
    axis: plt.Axes,
    path: QPath,
    energy: np.ndarray,
    intensity: np.ndarray,
    lines: Sequence[Lines] = (),
    title: str = "",
    *,
    scale: MapScale | None = None,
    colour_bar: str | None = "intensity (arb. units)",
) -> matplotlib.collections.QuadMesh:
    """I(q, E) (nq, nE) against path distance with dispersions on top; every intensity map of
    fcinvert is drawn here.

    energy: (nE,) meV bin centres; the axis stops at the highest measured energy. Unmeasured
    (NaN) pixels are grey, never a colour of the scale (with a legend entry when there are
    any). colour_bar: its label with units (None: no bar, for panels that share one). Each of
    ``lines`` is drawn in its colour, with its band, and named in the legend. Returns the
    image (for a colour bar shared by several panels drawn with one ``scale``).
    """
    scale = scale or MapScale()
    x = np.arange(len(path.qpoints))
    colours = matplotlib.colormaps[scale.cmap].with_extremes(bad=UNMEASURED_GREY)
    norm = scale.colour_norm(intensity)
    shown = intensity
    if isinstance(norm, matplotlib.colors.LogNorm):  # measured zeros: the bottom colour
        shown = np.where(np.isfinite(intensity), np.maximum(intensity, norm.vmin), np.nan)
    mesh = axis.pcolormesh(
        x,
        energy,
        np.ma.masked_invalid(shown.T),
        shading="nearest",
        cmap=colours,
        norm=norm,
        rasterized=True,
    )
    if colour_bar is not None:
        shape = {"power": f", as $I^{{{scale.gamma:g}}}$", "log": ", log scale", "linear": ""}
        label = colour_bar + shape[scale.norm]
        axis.figure.colorbar(mesh, ax=axis, label=label, pad=0.01)
    handles = []
    for line in lines:
        for start, stop in _pieces(path, len(x)):
            if line.band is not None:
                for low_line, high_line in zip(line.band[0].T, line.band[1].T, strict=True):
                    axis.fill_between(
                        x[start:stop],
                        low_line[start:stop],
                        high_line[start:stop],
                        color=line.colour,
                        alpha=0.2,
                        lw=0,
                    )
            axis.plot(
                x[start:stop],
                line.frequencies[start:stop],
                color=line.colour,
                ls=line.style,
                lw=0.8,
            )
        handles.append(Line2D([], [], color=line.colour, ls=line.style, lw=1.2, label=line.label))
    if not np.all(np.isfinite(intensity)):
        handles.append(Patch(color=UNMEASURED_GREY, label="unmeasured"))
    if handles:
        legend = axis.legend(handles=handles, loc="upper right", fontsize=7, framealpha=0.7)
        legend.get_frame().set_facecolor("0.2")
        for text in legend.get_texts():
            text.set_color("white")
    ticks, names = [], []
    for index, label in path.labels:
        if index in path.breaks:  # the two ends of a break share one tick: "U|K"
            names[-1] += f"|{label}"
            continue
        ticks.append(index)
        names.append(label)
    axis.set_xticks(ticks, _staggered(axis, ticks, names, len(x)))
    for tick in ticks:
        axis.axvline(tick, color="0.85", lw=0.4)
    axis.set_ylim(float(energy[0]), measured_energy_top(energy, intensity))
    axis.set_ylabel("Energy transfer (meV)")
    axis.set_title(title)
    return mesh


def _staggered(axis: plt.Axes, ticks: list[int], names: list[str], n: int) -> list[str]:
    """Tick labels, each one that would touch its left neighbour at this axis width moved
    down a line (X and U|K on a small panel)."""
    points_per_index = axis.get_position().width * axis.figure.get_figwidth() * 72.0 / max(n, 1)
    size = matplotlib.rcParams["xtick.labelsize"]
    size = matplotlib.font_manager.FontProperties(size=size).get_size_in_points()
    shown, lowered = list(names), False
    for k in range(1, len(ticks)):
        room = (ticks[k] - ticks[k - 1]) * points_per_index
        needed = 0.65 * size * 0.5 * (len(names[k - 1]) + len(names[k])) + 2.0
        lowered = room < needed and not lowered
        if lowered:
            shown[k] = "\n" + names[k]
    return shown


def shared_scale(images: np.ndarray, scale: MapScale | None = None) -> MapScale:
    """``scale`` with its limits fixed over all ``images`` (any shape), so that panels drawn
    with it can share one colour bar."""
    scale = scale or MapScale()
    norm = scale.colour_norm(np.asarray(images))
    return replace(scale, vmin=float(norm.vmin), vmax=float(norm.vmax))


#: report figures are at most this wide (inches at 150 dpi: shown at ≥ 80 % in the 1200-px
#: column of a report page, so 7-pt text stays legible) with at most MAX_COLUMNS panels a row
PAGE_WIDTH = 10.0
MAX_COLUMNS = 4


def panel_grid(
    n: int, height: float = 2.4, columns: int = MAX_COLUMNS
) -> tuple[plt.Figure, list[plt.Axes]]:
    """A page-wide figure of ``n`` panels, ``columns`` (≤ MAX_COLUMNS) a row, each ``height``
    inches tall; unused cells of the last row are hidden."""
    columns = max(1, min(columns, MAX_COLUMNS, n))
    rows = -(-n // columns)
    figure, axes = plt.subplots(rows, columns, figsize=(PAGE_WIDTH, height * rows), squeeze=False)
    flat = list(axes.ravel())
    for axis in flat[n:]:
        axis.set_visible(False)
    return figure, flat[:n]


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
    scale: MapScale | None = None,
    units: str = "intensity (arb. units)",
) -> None:
    """One labelled I(q, E) map with its dispersion (legend: "calculated"), written to ``out``
    (PNG or SVG)."""
    figure, axis = plt.subplots(figsize=(8, 4))
    lines = [] if frequencies is None else [Lines(frequencies, "calculated ħω")]
    draw_path_map(axis, path, energy, intensity, lines, title, scale=scale, colour_bar=units)
    save_figure(figure, out)
