"""The inversion figure: input, VAE reconstruction, inferred dispersion over the data."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from fcinvert.inversion.invert import InversionResult, reciprocal_basis
from fcinvert.inversion.resample import default_tolerance
from fcinvert.physics.dynamics import dynamics_basis
from fcinvert.physics.material import Material, QPath
from fcinvert.report.figures import draw_path_map, plt, save_figure


def grid_path(material: Material, qpoints: np.ndarray) -> QPath:
    """A labelled QPath for a model's q-points (nq, 3): the material's own path when they are
    its points, else each of the material's labels on the nearest of them (within half the
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


def inversion_figure(result: InversionResult, out: str | Path, title: str = "") -> None:
    """Panels on the model's grid: the input; the VAE reconstruction (VAE models); the input
    with the dispersion of the inferred θ laid over it. Written to ``out`` (PNG or SVG)."""
    bundle = result.bundle
    path = grid_path(result.material, bundle.qpoints)
    energy = bundle.energy.centres
    frequencies = dynamics_basis(result.fcspace, bundle.qpoints).frequencies(result.theta)
    panels = [("input (on the model grid)", result.image, None)]
    if result.reconstruction is not None:
        panels.append(("VAE reconstruction", result.reconstruction, None))
    panels.append(("inferred dispersion over the input", result.image, frequencies))
    figure, axes = plt.subplots(len(panels), 1, figsize=(8, 3.2 * len(panels)), squeeze=False)
    for axis, (name, image, lines) in zip(axes[:, 0], panels, strict=True):
        draw_path_map(axis, path, energy, image, lines, name)
    if title:
        figure.suptitle(title)
    figure.tight_layout()
    save_figure(figure, out)
