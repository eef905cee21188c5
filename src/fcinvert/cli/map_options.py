"""The colour-scale options of every command that draws an intensity map."""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated, Literal

import typer

from fcinvert import validate
from fcinvert.errors import FcinvertError

if TYPE_CHECKING:
    from fcinvert.report.figures import MapScale

NormOption = Annotated[
    Literal["power", "log", "linear"],
    typer.Option(help="colour scale of the map: power (√I), log or linear"),
]
#: ``fold`` keeps ``--norm`` for its MDNorm normalisation file
ColourNormOption = Annotated[
    Literal["power", "log", "linear"],
    typer.Option("--colour-norm", help="colour scale of the map: power (√I), log or linear"),
]
VminOption = Annotated[
    float | None, typer.Option(help="bottom of the colour scale (default: 1st percentile)")
]
VmaxOption = Annotated[
    float | None, typer.Option(help="top of the colour scale (default: 99.5th percentile)")
]
CmapOption = Annotated[str, typer.Option(help="matplotlib colour map")]


def map_scale(norm: str, vmin: float | None, vmax: float | None, cmap: str) -> MapScale:
    """The checked options as a MapScale; a bad one is one error naming it."""
    import matplotlib

    from fcinvert.report.figures import MapScale

    for value, name in ((vmin, "--vmin"), (vmax, "--vmax")):
        if value is not None:
            validate.finite(value, name, above=0.0 if norm == "log" else None)
    if vmin is not None and vmax is not None and not vmin < vmax:
        raise FcinvertError(f"--vmin {vmin:g} must be below --vmax {vmax:g}")
    if cmap not in matplotlib.colormaps:
        raise FcinvertError(f"--cmap '{cmap}': not a matplotlib colour map (e.g. viridis, magma)")
    return MapScale(norm=norm, vmin=vmin, vmax=vmax, cmap=cmap)  # type: ignore[arg-type]
