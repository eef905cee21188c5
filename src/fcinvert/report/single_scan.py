"""The single-scan study as a report folder: figures (PNG + SVG), results.json and index.html.

Figures (paper Fig. 4): the MSE of each scan's FCs against the all-orientations inversion versus
the rotation ψ (``mse_vs_orientation``); input, VAE reconstruction and inferred dispersion for
the full data and the best, median and worst scans (``inversions``); every scan's FC values
coloured by ψ beside the full-data value, the reference, the truth and the training box
(``fc_values``). Every number on the page is in results.json; index.html is written last.
"""

from __future__ import annotations

import html
import json
from pathlib import Path

import numpy as np
from matplotlib import colors
from matplotlib.patches import Rectangle

from fcinvert.analysis.single_scan import PICKS, SingleScanStudy, study_results
from fcinvert.inversion.resample import grid_path
from fcinvert.iohelpers import atomic_write_text, relative_path
from fcinvert.physics.dynamics import dynamics_basis
from fcinvert.report.evaluation_figures import save_both
from fcinvert.report.figures import (
    MAX_COLUMNS,
    ML_COLOUR,
    PAGE_WIDTH,
    REFINED_COLOUR,
    Lines,
    MapScale,
    draw_path_map,
    plt,
)
from fcinvert.report.html import STYLE

PICK_COLOURS = {"best": "tab:green", "median": "tab:orange", "worst": "tab:red"}
#: bins kept above the highest measured energy when the spectra are cropped for display
CROP_MARGIN_BINS = 2


