"""``fcinvert fold`` (a measured 4-D S(Q, E) → the material's path) and ``fcinvert measure``
(synthetic time-of-flight scans of a material, one spectrum file per crystal orientation)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import numpy as np
import typer
from rich.console import Console
from rich.table import Table

from fcinvert import validate
from fcinvert.cli.map_options import (
    CmapOption,
    ColourNormOption,
    NormOption,
    VmaxOption,
    VminOption,
    map_scale,
)
from fcinvert.cli.progress import stage_progress
from fcinvert.data.fold import DEFAULT_PERPENDICULAR, FoldResult, fold_points, fold_volume
from fcinvert.data.readers import Volume, read_measurement, write_savemd
from fcinvert.data.spectrum_file import write_spectrum
from fcinvert.errors import FcinvertError
from fcinvert.iohelpers import atomic_write_text
from fcinvert.physics.fcspace import build_fcspace
from fcinvert.physics.instrument import Orientation, Spectrometer
from fcinvert.physics.material import Material, load_material
from fcinvert.physics.reciprocal import conventional_lattice

if TYPE_CHECKING:
    from fcinvert.report.figures import MapScale

console = Console(stderr=True)


def parse_vector(text: str | None, name: str) -> np.ndarray | None:
    """ "1,1,0" → array([1., 1., 0.]); None stays None."""
    if text is None:
        return None
    try:
        values = np.array([float(x) for x in text.split(",")])
    except ValueError:
        values = np.zeros(0)
    if values.shape != (3,) or not np.all(np.isfinite(values)) or not np.any(values):
        raise FcinvertError(f"--{name} '{text}': expected three numbers like 1,1,0")
    return values


def print_coverage(result: FoldResult, shown: int = 8) -> None:
    """The measured fraction and the zones that contribute most, as a table on stderr."""
    table = Table(title=f"coverage: {100 * result.measured_fraction:.1f}% of path pixels")
    for column in ("zone (hkl)", "Q voxels", "(Q, E) pixels", "path pixels"):
        table.add_column(column, justify="right")
    for zone in result.zones[:shown]:
        table.add_row(str(zone.hkl), str(zone.voxels), str(zone.pixels), str(zone.path_pixels))
    if len(result.zones) > shown:
        table.add_row(f"… {len(result.zones) - shown} more", "", "", "")
    console.print(table)
    info = result.info
    if "measured_q_voxels" in info:
        console.print(
            f"{info['folded_q_voxels']} of {info['measured_q_voxels']} measured Q voxels fold onto "
            f"the path; {100 * info['energy_outside_window']:.0f}% of the energy range lies "
            "outside the material's window"
        )
    elif "measured_points" in info:
        console.print(
            f"{info['folded_points']} of {info['measured_points']} measured points fold onto the "
            f"path ({info['measured_points'] - info['points_in_window']} outside the energy window)"
        )


def _plot(material: Material, spectrum, title: str, out: Path, scale: MapScale | None) -> None:
    from fcinvert.report.figures import spectrum_figure

    units = "intensity (data units)"
    spectrum_figure(
        material.path, spectrum.energy, spectrum.intensity, None, title, out, scale, units
    )
    console.print(f"wrote {out}")


def fold(
    data: Annotated[Path, typer.Argument(help="SaveMD (.nxs), NXSPE or text table (.txt/.csv)")],
    material: Annotated[str, typer.Option(help="material name or folder")],
    out: Annotated[Path, typer.Option(help="spectrum file to write (HDF5)")],
    norm: Annotated[
        Path | None, typer.Option(help="MDNorm normalisation workspace (SaveMD)")
    ] = None,
    plot: Annotated[Path | None, typer.Option(help="figure of the folded spectrum")] = None,
    width: Annotated[
        float, typer.Option(help="half-width across the path, r.l.u. of the conventional cell")
    ] = DEFAULT_PERPENDICULAR,
    temperature: Annotated[float | None, typer.Option(help="sample temperature, K")] = None,
    u: Annotated[str | None, typer.Option(help="NXSPE: hkl along the beam at ψ = 0")] = None,
    v: Annotated[str | None, typer.Option(help="NXSPE: hkl in the horizontal plane")] = None,
    psi: Annotated[float | None, typer.Option(help="NXSPE: ψ in degrees (default: file)")] = None,
    colour_norm: ColourNormOption = "power",
    vmin: VminOption = None,
    vmax: VmaxOption = None,
    cmap: CmapOption = "viridis",
) -> None:
    """Fold a measured S(Q, E) onto the material's path and energy grid."""
    validate.output_file(out, "--out")
    validate.figure_file(plot)
    validate.distinct({"--out": out, "--plot": plot})
    validate.temperature(temperature)
    validate.finite(width, "--width", above=0.0)
    if psi is not None:
        validate.finite(psi, "--psi")
    scale = map_scale(colour_norm, vmin, vmax, cmap) if plot else None
    loaded = load_material(material)
    measurement = read_measurement(
        data, norm, conventional_lattice(loaded), parse_vector(u, "u"), parse_vector(v, "v"), psi
    )
    if isinstance(measurement, Volume):
        result = fold_volume(measurement, loaded, width, temperature)
    else:
        result = fold_points(measurement, loaded, width, temperature)
    write_spectrum(
        out, result.spectrum, attrs={"source_file": str(data), "coverage": result.coverage_json()}
    )
    print_coverage(result)
    console.print(f"wrote {out} (folded in {result.seconds:.1f} s)")
    if plot:
        _plot(loaded, result.spectrum, f"{loaded.name}: folded {data.name}", plot, scale)


