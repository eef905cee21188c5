"""The inversion figure: the data with the inferred dispersion and its band, and the fit."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from fcinvert.inversion.pipeline import Inference
from fcinvert.inversion.resample import grid_path
from fcinvert.report.figures import (
    ML_COLOUR,
    REFINED_COLOUR,
    TRUTH_COLOUR,
    Lines,
    MapScale,
    draw_path_map,
    plt,
    save_figure,
)


def inversion_figure(
    inference: Inference,
    intensity: np.ndarray,
    energy: np.ndarray,
    out: str | Path,
    title: str = "",
    scale: MapScale | None = None,
    truth: np.ndarray | None = None,
) -> None:
    """On the input's own grid (intensity (nq, nE), energy (nE,) meV): the data with the
    reported dispersion and its 5–95 % band, the ML estimate beside the refined one when there
    are both, and ``truth`` (nq, nb) meV when the input carries it; then the refined model's
    fit of the data. Written to ``out`` (PNG or SVG)."""
    path = grid_path(inference.material, inference.qpoints)
    search = inference.search
    rows = 2 if search is not None else 1
    figure, axes = plt.subplots(rows, 1, figsize=(9, 3.8 * rows), squeeze=False)
    band = (inference.band_low, inference.band_high)
    lines = []
    if truth is not None and truth.shape == inference.frequencies.shape:
        lines.append(Lines(truth, "truth (input file)", TRUTH_COLOUR, ":"))
    if search is not None and inference.ml is not None:
        lines.append(Lines(inference.ml.frequencies, "ML estimate", ML_COLOUR, "--"))
    label = "refined (5–95 % band)" if search is not None else "ML estimate (5–95 % band)"
    colour = REFINED_COLOUR if search is not None else ML_COLOUR
    lines.append(Lines(inference.frequencies, label, colour, "-", band))
    draw_path_map(
        axes[0, 0],
        path,
        energy,
        intensity,
        lines,
        "data with the inferred dispersion",
        scale=scale,
        colour_bar="intensity (data units)",
    )
    if search is not None:
        draw_path_map(
            axes[1, 0],
            path,
            energy,
            search.best.fitted,
            [],
            f"refined model's fit (misfit {search.best.misfit:.3g})",
            scale=scale,
            colour_bar="intensity (data units)",
        )
    if title:
        figure.suptitle(title)
    figure.tight_layout()
    save_figure(figure, out)
