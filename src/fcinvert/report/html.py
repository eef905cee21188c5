"""The evaluation report as one static page: ``index.html`` beside its figures and metrics.json.

Everything on the page comes from the metrics dict (the content of metrics.json), so every
number shown is in that file. The headline table puts R² per FC for each model, clean and at
the representative noise setting, beside what the paper reports (Sable et al., Digital
Discovery 5, 1545 (2026), figures 2b/3b and their discussion); ``headline.md`` holds the same
table in Markdown for the README.
"""

from __future__ import annotations

import html
from pathlib import Path

from fcinvert.iohelpers import atomic_write_text

PAPER = "Sable et al., Digital Discovery 5, 1545 (2026), Fig. 2b/3b and text"
SECTIONS = (
    ("reconstruction", "Reconstructions"),
    ("accuracy", "Accuracy on clean test spectra"),
    ("noise", "Robustness to counting noise"),
    ("latent", "Latent space"),
)


def paper_expectations(material: str, k: int) -> dict:
    """What the paper reports for R² of FC0…FC(k−1): per architecture, clean and noisy, as text.

    VAE: R² ≥ 0.9 for the influential FCs (Ge FC0–FC3, Nb all but FC5), lower for weaker
    ones, the weakest Ge FCs (FC6, FC7) ≈ 0; graceful decline with noise. ResNet-18: ≈ 1 for
    every FC clean, a sharp drop already under mild noise. A noise-augmented ResNet-18
    (``resnet+noise``): proposed in the paper's conclusion, not tested there. Other materials:
    no paper value.
    """
    known = material in ("ge", "nb")
    vae = []
    for index in range(k):
        if not known or index >= 8:
            vae.append("—")
        elif material == "ge":
            vae.append("≥ 0.9" if index <= 3 else ("≈ 0" if index >= 6 else "< 0.9"))
        else:
            vae.append("< 0.9" if index == 5 else "≥ 0.9")
    mark = "—" if not known else None
    return {
        "source": PAPER,
        "vae": {"clean": vae, "noisy": [mark or "declines gracefully"] * k},
        "resnet": {"clean": [mark or "≈ 1"] * k, "noisy": [mark or "drops sharply"] * k},
        "resnet+noise": {"clean": ["—"] * k, "noisy": [mark or "proposed, not tested"] * k},
    }


def headline_rows(metrics: dict) -> list[dict]:
    """Rows of the headline table: FC label, parameter name, per model R² clean and noisy
    (None where undefined) and the paper's statement for that model's architecture."""
    rows = []
    for index, (fc, name) in enumerate(
        zip(metrics["fc_labels"], metrics["parameters"], strict=True)
    ):
        models = {}
        for label, model in metrics["models"].items():
            kind = model["architecture"] + ("+noise" if model.get("noise_augmented") else "")
            paper = metrics["paper"].get(kind, metrics["paper"][model["architecture"]])
            models[label] = {
                "clean": model["clean"]["r2"][name],
                "noisy": model["representative_noise"]["r2"][name],
                "paper_clean": paper["clean"][index],
                "paper_noisy": paper["noisy"][index],
            }
        rows.append({"fc": fc, "parameter": name, "models": models})
    return rows


def _r2(value: float | None) -> str:
    return "—" if value is None else f"{value:.3f}"


def headline_markdown(metrics: dict) -> str:
    """The headline table in Markdown (for the README)."""
    noise = metrics["noise"]["representative"]
    labels = list(metrics["models"])
    header = ["FC", "parameter"]
    for label in labels:
        header += [f"{label} clean", f"{label} noisy", f"{label} paper (clean / noisy)"]
    lines = [
        f"R² on {metrics['test_spectra']} {metrics['material']} test spectra, clean and with "
        f"noise B = {noise['background']:g}, P = {noise['counts']:g} (SNR {noise['snr']:.1f}); "
        f"paper: {PAPER}.",
        "",
        "| " + " | ".join(header) + " |",
        "|" + "---|" * len(header),
    ]
    for row in metrics["headline"]:
        cells = [row["fc"], f"`{row['parameter']}`"]
        for label in labels:
            entry = row["models"][label]
            cells += [
                _r2(entry["clean"]),
                _r2(entry["noisy"]),
                f"{entry['paper_clean']} / {entry['paper_noisy']}",
            ]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def _headline_html(metrics: dict) -> str:
    labels = list(metrics["models"])
    top = (
        "<tr><th rowspan=2>FC</th><th rowspan=2>parameter</th>"
        + "".join(f"<th colspan=3>{html.escape(label)}</th>" for label in labels)
        + "</tr>"
    )
    second = "<tr>" + "<th>clean</th><th>noisy</th><th>paper</th>" * len(labels) + "</tr>"
    body = []
    for row in metrics["headline"]:
        cells = [f"<td>{row['fc']}</td>", f"<td><code>{html.escape(row['parameter'])}</code></td>"]
        for label in labels:
            entry = row["models"][label]
            cells += [
                f"<td class=num>{_r2(entry['clean'])}</td>",
                f"<td class=num>{_r2(entry['noisy'])}</td>",
                f"<td>{html.escape(entry['paper_clean'])} / {html.escape(entry['paper_noisy'])}"
                "</td>",
            ]
        body.append("<tr>" + "".join(cells) + "</tr>")
    return f"<table>{top}{second}{''.join(body)}</table>"


