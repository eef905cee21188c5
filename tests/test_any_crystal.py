"""Any crystal: members that are not installed, the grid taken from a measurement, the shell
rule and the resumable ``build``."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import h5py
import numpy as np
import pytest
from ase.build import bulk

from fcinvert.data.spectrum_file import Spectrum, read_spectrum, write_spectrum
from fcinvert.labels.members import BUILTIN, members_help, select_members
from fcinvert.labels.shells import choose_shells, distance_shells, shell_changes
from fcinvert.physics.fcspace import build_fcspace
from fcinvert.physics.material import init_material, load_material, save_settings


def run(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "fcinvert", *args], capture_output=True, text=True, check=False
    )


def test_all_offline_skips_members_not_installed():
    chosen, skipped = select_members("all-offline", {"Cu"})
    assert chosen or skipped
    assert all(m.installed for m in chosen) and not any(m.installed for m in skipped)
    assert all(m.version() is None for m in skipped)
    assert not any(m.elements == frozenset({"Ge"}) for m in chosen + skipped)
    named, none = select_members("chgnet-0.3.0,tersoff-ge-1989", {"Ge"})
    assert [m.name for m in named] == ["chgnet-0.3.0", "tersoff-ge-1989"] and none == []


def test_label_help_lists_every_member_and_whether_installed():
    text = members_help()
    for member in BUILTIN.values():
        line = next(x for x in text.splitlines() if x.startswith(f"{member.name}:"))
        assert ("; installed" in line) == member.installed
    result = run("label", "--help")
    assert result.returncode == 0 and "tersoff-ge-1989" in result.stdout


def test_label_all_offline_without_packages_is_not_a_failure(tmp_path):
    _, skipped = select_members("all-offline", {"Cu"})
    if not skipped:
        pytest.skip("every offline force field is installed here")
    bulk("Cu", "fcc", a=3.615).write(tmp_path / "cu.vasp", format="vasp")
    folder = tmp_path / "cu"
    assert (
        run(
            "material",
            "init",
            str(tmp_path / "cu.vasp"),
            "--name",
            "cu",
            "--out",
            str(folder),
            "--shells",
            "2",
        ).returncode
        == 0
    )
    result = run("label", str(folder), "--members", "all-offline")
    assert result.returncode == 0, result.stderr
    for member in skipped:
        assert f"skipped {member.name}: package '{member.package}' not installed" in result.stdout


def write_measurement(path, energy, temperature=296.0, resolution=(0.8, 0.03), material="cu"):
    """A sparse measured map: one peak per q column, NaN elsewhere."""
    qpoints = np.linspace([0.0, 0.0, 0.0], [0.5, 0.0, 0.5], 12)
    intensity = np.full((len(qpoints), len(energy)), np.nan)
    intensity[::3] = np.exp(-0.5 * ((energy[None, :] - 10.0) / 1.0) ** 2)
    spectrum = Spectrum(
        intensity, np.asarray(energy), qpoints, material, temperature, resolution=resolution
    )
    if temperature is None:
        spectrum.temperature_K = np.nan
    write_spectrum(path, spectrum)
    if temperature is None:
        with h5py.File(path, "a") as handle:
            del handle.attrs["temperature_K"]


@pytest.fixture(scope="module")
def cu_structure(tmp_path_factory):
    path = tmp_path_factory.mktemp("cu") / "cu.vasp"
    bulk("Cu", "fcc", a=3.615).write(path, format="vasp")
    return path


def test_material_takes_the_measurements_grid_unchanged(tmp_path, cu_structure):
    data = tmp_path / "data.h5"
    write_measurement(data, np.arange(80) * 0.5 + 0.25)
    folder = tmp_path / "cu"
    args = ("material", "init", str(cu_structure), "--name", "cu", "--out", str(folder))
    result = run(*args, "--data", str(data), "--shells", "2")
    assert result.returncode == 0, result.stderr
    settings = json.loads((folder / "material.json").read_text())
    assert settings["energy"] == {"min_meV": 0.0, "max_meV": 40.0, "bins": 80}
    assert settings["resolution"] == {"fwhm0_meV": 0.8, "slope": 0.03}
    assert settings["temperature_K"] == 296.0
    material = load_material(folder)
    assert np.allclose(material.energy.centres, np.arange(80) * 0.5 + 0.25)
    # the option wins over the file; a file without temperature or resolution: defaults
    bare = tmp_path / "bare.h5"
    write_measurement(bare, np.arange(40) * 1.0 + 2.5, temperature=None, resolution=None)
    other = tmp_path / "cu2"
    result = run(*args[:-1], str(other), "--data", str(bare), "--shells", "2")
    assert result.returncode == 0, result.stderr
    settings = json.loads((other / "material.json").read_text())
    assert settings["temperature_K"] == 5.0 and settings["resolution"]["fwhm0_meV"] == 1.0
    assert settings["energy"] == {"min_meV": 2.0, "max_meV": 42.0, "bins": 40}
    third = tmp_path / "cu3"
    result = run(*args[:-1], str(third), "--data", str(data), "--temperature", "10")
    assert json.loads((third / "material.json").read_text())["temperature_K"] == 10.0


@pytest.mark.parametrize(
    ("energy", "material", "fragment"),
    [
        (np.r_[np.arange(10) * 0.5, 6.0, 7.0], "cu", "energy bins are not uniform"),
        (np.arange(20) * 0.5 + 0.25, "al", "a spectrum of 'al', not of 'cu'"),
    ],
)
def test_measurement_that_does_not_fit_is_refused(
    tmp_path, cu_structure, energy, material, fragment
):
    data = tmp_path / "data.h5"
    write_measurement(data, energy, material=material)
    folder = tmp_path / "cu"
    result = run(
        "material",
        "init",
        str(cu_structure),
        "--name",
        "cu",
        "--out",
        str(folder),
        "--data",
        str(data),
    )
    assert result.returncode == 2 and len(result.stderr.strip().splitlines()) == 1, result.stderr
    assert fragment in result.stderr and "--data" in result.stderr
    assert not folder.exists()


def test_shell_changes_measure_what_each_shell_adds(nb):
    material, fcspace = nb
    theta = fcspace.theta_from_dict(material.require_reference(), np.zeros(fcspace.n_params))
    shells = distance_shells(fcspace, material.atoms)
    assert shells.min() == 1 and shells.max() == material.settings.shells
    changes = shell_changes(material, fcspace, theta)
    assert changes.shape == (material.settings.shells,) and np.all(changes > 0)
    assert changes[0] > 5.0  # nearest neighbours carry most of a metal's dispersion
    cut = np.where(shells <= 3, theta, 0.0)  # a crystal whose forces end at shell 3
    changes_cut = shell_changes(material, fcspace, cut)
    assert np.allclose(changes_cut[:3], changes[:3]) and np.all(changes_cut[3:] == 0.0)
    choice = choose_shells(material, fcspace, {"a": cut, "b": theta}, threshold=1e-9)
    assert choice.chosen == material.settings.shells  # the median keeps b's far shells
    choice = choose_shells(material, fcspace, {"a": cut, "b": cut}, threshold=1e-9)
    assert choice.chosen == 3
    threshold = float(np.sort(changes)[1]) + 1e-9  # all but the largest two changes are below
    expected = 1 + int(np.flatnonzero(changes > threshold)[-1])
    assert choose_shells(material, fcspace, {"b": theta}, threshold).chosen == expected


def test_label_chooses_the_shells_and_cuts_the_labels(tmp_path, cu_structure):
    folder = tmp_path / "cu"
    init_material(cu_structure, "cu", out=folder, shells=4)
    material = load_material(folder)
    material.settings.choose_shells = True  # a 4-shell probe, to keep the test short
    save_settings(material)
    result = run("label", str(folder), "--members", "emt")
    assert result.returncode == 0, result.stderr
    settled = load_material(folder)
    record = json.loads((folder / "shells.json").read_text())
    assert not settled.settings.choose_shells and settled.settings.shells == record["chosen"]
    assert record["probe_shells"] == 4 and 1 <= record["chosen"] <= 4
    changes = np.array(record["ensemble_change_meV"])
    assert changes[record["chosen"] - 1] > record["threshold_meV"]
    assert np.all(changes[record["chosen"] :] <= record["threshold_meV"])
    assert settled.settings.supercell == material.settings.supercell  # the probe's, kept
    label = json.loads((folder / "labels" / "emt.json").read_text())
    names = build_fcspace(settled).names
    assert list(label["parameters"]) == names and label["provenance"]["shells_probe"] == 4
    assert label["status"] == "stable" and settled.reference is not None


DATA = Path(__file__).resolve().parent.parent / "benchmarks" / "data" / "any_crystal"


def test_build_resumes_after_a_kill_and_invert_uses_its_model(tmp_path):
    environment = {**os.environ, "FCINVERT_HOME": str(tmp_path / "home")}
    command = [sys.executable, "-m", "fcinvert", "build", str(DATA / "cu.vasp"), "--name", "cu"]
    command += ["--data", str(DATA / "cu.h5"), "--members", "emt", "--shells", "2", "--fast"]
    first = subprocess.Popen(
        command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=environment
    )
    for line in first.stdout:  # kill it while it prepares the dataset
        if line.startswith("[4/6]"):
            first.send_signal(signal.SIGKILL)
            break
    first.wait()
    folder = tmp_path / "home" / "materials" / "cu"
    assert not (folder / "build" / "dataset.h5").exists()  # nothing half-written
    second = subprocess.run(command, capture_output=True, text=True, env=environment, check=False)
    assert second.returncode == 0, second.stderr[-2000:]
    for kept in ("[1/6] material", "[2/6] labels: ensemble.json complete", "[3/6] sensitivity"):
        assert any(line.startswith(kept) and "kept" in line for line in second.stdout.splitlines())
    settings = json.loads((folder / "material.json").read_text())
    measured = read_spectrum(DATA / "cu.h5")
    assert settings["energy"]["bins"] == len(measured.energy)
    assert settings["temperature_K"] == measured.temperature_K
    report = json.loads((folder / "build" / "report.json").read_text())
    assert report["held_out"]["spectra"] == 60 and report["measurement"] is not None
    out = tmp_path / "r.json"
    invert = ["invert", str(DATA / "cu.h5"), "--model", "cu", "--refine", "--out", str(out)]
    result = subprocess.run(
        [sys.executable, "-m", "fcinvert", *invert],
        capture_output=True,
        text=True,
        env=environment,
        check=False,
    )
    assert result.returncode == 0, result.stderr[-2000:]
    assert json.loads(out.read_text())["model"]


def shifted_measurement(path, qpoints=None, lattice=None):
    """A copy of the Cu measurement with other q-points or another lattice parameter."""
    spectrum = read_spectrum(DATA / "cu.h5")
    if qpoints is not None:
        spectrum.qpoints = qpoints
    if lattice is not None:
        spectrum.lattice_parameter_A = lattice
    write_spectrum(path, spectrum)
    return path


@pytest.mark.parametrize(
    ("case", "fragment"),
    [
        ("molecule", "not a 3-D periodic crystal"),
        ("lattice", "lattice parameter of 4.0000 Å"),
        ("off-path", "lie on the material's q-path"),
        ("no-member", "no installed force field can label"),
    ],
)
def test_build_refuses_bad_input_in_one_line_and_writes_nothing(tmp_path, case, fragment):
    structure, data, members = DATA / "cu.vasp", DATA / "cu.h5", "emt"
    if case == "molecule":
        structure = tmp_path / "water.xyz"
        structure.write_text("3\n\nO 0 0 0\nH 0.76 0.59 0\nH -0.76 0.59 0\n")
    elif case == "lattice":
        data = shifted_measurement(tmp_path / "d.h5", lattice=4.0)
    elif case == "off-path":
        qpoints = np.random.default_rng(0).uniform(0.05, 0.45, (22, 3))
        data = shifted_measurement(tmp_path / "d.h5", qpoints=qpoints)
    else:
        members = "tersoff-ge-1989"
    folder = tmp_path / "cu"
    result = run(
        "build",
        str(structure),
        "--name",
        "cu",
        "--out",
        str(folder),
        "--data",
        str(data),
        "--members",
        members,
        "--fast",
    )
    assert result.returncode == 2 and len(result.stderr.strip().splitlines()) == 1, result.stderr
    assert fragment in result.stderr and "Traceback" not in result.stderr
    assert not folder.exists()


def test_invert_a_material_without_labels_is_one_line(tmp_path, cu_structure):
    folder = tmp_path / "cu"
    assert (
        run(
            "material",
            "init",
            str(cu_structure),
            "--name",
            "cu",
            "--out",
            str(folder),
            "--shells",
            "2",
        ).returncode
        == 0
    )
    result = run(
        "invert", str(DATA / "cu.h5"), "--material", str(folder), "--out", str(tmp_path / "r.json")
    )
    assert result.returncode == 2 and len(result.stderr.strip().splitlines()) == 1, result.stderr
    assert "label" in result.stderr and not (tmp_path / "r.json").exists()
