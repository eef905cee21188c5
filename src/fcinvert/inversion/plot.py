"""The inversion figure: the data with the inferred dispersion and its band, and the fit."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from fcinvert.inversion.invert import reciprocal_basis
from fcinvert.inversion.pipeline import Inference
from fcinvert.inversion.resample import default_tolerance
from fcinvert.physics.material import Material, QPath
from fcinvert.report.figures import draw_path_map, plt, save_figure


def grid_path(material: Material, qpoints: np.ndarray) -> QPath:
    """A labelled QPath for q-points (nq, 3): the material's own path when they are its
    points, else each of the material's labels on the nearest of them (within half the
    spacing) and breaks where consecutive points jump."""
    path = material.path
    if qpoints.shape == path.qpoints.shape and np.allclose(qpoints, path.qpoints, atol=1e-8):
        return path
    reciprocal = reciprocal_basis(material)
    cartesian = qpoints @ reciprocal
    steps = np.linalg.norm(np.diff(cartesian, axis=0), axis=1)
    jump = steps > 3.0 * np.median(steps) if len(steps) else np.zeros(0, dtype=bool)
    breaks = [int(i) + 1 for i in np.flatnonzero(jump)]
    distances = np.concatenate([[0.0], np.cumsum(np.where(jump, 0.0, steps))])
    tolerance = default_tolerance(qpoints, reciprocal)
    labels: dict[int, str] = {}
    for index, label in path.labels:
        gaps = np.linalg.norm(cartesian - path.qpoints[index] @ reciprocal, axis=1)
        nearest = int(gaps.argmin())
        if gaps[nearest] <= tolerance and nearest not in labels:
            labels[nearest] = label
    return QPath(qpoints, distances, sorted(labels.items()), breaks)


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