def write_report(study: SingleScanStudy, out: str | Path, scale: MapScale | None = None) -> dict:
    """Write the figures, results.json and index.html into ``out``; returns the results (the
    scan folder and model paths relative to ``out``)."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    results = study_results(study)
    results.scans_folder = relative_path(results.scans_folder, out)
    results.model["path"] = relative_path(results.model["path"], out)
    crop = display_energy_max(study)
    results.display_energy_max_meV = crop
    mse_figure(study, out / "mse_vs_orientation")
    inversion_grid(study, crop, out / "inversions", scale)
    fc_values_figure(study, out / "fc_values")
    results.figures = [
        {"stem": stem, "png": f"{stem}.png", "svg": f"{stem}.svg", "caption": caption}
        for stem, caption in captions(study, results.to_dict()).items()
    ]
    content = results.to_dict()
    atomic_write_text(out / "results.json", json.dumps(content, indent=1, ensure_ascii=False))
    atomic_write_text(out / "index.html", render_html(content))
    return content


def display_energy_max(study: SingleScanStudy) -> float:
    """Top of the energy axis shown (meV): a little above the highest energy the full data
    measured on the model grid (the paper crops at 45 meV for Ei = 40 meV)."""
    grid = study.bundle.energy
    measured = np.flatnonzero(np.isfinite(study.full.image).any(axis=0))
    top = grid.edges[-1]
    if len(measured) == 0:
        return float(top)
    last = min(int(measured[-1]) + CROP_MARGIN_BINS, len(grid.centres) - 1)
    return float(min(top, grid.edges[last + 1]))


def mse_figure(study: SingleScanStudy, stem: str | Path) -> None:
    """MSE against the full data versus ψ: standardised (with the MSE against the truth when
    known), raw in (eV/Å²)², and the measured fraction of the model grid; picks marked."""
    psi = study.psi
    measured = np.array([study.measured_fraction(r) for r in study.results])
    figure, axes = plt.subplots(3, 1, figsize=(8, 7.5), sharex=True, height_ratios=(3, 2, 1.4))
    panels = (
        (axes[0], study.mse_standardised, "MSE (standardised)"),
        (axes[1], study.mse_raw, "MSE ((eV/Å²)²)"),
    )
    for axis, values, label in panels:
        axis.plot(psi, values, "o-", ms=3, lw=0.8, color="tab:blue", label="vs all orientations")
        for name in PICKS:
            n = study.picks[name]
            axis.plot(psi[n], values[n], "o", ms=9, mfc="none", mew=1.8, color=PICK_COLOURS[name])
        axis.set_ylabel(label)
        if values.min() > 0 and values.max() > 30 * values.min():
            axis.set_yscale("log")
    if study.truth is not None:
        selected = study.selected
        truth = study.truth[selected]
        versus = np.mean(((study.theta - truth) / study.bundle.scaler.std) ** 2, axis=1)
        axes[0].plot(psi, versus, "s", ms=2.5, color="0.5", label="vs truth")
    for name in PICKS:
        n = study.picks[name]
        axes[0].plot([], [], "o", ms=9, mfc="none", mew=1.8, color=PICK_COLOURS[name], label=name)
    axes[0].legend(fontsize=8, ncol=2)
    axes[0].set_title(
        f"{study.full.material.name}: single-scan FCs against all orientations "
        f"(ranked by the {study.ranked_by} MSE)"
    )
    axes[2].plot(psi, measured, ".-", ms=3, lw=0.8, color="0.3")
    axes[2].set_ylabel("measured\nfraction")
    axes[2].set_xlabel("sample rotation ψ (degrees)")
    figure.tight_layout()
    save_both(figure, stem)


def inversion_grid(
    study: SingleScanStudy, energy_max: float, stem: str | Path, scale: MapScale | None = None
) -> None:
    """Rows: all orientations, best, median, worst; columns: input on the model grid, VAE
    reconstruction (VAE models), input with the inferred dispersion (white; refined: red)."""
    bundle = study.bundle
    material = study.full.material
    path = grid_path(material, bundle.qpoints)
    energy = bundle.energy.centres
    basis = dynamics_basis(study.full.fcspace, bundle.qpoints)
    rows = [("all", "all orientations", study.full)]
    for name in PICKS:
        position, result = study.pick(name)
        n = study.picks[name]
        rows.append(
            (
                name,
                f"{name}: ψ = {study.scans.psi[position]:g}° (MSE {study.mse_standardised[n]:.3g})",
                result,
            )
        )
    vae = bundle.architecture == "vae"
    columns = 3 if vae else 2
    figure, axes = plt.subplots(
        len(rows), columns, figsize=(PAGE_WIDTH, 2.8 * len(rows)), squeeze=False
    )
    for axes_row, (name, title, result) in zip(axes, rows, strict=True):
        draw_path_map(axes_row[0], path, energy, result.image, (), f"{title}\ninput", scale=scale)
        if vae:
            draw_path_map(axes_row[1], path, energy, result.reconstruction, (), "reconstruction")
        frequencies = basis.frequencies(result.theta)
        lines = [Lines(frequencies, "ML estimate", ML_COLOUR, "--")]
        if study.refinement is not None and name in study.refinement:
            refined = basis.frequencies(study.refinement[name].theta)
            lines.append(Lines(refined, "refined", REFINED_COLOUR))
        draw_path_map(
            axes_row[-1], path, energy, result.image, lines, "inferred dispersion", scale=scale
        )
        for axis in axes_row:
            axis.set_ylim(energy[0] - 0.5 * bundle.energy.width, energy_max)
    figure.tight_layout()
    save_both(figure, stem)


def fc_values_figure(study: SingleScanStudy, stem: str | Path) -> None:
    """One panel per selected FC: the training box (grey), every scan (coloured by ψ, spread
    left to right in ψ order), the full-data value ± std (black), the reference (red line) and
    the truth (gold star) when known."""
    theta, selected = study.theta, study.selected
    psi = study.psi
    reference = np.array(study.bundle.config.reference, dtype=float)[selected]
    full, full_std = study.full.theta[selected], study.full.std[selected]
    span = max(float(np.ptp(psi)), 1e-9)
    x = -0.3 + 0.6 * (psi - psi.min()) / span
    norm = colors.Normalize(psi.min(), psi.max() if np.ptp(psi) > 0 else psi.min() + 1.0)
    k = len(selected)
    columns = min(k, MAX_COLUMNS)
    rows = -(-k // columns)
    figure, grid = plt.subplots(
        rows, columns, figsize=(PAGE_WIDTH, 3.6 * rows), squeeze=False, layout="constrained"
    )
    axes = list(grid.ravel())
    for axis in axes[k:]:
        axis.set_visible(False)
    for j, axis in enumerate(axes[:k]):
        low, high = study.box.low[j], study.box.high[j]
        axis.add_patch(Rectangle((-0.45, low), 0.9, high - low, color="0.88", zorder=0))
        points = axis.scatter(x, theta[:, j], c=psi, cmap="viridis", norm=norm, s=12, zorder=2)
        axis.errorbar(
            0.0,
            full[j],
            yerr=np.nan_to_num(full_std[j]),
            fmt="D",
            color="black",
            ms=6,
            zorder=3,
            label="all orientations",
        )
        axis.hlines(
            reference[j], -0.45, 0.45, colors="tab:red", lw=1.4, zorder=3, label="reference"
        )
        if study.truth is not None:
            axis.plot(
                0.0,
                study.truth[selected][j],
                "*",
                color="gold",
                mec="black",
                ms=12,
                zorder=4,
                label="truth",
            )
        values = [low, high, *theta[:, j], full[j], reference[j]]
        margin = 0.05 * (max(values) - min(values) or 1.0)
        axis.set_ylim(min(values) - margin, max(values) + margin)
        axis.set_xlim(-0.5, 0.5)
        axis.set_xticks([])
        axis.set_title(study.fc_labels[j])
        axis.tick_params(labelsize=8)
    for axis in grid[:, 0]:
        axis.set_ylabel("FC value (eV/Å²)")
    axes[0].legend(fontsize=7, loc="best")
    figure.colorbar(points, ax=axes[:k], label="ψ (degrees)", aspect=30)
    save_both(figure, stem)


def captions(study: SingleScanStudy, results: dict) -> dict[str, str]:
    """Short caption of each figure, keyed by file stem."""
    truth = " Grey squares: MSE against the simulation's truth." if study.truth is not None else ""
    refined = " Red: the refined dispersion." if study.refinement is not None else ""
    return {
        "mse_vs_orientation": (
            "MSE of each scan's selected FCs against the all-orientations inversion versus the "
            "rotation ψ: standardised by the training scaler's std (top) and raw in (eV/Å²)² "
            "(middle); bottom: the fraction of the model grid each scan measured. Circles: the "
            f"best, median and worst scans by the {study.ranked_by} MSE.{truth}"
        ),
        "inversions": (
            "Input on the model grid, VAE reconstruction and the dispersion of the inferred FCs "
            "over the input, for all orientations and the best, median and worst scans "
            f"(energy axis cropped at {results['display_energy_max_meV']:.1f} meV; the model "
            f"sees the whole window).{refined}"
        ),
        "fc_values": (
            "Inferred FCs of every scan (coloured by ψ, ordered left to right by ψ), the "
            "all-orientations value ± its latent-sampling std (black), the reference (red)"
            + (", the truth (star)" if study.truth is not None else "")
            + f" and the training range (grey; {study.box.source})."
        ),
    }


def _value(value: float | None, digits: int = 4) -> str:
    return "—" if value is None else f"{value:.{digits}g}"


def render_html(results: dict) -> str:
    """index.html of a single-scan report (figures referenced by relative file names)."""
    picks = results["picks"]
    truth = results["truth_known"]
    summary = results["summary"]
    head = ["", "file", "ψ (°)", "measured", "MSE std", "MSE raw", "ω RMS to all (meV)"]
    if truth:
        head += ["MSE std vs truth", "ω RMS vs truth (meV)"]
    rows = []
    full = results["all_orientations"]
    full_cells = [
        "all orientations",
        results["all_orientations_file"],
        "—",
        f"{full['measured_fraction_model_grid']:.3f}",
        "0",
        "0",
        "0",
    ]
    if truth:
        versus = full["versus_truth"]
        full_cells += [_value(versus["mse_standardised"]), f"{versus['dispersion_rms_meV']:.3f}"]
    rows.append(full_cells)
    for name in PICKS:
        pick = picks[name]
        cells = [
            name,
            pick["file"],
            f"{pick['psi_deg']:g}",
            f"{pick['measured_fraction_model_grid']:.3f}",
            _value(pick["mse_standardised"]),
            _value(pick["mse_raw"]),
            f"{pick['dispersion_rms_to_all_meV']:.3f}",
        ]
        if truth:
            versus = pick["versus_truth"]
            cells += [_value(versus["mse_standardised"]), f"{versus['dispersion_rms_meV']:.3f}"]
        rows.append(cells)
    parts = [
        "<!DOCTYPE html><html lang=en><head><meta charset=utf-8>",
        f"<title>fcinvert single-scan study: {html.escape(results['material'])}</title>",
        f"<style>{STYLE}</style></head><body>",
        f"<h1>Single-scan study of {html.escape(results['material'])}</h1>",
        f"<p>{summary['n_inverted']} of {summary['n_scans']} single-orientation scans of "
        f"<code>{html.escape(results['scans_folder'])}</code> inverted one by one with "
        f"<code>{html.escape(results['model']['path'])}</code> "
        f"({html.escape(results['model']['architecture'])}, "
        f"{results['model']['latent_samples']} latent samples, seed {results['model']['seed']}) "
        f"and compared with the inversion of all orientations together. "
        f"{html.escape(results['mse_definition'])}. Ranked by the "
        f"{html.escape(results['ranked_by'])} MSE. All numbers are in "
        "<a href=results.json>results.json</a>.</p>",
        _table(head, rows),
        f"<p>Standardised MSE over the scans: min {_value(summary['mse_standardised']['min'])}, "
        f"median {_value(summary['mse_standardised']['median'])}, max "
        f"{_value(summary['mse_standardised']['max'])}; worst / next worst "
        f"{_value(summary['worst_over_next_worst'], 3)}.</p>",
        "<h2>Force constants (eV/Å²)</h2>",
        _parameter_table(results),
    ]
    if results["skipped"]:
        listed = "; ".join(
            f"{html.escape(s['file'])} (ψ {s['psi_deg']:g}°): {html.escape(s['reason'])}"
            for s in results["skipped"]
        )
        parts.append(f"<p>Skipped: {listed}</p>")
    if results["refinement"]:
        parts += ["<h2>Physics refinement</h2>", _refinement_table(results)]
    parts.append("<h2>Figures</h2>")
    for figure in results["figures"]:
        parts.append(
            f"<figure><a href='{html.escape(figure['svg'])}'><img "
            f"src='{html.escape(figure['png'])}' alt='{html.escape(figure['stem'])}'></a>"
            "<figcaption>"
            f"{html.escape(figure['caption'])} (<a href='{html.escape(figure['svg'])}'>SVG</a>)"
            "</figcaption></figure>"
        )
    timing = ", ".join(f"{k} {v:.1f} s" for k, v in results["timing_s"].items())
    parts.append(
        f"<p><small>fcinvert {html.escape(results['fcinvert_version'])}; run time: "
        f"{html.escape(timing)}.</small></p></body></html>"
    )
    return "\n".join(parts) + "\n"


def _table(head: list[str], rows: list[list[str]]) -> str:
    top = "<tr>" + "".join(f"<th>{html.escape(h)}</th>" for h in head) + "</tr>"
    body = "".join(
        "<tr>" + "".join(f"<td>{html.escape(str(c))}</td>" for c in row) + "</tr>" for row in rows
    )
    return f"<table>{top}{body}</table>"


def _parameter_table(results: dict) -> str:
    head = [
        "FC",
        "parameter",
        "reference",
        "truth",
        "all orientations",
        "scans mean ± std",
        "scans min … max",
        "training box",
    ]
    rows = []
    for p in results["parameters"]:
        full, scans = p["all_orientations"], p["scans"]
        rows.append(
            [
                p["fc"],
                p["name"],
                f"{p['reference']:.4f}",
                _value(p["truth"]),
                f"{full['value']:.4f} ± {_value(full['std'], 2)}",
                f"{scans['mean']:.4f} ± {scans['std']:.4f}",
                f"{scans['min']:.4f} … {scans['max']:.4f}",
                f"{p['training_box'][0]:.4f} … {p['training_box'][1]:.4f}",
            ]
        )
    return _table(head, rows)


def _refinement_table(results: dict) -> str:
    truth = results["truth_known"]
    head = [
        "input",
        "forward models",
        "seconds",
        "misfit",
        "ω RMS refined vs ML (meV)",
        "ω RMS to refined all (meV)",
    ]
    if truth:
        head += ["ω RMS vs truth: ML (meV)", "ω RMS vs truth: refined (meV)"]
    rows = []
    for name, fit in results["refinement"].items():
        cells = [
            name,
            str(fit["n_forward"]),
            f"{fit['seconds']:.1f}",
            f"{fit['misfit']:.3g}",
            f"{fit['dispersion_rms_to_ml_meV']:.3f}",
            f"{fit['dispersion_rms_to_refined_all_meV']:.3f}",
        ]
        if truth:
            cells += [
                f"{fit['ml_versus_truth']['dispersion_rms_meV']:.3f}",
                f"{fit['refined_versus_truth']['dispersion_rms_meV']:.3f}",
            ]
        rows.append(cells)
    return _table(head, rows)
