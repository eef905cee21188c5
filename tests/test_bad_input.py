"""Hostile input to every command: one line ``fcinvert: error: …`` naming the option or file,
exit code 2, no traceback, and nothing written (issue 15). Runs the CLI in this process on tiny
inputs; no model is trained."""

from __future__ import annotations

import datetime
import functools
import json
import os
import pickle
import subprocess
import sys
import time
import warnings
from pathlib import Path

import h5py
import numpy as np
import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from safetensors.torch import load_file, save_file
from small_dataset import run_cli, write_small_dataset

from fcinvert import validate
from fcinvert.data.spectrum_file import Spectrum, read_spectrum, write_spectrum
from fcinvert.errors import FcinvertError
from fcinvert.iohelpers import remove_stale_temporaries
from fcinvert.models.bundle import (
    BundleConfig,
    EnergyConfig,
    ModelBundle,
    build_networks,
    save_bundle,
)
from fcinvert.models.regressor import RegressorConfig
from fcinvert.models.vae import VAEConfig
from fcinvert.physics.export import write_phonopy_files
from fcinvert.physics.fcspace import build_fcspace
from fcinvert.physics.material import load_material

GE_POSCAR = Path(__file__).parents[1] / "src" / "fcinvert" / "materials" / "ge" / "POSCAR"


@functools.cache
def ge_path() -> np.ndarray:
    """(200, 3) reduced q-points of Ge's path (read once)."""
    return load_material("ge").path.qpoints


