"""Intensity maps: the colour scale, unmeasured pixels, the energy axis, and invert's table."""

from __future__ import annotations

import numpy as np
import pytest
from matplotlib import colors

from fcinvert.cli import models as models_cli
from fcinvert.cli.map_options import map_scale
from fcinvert.errors import FcinvertError
from fcinvert.physics.material import QPath
from fcinvert.report.figures import (
    UNMEASURED_GREY,
    Lines,
    MapScale,
    draw_path_map,
    measured_energy_top,
    plt,
)


def test_percentile_limits_and_norms():
    data = np.linspace(0.0, 100.0, 10_001)
    power = MapScale().colour_norm(data)
    assert isinstance(power, colors.PowerNorm) and power.gamma == 0.5
    assert power.vmin == pytest.approx(1.0) and power.vmax == pytest.approx(99.5)
    fixed = MapScale(norm="linear", vmin=5.0, vmax=50.0).colour_norm(data)
    assert (fixed.vmin, fixed.vmax) == (5.0, 50.0)
    tiny = np.concatenate([np.full(100, 1e-12), np.full(100, 1.0)])
    log = MapScale(norm="log").colour_norm(tiny)
    assert isinstance(log, colors.LogNorm)
    assert log.vmin == pytest.approx(1e-3)  # at most three decades below the top


def test_unmeasured_pixels_are_grey_and_the_axis_stops_with_the_data():
    path = QPath(np.zeros((20, 3)), np.arange(20.0), [(0, "Γ"), (19, "X")], [])
    energy = np.arange(0.5, 50.0, 1.0)  # 50 bins of 1 meV
    intensity = np.random.default_rng(0).random((20, 50))
    intensity[:, 30:] = np.nan  # measured up to 30 meV
    intensity[5, 3] = np.nan
    frequencies = np.full((20, 1), 10.0)
    figure, axis = plt.subplots()
    mesh = draw_path_map(axis, path, energy, intensity, [Lines(frequencies, "refined")])
    shown = mesh.get_array()
    assert np.ma.count_masked(shown) == int(np.isnan(intensity).sum())
    assert colors.to_hex(mesh.get_cmap().get_bad()) == colors.to_hex(UNMEASURED_GREY)
    assert axis.get_ylim()[1] == pytest.approx(30.0) == measured_energy_top(energy, intensity)
    labels = [text.get_text() for text in axis.get_legend().get_texts()]
    assert labels == ["refined", "unmeasured"]
    assert figure.axes[-1].get_ylabel().startswith("intensity (arb. units)")  # the colour bar
    plt.close(figure)


def test_bad_colour_options_are_one_error():
    with pytest.raises(FcinvertError, match="--cmap 'nope'"):
        map_scale("power", None, None, "nope")
    with pytest.raises(FcinvertError, match="--vmin 2 must be below --vmax 1"):
        map_scale("linear", 2.0, 1.0, "viridis")
    with pytest.raises(FcinvertError, match="--vmin"):
        map_scale("log", 0.0, 1.0, "viridis")


def test_invert_table_fits_80_columns_with_short_unique_names():
    names = [f"shell{s}_Ga-As_(0.75,0.25,0.25)_{c}" for s in range(1, 10) for c in ("xx", "xy")]
    rows = [
        {"name": n, "value": -1.23456 * i, "std": 0.0123, "determined": i % 2 == 0,
         "source": "refined" if i % 3 else "inferred"}
        for i, n in enumerate(names)
    ]  # fmt: skip
    short = [models_cli.short_name(n) for n in names]
    assert short[1] == "shell1 Ga-As xy" and len(set(short)) == len(names)
    assert models_cli.short_name("shell1_(0.25,0.25,0.25)_xy") == "shell1 xy"
    console = models_cli.console
    width = console.width
    console.width = 80
    try:
        with console.capture() as captured:
            models_cli._print_parameters({"parameters": rows}, "gaas")
    finally:
        console.width = width
    lines = captured.get().splitlines()
    assert max(len(line) for line in lines) <= 80
    assert any("shell8 Ga-As xy" in line and "ML" in line for line in lines)
    assert sum("refined" in line for line in lines) == sum(r["source"] == "refined" for r in rows)
