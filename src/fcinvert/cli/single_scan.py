"""``fcinvert single-scan``: invert every single-orientation scan of a folder and compare it with
all orientations together (paper Fig. 4), as a report folder."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Literal

import typer
from rich.console import Console
from rich.table import Table

from fcinvert import validate
from fcinvert.cli.map_options import CmapOption, NormOption, VmaxOption, VminOption, map_scale
from fcinvert.cli.progress import stage_progress
from fcinvert.errors import FcinvertError

console = Console(stderr=True)


def single_scan(
    scans: Annotated[Path, typer.Argument(help="folder written by 'fcinvert measure'")],
    out: Annotated[Path, typer.Option(help="report folder (index.html, figures, results.json)")],
    model: Annotated[
        str | None,
        typer.Option(help="bundle folder or shipped name (default: the scans' material's VAE)"),
    ] = None,
    samples: Annotated[int, typer.Option(help="latent samples per spectrum (VAE)")] = 100,
    seed: Annotated[int, typer.Option(help="seed of the latent samples (the same for all)")] = 0,
    rank: Annotated[
        Literal["standardised", "raw"],
        typer.Option(
            help="MSE that picks best/median/worst: standardised by the training "
            "scaler, or raw (eV/Å²)²"
        ),
    ] = "standardised",
    refine: Annotated[
        bool, typer.Option("--refine", help="also refine all, best, median and worst")
    ] = False,
    dataset: Annotated[
        Path | None,
        typer.Option(
            help="training dataset, for the training boxes (default: the one the "
            "model records, if present)"
        ),
    ] = None,
    norm: NormOption = "power",
    vmin: VminOption = None,
    vmax: VmaxOption = None,
    cmap: CmapOption = "viridis",
) -> None:
    """Invert each scan alone and all of them together; MSE versus orientation, best, median
    and worst scans, FC values of every scan."""
    import torch

    from fcinvert.analysis.single_scan import read_scan_folder, run_single_scan
    from fcinvert.models.bundle import find_bundle, load_bundle
    from fcinvert.report.single_scan import write_report

    if samples < 1:
        raise FcinvertError(f"--samples: must be at least 1, got {samples}")
    validate.output_folder(out, "--out")
    scale = map_scale(norm, vmin, vmax, cmap)
    validate.input_file(dataset, "--dataset")
    if not scans.is_dir():
        raise FcinvertError(f"{scans}: not a folder of scans (written by 'fcinvert measure')")
    torch.set_num_threads(1)
    name = model or read_scan_folder(scans).material
    if not name:
        raise FcinvertError(f"{scans}: scans.json names no material; choose --model")
    bundle = load_bundle(name)
    with stage_progress(console) as progress:
        study = run_single_scan(
            scans, bundle, str(find_bundle(name)), samples, seed, rank, refine, dataset, progress
        )
    results = write_report(study, out, scale)
    table = Table(title=f"{results['material']}: single scans against all orientations")
    for column in ("", "file", "ψ (°)", "MSE std", "MSE raw", "ω RMS to all (meV)"):
        table.add_column(column)
    for pick, row in results["picks"].items():
        table.add_row(
            pick,
            row["file"],
            f"{row['psi_deg']:g}",
            f"{row['mse_standardised']:.4g}",
            f"{row['mse_raw']:.4g}",
            f"{row['dispersion_rms_to_all_meV']:.3f}",
        )
    console.print(table)
    for skipped in results["skipped"]:
        console.print(f"skipped {skipped['file']}: {skipped['reason']}")
    timing = ", ".join(f"{k} {v:.1f} s" for k, v in results["timing_s"].items())
    console.print(f"wrote {out / 'index.html'} and results.json ({timing})")


def register(app: typer.Typer) -> None:
    app.command("single-scan")(single_scan)
