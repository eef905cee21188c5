"""``fcinvert watch`` (fold and re-invert a measurement folder as orientation files arrive, with
a live page) and ``fcinvert plan`` (rank the orientations to measure next)."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console

from fcinvert import validate
from fcinvert.errors import FcinvertError

console = Console(stderr=True)

FolderArgument = Annotated[
    Path, typer.Argument(help="folder the orientation files arrive in (SaveMD, NXSPE, spectra)")
]
MaterialOption = Annotated[
    str | None, typer.Option(help="material name or folder (default: the model's)")
]
ModelOption = Annotated[
    str | None,
    typer.Option(help="trained model (bundle folder or shipped name); none: ensemble alone"),
]
UOption = Annotated[str, typer.Option(help="NXSPE/plan: hkl along the beam at ψ = 0")]
VOption = Annotated[str, typer.Option(help="NXSPE/plan: hkl in the horizontal plane")]
WidthOption = Annotated[float, typer.Option(help="half-width across the path, r.l.u.")]


def _context(material: str | None, model: str | None):
    """(material, fcspace, bundle or None) from --material and --model, checked to agree."""
    from fcinvert.inversion.invert import model_material
    from fcinvert.models.bundle import load_bundle
    from fcinvert.physics.fcspace import build_fcspace
    from fcinvert.physics.material import load_material

    if model is None and material is None:
        raise FcinvertError("give --material (refinement from the ensemble) or --model")
    if model is None:
        chosen = load_material(material)
        return chosen, build_fcspace(chosen), None
    bundle = load_bundle(model)
    chosen, fcspace = model_material(bundle)
    if material is not None and load_material(material).name != chosen.name:
        raise FcinvertError(f"--material {material} and --model {model} disagree")
    return chosen, fcspace, bundle


def _watcher(folder, material, model, u, v, width, full_every, seed, targets):
    from fcinvert.analysis.watch import Watcher
    from fcinvert.cli.measure import parse_vector
    from fcinvert.data.accumulate import Geometry
    from fcinvert.inversion.live import LiveInversion

    if not folder.is_dir():
        raise FcinvertError(f"{folder}: not a folder")
    validate.finite(width, "--width", above=0.0)
    loaded, fcspace, bundle = _context(material, model)
    geometry = Geometry(loaded, width, parse_vector(u, "u"), parse_vector(v, "v"))
    live = LiveInversion(loaded, fcspace, bundle, full_every=full_every, seed=seed)
    return Watcher(folder, geometry, live, targets, lambda line: console.print(line))


def watch(
    folder: FolderArgument,
    out: Annotated[Path, typer.Option(help="folder of the live page and history.json")],
    material: MaterialOption = None,
    model: ModelOption = None,
    ei: Annotated[
        float | None, typer.Option(help="incident energy, meV (shown on the page)")
    ] = None,
    target_std: Annotated[
        float | None, typer.Option(help="stop when every determined σ ≤ this (eV/Å²)")
    ] = None,
    target_band: Annotated[
        float | None, typer.Option(help="stop when the median 5–95 % band ≤ this (meV)")
    ] = None,
    once: Annotated[
        bool, typer.Option("--once", help="fold and invert what is complete now, then exit")
    ] = False,
    interval: Annotated[float, typer.Option(help="seconds between polls")] = 5.0,
    refresh: Annotated[int, typer.Option(help="page reload period, s")] = 10,
    full_every: Annotated[
        int, typer.Option(help="a full multi-start search every N updates (warm starts between)")
    ] = 5,
    u: UOption = "1,1,0",
    v: VOption = "0,0,1",
    width: WidthOption = 0.05,
    seed: Annotated[int, typer.Option(help="seed of every random draw")] = 0,
) -> None:
    """Fold each new orientation file, re-invert, keep OUT/index.html and OUT/history.json;
    stop when the target is reached (or after one pass with --once)."""
    from fcinvert.analysis.watch import Targets
    from fcinvert.report.live import write_page

    validate.output_folder(out, "--out")
    validate.finite(interval, "--interval", above=0.0)
    validate.integer(refresh, "--refresh", minimum=1)
    validate.integer(full_every, "--full-every", minimum=1)
    validate.integer(seed, "--seed", minimum=0)
    for value, name in ((target_std, "--target-std"), (target_band, "--target-band")):
        if value is not None:
            validate.finite(value, name, above=0.0)
    if ei is not None:
        validate.finite(ei, "--ei", above=0.0)
    targets = Targets(target_std, target_band)
    watcher = _watcher(folder, material, model, u, v, width, full_every, seed, targets)
    text = watcher.describe_targets()
    subtitle = f"folder {folder}" + (f", Ei {ei:g} meV" if ei is not None else "")
    loaded = watcher.geometry.material

    def page() -> None:
        write_page(watcher.state, loaded, targets, out, refresh, text, subtitle)

    page()
    console.print(f"watching {folder}; live page {out / 'index.html'}")
    try:
        while True:
            entry = watcher.step()
            if entry is not None:
                began = time.perf_counter()
                page()
                entry.seconds["page"] = time.perf_counter() - began
            if watcher.state.stopped:
                break
            if once and watcher.tracker.polls >= 2:  # every file seen twice: all complete ones read
                watcher.state.stopped = "one pass (--once)"
                break
            time.sleep(interval)
    except KeyboardInterrupt:
        watcher.state.stopped = "stopped by the user"
    page()
    if once and not watcher.state.history:
        raise FcinvertError(f"{folder}: no complete orientation file could be folded")
    console.print(f"{watcher.state.stopped}; wrote {out / 'index.html'} and history.json")


def register(app: typer.Typer) -> None:
    app.command("watch")(watch)
    app.command("plan")(plan)


def plan(
    folder: FolderArgument,
    out: Annotated[Path, typer.Option(help="ranking to write (JSON)")],
    material: MaterialOption = None,
    model: ModelOption = None,
    ei: Annotated[float, typer.Option(help="incident energy of the candidates, meV")] = 40.0,
    candidates: Annotated[
        str, typer.Option(help="candidate ψ in degrees: start:stop:step or a list")
    ] = "0:180:1",
    counts: Annotated[
        float | None,
        typer.Option(help="counts per orientation (default: the measured files' mean)"),
    ] = None,
    objective: Annotated[
        str, typer.Option(help="theta: information on θ (nats); band: dispersion variance")
    ] = "theta",
    plot: Annotated[Path | None, typer.Option(help="figure of the gain against ψ")] = None,
    background: Annotated[float, typer.Option(help="background, fraction of mean S")] = 0.1,
    temperature: Annotated[float | None, typer.Option(help="sample temperature, K")] = None,
    q_step: Annotated[float, typer.Option(help="voxel size of the simulation, r.l.u.")] = 0.05,
    u: UOption = "1,1,0",
    v: VOption = "0,0,1",
    width: WidthOption = 0.05,
    seed: Annotated[int, typer.Option(help="seed of every random draw")] = 0,
) -> None:
    """Rank candidate orientations by the information they would add to what is measured."""
    from fcinvert.analysis.plan import (
        MODEL_ERROR_DEFAULT,
        OBJECTIVES,
        measured_state,
        rank_candidates,
        simulate_candidates,
    )
    from fcinvert.analysis.watch import Targets
    from fcinvert.cli.measure import parse_vector
    from fcinvert.cli.progress import stage_progress
    from fcinvert.data.measurement import parse_orientations
    from fcinvert.iohelpers import atomic_write_text
    from fcinvert.physics.instrument import Orientation, Spectrometer
    from fcinvert.physics.reciprocal import conventional_lattice
    from fcinvert.physics.structure_factor import StructureFactorModel

    validate.output_file(out, "--out", (".json",))
    validate.figure_file(plot)
    validate.distinct({"--out": out, "--plot": plot})
    validate.choice(objective, "--objective", OBJECTIVES)
    validate.finite(ei, "--ei", above=0.0)
    validate.finite(background, "--background", minimum=0.0)
    validate.finite(q_step, "--q-step", above=0.0)
    validate.temperature(temperature)
    if counts is not None:
        validate.finite(counts, "--counts", above=0.0)
    psi = parse_orientations(candidates)
    watcher = _watcher(folder, material, model, u, v, width, 1, seed, Targets())
    loaded, live = watcher.geometry.material, watcher.inversion
    watcher.tracker.poll()  # every file seen once …
    time.sleep(0.5)
    watcher.step()  # … and folded if unchanged since
    estimate = watcher.state.estimate
    fold = watcher.state.fold
    theta = live.ensemble.reference if estimate is None else estimate.theta
    if estimate is None and counts is None:
        raise FcinvertError(f"{folder}: nothing measured yet; give --counts per orientation")
    orientation = Orientation.from_vectors(
        conventional_lattice(loaded), parse_vector(u, "u"), parse_vector(v, "v")
    )
    structure = StructureFactorModel.build(loaded, live.fcspace)
    with stage_progress(console) as progress:
        simulated = simulate_candidates(
            loaded,
            structure,
            theta,
            Spectrometer(ei=ei),
            orientation,
            psi,
            background=background,
            temperature=temperature,
            q_step=q_step,
            width=width,
            progress=progress,
        )
    if counts is None:
        if fold.counts is None:
            raise FcinvertError(f"{folder}: the files hold no counts; give --counts")
        # the measured counts per file, in the simulator's per-orientation units
        counts = fold.counts / len(fold.files) / float(simulated.share.sum(axis=(1, 2)).mean())
    measured, floor = None, MODEL_ERROR_DEFAULT
    if estimate is not None:
        measured, floor = measured_state(fold.spectrum(), estimate.fitted, loaded, fold.psi)
    ranking = rank_candidates(
        simulated,
        counts,
        theta,
        live.ensemble.prior,
        live.basis,
        loaded,
        measured,
        floor,
        objective,
    )
    content = {
        "format": "fcinvert-plan",
        "material": loaded.name,
        "objective": objective,
        "ei_meV": ei,
        "counts_per_orientation": counts,
        "measured_files": fold.files,
        "measured_psi_deg": fold.psi,
        "dispersion_std_now_meV": ranking.dispersion_std_now,
        "model_error_floor": ranking.model_error,
        "ranking": ranking.rows,
    }
    atomic_write_text(out, json.dumps(content, indent=1) + "\n")
    best = ranking.rows[0]
    console.print(
        f"best next orientation ψ = {best['psi']:g}° (gain {best['gain']:.3g}, "
        f"{best['new_pixels']} new pixels); wrote {out}"
    )
    if plot:
        from fcinvert.report.plan_figure import plan_figure

        plan_figure(content, plot)
        console.print(f"wrote {plot}")
