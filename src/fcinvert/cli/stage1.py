"""``fcinvert sensitivity`` and ``fcinvert dataset``: Stage I parameter ranking and datasets.

The selection (the K most influential parameters) is not stored: both commands compute it
from the material's current ensemble and reference (about a second), so they always agree.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)
from rich.table import Table

from fcinvert import validate
from fcinvert.errors import FcinvertError
from fcinvert.labels.domain import (
    DEFAULT_K,
    DEGENERATE_HALF_WIDTH,
    EXPAND_ABOVE,
    EXPAND_BELOW,
    Toward,
)
from fcinvert.physics.material import PIXELS_TARGET, load_material

console = Console()

MaterialArgument = Annotated[
    str, typer.Argument(help="bundled name (ge, nb), library name or folder")
]
KOption = Annotated[int, typer.Option("--k", help="number of parameters to sample")]
BelowOption = Annotated[
    float, typer.Option(help="domain: extend min by this fraction of the ensemble range")
]
AboveOption = Annotated[
    float, typer.Option(help="domain: extend max by this fraction of the ensemble range")
]
TowardOption = Annotated[
    str, typer.Option(help="'value' (as written) or 'magnitude' (large extension towards |θ|)")
]
HalfWidthOption = Annotated[
    float, typer.Option(help="relative half width where the ensemble range is zero")
]


def sensitivity(
    material: MaterialArgument,
    plot: Annotated[Path | None, typer.Option(help="figure (PNG, and SVG beside it)")] = None,
    k: KOption = DEFAULT_K,
    expand_below: BelowOption = EXPAND_BELOW,
    expand_above: AboveOption = EXPAND_ABOVE,
    toward: TowardOption = "magnitude",
    half_width: HalfWidthOption = DEGENERATE_HALF_WIDTH,
) -> None:
    """Rank the FC parameters by how much of the dispersion's variance each one drives."""
    from fcinvert.labels.sensitivity import compute_sensitivity, plot_sensitivity
    from fcinvert.physics.fcspace import build_fcspace

    validate.figure_file(plot)
    _check_domain_options(k, expand_below, expand_above, half_width)
    loaded = load_material(material)
    result = compute_sensitivity(
        loaded, build_fcspace(loaded), expand_below, expand_above, _toward(toward), half_width
    )
    selected = set(result.select(k).tolist())
    table = Table(
        title=f"{result.material}: sensitivity over {len(result.members)} member(s)",
        caption="spread eV/Å²; rms ∂ω/∂θ meV per eV/Å²; share of the dispersion variance",
    )
    for column in ("rank", "parameter", "spread", "rms ∂ω/∂θ", "share", "cumulative"):
        table.add_column(column, justify="left" if column == "parameter" else "right", no_wrap=True)
    for rank, (index, cumulative) in enumerate(
        zip(result.order, result.cumulative, strict=True), start=1
    ):
        mark = "*" if index in selected else " "
        table.add_row(
            f"{rank}{mark}",
            result.names[index],
            f"{result.spread[index]:.4f}",
            f"{result.jacobian_rms[index]:.3f}",
            f"{result.share[index]:.4f}",
            f"{cumulative:.4f}",
        )
    console.print(table)
    console.print(f"K = {k} (*) keeps {result.cumulative[k - 1]:.1%} of the dispersion variance")
    if plot is not None:
        written = plot_sensitivity(result, plot, k)
        console.print(f"wrote {', '.join(str(p) for p in written)}")


