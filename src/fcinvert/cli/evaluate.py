"""``fcinvert evaluate``: the paper's evaluation of trained models as an HTML report."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

from fcinvert import validate
from fcinvert.cli.progress import stage_progress
from fcinvert.errors import FcinvertError

console = Console(stderr=True)


def evaluate(
    context: typer.Context,
    material: Annotated[str, typer.Argument(help="material name (ge, nb) or folder")],
    models: Annotated[
        list[str] | None,
        typer.Option(help="model bundles (folders or shipped names): --models ge-vae ge-resnet"),
    ] = None,
    data: Annotated[Path | None, typer.Option(help="dataset file (HDF5) with a test split")] = None,
    out: Annotated[Path | None, typer.Option(help="report folder (index.html, figures)")] = None,
    measured: Annotated[
        list[Path] | None,
        typer.Option(help="measured spectrum file for the cross-domain map (repeatable)"),
    ] = None,
    samples: Annotated[int, typer.Option(help="latent samples per spectrum (VAE)")] = 50,
    seed: Annotated[int, typer.Option(help="seed of the noise, latent draws and UMAP")] = 0,
    limit: Annotated[int | None, typer.Option(help="use the first N test spectra only")] = None,
) -> None:
    """Reconstructions, accuracy, the noise grid and the latent space of trained models."""
    from fcinvert.analysis.evaluate import EvaluationSettings
    from fcinvert.report.evaluation import write_evaluation

    given = [*(models or []), *context.args]
    if not given:
        raise FcinvertError("--models: give at least one model bundle")
    if data is None or out is None:
        raise FcinvertError(f"{'--data' if data is None else '--out'}: required")
    if samples < 1:
        raise FcinvertError(f"--samples: must be at least 1, got {samples}")
    if limit is not None and limit < 1:
        raise FcinvertError(f"--limit: must be at least 1, got {limit}")
    validate.output_folder(out, "--out")
    validate.input_file(data, "--data")
    for path in measured or []:
        validate.input_file(path, "--measured")
    settings = EvaluationSettings(samples=samples, seed=seed, limit=limit)
    with stage_progress(console) as progress:
        metrics = write_evaluation(material, given, data, out, measured or [], settings, progress)
    noise = metrics["noise"]
    snr = Table(title="SNR per noise setting (rows: background B, columns: peak counts P)")
    snr.add_column("B \\ P")
    for counts in noise["counts"]:
        snr.add_column(f"{counts:g}", justify="right")
    for background, values in zip(noise["backgrounds"], noise["snr"], strict=True):
        snr.add_row(f"{background:g}", *(f"{v:.1f}" for v in values))
    console.print(snr)
    rep = noise["representative"]
    console.print(
        f"R² clean / with noise B={rep['background']:g}, P={rep['counts']:g} "
        f"(SNR {rep['snr']:.1f}):"
    )
    for row in metrics["headline"]:
        cells = "  ".join(
            f"{label} {_r2(entry['clean'])} / {_r2(entry['noisy'])}"
            for label, entry in row["models"].items()
        )
        console.print(f"  {row['fc']}: {cells}")
    timing = ", ".join(f"{k} {v:.0f} s" for k, v in metrics["timing_s"].items())
    console.print(f"wrote {out / 'index.html'} ({timing})")


def _r2(value: float | None) -> str:
    return "  —  " if value is None else f"{value:.3f}"


def register(app: typer.Typer) -> None:
    app.command(
        "evaluate",
        context_settings={"allow_extra_args": True, "ignore_unknown_options": False},
    )(evaluate)
