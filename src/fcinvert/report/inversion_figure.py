"""The inversion figure: the data with the inferred dispersion and its band, and the fit."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from fcinvert.inversion.pipeline import Inference
from fcinvert.inversion.resample import grid_path
from fcinvert.report.figures import draw_path_map, plt, save_figure


def inversion_figure(
    inference: Inference,
    intensity: np.ndarray,
    energy: np.ndarray,
    out: str | Path,
    title: str = "",
) -> None:
    """On the input's own grid (intensity (nq, nE), energy (nE,) meV, log colour, unmeasured
    pixels grey): the data with the reported dispersion and its 5–95 % band (and the ML
    estimate, dashed, when refined), then the refined model's fit of the data; the energy axis
    stops 20 % above the band's top when the data reach higher. Written to ``out`` (PNG or
    SVG)."""
    path = grid_path(inference.material, inference.qpoints)
    search = inference.search
    rows = 2 if search is not None else 1
    figure, axes = plt.subplots(rows, 1, figsize=(9, 3.6 * rows), squeeze=False)
    label = "refined" if search is not None else "ML estimate"
    draw_path_map(
        axes[0, 0],
        path,
        energy,
        intensity,
        inference.frequencies,
        f"data with the {label} dispersion (shaded: 5–95 % band)",
        log=True,
        colour_bar="intensity (data units, log)",
        band=(inference.band_low, inference.band_high),
        line_colour="tab:red",
    )
    if search is not None and inference.ml is not None:
        x = np.arange(len(inference.qpoints))
        axes[0, 0].plot(x, inference.ml.frequencies, color="white", lw=0.6, ls="--")
        axes[0, 0].plot([], [], color="white", lw=0.6, ls="--", label="ML estimate")
        axes[0, 0].plot([], [], color="tab:red", lw=0.8, label="refined")
        axes[0, 0].legend(loc="upper right", fontsize=8, framealpha=0.6)
    if search is not None:
        draw_path_map(
            axes[1, 0],
            path,
            energy,
            search.best.fitted,
            None,
            f"refined model's fit (misfit {search.best.misfit:.3g})",
            log=True,
            colour_bar="intensity (data units, log)",
        )
    top = min(float(energy[-1]), 1.2 * float(np.max(inference.band_high)))
    for axis in axes[:, 0]:
        axis.set_ylim(energy[0], max(top, float(energy[0]) + 1.0))
    if title:
        figure.suptitle(title)
    figure.tight_layout()
    save_figure(figure, out)
