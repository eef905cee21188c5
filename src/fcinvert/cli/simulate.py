"""``fcinvert simulate``: the fast-model spectrum of a set of FC parameters."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console

from fcinvert import validate
from fcinvert.cli.map_options import CmapOption, NormOption, VmaxOption, VminOption, map_scale
from fcinvert.errors import FcinvertError

console = Console(stderr=True)


def read_parameters(path: Path) -> dict[str, float]:
    """``{"parameters": {name: value}}`` from a JSON file."""
    from fcinvert.iohelpers import read_json

    content = read_json(path, "parameter file")
    try:
        values = content["parameters"]
        return {str(k): float(v) for k, v in values.items()}
    except (ValueError, KeyError, TypeError, AttributeError) as error:
        raise FcinvertError(
            f'{path}: expected {{"parameters": {{name: number, ...}}}} ({error})'
        ) from None


def simulate(
    material: Annotated[str, typer.Argument(help="material name or folder")],
    out: Annotated[Path, typer.Option(help="spectrum file to write (HDF5)")],
    params: Annotated[Path | None, typer.Option(help='JSON {"parameters": {name: value}}')] = None,
    plot: Annotated[Path | None, typer.Option(help="figure (PNG or SVG)")] = None,
    export_fc: Annotated[Path | None, typer.Option(help="folder for phonopy files")] = None,
    physical: Annotated[
        bool, typer.Option(help="coherent one-phonon S(Q, E) (eigenvectors, DW, Bose)")
    ] = False,
    temperature: Annotated[float | None, typer.Option(help="K (physical model)")] = None,
    zones: Annotated[
        str, typer.Option(help="physical: auto | |Q| radius 1/Å | hkl list '2,2,0;1,1,1'")
    ] = "auto",
    ei: Annotated[float | None, typer.Option(help="physical, zones auto: Ei in meV")] = None,
    norm: NormOption = "power",
    vmin: VminOption = None,
    vmax: VmaxOption = None,
    cmap: CmapOption = "viridis",
) -> None:
    """Simulate I(q, E) on the material's path; parameters not given keep their reference."""
    from fcinvert.data.spectrum_file import write_spectrum
    from fcinvert.physics.export import write_phonopy_files
    from fcinvert.physics.fcspace import build_fcspace
    from fcinvert.physics.material import load_material
    from fcinvert.report.figures import spectrum_figure
    from fcinvert.simulate import imaginary_modes, simulate_spectrum

    validate.output_file(out, "--out")
    validate.figure_file(plot)
    validate.output_folder(export_fc, "--export-fc")
    validate.distinct({"--out": out, "--plot": plot, "--export-fc": export_fc})
    validate.input_file(params, "--params")
    validate.temperature(temperature)
    if ei is not None:
        validate.finite(ei, "--ei", above=0.0)
    scale = map_scale(norm, vmin, vmax, cmap) if plot else None
    loaded = load_material(material)
    fcspace = build_fcspace(loaded)
    reference = loaded.require_reference()
    base = fcspace.theta_from_dict(reference, base=[0.0] * fcspace.n_params)
    given = read_parameters(params) if params else {}
    try:
        theta = fcspace.theta_from_dict(given, base)
    except FcinvertError as error:
        raise FcinvertError(f"{params}: {error}") from None
    spectrum = simulate_spectrum(loaded, fcspace, theta)
    if physical:
        from fcinvert.physics.structure_factor import physical_path_spectrum

        if temperature is not None:
            spectrum.temperature_K = temperature
        spectrum.intensity = physical_path_spectrum(
            loaded, fcspace, theta, spectrum.temperature_K, zones, ei
        )
    unstable = imaginary_modes(spectrum)
    if unstable:
        console.print(f"[yellow]warning: {unstable} imaginary modes off Γ (unstable FCs)[/yellow]")
    write_spectrum(out, spectrum, attrs={"parameters": json.dumps(fcspace.as_dict(theta))})
    console.print(f"wrote {out}: {spectrum.intensity.shape[0]} q × {spectrum.intensity.shape[1]} E")
    if plot:
        title = f"{loaded.name}: {'physical' if physical else 'fast-model'} I(q, E)"
        units = "S(Q, E) (arb. units)" if physical else "I(q, E) (1/meV)"
        spectrum_figure(
            loaded.path,
            spectrum.energy,
            spectrum.intensity,
            spectrum.frequencies,
            title,
            plot,
            scale,
            units,
        )
        console.print(f"wrote {plot}")
    if export_fc:
        paths = write_phonopy_files(loaded, fcspace, theta, export_fc)
        console.print(f"wrote {', '.join(str(p) for p in paths.values())}")


def register(app: typer.Typer) -> None:
    app.command("simulate")(simulate)
