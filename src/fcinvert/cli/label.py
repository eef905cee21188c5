"""``fcinvert label``: Stage I labels from force fields or phonopy force constants."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import numpy as np
import typer
from rich.console import Console
from rich.progress import BarColumn, Progress, SpinnerColumn, TextColumn, TimeElapsedColumn
from rich.table import Table

from fcinvert import validate
from fcinvert.errors import FcinvertError
from fcinvert.labels.ensemble import (
    Labeller,
    LabelResult,
    LabelSettings,
    run_members,
    summarise,
    write_label,
    zone_boundary_label,
)
from fcinvert.labels.members import (
    MODEL_FILE_KINDS,
    Member,
    factory_member,
    members_help,
    model_file_member,
    select_members,
)
from fcinvert.labels.transfer import label_force_constants, load_force_constants
from fcinvert.physics.material import load_material

console = Console()


def label(
    material: Annotated[str, typer.Argument(help="bundled name (ge, nb), library name or folder")],
    members: Annotated[
        str | None,
        typer.Option(
            help="'all-offline' or built-in names, comma-separated (needs the forcefields extra)"
        ),
    ] = None,
    calculator: Annotated[
        str | None,
        typer.Option(help="an ASE calculator factory 'module:function' (no arguments)"),
    ] = None,
    model_file: Annotated[
        Path | None, typer.Option(help="a model file (or matgl folder) of --model-kind")
    ] = None,
    model_kind: Annotated[
        str | None, typer.Option(help=f"kind of --model-file: {', '.join(MODEL_FILE_KINDS)}")
    ] = None,
    force_constants: Annotated[
        Path | None,
        typer.Option(help="phonopy FORCE_CONSTANTS, force_constants.hdf5 or phonopy yaml"),
    ] = None,
    structure: Annotated[
        Path | None, typer.Option(help="unit cell of --force-constants (or its SPOSCAR)")
    ] = None,
    dim: Annotated[
        str | None, typer.Option(help="supercell of --force-constants: '2 2 2' or 9 integers")
    ] = None,
    name: Annotated[
        str | None, typer.Option(help="member name for --calculator/--model-file/--force-constants")
    ] = None,
    displacement: Annotated[float, typer.Option(help="finite displacement (Å)")] = 0.01,
    relax: Annotated[bool, typer.Option(help="relax the cell with each member first")] = False,
    step_check: Annotated[
        float | None, typer.Option(help="also compute at this displacement (Å) and compare")
    ] = None,
    recompute: Annotated[bool, typer.Option(help="ignore cached labels")] = False,
) -> None:
    """Label a material: force constants from each source → θ, cached in <material>/labels/,
    summarised in ensemble.json; reference.json = median over the stable members."""
    sources = [x is not None for x in (members, calculator, model_file, force_constants)]
    if sum(sources) != 1:
        raise FcinvertError(
            "label: give exactly one of --members, --calculator, --model-file, --force-constants"
        )
    validate.finite(displacement, "--displacement", above=0.0)
    if step_check is not None:
        validate.finite(step_check, "--step-check", above=0.0)
    validate.input_file(force_constants, "--force-constants")
    validate.input_file(structure, "--structure")
    dims = _parse_dim(dim)
    loaded = load_material(material)
    settings = LabelSettings(displacement=displacement, relax=relax, step_check=step_check)
    with console.status("building the FC space and the stability check"):
        labeller = Labeller(loaded, settings)

    if force_constants is not None:
        phonon = load_force_constants(force_constants, structure, dims)
        result = label_force_constants(
            labeller, phonon, name or "force-constants", str(force_constants.resolve())
        )
        write_label(loaded, result, labeller.fcspace.names)
        results = [result]
    else:
        chosen = _members(loaded, members, calculator, model_file, model_kind, name)
        results = _run(labeller, chosen, recompute) if chosen else []
    failures = {r.name: r.message for r in results if r.status == "failed"}
    from fcinvert.labels.shells import settle_shells

    labeller, choice = settle_shells(labeller)
    if choice is not None:
        changes = " ".join(f"{x:.2f}" for x in choice.ensemble)
        console.print(
            f"shells: {choice.chosen} of the {choice.probe_shells}-shell probe (ensemble change "
            f"per shell {changes} meV; kept while above {choice.threshold_meV} meV); the labels "
            "are cut after it"
        )
    summary = summarise(labeller, failures)
    _print_table(results, zone_boundary_label(loaded))
    if "reference" in summary:
        used = summary["reference"]["members"]
        console.print(f"reference.json: median over {len(used)} stable members: {', '.join(used)}")
    else:
        console.print("[yellow]no stable member yet: reference.json not written[/yellow]")
    if "energy_grid_set" in summary:
        console.print(f"energy grid set: {summary['energy_grid_set']}")


def _members(material, spec, calculator, model_file, model_kind, name) -> list[Member]:
    if spec is not None:
        chosen, skipped = select_members(spec, set(material.atoms.get_chemical_symbols()))
        for member in skipped:
            console.print(
                f"skipped {member.name}: package '{member.package}' not installed", markup=False
            )
        return chosen
    if calculator is not None:
        return [factory_member(calculator, name)]
    if model_kind is None:
        raise FcinvertError(f"--model-file needs --model-kind ({', '.join(MODEL_FILE_KINDS)})")
    return [model_file_member(model_file, model_kind, name)]


def _run(labeller: Labeller, members: list[Member], recompute: bool) -> list[LabelResult]:
    columns = (
        SpinnerColumn(),
        TextColumn("{task.description}"),
        BarColumn(),
        TextColumn("{task.completed}/{task.total}"),
        TimeElapsedColumn(),
    )
    with Progress(*columns, console=console) as progress:
        task = progress.add_task("labelling", total=len(members))

        def start(member: Member) -> None:
            progress.update(task, description=f"labelling {member.name}")

        def done(result: LabelResult) -> None:
            progress.advance(task)
            colour = {"stable": "green", "unstable": "yellow"}.get(result.status, "red")
            progress.console.print(
                f"  {result.name}: [{colour}]{result.status}[/{colour}] {result.message}"
            )

        return run_members(labeller, members, recompute=recompute, on_start=start, on_done=done)


def _parse_dim(text: str | None) -> list[int] | None:
    if text is None:
        return None
    try:
        dims = [int(x) for x in text.replace(",", " ").split()]
    except ValueError:
        raise FcinvertError(f"--dim: '{text}' is not a list of integers") from None
    if len(dims) not in (3, 9):
        raise FcinvertError(f"--dim: '{text}': give 3 or 9 integers, not {len(dims)}")
    matrix = np.diag(dims) if len(dims) == 3 else np.reshape(dims, (3, 3))
    if round(float(np.linalg.det(matrix))) < 1:
        raise FcinvertError(f"--dim: '{text}' is not a supercell (determinant must be ≥ 1)")
    return dims


def _print_table(results: list[LabelResult], boundary: str) -> None:
    table = Table(title="ensemble members (energies in meV)")
    for column in (
        "member",
        "status",
        "Γ-opt / highest",
        f"{boundary} branches",
        "lowest",
        "residual eV/Å²",
        "θ vs own RMS",
        "time s",
    ):
        table.add_column(column)
    for r in results:
        f = r.frequencies
        top = f.get("gamma_optical") if f.get("gamma_optical") is not None else f.get("highest")
        point = f.get("points", {}).get(boundary)
        table.add_row(
            r.name,
            r.status if r.status != "failed" else f"failed: {r.message}",
            _fmt(top),
            " ".join(f"{x:.1f}" for x in sorted(set(round(v, 1) for v in point))) if point else "",
            _fmt(f.get("lowest_off_gamma")),
            "" if r.residual is None else f"{r.residual:.1e}",
            _fmt(r.dispersion_rms, 3),
            f"{r.wall_s:.1f}",
        )
    console.print(table)


def _fmt(value: float | None, digits: int = 1) -> str:
    return "" if value is None else f"{value:.{digits}f}"


def register(app: typer.Typer) -> None:
    epilog = "Built-in members (--members NAME,NAME or all-offline):\n\n" + members_help()
    app.command("label", epilog=epilog)(label)