def dataset(
    material: MaterialArgument,
    out: Annotated[Path, typer.Option(help="dataset file to write (HDF5)")],
    n: Annotated[
        int, typer.Option("--n", help="training samples (n + test at most 5 000 000)")
    ] = 10_000,
    test: Annotated[int, typer.Option(help="test samples")] = 1_500,
    seed: Annotated[int, typer.Option(help="random seed (same seed, same file)")] = 0,
    k: KOption = DEFAULT_K,
    workers: Annotated[
        int, typer.Option(help="local dask workers (0: no dask, this process)")
    ] = min(2, os.cpu_count() or 1),
    processes: Annotated[
        bool, typer.Option(help="local workers as processes instead of threads")
    ] = False,
    scheduler: Annotated[
        str | None, typer.Option(help="address of a running dask scheduler, tcp://host:port")
    ] = None,
    compression: Annotated[str, typer.Option(help="lzf, gzip or none")] = "lzf",
    expand_below: BelowOption = EXPAND_BELOW,
    expand_above: AboveOption = EXPAND_ABOVE,
    toward: TowardOption = "magnitude",
    half_width: HalfWidthOption = DEGENERATE_HALF_WIDTH,
    realistic: Annotated[
        bool,
        typer.Option(
            help="measurement-like spectra instead of the paper's fast model: physical "
            "one-phonon intensities over random zone sets and temperatures (5-300 K), random "
            "resolution, energy-window top, background, Poisson counts, coverage gaps and ToF "
            "masks; NaN = unmeasured (same θ as the fast dataset of the same seed)"
        ),
    ] = False,
) -> None:
    """Draw stable FC sets from the training domain and write them with their spectra."""
    from fcinvert.data.dataset import generate_dataset, prepare_generator

    validate.output_file(out, "--out")
    validate.integer(n, "--n", minimum=1)
    validate.integer(test, "--test", minimum=0)
    if n + test > MAX_SPECTRA:
        hours, gib = _estimate(n + test, PIXELS_TARGET)
        raise FcinvertError(
            f"--n: {n + test:,} spectra (n + test) would take about {hours:,.0f} h and "
            f"{gib:,.0f} GiB; at most {MAX_SPECTRA:,}"
        )
    validate.integer(seed, "--seed", minimum=0, maximum=2**63 - 1)
    validate.integer(workers, "--workers", minimum=0, maximum=1024)
    _check_domain_options(k, expand_below, expand_above, half_width)
    loaded = load_material(material)
    _announce_size(n + test, loaded, realistic)
    generator = prepare_generator(
        loaded, seed, k, expand_below, expand_above, _toward(toward), half_width
    )
    if realistic:
        from fcinvert.data.realistic import prepare_realistic

        console.print("preparing measurement-like spectra (zone pool, Debye–Waller, ToF masks)")
        generator = prepare_realistic(loaded, generator)
    domain = generator.sampler.domain
    console.print(f"sampling {', '.join(domain.selected_names)}")
    columns = (
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        TimeRemainingColumn(),
    )
    with Progress(*columns, console=console, transient=False) as bar:
        task = bar.add_task(f"{loaded.name} spectra", total=n + test)
        summary = generate_dataset(
            loaded,
            out,
            n,
            test,
            seed,
            k,
            workers,
            scheduler,
            processes,
            compression=compression,
            progress=lambda count: bar.advance(task, count),
            generator=generator,
        )
    size = summary.path.stat().st_size / 2**20
    console.print(
        f"wrote {summary.path} ({size:.0f} MiB): {n} train + {test} test, "
        f"{summary.rejected} of {summary.drawn} draws rejected as unstable "
        f"({summary.rejection_rate:.1%}), {summary.wall_s:.1f} s"
    )


#: ``dataset`` refuses more spectra than this (n + test): at 200 × 100 float32 pixels each,
#: about 400 GB before compression and weeks of work
MAX_SPECTRA = 5_000_000
#: above this many spectra, ``dataset`` prints its time and size estimate first
ANNOUNCE_SPECTRA = 200_000
#: spectra per second the fast model renders on this project's 2-core machine with the
#: default workers (measured: 10^7 spectra took ~35 h); the realistic model is slower
FAST_RATE = 80.0


def _check_domain_options(k: int, below: float, above: float, half_width: float) -> None:
    validate.integer(k, "--k", minimum=1)
    validate.finite(below, "--expand-below", minimum=0.0)
    validate.finite(above, "--expand-above", minimum=0.0)
    validate.finite(half_width, "--half-width", above=0.0)


def _estimate(total: int, pixels: int) -> tuple[float, float]:
    """(hours at FAST_RATE, GiB of float32 spectra before compression) for ``total`` spectra
    of ``pixels`` pixels each."""
    return total / FAST_RATE / 3600, total * pixels * 4 / 2**30


def _announce_size(total: int, material, realistic: bool) -> None:
    """Warn, with an estimate of time and size, before a long dataset run."""
    if total <= ANNOUNCE_SPECTRA:
        return
    pixels = len(material.path.qpoints) * (
        len(material.energy.centres) if material.settings.energy else 100
    )
    hours, gib = _estimate(total, pixels)
    slower = " (the realistic model is slower still)" if realistic else ""
    console.print(
        f"[yellow]warning: {total:,} spectra: about {hours:.1f} h at {FAST_RATE:g} spectra/s"
        f"{slower} and {gib:,.0f} GiB before compression[/yellow]"
    )


def _toward(value: str) -> Toward:
    if value not in ("value", "magnitude"):
        raise FcinvertError(f"--toward must be 'value' or 'magnitude', not '{value}'")
    return value  # type: ignore[return-value]


def register(app: typer.Typer) -> None:
    app.command("sensitivity")(sensitivity)
    app.command("dataset")(dataset)