def good_arrays(nq: int = 20, n_energy: int = 30, seed: int = 0) -> dict:
    """A small spectrum on distinct q-points of Ge's path: positive, varying intensities."""
    rng = np.random.default_rng(seed)
    qpoints = ge_path()[:: max(1, 200 // nq)][:nq]
    qpoints = np.unique(np.round(qpoints, 6), axis=0)
    energy = np.linspace(1.0, 35.0, n_energy)
    intensity = rng.uniform(0.1, 1.0, size=(len(qpoints), n_energy))
    return {
        "intensity": intensity,
        "energy": energy,
        "qpoints": qpoints,
        "error": 0.05 * np.ones_like(intensity),
        "attrs": {"material": "ge", "temperature_K": 5.0},
    }


def write_raw(path: Path, **changes) -> Path:
    """A spectrum file written with h5py directly (any content), from ``good_arrays``."""
    content = good_arrays()
    attrs = {**content.pop("attrs"), **changes.pop("attrs", {})}
    content.update(changes)
    with h5py.File(path, "w") as handle:
        handle.attrs["format"] = "fcinvert-spectrum"
        for key, value in attrs.items():
            handle.attrs[key] = value
        for key, value in content.items():
            if value is not None:
                handle[key] = value
    return path


def _spectra(kind: str, tmp: Path) -> Path:
    """A hostile spectrum file of ``kind``."""
    base = good_arrays()
    intensity, qpoints, error = base["intensity"], base["qpoints"], base["error"]
    path = tmp / f"{kind}.h5"
    if kind == "zeros":
        return write_raw(path, intensity=np.zeros_like(intensity))
    if kind == "negative":
        return write_raw(path, intensity=-intensity)
    if kind == "inf":
        return write_raw(path, intensity=np.where(intensity > 0.5, np.inf, intensity))
    if kind == "minus-inf":
        return write_raw(path, intensity=np.full_like(intensity, -np.inf))
    if kind == "constant":
        return write_raw(path, intensity=np.full_like(intensity, 3.0))
    if kind == "overflow":
        return write_raw(path, intensity=intensity * 1e308)
    if kind == "same-q":
        return write_raw(path, qpoints=np.tile(qpoints[3], (len(qpoints), 1)))
    if kind == "duplicate-q":
        doubled = qpoints.copy()
        doubled[5] = doubled[4]
        changed = intensity.copy()
        changed[5] = changed[4][::-1] * 10
        return write_raw(path, qpoints=doubled, intensity=changed)
    if kind == "negative-error":
        return write_raw(path, error=-error)
    if kind == "negative-temperature":
        return write_raw(path, attrs={"temperature_K": -10.0})
    if kind == "nan-temperature":
        return write_raw(path, attrs={"temperature_K": np.nan})
    if kind == "text-temperature":
        return write_raw(path, attrs={"temperature_K": "warm"})
    raise ValueError(kind)


SPECTRA = {
    "zeros": "no positive intensity",
    "negative": "no positive intensity",
    "inf": "±inf",
    "minus-inf": "±inf",
    "constant": "constant",
    "overflow": "overflow",
    "same-q": "every q-point is the same",
    "duplicate-q": "conflicting intensities",
    "negative-error": "'error' (one σ) holds negative",
    "negative-temperature": "temperature_K",
    "nan-temperature": "temperature_K",
    "text-temperature": "temperature_K",
}


def files_under(*folders: Path) -> set[Path]:
    """Every path under ``folders`` but the library's caches (the FC basis cache)."""
    return {p for folder in folders for p in folder.rglob("*") if "cache" not in p.parts}


def assert_refused(args: list[str], fragment: str, tmp: Path, monkeypatch, capsys) -> str:
    """Exit 2, one ``fcinvert: error:`` line holding ``fragment``, no new file under ``tmp`` or
    the user library."""
    home = Path(os.environ["FCINVERT_HOME"])
    before = files_under(tmp, home)
    with warnings.catch_warnings(record=True) as caught:  # a warning is a second stderr line
        warnings.simplefilter("always")
        code, err = run_cli(args, monkeypatch, capsys)
    shown = [w for w in caught if not issubclass(w.category, DeprecationWarning)]
    assert not shown, [str(w.message) for w in shown]
    lines = err.strip().splitlines()
    assert code == 2, err
    assert len(lines) == 1 and "Traceback" not in err, err
    assert lines[0].startswith("fcinvert: error:") and fragment in lines[0], lines[0]
    assert files_under(tmp, home) == before, sorted(map(str, files_under(tmp, home) - before))
    return lines[0]


@pytest.mark.parametrize("kind", sorted(SPECTRA))
def test_invert_refuses_garbage_spectra(kind, tmp_path, monkeypatch, capsys):
    spectrum = _spectra(kind, tmp_path)
    args = ["invert", str(spectrum), "--material", "ge", "--out", str(tmp_path / "r.json")]
    line = assert_refused(args, SPECTRA[kind], tmp_path, monkeypatch, capsys)
    assert str(spectrum) in line


def test_duplicates_that_agree_and_the_shipped_paths_are_accepted(tmp_path):
    base = good_arrays()
    qpoints, intensity = base["qpoints"].copy(), base["intensity"].copy()
    qpoints[5], intensity[5] = qpoints[4], intensity[4]
    read_spectrum(write_raw(tmp_path / "twice.h5", qpoints=qpoints, intensity=intensity))
    for name in ("ge", "nb"):  # a path visits some points twice, with the same spectrum
        path = load_material(name).path.qpoints
        rows = np.linalg.norm(path, axis=1)[:, None] * np.ones(8)
        spectrum = Spectrum(rows + 1.0, np.arange(1.0, 9.0), path, name)
        write_spectrum(tmp_path / f"{name}.h5", spectrum)
        read_spectrum(tmp_path / f"{name}.h5")


@settings(
    max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    exponent=st.floats(min_value=100.5, max_value=308.0),
    sign=st.sampled_from([1.0, -1.0]),
    row=st.integers(0, 19),
    column=st.integers(0, 29),
)
def test_overflow_scale_pixels_anywhere_are_refused(tmp_path, exponent, sign, row, column):
    intensity = good_arrays()["intensity"]
    intensity[row, column] = sign * 10.0**exponent
    path = write_raw(tmp_path / "big.h5", intensity=intensity)
    with pytest.raises(FcinvertError, match="overflow"):
        read_spectrum(path)


@settings(
    max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    scale=st.floats(min_value=1e-6, max_value=1e6),
    row=st.integers(0, 19),
    column=st.integers(0, 29),
)
def test_any_negative_error_bar_is_refused(tmp_path, scale, row, column):
    error = good_arrays()["error"]
    error[row, column] = -scale
    path = write_raw(tmp_path / "err.h5", error=error)
    with pytest.raises(FcinvertError, match="negative"):
        read_spectrum(path)


@given(st.text(max_size=30))
def test_names_are_one_safe_path_component(name):
    try:
        validate.safe_name(name)
    except FcinvertError as error:
        assert "--name" in str(error) and "\n" not in str(error)
        return
    assert Path(name).name == name and name not in ("", ".", "..") and "/" not in name
    assert not name.startswith((".", "-"))


@pytest.fixture(scope="module")
def a_file(tmp_path_factory) -> Path:
    """A plain file, to put where a folder is expected."""
    path = tmp_path_factory.mktemp("blocker") / "plain.txt"
    path.write_text("not a folder\n")
    return path


def _output_cases(blocked: Path, tmp: Path) -> list[tuple[list[str], str]]:
    """(args, fragment) for outputs whose parent is a file; ``blocked`` = <file>/x."""
    good = str(write_raw(tmp / "good.h5"))
    structure = str(GE_POSCAR)
    invert = ["invert", good, "--material", "ge", "--out", str(tmp / "r.json")]
    return [
        (["invert", good, "--material", "ge", "--out", f"{blocked}/r.json"], "--out"),
        (
            ["invert", good, "--material", "ge", "--out", str(tmp / "r.json"), "--plot", "x.xyz"],
            "--plot",
        ),
        (
            [*invert, "--plot", f"{blocked}/p.png"],
            "--plot",
        ),
        (
            [*invert, "--fc-out", f"{blocked}/fc"],
            "--fc-out",
        ),
        (["fold", good, "--material", "ge", "--out", f"{blocked}/f.h5"], "--out"),
        (
            ["fold", good, "--material", "ge", "--out", str(tmp / "f.h5"), "--plot", "f.xyz"],
            "--plot",
        ),
        (["simulate", "ge", "--out", f"{blocked}/s.h5"], "--out"),
        (["simulate", "ge", "--out", str(tmp / "s.h5"), "--plot", f"{blocked}/s.png"], "--plot"),
        (["simulate", "ge", "--out", str(tmp / "s.h5"), "--plot", str(tmp / "s.xyz")], "--plot"),
        (
            ["simulate", "ge", "--out", str(tmp / "s.h5"), "--export-fc", f"{blocked}/fc"],
            "--export-fc",
        ),
        (["simulate", "ge", "--out", str(tmp / "s.h5"), "--params", str(tmp)], "--params"),
        (["simulate", "ge", "--out", str(tmp)], "is a folder"),
        (
            [
                *("simulate", "ge", "--out", str(tmp / "s.h5"), "--plot", str(tmp / "s.png")),
                "--export-fc",
                str(tmp / "s.png"),
            ],
            "the same file as --plot",
        ),
        (["dataset", "ge", "--out", f"{blocked}/d.h5"], "--out"),
        (["train", "ge", "--data", good, "--out", f"{blocked}/bundle"], "--out"),
        (
            ["evaluate", "ge", "--models", "ge", "--data", good, "--out", f"{blocked}/report"],
            "--out",
        ),
        (["material", "init", structure, "--name", "m", "--out", f"{blocked}/m"], "--out"),
        (["measure", "ge", "--out", f"{blocked}/scans"], "--out"),
        (["single-scan", str(tmp), "--out", f"{blocked}/report"], "--out"),
        (["sensitivity", "ge", "--plot", f"{blocked}/s.png"], "--plot"),
    ]


def test_unwritable_outputs_are_refused_before_any_work(a_file, tmp_path, monkeypatch, capsys):
    for args, fragment in _output_cases(a_file, tmp_path):
        line = assert_refused(args, fragment, tmp_path, monkeypatch, capsys)
        assert "plain.txt" in line or ".xyz" in line or str(tmp_path) in line, line


def test_a_read_only_folder_is_refused(tmp_path, monkeypatch, capsys):
    if os.geteuid() == 0:
        pytest.skip("root writes anywhere")
    locked = tmp_path / "locked"
    locked.mkdir(mode=0o500)
    args = ["simulate", "ge", "--out", str(locked / "s.h5")]
    assert_refused(args, "not writable", tmp_path, monkeypatch, capsys)


OPTION_CASES = [
    (
        ["fold", "x.txt", "--material", "ge", "--out", "{tmp}/f.h5", "--temperature", "-10"],
        "--temperature",
    ),
    (
        ["simulate", "ge", "--physical", "--temperature", "-5", "--out", "{tmp}/s.h5"],
        "--temperature",
    ),
    (
        ["simulate", "ge", "--physical", "--temperature", "nan", "--out", "{tmp}/s.h5"],
        "--temperature",
    ),
    (["dataset", "ge", "--out", "{tmp}/d.h5", "--workers", "-3"], "--workers"),
    (["dataset", "ge", "--out", "{tmp}/d.h5", "--seed", "-1"], "--seed"),
    (["dataset", "ge", "--out", "{tmp}/d.h5", "--n", str(2**62)], "--n"),
    (["dataset", "ge", "--out", "{tmp}/d.h5", "--n", str(10**7)], "--n"),
    (["dataset", "ge", "--out", "{tmp}/d.h5", "--n", "0"], "--n"),
    (["dataset", "ge", "--out", "{tmp}/d.h5", "--half-width", "nan"], "--half-width"),
    (["sensitivity", "ge", "--half-width", "nan"], "--half-width"),
    (["sensitivity", "ge", "--expand-above", "inf"], "--expand-above"),
    (
        ["train", "ge", "--data", "{good}", "--out", "{tmp}/b", "--vae-channels", "0,0"],
        "--vae-channels",
    ),
    (
        ["train", "ge", "--data", "{good}", "--out", "{tmp}/b", "--vae-channels", "a"],
        "--vae-channels",
    ),
    (
        ["train", "ge", "--data", "{good}", "--out", "{tmp}/b", "--accelerator", "tpu"],
        "--accelerator",
    ),
    (["train", "ge", "--data", "{tmp}", "--out", "{tmp}/b"], "--data"),
    (["material", "init", "{poscar}", "--name", "../x"], "--name"),
    (["material", "init", "{poscar}", "--name", ""], "--name"),
    (["material", "init", "{poscar}", "--name", "a/b"], "--name"),
    (["material", "init", "{poscar}", "--name", "m", "--shells", "0"], "--shells"),
    (["material", "init", "{poscar}", "--name", "m", "--shells", "-2"], "--shells"),
    (["material", "init", "{poscar}", "--name", "m", "--path-points", "0"], "--path-points"),
    (["material", "init", "{poscar}", "--name", "m", "--path-points", "1"], "--path-points"),
    (["material", "init", "{poscar}", "--name", "m", "--emax", "-5"], "--emax"),
    (["material", "init", "{poscar}", "--name", "m", "--emax", "nan"], "--emax"),
    (["material", "init", "{poscar}", "--name", "m", "--temperature", "-10"], "--temperature"),
    (["train", "ge", "--data", "{good}", "--out", "{tmp}/b", "--lr", "nan"], "--lr"),
    (["train", "ge", "--data", "{good}", "--out", "{tmp}/b", "--epochs", "0"], "--epochs"),
    (["label", "ge", "--force-constants", "{tmp}", "--dim", "4 4 4"], "--force-constants"),
    (["label", "ge", "--force-constants", "{good}", "--dim", "0 0 0"], "--dim"),
    (["label", "ge", "--force-constants", "{good}", "--dim", "4 4"], "--dim"),
    (["label", "ge", "--members", "x", "--displacement", "nan"], "--displacement"),
    (["measure", "ge", "--out", "{tmp}/m", "--temperature", "-1"], "--temperature"),
    (["measure", "ge", "--out", "{tmp}/m", "--counts", "nan"], "--counts"),
]


@pytest.mark.parametrize(
    "args, fragment", OPTION_CASES, ids=lambda x: " ".join(x) if isinstance(x, list) else x
)
def test_bad_options_are_one_line(args, fragment, tmp_path, monkeypatch, capsys):
    good = write_raw(tmp_path / "good.h5")
    values = {"tmp": tmp_path, "good": good, "poscar": GE_POSCAR}
    filled = [arg.format(**values) for arg in args]
    assert_refused(filled, fragment, tmp_path, monkeypatch, capsys)


def test_a_long_dataset_is_announced_with_an_estimate(monkeypatch, capsys):
    from fcinvert.cli import stage1

    stage1._announce_size(10**6, load_material("ge"), realistic=False)
    out = capsys.readouterr().out
    assert "warning" in out and " h " in out and "GiB" in out


@pytest.fixture(scope="module")
def phonopy_folder(tmp_path_factory) -> Path:
    material = load_material("ge")
    fcspace = build_fcspace(material)
    theta = fcspace.theta_from_dict(material.require_reference(), np.zeros(fcspace.n_params))
    folder = tmp_path_factory.mktemp("phonopy")
    write_phonopy_files(material, fcspace, theta, folder)
    return folder


@pytest.mark.parametrize(
    "problem, dim, fragment",
    [
        ("header", "4 4 4", "cannot read force constants"),
        ("nan", "4 4 4", "non-finite"),
        ("none", "2 2 2", "do not fit"),
    ],
)
def test_bad_force_constant_files(
    problem, dim, fragment, phonopy_folder, tmp_path, monkeypatch, capsys
):
    lines = (phonopy_folder / "FORCE_CONSTANTS").read_text().splitlines()
    if problem == "header":
        lines[0] = " 100  128"
    elif problem == "nan":
        lines[2] = "nan 0 0"
    fc = tmp_path / "FORCE_CONSTANTS"
    fc.write_text("\n".join(lines) + "\n")
    structure = phonopy_folder / "POSCAR"
    args = [
        "label",
        "ge",
        "--force-constants",
        str(fc),
        "--structure",
        str(structure),
        "--dim",
        dim,
    ]
    assert_refused(args, fragment, tmp_path, monkeypatch, capsys)


@pytest.fixture(scope="module")
def tiny_bundle(tmp_path_factory) -> Path:
    return write_tiny_bundle(tmp_path_factory.mktemp("bundle") / "vae")


def write_tiny_bundle(folder: Path) -> Path:
    """An untrained VAE bundle on a coarse Ge grid (never trained: only its loading matters)."""
    material = load_material("ge")
    fcspace = build_fcspace(material)
    reference = fcspace.theta_from_dict(material.require_reference(), np.zeros(fcspace.n_params))
    config = BundleConfig(
        architecture="vae",
        material="ge",
        qpoints=[tuple(q) for q in material.path.qpoints[::25]],
        energy=EnergyConfig(centres=list(np.linspace(1, 35, 16)), width=2.0, fwhm0=1.0, slope=0.0),
        parameter_names=fcspace.names,
        selected=fcspace.names[:2],
        reference=reference.tolist(),
        target_mean=reference[:2].tolist(),
        target_std=[0.1, 0.1],
        mask_channel=False,
        input_rule="minmax",
        vae=VAEConfig(channels=(4,), hidden=8, latent=2),
        regressor=RegressorConfig(hidden=(8,)),
    )
    return save_bundle(ModelBundle(config, build_networks(config)), folder)


def _corrupt(bundle: Path, problem: str, tmp: Path) -> Path:
    copy = tmp / f"bundle-{problem}"
    copy.mkdir()
    for file in bundle.iterdir():
        (copy / file.name).write_bytes(file.read_bytes())
    config = json.loads((copy / "config.json").read_text())
    if problem == "zero-std":
        config["target_std"] = [0.0, 0.1]
    elif problem == "nan-std":
        config["target_std"] = [float("nan"), 0.1]
    elif problem == "nan-mean":
        config["target_mean"] = [float("nan"), 0.1]
    elif problem == "deep":
        (copy / "config.json").write_text("[" * 200_000 + "]" * 200_000)
        return copy
    elif problem == "nan-weights":
        state = load_file(copy / "regressor.safetensors")
        name = next(iter(state))
        state[name] = torch.full_like(state[name], float("nan"))
        save_file(state, str(copy / "regressor.safetensors"))
    (copy / "config.json").write_text(json.dumps(config))
    return copy


@pytest.mark.parametrize(
    "problem, fragment",
    [
        ("zero-std", "target_std"),
        ("nan-std", "target_std"),
        ("nan-mean", "target_mean"),
        ("deep", "nested too deeply"),
        ("nan-weights", "non-finite weights"),
    ],
)
def test_bad_bundles_are_refused_at_load(
    problem, fragment, tiny_bundle, tmp_path, monkeypatch, capsys
):
    bundle = _corrupt(tiny_bundle, problem, tmp_path)
    good = write_raw(tmp_path / "good.h5")
    args = ["invert", str(good), "--model", str(bundle), "--out", str(tmp_path / "r.json")]
    line = assert_refused(args, fragment, tmp_path, monkeypatch, capsys)
    assert str(bundle) in line


@pytest.fixture(scope="module")
def small_data(tmp_path_factory) -> Path:
    material = load_material("ge")
    fcspace = build_fcspace(material)
    reference = fcspace.theta_from_dict(material.require_reference(), np.zeros(fcspace.n_params))
    path = tmp_path_factory.mktemp("data") / "data.h5"
    return write_small_dataset(path, material, fcspace, reference, 24, 8, q_stride=25, bins=16)


def test_training_on_all_nan_spectra_is_refused(small_data, tmp_path, monkeypatch, capsys):
    data = tmp_path / "nan.h5"
    data.write_bytes(small_data.read_bytes())
    with h5py.File(data, "r+") as handle:
        handle["train/spectra"][...] = np.nan
    args = ["train", "ge", "--data", str(data), "--out", str(tmp_path / "b"), "--quiet"]
    code, err = run_cli([*args, "--epochs", "1"], monkeypatch, capsys)
    lines = err.strip().splitlines()
    assert code == 2 and len(lines) == 1 and "no finite pixel" in lines[0], err
    assert str(data) in lines[0]
    assert not (tmp_path / "b" / "config.json").exists()


def test_a_pickled_checkpoint_is_refused_as_one_line(small_data, tmp_path, monkeypatch, capsys):
    out = tmp_path / "b"
    stage = out / "checkpoints" / "vae"
    stage.mkdir(parents=True)
    (stage / "last.ckpt").write_bytes(pickle.dumps({"when": datetime.datetime.now()}))
    args = ["train", "ge", "--data", str(small_data), "--out", str(out), "--quiet"]
    code, err = run_cli(
        [*args, "--epochs", "1", "--vae-channels", "4", "--latent", "2"], monkeypatch, capsys
    )
    lines = err.strip().splitlines()
    assert code == 2 and len(lines) == 1 and "Traceback" not in err, err
    assert "last.ckpt" in lines[0] and "not a checkpoint" in lines[0]
    assert not (out / "config.json").exists()


def test_stale_temporaries_of_killed_writes_are_removed(tmp_path):
    target = tmp_path / "s.h5"
    dead = tmp_path / ".s.h5.99999999-abc123.tmp"  # no such process
    old = tmp_path / ".s.h5.k2j3h4.tmp"  # an older writer's name, untouched for an hour
    live = tmp_path / ".s.h5.1-xyz.tmp"  # pid 1 is alive: a write in progress
    other = tmp_path / ".t.h5.99999999-abc.tmp"  # another target's
    longer = tmp_path / ".s.h5.gz.99999999-abc.tmp"  # s.h5.gz's, not s.h5's
    for path in (dead, old, live, other, longer):
        path.write_bytes(b"partial")
    an_hour_ago = time.time() - 3600
    os.utime(old, (an_hour_ago, an_hour_ago))
    write_spectrum(
        target, Spectrum(**{k: v for k, v in good_arrays().items() if k != "attrs"}, material="ge")
    )
    assert target.is_file() and not dead.exists() and not old.exists()
    assert live.exists() and other.exists() and longer.exists()
    assert remove_stale_temporaries(target) == []


def test_a_savemd_signal_stored_as_text_is_one_line(tmp_path, monkeypatch, capsys):
    from test_readers import random_volume

    from fcinvert.data.readers import write_savemd

    path = tmp_path / "volume.nxs"
    write_savemd(path, random_volume(np.random.default_rng(0)))
    with h5py.File(path, "r+") as handle:
        signal = handle["MDHistoWorkspace/data/signal"]
        shape, axes = signal.shape, dict(signal.attrs)
        del handle["MDHistoWorkspace/data/signal"]
        text = handle.create_dataset(
            "MDHistoWorkspace/data/signal", data=np.full(shape, "1.0", dtype="S3")
        )
        text.attrs.update(axes)
    args = ["fold", str(path), "--material", "ge", "--out", str(tmp_path / "f.h5")]
    assert_refused(args, "not numbers", tmp_path, monkeypatch, capsys)


def test_a_killed_write_leaves_a_temporary_that_the_next_write_removes(tmp_path):
    target = tmp_path / "s.h5"
    script = (
        "import sys, time\n"
        "from fcinvert.iohelpers import atomic_path\n"
        "with atomic_path(sys.argv[1]) as partial:\n"
        "    partial.write_bytes(b'half')\n"
        "    print('writing', flush=True)\n"
        "    time.sleep(120)\n"
    )
    writer = subprocess.Popen(
        [sys.executable, "-c", script, str(target)], stdout=subprocess.PIPE, text=True
    )
    assert writer.stdout.readline().strip() == "writing"
    writer.kill()  # SIGKILL: no cleanup runs
    writer.wait()
    left = list(tmp_path.glob(".s.h5.*.tmp"))
    assert len(left) == 1 and not target.exists()
    arrays = {k: v for k, v in good_arrays().items() if k != "attrs"}
    write_spectrum(target, Spectrum(**arrays, material="ge"))
    assert read_spectrum(target).intensity.shape == arrays["intensity"].shape
    assert list(tmp_path.glob(".s.h5.*.tmp")) == []
