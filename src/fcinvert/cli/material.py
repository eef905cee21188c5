"""``fcinvert material show|init``: look at a material, or make one from a structure file."""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import numpy as np
import typer
from pydantic import ValidationError
from rich.console import Console
from rich.table import Table

from fcinvert import validate
from fcinvert.errors import FcinvertError
from fcinvert.physics.fcspace import build_fcspace
from fcinvert.physics.material import Material, init_material, load_material

if TYPE_CHECKING:
    from fcinvert.data.spectrum_file import MeasurementGrid

#: sample temperature (K) of a new material when neither --temperature nor --data gives one
DEFAULT_TEMPERATURE = 5.0

console = Console()

#: the ``init`` option behind each field of the material settings
OPTION_OF = {
    "name": "--name",
    "shells": "--shells",
    "path_points": "--path-points",
    "bins": "--path-points",
    "max_meV": "--emax",
    "temperature_K": "--temperature",
    "fwhm0_meV": "--data",
    "slope": "--data",
}


def material_summary(material: Material) -> dict:
    """The material as one JSON-ready dict (the contract of ``material show --json``)."""
    fcspace = build_fcspace(material)
    reference = material.reference or {}
    energy = material.energy.centres.tolist() if material.settings.energy else None
    return {
        "name": material.name,
        "folder": str(material.folder),
        "cell": material.atoms.cell[:].tolist(),
        "positions": material.atoms.get_scaled_positions().tolist(),
        "symbols": material.atoms.get_chemical_symbols(),
        "masses": material.masses.tolist(),
        "supercell_matrix": material.supercell_matrix.tolist(),
        "cutoff_A": material.cutoff,
        "shells": material.settings.shells,
        "path": {
            "qpoints": material.path.qpoints.tolist(),
            "distances": material.path.distances.tolist(),
            "labels": [[i, label] for i, label in material.path.labels],
            "breaks": material.path.breaks,
        },
        "energy_meV": energy,
        "resolution": material.settings.resolution.model_dump(),
        "temperature_K": material.settings.temperature_K,
        "parameters": [
            {
                "name": p.name,
                "value": reference.get(p.name),
                "unit": "eV/Å²",
                "shell": p.shell,
                "bond_A": list(p.vector),
                "component": p.component,
            }
            for p in fcspace.parameters
        ],
        "reference_source": material.reference_info.get("source"),
    }


def show(
    material: Annotated[str, typer.Argument(help="bundled name (ge, nb), library name or folder")],
    as_json: Annotated[bool, typer.Option("--json", help="print one JSON object")] = False,
) -> None:
    """Show a material: cell, path, energy grid and the named FC parameters."""
    summary = material_summary(load_material(material))
    if as_json:
        print(json.dumps(summary))
        return
    console.print(f"[bold]{summary['name']}[/bold]  ({summary['folder']})")
    cell = np.array(summary["cell"])
    orbits = max((p["shell"] for p in summary["parameters"]), default=0)
    console.print(f"cell (Å): {np.array2string(cell, precision=4)}")
    console.print(f"atoms: {' '.join(summary['symbols'])}  masses (amu): {summary['masses']}")
    console.print(
        f"FC supercell: {summary['supercell_matrix'][0][0]}×{summary['supercell_matrix'][1][1]}"
        f"×{summary['supercell_matrix'][2][2]}, {summary['shells']} distance shells "
        f"({orbits} orbits: shell1…shell{orbits}), cutoff "
        f"{summary['cutoff_A']:.3f} Å"
    )
    labels = " ".join(f"{label}({i})" for i, label in summary["path"]["labels"])
    console.print(f"path: {len(summary['path']['qpoints'])} q-points  {labels}")
    if summary["energy_meV"]:
        e = summary["energy_meV"]
        console.print(f"energy: {len(e)} bins, centres {e[0]:.3f} … {e[-1]:.3f} meV")
    else:
        console.print("energy: not set yet (run 'fcinvert label')")
    table = Table(title=f"FC parameters (reference: {summary['reference_source'] or 'none'})")
    for column in ("#", "name", "shell", "value (eV/Å²)"):
        table.add_column(column)
    for i, p in enumerate(summary["parameters"]):
        value = "—" if p["value"] is None else f"{p['value']:+.5f}"
        table.add_row(str(i), p["name"], str(p["shell"]), value)
    console.print(table)


