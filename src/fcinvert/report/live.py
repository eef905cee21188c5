"""The live page of ``fcinvert watch``: index.html (reloads itself), its figures, history.json.

``history.json`` is a list with one entry per update (``HistoryEntry.as_dict``: files folded,
counts, rotations, every parameter's value and σ, the dispersion band's median width, timing).
The page shows where the measurement stands (files, counts, whether the target is reached), how
every σ and the band have shrunk against the files folded, the current fit over the folded data
with the dispersion and its band, the coverage map (summed normalisation of every path pixel,
unmeasured grey), the parameter table, the notes and the files skipped. Every file is written
atomically, so a browser reloading mid-update sees the previous version.
"""

from __future__ import annotations

import html
import json
from pathlib import Path

import numpy as np

from fcinvert.analysis.watch import Targets, WatchState
from fcinvert.iohelpers import atomic_write_text
from fcinvert.physics.material import Material
from fcinvert.report.figures import (
    REFINED_COLOUR,
    Lines,
    MapScale,
    draw_path_map,
    plt,
    save_figure,
)

HISTORY = "history.json"
PAGE = "index.html"


def write_history(state: WatchState, out: Path) -> None:
    content = [entry.as_dict() for entry in state.history]
    atomic_write_text(out / HISTORY, json.dumps(content, indent=1, ensure_ascii=False) + "\n")


def history_figure(state: WatchState, targets: Targets, out: Path) -> None:
    """σ of every parameter (thin; determined ones coloured) and the median band width
    against the files folded, with the targets dashed."""
    files = [entry.files for entry in state.history]
    std = np.array([entry.estimate.std for entry in state.history])  # (n_updates, P)
    determined = state.history[-1].estimate.determined
    band = [entry.estimate.band_width for entry in state.history]
    figure, (top, bottom) = plt.subplots(2, 1, figsize=(8, 6), sharex=True)
    for k in range(std.shape[1]):
        if determined[k]:
            top.plot(files, std[:, k], lw=0.9, marker=".", ms=3)
        else:
            top.plot(files, std[:, k], lw=0.6, color="0.7")
    if not determined.all():
        top.plot([], [], color="0.7", lw=0.6, label="not determined (prior width)")
    if targets.std is not None:
        top.axhline(targets.std, color="k", ls="--", lw=0.8, label="target σ")
    top.set_yscale("log")
    top.set_ylabel("σ of each parameter (eV/Å²)")
    if top.get_legend_handles_labels()[0]:
        top.legend(fontsize=8, loc="upper right")
    top.set_title("uncertainty against acquisition (coloured: determined parameters)")
    bottom.plot(files, band, marker="o", color="tab:red")
    if targets.band is not None:
        bottom.axhline(targets.band, color="k", ls="--", lw=0.8, label="target")
        bottom.legend(fontsize=8)
    bottom.set_ylabel("median 5–95 % band (meV)")
    bottom.set_xlabel("orientation files folded")
    bottom.set_ylim(bottom=0)
    figure.tight_layout()
    save_figure(figure, out)


def fit_figure(state: WatchState, material: Material, out: Path) -> None:
    """The folded data with the dispersion and its band, the model's fit, and the coverage
    map (log summed normalisation; unmeasured pixels grey)."""
    fold = state.fold
    estimate = state.estimate
    spectrum = fold.spectrum()
    energy = spectrum.energy
    figure, axes = plt.subplots(3, 1, figsize=(9, 10.5))
    log = MapScale(norm="log")
    draw_path_map(
        axes[0],
        material.path,
        energy,
        spectrum.intensity,
        [
            Lines(
                estimate.frequencies,
                "refined (shaded: 5–95 % band)",
                REFINED_COLOUR,
                band=(estimate.band_low, estimate.band_high),
            )
        ],
        f"folded data ({len(fold.files)} files) with the dispersion",
        scale=log,
        colour_bar="intensity (data units)",
    )
    draw_path_map(
        axes[1],
        material.path,
        energy,
        estimate.fitted,
        title=f"model fitted to the folded data (fit quality {estimate.quality:.2f})",
        scale=log,
        colour_bar="intensity (data units)",
    )
    exposure = np.where(fold.measured, fold.denominator, np.nan)
    draw_path_map(
        axes[2],
        material.path,
        energy,
        exposure,
        title=f"coverage: {100 * float(np.mean(fold.measured)):.1f} % of path pixels measured",
        scale=log,
        colour_bar="summed normalisation",
    )
    top = min(float(energy[-1]), 1.2 * float(np.max(estimate.band_high)))
    for axis in axes:
        axis.set_ylim(energy[0], max(top, float(energy[0]) + 1.0))
    figure.tight_layout()
    save_figure(figure, out)