def _snr_html(noise: dict) -> str:
    head = "<tr><th>B \\ P</th>" + "".join(f"<th>{p:g}</th>" for p in noise["counts"]) + "</tr>"
    rows = [
        f"<tr><th>{b:g}</th>" + "".join(f"<td class=num>{v:.1f}</td>" for v in values) + "</tr>"
        for b, values in zip(noise["backgrounds"], noise["snr"], strict=True)
    ]
    return f"<table>{head}{''.join(rows)}</table>"


def _latent_html(metrics: dict) -> str:
    parts = []
    for label, latent in metrics["latent"].items():
        parts.append(
            f"<p><b>{html.escape(label)}</b>: {latent['n_active']} of {latent['dimensions']} "
            f"latent dimensions active ({html.escape(latent['active_criterion'])}); UMAP "
            f"n_neighbors={latent['umap']['n_neighbors']}, min_dist={latent['umap']['min_dist']}, "
            f"seed {latent['umap']['seed']}.</p>"
        )
    return "".join(parts)


STYLE = """
body { font-family: system-ui, sans-serif; max-width: 1200px; margin: 2em auto; color: #222; }
table { border-collapse: collapse; margin: 1em 0; font-size: 0.9em; }
th, td { border: 1px solid #ccc; padding: 0.25em 0.6em; }
td.num { text-align: right; font-variant-numeric: tabular-nums; }
figure { margin: 1.5em 0; } figure img { max-width: 100%; border: 1px solid #eee; }
figcaption { font-size: 0.9em; color: #444; } code { font-size: 0.85em; }
"""


def render_html(metrics: dict) -> str:
    """index.html for ``metrics`` (figures referenced by relative file names)."""
    noise = metrics["noise"]
    rep = noise["representative"]
    timing = ", ".join(f"{k} {v:.0f} s" for k, v in metrics.get("timing_s", {}).items())
    parts = [
        "<!DOCTYPE html><html lang=en><head><meta charset=utf-8>",
        f"<title>fcinvert evaluation: {html.escape(metrics['material'])}</title>",
        f"<style>{STYLE}</style></head><body>",
        f"<h1>Evaluation of {', '.join(html.escape(m) for m in metrics['models'])} on "
        f"{html.escape(metrics['material'])}</h1>",
        f"<p>{metrics['test_spectra']} test spectra of <code>{html.escape(metrics['dataset'])}"
        f"</code>; VAE predictions are means over {metrics['latent_samples']} latent samples; "
        f"seed {metrics['seed']}; fcinvert {html.escape(metrics['fcinvert_version'])}. "
        "All numbers are in <a href=metrics.json>metrics.json</a>.</p>",
        "<h2>Headline: R² per FC</h2>",
        f"<p>Clean test spectra and mild noise (B = {rep['background']:g}, "
        f"P = {rep['counts']:g}, SNR {rep['snr']:.1f}), beside the paper "
        f"({html.escape(metrics['paper']['source'])}).</p>",
        _headline_html(metrics),
    ]
    for section, title in SECTIONS:
        listed = [f for f in metrics["figures"] if f["section"] == section]
        if not listed:
            continue
        parts.append(f"<h2>{title}</h2>")
        if section == "noise":
            parts.append(
                f"<p>Noise model: {html.escape(noise['model'])}, background B as a fraction of "
                f"the spectrum's peak, P the expected counts of a background-free peak pixel. "
                f"{html.escape(noise['snr_definition'])} (m = {noise['column_peak_fraction']:.3f}"
                ").</p>" + _snr_html(noise)
            )
        if section == "latent":
            parts.append(_latent_html(metrics))
        for figure in listed:
            parts.append(
                f"<figure><a href='{html.escape(figure['svg'])}'><img src="
                f"'{html.escape(figure['file'])}' alt='{html.escape(figure['file'])}'></a>"
                f"<figcaption>{html.escape(figure['caption'])} "
                f"(<a href='{html.escape(figure['svg'])}'>SVG</a>)</figcaption></figure>"
            )
    if timing:
        parts.append(f"<p><small>Run time: {html.escape(timing)}.</small></p>")
    parts.append("</body></html>")
    return "\n".join(parts) + "\n"


def write_report(out: str | Path, metrics: dict) -> Path:
    """Write ``out``/index.html and ``out``/headline.md; returns the page's path."""
    out = Path(out)
    atomic_write_text(out / "headline.md", headline_markdown(metrics))
    atomic_write_text(out / "index.html", render_html(metrics))
    return out / "index.html"
