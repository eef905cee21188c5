"""Figures of an evaluation report (the paper's figures 2, 3, 5 and 6), each as PNG and SVG.

Every function draws from plain arrays and writes ``<stem>.png`` and ``<stem>.svg``. Spectra
are drawn with ``draw_path_map`` on the model's grid (path labels from ``grid_path``); scattered
points and images are rasterised inside the SVG so that it stays small. Colours follow the
paper: VAE blue, ResNet green.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
from matplotlib.gridspec import GridSpec

from fcinvert.analysis.latent import CrossDomain, LatentRay, LatentSummary
from fcinvert.physics.material import QPath
from fcinvert.report.figures import (
    MAX_COLUMNS,
    PAGE_WIDTH,
    draw_path_map,
    panel_grid,
    plt,
    save_figure,
    shared_scale,
)

COLOURS = {"vae": "tab:blue", "resnet": "tab:green"}
OTHER_COLOURS = ("tab:orange", "tab:purple", "tab:red", "tab:brown")
#: one colour per measured spectrum on the cross-domain map (named in its legend)
MEASURED_COLOURS = ("tab:red", "tab:green", "tab:cyan", "tab:pink", "tab:olive", "tab:brown")


def save_both(figure: plt.Figure, stem: str | Path) -> None:
    """Write ``stem``.svg and ``stem``.png (atomically) and close the figure."""
    save_figure(figure, f"{stem}.svg")
    save_figure(figure, f"{stem}.png")


def model_colours(architectures: dict[str, str]) -> dict[str, str]:
    """Colour per model label: the first VAE blue, the first ResNet green, others in turn."""
    colours: dict[str, str] = {}
    spare = iter(OTHER_COLOURS * len(architectures))
    for label, architecture in architectures.items():
        wanted = COLOURS.get(architecture)
        colours[label] = wanted if wanted not in colours.values() else next(spare)
    return colours


def r2_bars(
    fc: list[str],
    clean: dict[str, np.ndarray],
    noisy: dict[str, np.ndarray],
    architectures: dict[str, str],
    stem: str | Path,
) -> None:
    """Bars: R² (K,) per FC on clean spectra for each model; circles: R² (K,) with noise."""
    colours = model_colours(architectures)
    values = np.concatenate([*clean.values(), *noisy.values()])
    finite = values[np.isfinite(values)]
    bottom = max(-1.0, min(0.0, finite.min() if len(finite) else 0.0) - 0.05)
    x = np.arange(len(fc))
    width = 0.8 / len(clean)
    figure, axis = plt.subplots(figsize=(1.0 + 0.9 * len(fc), 3.6))
    for n, label in enumerate(clean):
        offset = (n - (len(clean) - 1) / 2) * width
        shown = np.clip(np.nan_to_num(clean[label], nan=bottom), bottom, 1.0)
        axis.bar(x + offset, shown - bottom, width, bottom, color=colours[label], label=label)
        circles = np.clip(np.nan_to_num(noisy[label], nan=bottom), bottom, 1.0)
        axis.scatter(x + offset, circles, s=30, facecolor="white", edgecolor="black", zorder=3)
    axis.scatter([], [], s=30, facecolor="white", edgecolor="black", label="with noise")
    axis.axhline(0.0, color="0.3", lw=0.6)
    axis.axhline(0.9, color="0.6", lw=0.6, ls=":")
    axis.set_xticks(x, fc)
    axis.set_ylim(bottom, 1.05)
    axis.set_ylabel("R²")
    axis.legend(loc="upper left", bbox_to_anchor=(1.0, 1.0), fontsize=8, frameon=False)
    save_both(figure, stem)


def parity(
    fc: list[str],
    truth: np.ndarray,
    predictions: dict[str, np.ndarray],
    scores: dict[str, tuple[np.ndarray, np.ndarray]],
    stem: str | Path,
) -> None:
    """Predicted against true θ (N, K) eV/Å², the K panels of each model in rows of at most
    four (page width); scores: label → (R², MAE)."""
    k = len(fc)
    figure, axes = panel_grid(k * len(predictions), height=2.6)
    for row, (label, predicted) in enumerate(predictions.items()):
        r2, mae = scores[label]
        for column in range(k):
            axis = axes[row * k + column]
            low, high = truth[:, column].min(), truth[:, column].max()
            axis.scatter(truth[:, column], predicted[:, column], s=2, alpha=0.4, rasterized=True)
            axis.plot([low, high], [low, high], color="black", lw=0.7)
            axis.set_title(
                f"{label}: {fc[column]}\nR²={r2[column]:.3f}, MAE={mae[column]:.2g}", fontsize=8
            )
            axis.tick_params(labelsize=7)
            axis.set_xlabel(f"true {fc[column]} (eV/Å²)", fontsize=8)
            if column % MAX_COLUMNS == 0:
                axis.set_ylabel("predicted (eV/Å²)", fontsize=8)
    figure.tight_layout()
    save_both(figure, stem)


def noisy_examples(
    path: QPath, energy: np.ndarray, examples: np.ndarray, noise: dict, stem: str | Path
) -> None:
    """One spectrum under every setting: examples (nB, nP, nq, nE); noise: the metrics' "noise"
    (backgrounds, counts, snr)."""
    n_b, n_p = examples.shape[:2]
    figure, axes = panel_grid(n_b * n_p, height=2.2)
    scale = shared_scale(examples)
    mesh = None
    for i in range(n_b):
        for j in range(n_p):
            axis = axes[i * n_p + j]
            title = (
                f"B={noise['backgrounds'][i]:g}, P={noise['counts'][j]:g}, "
                f"SNR={noise['snr'][i][j]:.1f}"
            )
            mesh = draw_path_map(
                axis, path, energy, examples[i, j], title=title, scale=scale, colour_bar=None
            )
            axis.title.set_fontsize(8)
            axis.tick_params(labelsize=7)
            axis.set_ylabel("E (meV)" if (i * n_p + j) % MAX_COLUMNS == 0 else "", fontsize=8)
    figure.tight_layout()
    figure.colorbar(mesh, ax=axes, shrink=0.5, label="intensity (input units, power scale)")
    save_both(figure, stem)


def r2_heatmaps(
    fc: list[str],
    noise: dict,
    r2: dict[str, np.ndarray],
    architectures: dict[str, str],
    stem: str | Path,
) -> None:
    """R² (nB, nP, K) per model over the grid, clipped to [0, 1]; the SNR (nB, nP) at the end of
    the first row."""
    k = len(fc)
    backgrounds = [f"{b:g}" for b in noise["backgrounds"]]
    counts = [f"{p:g}" for p in noise["counts"]]
    figure, axes = panel_grid(k * len(r2) + 1, height=2.5)
    image = None
    for row, (label, values) in enumerate(r2.items()):
        for column in range(k):
            axis = axes[row * k + column]
            shown = np.clip(np.nan_to_num(values[:, :, column], nan=0.0), 0.0, 1.0)
            image = _heatmap(axis, shown, "{:.2f}", 0.0, 1.0, "viridis")
            axis.set_title(f"{label}: {fc[column]}", fontsize=8)
            _grid_ticks(axis, backgrounds, counts, column % MAX_COLUMNS == 0, True)
    snr = np.array(noise["snr"], dtype=float)
    _heatmap(axes[-1], snr, "{:.1f}", snr.min(), snr.max(), "magma")
    axes[-1].set_title("SNR of each setting", fontsize=8)
    _grid_ticks(axes[-1], backgrounds, counts, True, True)
    figure.tight_layout()
    if image is not None:
        figure.colorbar(image, ax=axes[:-1], shrink=0.6, label="R² (clipped to [0, 1])")
    save_both(figure, stem)


def _heatmap(axis, values: np.ndarray, fmt: str, low: float, high: float, cmap: str):
    image = axis.imshow(values, vmin=low, vmax=high, cmap=cmap, origin="upper", aspect="auto")
    middle = 0.5 * (low + high)
    for (i, j), value in np.ndenumerate(values):
        colour = "black" if value > middle else "white"
        axis.text(j, i, fmt.format(value), ha="center", va="center", fontsize=6.5, color=colour)
    return image


def _grid_ticks(axis, backgrounds: list[str], counts: list[str], left: bool, low: bool) -> None:
    axis.set_xticks(range(len(counts)), counts, fontsize=7)
    axis.set_yticks(range(len(backgrounds)), backgrounds, fontsize=7)
    if left:
        axis.set_ylabel("background B", fontsize=8)
    if low:
        axis.set_xlabel("peak counts P", fontsize=8)


def reconstructions(
    path: QPath,
    energy: np.ndarray,
    indices: list[int],
    inputs: np.ndarray,
    outputs: np.ndarray,
    stem: str | Path,
) -> None:
    """Inputs (n, nq, nE) in input-rule units beside their VAE reconstructions (n, nq, nE)."""
    n = len(indices)
    figure, axes = plt.subplots(n, 2, figsize=(PAGE_WIDTH, 2.6 * n), squeeze=False)
    for row, index in enumerate(indices):
        error = float(((outputs[row] - inputs[row]) ** 2).mean())
        draw_path_map(axes[row, 0], path, energy, inputs[row], title=f"test spectrum {index}")
        draw_path_map(
            axes[row, 1], path, energy, outputs[row], title=f"reconstruction (MSE {error:.1e})"
        )
    figure.tight_layout()
    save_both(figure, stem)


def latent_statistics(summary: LatentSummary, stem: str | Path) -> None:
    """μ and log σ² (N, L) per latent dimension: all values, mean ± std, the N(0, 1) prior."""
    dimensions = np.arange(summary.mu.shape[1])
    jitter = np.random.default_rng(0).uniform(-0.25, 0.25, size=summary.mu.shape)
    width = min(PAGE_WIDTH, max(6.0, 0.45 * len(dimensions)))
    figure, axes = plt.subplots(2, 1, figsize=(width, 6), sharex=True)
    panels = ((summary.mu, "μ", (0.0, -1.0, 1.0)), (summary.log_var, "log σ²", (0.0,)))
    for axis, (values, name, prior) in zip(axes, panels, strict=True):
        for d in np.flatnonzero(summary.active):
            axis.axvspan(d - 0.45, d + 0.45, color="tab:blue", alpha=0.08, lw=0)
        axis.scatter(
            dimensions[None, :] + jitter, values, s=1, alpha=0.25, color="tab:blue", rasterized=True
        )
        axis.errorbar(
            dimensions, values.mean(axis=0), values.std(axis=0), fmt="o", color="black", ms=3
        )
        for level in prior:
            axis.axhline(level, color="0.3", ls="--", lw=0.8)
        axis.set_ylabel(name)
    axes[0].set_title(f"{summary.n_active} of {len(dimensions)} dimensions active (shaded)")
    axes[1].set_xticks(dimensions)
    axes[1].set_xlabel("latent dimension")
    figure.tight_layout()
    save_both(figure, stem)


def umap_by_fc(embedding: np.ndarray, truth: np.ndarray, fc: list[str], stem: str | Path) -> None:
    """The UMAP map (N, 2) coloured by the true FC0–FC3 (N, K) eV/Å²."""
    k = min(MAX_COLUMNS, len(fc))
    figure, axes = panel_grid(k, height=2.9)
    for column in range(k):
        axis = axes[column]
        points = axis.scatter(
            embedding[:, 0],
            embedding[:, 1],
            c=truth[:, column],
            s=3,
            cmap="viridis",
            rasterized=True,
        )
        figure.colorbar(points, ax=axis, label=f"{fc[column]} (eV/Å²)")
        axis.set_title(fc[column])
        axis.set_xticks([])
        axis.set_yticks([])
    figure.tight_layout()
    save_both(figure, stem)


def latent_ray(
    path: QPath,
    energy: np.ndarray,
    embedding: np.ndarray,
    ray: LatentRay,
    ray_map: np.ndarray,
    fc0: str,
    stem: str | Path,
) -> None:
    """The ray's points (S, 2) on the UMAP map (N, 2), and the S spectra decoded along it."""
    steps = len(ray.z)
    columns = math.ceil(steps / 2)
    figure = plt.figure(figsize=(PAGE_WIDTH, 5.2))
    scale = shared_scale(ray.spectra)
    mesh = None
    layout = GridSpec(2, columns + 1, figure=figure, width_ratios=[1.4] + [1] * columns)
    axis = figure.add_subplot(layout[:, 0])
    axis.scatter(embedding[:, 0], embedding[:, 1], s=2, color="0.75", rasterized=True)
    axis.plot(ray_map[:, 0], ray_map[:, 1], "-o", color="tab:red", ms=4)
    for n, (x, y) in enumerate(ray_map):
        axis.annotate(str(n), (x, y), fontsize=8, xytext=(3, 3), textcoords="offset points")
    axis.set_title("latent ray on the UMAP map")
    axis.set_xticks([])
    axis.set_yticks([])
    for n in range(steps):
        panel = figure.add_subplot(layout[n // columns, 1 + n % columns])
        mesh = draw_path_map(
            panel,
            path,
            energy,
            ray.spectra[n],
            title=f"{n}: {fc0}={ray.theta[n, 0]:.3f}",
            scale=scale,
            colour_bar=None,
        )
        panel.title.set_fontsize(8)
        panel.tick_params(labelsize=7)
        panel.set_ylabel("E (meV)" if n % columns == 0 else "", fontsize=8)
    figure.tight_layout()
    figure.colorbar(mesh, ax=figure.axes[1:], shrink=0.6, label="decoded intensity (power scale)")
    save_both(figure, stem)


def cross_domain(
    path: QPath,
    energy: np.ndarray,
    cross: CrossDomain,
    clean: np.ndarray,
    noisy: np.ndarray,
    noise: dict,
    measured: dict[str, np.ndarray],
    stem: str | Path,
) -> tuple[int, int]:
    """The map: test set (grey), the anchor test spectrum ``clean`` (nq, nE), its noisy versions
    (nB, nP, nq, nE) coloured by SNR, measured spectra (name → (nq, nE)); beside it the inputs:
    the clean anchor, the noisy version embedded nearest the first measured spectrum (without
    one: the noisiest), and up to three measured ones. Returns that noisy version's (i, j)."""
    snr = np.array(noise["snr"], dtype=float)
    first = next(iter(cross.measured.values()), None)
    chosen = (
        cross.nearest_noisy(first)
        if first is not None
        else np.unravel_index(int(np.argmin(snr)), snr.shape)
    )
    i, j = int(chosen[0]), int(chosen[1])
    shown = list(measured.items())[:3]
    panels = [
        (f"clean test spectrum {cross.anchor}", clean),
        (
            f"noisy: B={noise['backgrounds'][i]:g}, P={noise['counts'][j]:g}\nSNR={snr[i, j]:.1f}",
            noisy[i, j],
        ),
        *((f"measured: {name}", image) for name, image in shown),
    ]
    rows = math.ceil(len(panels) / 2)
    figure = plt.figure(figsize=(PAGE_WIDTH, 2.8 * max(rows, 2)))
    layout = GridSpec(max(rows, 2), 3, figure=figure, width_ratios=[1.3, 1, 1])
    axis = figure.add_subplot(layout[:, 0])
    axis.scatter(
        cross.test[:, 0],
        cross.test[:, 1],
        s=2,
        color="0.8",
        rasterized=True,
        label="clean test set",
    )
    points = axis.scatter(
        cross.noisy[..., 0].ravel(),
        cross.noisy[..., 1].ravel(),
        c=snr.ravel(),
        cmap="plasma",
        s=18,
        edgecolor="black",
        lw=0.3,
        label="noisy versions",
    )
    figure.colorbar(points, ax=axis, label="SNR")
    axis.scatter(
        *cross.test[cross.anchor],
        marker="*",
        s=160,
        color="tab:blue",
        edgecolor="black",
        label="clean anchor",
    )
    for (name, point), colour in zip(cross.measured.items(), MEASURED_COLOURS, strict=False):
        axis.scatter(*point, marker="D", s=50, color=colour, edgecolor="black", label=name)
    axis.set_xticks([])
    axis.set_yticks([])
    axis.legend(fontsize=7, loc="upper center", bbox_to_anchor=(0.5, -0.02), frameon=False)
    axis.set_title("latent means on the test set's UMAP map")
    for n, (title, image) in enumerate(panels):
        panel = figure.add_subplot(layout[n // 2, 1 + n % 2])
        draw_path_map(panel, path, energy, image, title=title, colour_bar="intensity")
        panel.title.set_fontsize(8)
        panel.tick_params(labelsize=7)
    figure.tight_layout()
    save_both(figure, stem)
    return i, j