def init(
    structure: Annotated[Path, typer.Argument(help="structure file (POSCAR, CIF, any ase format)")],
    name: Annotated[str, typer.Option(help="name of the new material")],
    out: Annotated[Path | None, typer.Option(help="folder (default: the user library)")] = None,
    shells: Annotated[
        str,
        typer.Option(
            help="neighbour shells with free FCs, or 'auto': label measures how many the "
            "force-field ensemble needs (fcinvert.labels.shells)"
        ),
    ] = "auto",
    path_points: Annotated[int, typer.Option(help="q-points on the path")] = 200,
    emax: Annotated[
        float | None, typer.Option(help="top of the energy window, meV (not with --data)")
    ] = None,
    data: Annotated[
        Path | None,
        typer.Option(
            help="a measurement (spectrum file): its energy bins become the material's, "
            "unchanged; its resolution and temperature too when the file states them"
        ),
    ] = None,
    temperature: Annotated[
        float | None,
        typer.Option(help="sample temperature, K (default: --data's, else 5 K)"),
    ] = None,
    refuse_conversion: Annotated[
        bool, typer.Option(help="fail instead of converting a non-standard cell")
    ] = False,
) -> None:
    """Create a material folder from any structure file.

    The energy grid: --data's bins; else 0 to --emax in 20 000 / path-points bins; else set by
    'fcinvert label' from the ensemble (window 1.87 × its highest phonon, rounded up to 5 meV).
    The resolution: --data's (attributes resolution_fwhm0_meV, resolution_slope), else
    FWHM(E) = 1.0 meV + 0.02·E."""
    validate.safe_name(name, "--name")
    validate.output_folder(out, "--out")
    shell_count = parse_shells(shells)
    validate.integer(path_points, "--path-points", minimum=10, maximum=10_000)
    if emax is not None:
        validate.finite(emax, "--emax", above=0.0)
    if temperature is not None:
        validate.temperature(temperature)
    grid = None
    if data is not None:
        if emax is not None:
            raise FcinvertError("--emax and --data: the energy window comes from one of them")
        grid = read_grid(data, name)
    temperature = resolve_temperature(temperature, grid)
    try:
        folder, converted = init_material(
            structure,
            name,
            out=out,
            shells=shell_count,
            path_points=path_points,
            energy_max=emax,
            energy=grid.energy if grid else None,
            resolution=grid.resolution if grid else None,
            temperature=temperature,
            on_conversion="refuse" if refuse_conversion else "convert",
        )
    except ValidationError as error:  # the settings model's bounds, named by their option
        raise validate.settings_error(error, OPTION_OF) from None
    if converted:
        console.print("converted the cell to the seekpath standard primitive cell")
    material = load_material(folder)
    if grid is not None:
        console.print(describe_grid(material, data, grid))
    supercell = material.settings.supercell
    if material.settings.choose_shells:
        console.print(
            f"wrote {folder}: {len(material.atoms)} atoms; 'fcinvert label' will choose the "
            f"shells from a {material.settings.shells}-shell probe (supercell {supercell}³)"
        )
        return
    fcspace = build_fcspace(material)
    console.print(
        f"wrote {folder}: {len(material.atoms)} atoms, {fcspace.n_params} free FC parameters "
        f"({shell_count} shells, cutoff {material.cutoff:.3f} Å, supercell {supercell}³)"
    )


def parse_shells(text: str) -> int | None:
    """``--shells``: a count from 1 to 15, or 'auto' (None: chosen by ``label``)."""
    if text.strip() == "auto":
        return None
    try:
        count = int(text)
    except ValueError:
        raise FcinvertError(f"--shells: '{text}' is neither 'auto' nor an integer") from None
    validate.integer(count, "--shells", minimum=1, maximum=15)
    return count


def read_grid(data: Path, name: str) -> MeasurementGrid:
    """The grid of the measurement ``data`` for a new material ``name`` (one-line errors)."""
    from fcinvert.data.spectrum_file import measurement_grid, read_spectrum

    validate.input_file(data, "--data")
    spectrum = read_spectrum(data)
    if spectrum.material and spectrum.material != name:
        raise FcinvertError(
            f"--data {data}: a spectrum of '{spectrum.material}', not of '{name}' (name the "
            "material as the file does, or change the file's 'material' attribute)"
        )
    try:
        return measurement_grid(spectrum, f"--data {data}")
    except ValidationError as error:
        raise validate.settings_error(error, OPTION_OF) from None


def resolve_temperature(option: float | None, grid: MeasurementGrid | None) -> float:
    """The sample temperature (K): the option when given, else the measurement's, else 5 K."""
    if option is not None:
        return option
    if grid is not None and grid.temperature_K is not None:
        return grid.temperature_K
    return DEFAULT_TEMPERATURE


def describe_grid(material: Material, data: Path, grid: MeasurementGrid) -> str:
    """One line: where the new material's grid, resolution and temperature came from."""
    energy = material.settings.energy
    resolution = material.settings.resolution
    said = "from" if grid.resolution is not None else "default, not in"
    width = (energy.max_meV - energy.min_meV) / energy.bins
    return (
        f"from {data}: {energy.bins} energy bins of {width:g} meV, "
        f"{energy.min_meV:g}–{energy.max_meV:g} meV; resolution FWHM "
        f"{resolution.fwhm0_meV:g} + {resolution.slope:g}·E meV ({said} the file); "
        f"{material.settings.temperature_K:g} K"
        + ("" if grid.temperature_K is not None else " (the file states none)")
    )


def register(app: typer.Typer) -> None:
    group = typer.Typer(help="Materials: show one, or make one from a structure file.")
    group.command("show")(show)
    group.command("init")(init)
    app.add_typer(group, name="material")