def write_page(
    state: WatchState,
    material: Material,
    targets: Targets,
    out: Path,
    refresh: int,
    target_text: str,
    subtitle: str = "",
) -> None:
    """history.json, history.png, fit.png and index.html into ``out``; ``target_text`` says
    when it stops, ``subtitle`` describes the measurement (e.g. its Ei)."""
    out.mkdir(parents=True, exist_ok=True)
    write_history(state, out)
    if state.history:
        history_figure(state, targets, out / "history.png")
        fit_figure(state, material, out / "fit.png")
    atomic_write_text(out / PAGE, _html(state, material, refresh, target_text, subtitle))


def _html(
    state: WatchState, material: Material, refresh: int, target_text: str, subtitle: str
) -> str:
    esc = html.escape
    head = [
        "<!DOCTYPE html><html><head><meta charset='utf-8'>",
        "" if state.stopped else f"<meta http-equiv='refresh' content='{refresh}'>",
        f"<title>fcinvert watch: {esc(material.name)}</title>",
        "<style>body{font-family:sans-serif;max-width:1000px;margin:1em auto}"
        "table{border-collapse:collapse}td,th{padding:2px 8px;border-bottom:1px solid #ddd;"
        "text-align:right}td:first-child,th:first-child{text-align:left}.stop{color:#070}"
        ".warn{color:#a40}</style></head><body>",
        f"<h1>{esc(material.name)}: live inversion</h1>",
        f"<p>{esc(subtitle)}</p>" if subtitle else "",
    ]
    body = []
    if not state.history:
        body.append("<p>waiting for the first complete orientation file …</p>")
    else:
        last = state.history[-1]
        est = last.estimate
        counts = f"{last.counts:.3g} counts, " if last.counts is not None else ""
        body.append(
            f"<p>update {last.update} at {esc(last.time)}: <b>{last.files}</b> files folded "
            f"({counts}{100 * last.measured_fraction:.1f} % of path pixels measured); "
            f"{int(est.determined.sum())} of {len(est.theta)} parameters determined; median "
            f"dispersion band <b>{est.band_width:.3f} meV</b>; {est.mode} inversion "
            f"{last.seconds['invert']:.1f} s.</p>"
        )
    status = state.stopped or ("watching; stops at " + target_text if target_text else "watching")
    body.append(f"<p class='{'stop' if state.stopped else ''}'><b>{esc(status)}</b></p>")
    if state.history:
        body.append("<h2>Uncertainty against acquisition</h2><img src='history.png' width='800'>")
        body.append("<h2>Current fit and coverage</h2><img src='fit.png' width='900'>")
        body.append("<h2>Parameters</h2><table><tr><th>name</th><th>value (eV/Å²)</th>")
        body.append("<th>σ</th><th>determined</th></tr>")
        est = state.estimate
        for name, value, std, determined in zip(
            state.history[-1].fcspace_names, est.theta, est.std, est.determined, strict=True
        ):
            body.append(
                f"<tr><td>{esc(name)}</td><td>{value:.4f}</td><td>{std:.4f}</td>"
                f"<td>{'yes' if determined else 'no (prior)'}</td></tr>"
            )
        body.append("</table>")
        if est.notes:
            body.append("<h2>Notes</h2><ul>")
            body += [f"<li>{esc(note)}</li>" for note in est.notes]
            body.append("</ul>")
    if state.skipped:
        body.append("<h2 class='warn'>Files skipped</h2><ul>")
        body += [f"<li>{esc(n)}: {esc(r)}</li>" for n, r in sorted(state.skipped.items())]
        body.append("</ul>")
    if state.pending:
        shown = ", ".join(esc(n) for n in state.pending[:10])
        body.append(f"<p>not yet complete: {shown}{' …' if len(state.pending) > 10 else ''}</p>")
    body.append("<p><a href='history.json'>history.json</a></p></body></html>")
    return "\n".join(head + body) + "\n"
