"""The figure of ``fcinvert plan``: the expected gain of every candidate orientation against ψ,
with the orientations already measured and the best candidate marked."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from fcinvert.report.figures import plt, save_figure

UNITS = {"theta": "expected information on θ (nats)", "band": "dispersion variance cut (meV²)"}


def plan_figure(content: dict, out: str | Path) -> None:
    """Gain against ψ from a plan's content (``ranking`` rows, ``measured_psi_deg``,
    ``objective``), written to ``out`` (PNG or SVG)."""
    rows = sorted(content["ranking"], key=lambda row: row["psi"])
    psi = np.array([row["psi"] for row in rows])
    gain = np.array([row["gain"] for row in rows])
    new = np.array([row["new_pixels"] for row in rows])
    figure, (top, bottom) = plt.subplots(2, 1, figsize=(8, 5.5), sharex=True)
    top.plot(psi, gain, color="tab:blue", lw=1.2, marker=".", ms=3)
    best = content["ranking"][0]
    top.plot([best["psi"]], [best["gain"]], "*", color="tab:orange", ms=14, label="best next")
    measured = [p for p in content.get("measured_psi_deg", []) if p is not None]
    for number, angle in enumerate(measured):
        for axis in (top, bottom):
            axis.axvline(angle, color="tab:red", lw=0.8, alpha=0.7)
        if number == 0:
            top.plot([], [], color="tab:red", lw=0.8, label="measured")
    top.set_ylabel(UNITS.get(content.get("objective", "theta"), "gain"))
    top.set_title(
        f"{content.get('material', '')}: what each orientation would add "
        f"({len(measured)} measured, Ei {content.get('ei_meV', 0):g} meV)"
    )
    top.legend(fontsize=8)
    bottom.plot(psi, new, color="tab:green", lw=1.0)
    bottom.set_ylabel("path pixels not yet measured")
    bottom.set_xlabel("ψ (degrees)")
    figure.tight_layout()
    save_figure(figure, out)