def measure(
    material: Annotated[str, typer.Argument(help="material name or folder")],
    out: Annotated[Path, typer.Option(help="folder for the spectrum files")],
    ei: Annotated[float, typer.Option(help="incident energy, meV")] = 40.0,
    orientations: Annotated[
        str, typer.Option(help="ψ in degrees: start:stop:step (stop excluded) or a list")
    ] = "0:120:1",
    counts: Annotated[float, typer.Option(help="expected counts per orientation")] = 1e5,
    background: Annotated[float, typer.Option(help="background as a fraction of mean S")] = 0.1,
    u: Annotated[str, typer.Option(help="hkl along the beam at ψ = 0")] = "1,1,0",
    v: Annotated[str, typer.Option(help="hkl in the horizontal plane")] = "0,0,1",
    temperature: Annotated[float | None, typer.Option(help="sample temperature, K")] = None,
    params: Annotated[Path | None, typer.Option(help='JSON {"parameters": {name: value}}')] = None,
    q_step: Annotated[float, typer.Option(help="voxel size of the H, K, L grid, r.l.u.")] = 0.05,
    width: Annotated[
        float, typer.Option(help="half-width across the path, r.l.u.")
    ] = DEFAULT_PERPENDICULAR,
    pixel: Annotated[float, typer.Option(help="detector pixel size, degrees")] = 0.5,
    seed: Annotated[int, typer.Option(help="random seed of the counting noise")] = 0,
    volume: Annotated[
        bool, typer.Option(help="also write the 4-D data/normalisation pair (SaveMD layout)")
    ] = False,
    plot: Annotated[bool, typer.Option(help="write all.png")] = True,
    norm: NormOption = "power",
    vmin: VminOption = None,
    vmax: VmaxOption = None,
    cmap: CmapOption = "viridis",
) -> None:
    """Simulate ToF scans (ARCS-like) of a material: one spectrum file per orientation, all.h5
    for all of them together, scans.json listing them."""
    from fcinvert.cli.simulate import read_parameters
    from fcinvert.data.measurement import parse_orientations, signal_to_noise, simulate_scans
    from fcinvert.physics.structure_factor import StructureFactorModel

    validate.output_folder(out, "--out")
    validate.input_file(params, "--params")
    validate.temperature(temperature)
    validate.finite(ei, "--ei", above=0.0)
    validate.finite(counts, "--counts", above=0.0)
    validate.finite(background, "--background", minimum=0.0)
    validate.finite(q_step, "--q-step", above=0.0)
    validate.finite(width, "--width", above=0.0)
    validate.finite(pixel, "--pixel", above=0.0)
    validate.integer(seed, "--seed", minimum=0)
    scale = map_scale(norm, vmin, vmax, cmap) if plot else None
    loaded = load_material(material)
    fcspace = build_fcspace(loaded)
    base = fcspace.reference_theta(loaded)
    theta = fcspace.theta_from_dict(read_parameters(params), base) if params else base
    angles = parse_orientations(orientations)
    spectrometer = Spectrometer(ei=ei, pixel=pixel)
    u_vector, v_vector = parse_vector(u, "u"), parse_vector(v, "v")
    orientation = Orientation.from_vectors(conventional_lattice(loaded), u_vector, v_vector)
    model = StructureFactorModel.build(loaded, fcspace)
    with stage_progress(console) as progress:
        scans = simulate_scans(
            loaded,
            model,
            theta,
            spectrometer,
            orientation,
            angles,
            counts,
            background,
            temperature,
            q_step,
            width,
            seed,
            volume,
            progress,
        )
    out.mkdir(parents=True, exist_ok=True)
    common = {
        "source": "fcinvert measure",
        "ei_meV": ei,
        "u": u,
        "v": v,
        "counts": counts,
        "background_fraction": background,
        "seed": seed,
        "parameters": json.dumps(fcspace.as_dict(theta)),
    }
    listing = []
    for i, (angle, spectrum) in enumerate(zip(scans.psi, scans.single, strict=True)):
        name = f"scan_{i:03d}.h5"
        write_spectrum(out / name, spectrum, attrs={**common, "psi_deg": float(angle)})
        listing.append(
            {
                "file": name,
                "psi_deg": float(angle),
                "measured_fraction": float(np.mean(np.isfinite(spectrum.intensity))),
                "signal_to_noise": signal_to_noise(spectrum),
            }
        )
    combined = scans.combined
    write_spectrum(
        out / "all.h5",
        combined.spectrum,
        attrs={
            **common,
            "psi_deg": json.dumps(scans.psi.tolist()),
            "coverage": combined.coverage_json(),
        },
    )
    summary = {
        "material": loaded.name,
        "scans": listing,
        "all": "all.h5",
        "measured_fraction": combined.measured_fraction,
        "signal_to_noise": signal_to_noise(combined.spectrum),
        **scans.info,
    }
    if scans.volume is not None:
        write_savemd(out / "volume_data.nxs", scans.volume)
        write_savemd(out / "volume_norm.nxs", scans.volume, normalisation=True)
        summary["volume"] = {"data": "volume_data.nxs", "norm": "volume_norm.nxs"}
    atomic_write_text(out / "scans.json", json.dumps(summary, indent=2) + "\n")
    print_coverage(combined)
    console.print(
        f"wrote {len(listing)} scans, all.h5 and scans.json to {out} "
        f"({scans.info['seconds']:.1f} s)"
    )
    if plot:
        _plot(
            loaded,
            combined.spectrum,
            f"{loaded.name}: {len(listing)} orientations, Ei {ei:g} meV",
            out / "all.png",
            scale,
        )


def register(app: typer.Typer) -> None:
    app.command("fold")(fold)
    app.command("measure")(measure)
