"""``fcinvert build``: a structure file (and a measurement) → a material with a trained inverter."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from fcinvert import validate

console = Console()


def build(
    structure: Annotated[Path, typer.Argument(help="structure file (POSCAR, CIF, any ase format)")],
    name: Annotated[str, typer.Option(help="name of the material (and of its model)")],
    data: Annotated[
        Path | None,
        typer.Option(
            help="a measurement (spectrum file): the material takes its energy bins, "
            "resolution and temperature, and the report inverts it"
        ),
    ] = None,
    out: Annotated[
        Path | None, typer.Option(help="material folder (default: user library)")
    ] = None,
    members: Annotated[
        str, typer.Option(help="'all-offline' (installed ones) or built-in names, comma-separated")
    ] = "all-offline",
    shells: Annotated[
        str, typer.Option(help="neighbour shells, or 'auto' (the ensemble rule of 'label')")
    ] = "auto",
    fast: Annotated[
        bool,
        typer.Option(
            "--fast", help="small configuration for tests and trials (minutes, rough model)"
        ),
    ] = False,
    n: Annotated[int | None, typer.Option("--n", help="training spectra (default 8000)")] = None,
    epochs: Annotated[int | None, typer.Option(help="VAE epochs (default 5)")] = None,
    seed: Annotated[int, typer.Option(help="seed of every random choice")] = 0,
    threads: Annotated[int, typer.Option(help="CPU threads for training")] = 1,
) -> None:
    """Build a material with a trained inverter from a structure file (and a measurement).

    material init → labels from every installed offline force field → sensitivity →
    measurement-like dataset → VAE + regressor → evaluation report
    (<material>/build/report.json). Re-run the same command after a kill: finished stages are
    kept. Then: fcinvert invert data.h5 --model NAME --refine."""
    from fcinvert.build import BuildSettings, build_material
    from fcinvert.build import Progress as BuildProgress
    from fcinvert.cli.material import parse_shells

    validate.safe_name(name, "--name")
    validate.output_folder(out, "--out")
    validate.input_file(data, "--data")
    validate.integer(n, "--n", minimum=10, maximum=1_000_000)
    validate.integer(epochs, "--epochs", minimum=1, maximum=1000)
    validate.integer(seed, "--seed", minimum=0, maximum=2**63 - 1)
    validate.integer(threads, "--threads", minimum=1, maximum=256)
    changes = {"members": members, "shells": parse_shells(shells), "seed": seed}
    changes["threads"] = threads
    if n is not None:
        changes["n_train"] = n
    if epochs is not None:
        changes["epochs"] = epochs
    settings = BuildSettings.fast(**changes) if fast else BuildSettings(**changes)

    columns = (
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
    )
    with Progress(*columns, console=console, transient=True) as bar:
        tasks: dict[str, int] = {}

        def label_start(member) -> None:
            tasks.setdefault("labels", bar.add_task("labelling", total=None))
            bar.update(tasks["labels"], description=f"labelling {member.name}")

        def label_done(result) -> None:
            say(f"  {result.name}: {result.status} {result.message}".rstrip())

        def spectra(count: int) -> None:
            if "dataset" not in tasks:
                total = settings.n_train + settings.n_test
                tasks["dataset"] = bar.add_task("spectra", total=total)
            bar.advance(tasks["dataset"], count)

        def say(text: str) -> None:
            bar.console.print(text, markup=False, highlight=False, soft_wrap=True)

        progress = BuildProgress(say, label_start, label_done, spectra, True)
        folder, log = build_material(structure, name, data, settings, out, progress)
    from fcinvert.build import MODEL_DIR

    total = sum(stage["seconds"] for stage in log.stages.values())
    model = folder / MODEL_DIR if out is not None else name
    console.print(
        f"built {folder} in {total:.0f} s; invert with: fcinvert invert DATA --model {model} "
        "--refine --out result.json"
    )


def register(app: typer.Typer) -> None:
    app.command("build")(build)
