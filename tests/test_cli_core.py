"""The command line on good and bad input: one-line errors, exit code 2, nothing half-written."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import h5py
import numpy as np
import phonopy
import pytest

from fcinvert.data.spectrum_file import read_spectrum
from fcinvert.physics.dynamics import FREQUENCY_TO_MEV


def run(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "fcinvert", *args],
        capture_output=True,
        text=True,
        cwd=cwd,
        env=os.environ.copy(),
        check=False,
    )


def assert_one_line_error(result: subprocess.CompletedProcess, *fragments: str) -> None:
    assert result.returncode == 2, result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in result.stderr, result.stderr
    for fragment in fragments:
        assert fragment in lines[0]


def test_show_json_contract():
    result = run("material", "show", "ge", "--json")
    assert result.returncode == 0, result.stderr
    summary = json.loads(result.stdout)
    for key in (
        "name",
        "cell",
        "positions",
        "symbols",
        "masses",
        "path",
        "energy_meV",
        "parameters",
    ):
        assert key in summary
    assert np.shape(summary["path"]["qpoints"]) == (200, 3)
    assert len(summary["energy_meV"]) == 100
    assert summary["parameters"][0]["unit"] == "eV/Å²"
    assert [0, "Γ"] in summary["path"]["labels"]


def test_simulate_writes_spectrum_figure_and_phonopy_files(tmp_path):
    params = tmp_path / "p.json"
    params.write_text(json.dumps({"parameters": {"shell1_(0.25,0.25,0.25)_xx": -3.9}}))
    out, figure, folder = tmp_path / "s.h5", tmp_path / "s.png", tmp_path / "fc"
    result = run(
        "simulate",
        "ge",
        "--params",
        str(params),
        "--out",
        str(out),
        "--plot",
        str(figure),
        "--export-fc",
        str(folder),
    )
    assert result.returncode == 0, result.stderr
    spectrum = read_spectrum(out)
    assert spectrum.intensity.shape == (200, 100) and figure.stat().st_size > 10_000
    phonon = phonopy.load(
        folder / "phonopy_disp.yaml",
        force_constants_filename=folder / "FORCE_CONSTANTS",
        produce_fc=False,
        symmetrize_fc=False,
    )
    phonon.run_qpoints(spectrum.qpoints)
    theirs = phonon.qpoints.frequencies * FREQUENCY_TO_MEV / phonon.unit_conversion_factor
    assert np.allclose(theirs, spectrum.frequencies, rtol=1e-8, atol=1e-5)


def test_unknown_or_nan_parameter_is_refused_and_nothing_written(tmp_path):
    out = tmp_path / "s.h5"
    out.write_text("previous result")
    for values, fragment in (
        ({"shell9_bogus": 1.0}, "unknown parameter 'shell9_bogus'"),
        ({"shell1_(0.25,0.25,0.25)_xx": float("nan")}, "not a finite"),
    ):
        params = tmp_path / "p.json"
        params.write_text(json.dumps({"parameters": values}))
        assert_one_line_error(
            run("simulate", "ge", "--params", str(params), "--out", str(out)), str(params), fragment
        )
        assert out.read_text() == "previous result"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["p.json", "s.h5"]


@pytest.mark.parametrize(
    ("content", "fragment"),
    [
        (None, "no such structure file"),
        ("Ge\n1.0\n0 2.8 2.8\n2.8 0 2.8\n", "cannot read a crystal structure"),
        ("not a structure at all\n", "cannot read a crystal structure"),
    ],
)
def test_bad_structure_files(tmp_path, content, fragment):
    path = tmp_path / "my.vasp"
    if content is not None:
        path.write_text(content)
    result = run("material", "init", str(path), "--name", "x", "--out", str(tmp_path / "x"))
    assert_one_line_error(result, str(path), fragment)
    assert not (tmp_path / "x").exists()


def test_molecule_is_not_a_crystal(tmp_path):
    path = tmp_path / "water.xyz"
    path.write_text("3\n\nO 0 0 0\nH 0.76 0.59 0\nH -0.76 0.59 0\n")
    result = run("material", "init", str(path), "--name", "w", "--out", str(tmp_path / "w"))
    assert_one_line_error(result, "not a 3-D periodic crystal")


def test_bad_spectrum_files(tmp_path):
    truncated = tmp_path / "t.h5"
    truncated.write_bytes(b"\x89HDF\r\n\x1a\n" + b"\0" * 20)
    with h5py.File(tmp_path / "foreign.h5", "w") as handle:
        handle["data"] = np.zeros(3)
    from fcinvert.errors import FcinvertError

    for path, fragment in (
        (truncated, "not a readable HDF5"),
        (tmp_path / "foreign.h5", "missing intensity"),
    ):
        with pytest.raises(FcinvertError, match=fragment):
            read_spectrum(path)


def test_unknown_material():
    assert_one_line_error(run("material", "show", "unobtainium"), "no such material")
