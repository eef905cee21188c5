"""fcinvert watch: files folded one by one add up to the whole, uncertainties shrink as they
arrive, half-written and damaged files are handled, the stopping rule holds."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
from conftest import reference_theta
from small_dataset import run_cli
from test_fold import x_point_volume

from fcinvert.analysis.watch import FolderTracker, Targets, Watcher
from fcinvert.data.accumulate import Geometry, RunningFold, read_file_sums
from fcinvert.data.measurement import simulate_scans
from fcinvert.data.readers import write_savemd
from fcinvert.data.spectrum_file import write_spectrum
from fcinvert.inversion.live import LiveInversion
from fcinvert.physics.instrument import Orientation, Spectrometer
from fcinvert.physics.reciprocal import conventional_lattice
from fcinvert.physics.structure_factor import StructureFactorModel
from fcinvert.report.live import write_page

PSI = (0.0, 30.0, 60.0, 90.0)


@pytest.fixture(scope="module")
def scans(ge, tmp_path_factory):
    """Four Ge orientations (Ei 40 meV, 3·10⁴ counts each) as measure writes them: one
    spectrum file per orientation; and the simulator's own fold of all four together."""
    material, fcspace = ge
    theta = reference_theta(material, fcspace)
    orientation = Orientation.from_vectors(
        conventional_lattice(material), np.array([1.0, 1.0, 0.0]), np.array([0.0, 0.0, 1.0])
    )
    model = StructureFactorModel.build(material, fcspace)
    result = simulate_scans(
        material, model, theta, Spectrometer(ei=40.0), orientation, np.array(PSI), 3e4, seed=3
    )
    folder = tmp_path_factory.mktemp("scans")
    for number, (angle, spectrum) in enumerate(zip(PSI, result.single, strict=True)):
        write_spectrum(folder / f"scan_{number:03d}.h5", spectrum, attrs={"psi_deg": angle})
    return folder, result.combined.spectrum


def test_running_fold_equals_folding_everything(ge, scans) -> None:
    """Adding the orientations' sums one by one gives what folding all of them at once gives."""
    material, _ = ge
    folder, combined = scans
    fold = RunningFold(material)
    for path in sorted(folder.glob("scan_*.h5")):
        fold.add(path.name, read_file_sums(path, Geometry(material)))
    spectrum = fold.spectrum()
    assert fold.psi == list(PSI)
    same = np.isfinite(combined.intensity)
    assert np.array_equal(np.isfinite(spectrum.intensity), same)
    np.testing.assert_allclose(spectrum.intensity[same], combined.intensity[same], rtol=1e-9)
    np.testing.assert_allclose(spectrum.error[same], combined.error[same], rtol=1e-9)


def test_history_uncertainties_shrink_as_files_arrive(ge, scans, tmp_path: Path) -> None:
    material, fcspace = ge
    folder, _ = scans
    incoming, out = tmp_path / "incoming", tmp_path / "live"
    incoming.mkdir()
    live = LiveInversion(material, fcspace, full_every=10, seed=0)
    watcher = Watcher(incoming, Geometry(material), live, Targets(), lambda line: None)
    for path in sorted(folder.glob("scan_*.h5")):
        shutil.copy(path, incoming / path.name)
        assert watcher.step() is None  # seen once: not yet known to be complete
        assert watcher.step() is not None  # unchanged at the next poll: folded
        write_page(watcher.state, material, Targets(), out, 5, "")
    history = json.loads((out / "history.json").read_text())
    assert [entry["files"] for entry in history] == [1, 2, 3, 4]
    assert history[0]["mode"] == "full"
    first, last = history[0], history[-1]
    assert last["band_median_meV"] < 0.6 * first["band_median_meV"]
    std_first = np.array([p["std"] for p in first["parameters"]])
    std_last = np.array([p["std"] for p in last["parameters"]])
    assert np.median(std_last / std_first) < 0.8
    assert {"name", "value", "std"} <= set(last["parameters"][0])
    page = (out / "index.html").read_text()
    assert "http-equiv='refresh'" in page and "4</b> files folded" in page
    assert (out / "history.png").stat().st_size > 0 and (out / "fit.png").stat().st_size > 0


def test_half_written_file_is_read_only_when_complete(scans, tmp_path: Path) -> None:
    folder, _ = scans
    whole = (folder / "scan_000.h5").read_bytes()
    tracker = FolderTracker(tmp_path)
    target = tmp_path / "scan_000.h5"
    target.write_bytes(whole[: len(whole) // 3])
    assert tracker.poll() == []  # first sight
    with target.open("ab") as handle:
        handle.write(whole[len(whole) // 3 : 2 * len(whole) // 3])
    assert tracker.poll() == []  # still growing
    with target.open("ab") as handle:
        handle.write(whole[2 * len(whole) // 3 :])
    assert tracker.poll() == []  # changed since the last poll
    assert tracker.poll() == [(target, None)]  # unchanged: complete
    tracker.done(target, None)
    assert tracker.poll() == []  # read once only


def test_savemd_data_waits_for_its_normalisation(tmp_path: Path) -> None:
    tracker = FolderTracker(tmp_path)
    (tmp_path / "run7_data.nxs").write_bytes(b"x" * 10)
    tracker.poll()
    assert tracker.poll() == []
    (tmp_path / "run7_norm.nxs").write_bytes(b"y" * 10)
    tracker.poll()
    assert tracker.poll() == [(tmp_path / "run7_data.nxs", tmp_path / "run7_norm.nxs")]


def test_damaged_file_reported_once_and_skipped(ge, tmp_path: Path) -> None:
    material, fcspace = ge
    (tmp_path / "broken.h5").write_bytes(b"\x89HDF\r\n" + b"\0" * 500)
    (tmp_path / "notes.txt.part").write_text("ignored: a temporary")
    messages: list[str] = []
    watcher = Watcher(
        tmp_path, Geometry(material), LiveInversion(material, fcspace), Targets(), messages.append
    )
    for _ in range(4):
        assert watcher.step() is None
    assert len(messages) == 1 and "broken.h5" in messages[0]
    assert list(watcher.state.skipped) == ["broken.h5"]
    assert watcher.state.history == []


def test_stopping_rule_and_once(ge, scans, tmp_path: Path, monkeypatch, capsys) -> None:
    """A target already met stops the watch at the first update and says so; an unreachable
    one does not (--once then ends after one pass)."""
    folder, _ = scans
    incoming, out = tmp_path / "incoming", tmp_path / "live"
    incoming.mkdir()
    for name in ("scan_000.h5", "scan_001.h5"):
        shutil.copy(folder / name, incoming / name)
    args = ["watch", str(incoming), "--material", "ge", "--out", str(out), "--once"]
    code, err = run_cli([*args, "--interval", "0.2", "--target-band", "50"], monkeypatch, capsys)
    assert code == 0, err
    assert "target reached" in err
    history = json.loads((out / "history.json").read_text())
    assert len(history) == 1 and history[0]["files"] == 2 and history[0]["target_reached"]
    page = (out / "index.html").read_text()
    assert "target reached" in page and "http-equiv='refresh'" not in page
    estimate = LiveInversion(*ge).update(folded(ge[0], incoming).spectrum())
    assert Targets(band=estimate.band_width * 1.01).reached(estimate)
    assert not Targets(band=estimate.band_width * 0.99).reached(estimate)
    worst = float(estimate.std[estimate.determined].max())
    assert Targets(std=worst * 1.01).reached(estimate)
    assert not Targets(std=worst * 1.01, band=estimate.band_width * 0.5).reached(estimate)


def folded(material, folder: Path) -> RunningFold:
    """Every spectrum file of ``folder`` folded."""
    fold = RunningFold(material)
    for path in sorted(folder.glob("*.h5")):
        fold.add(path.name, read_file_sums(path, Geometry(material)))
    return fold


def test_watch_bad_input_is_one_line(tmp_path: Path, monkeypatch, capsys) -> None:
    code, err = run_cli(
        ["watch", str(tmp_path / "none"), "--material", "ge", "--out", str(tmp_path / "o")],
        monkeypatch,
        capsys,
    )
    assert code == 2 and "not a folder" in err and len(err.strip().splitlines()) == 1
    empty = tmp_path / "empty"
    empty.mkdir()
    args = ["watch", str(empty), "--material", "ge", "--out", str(tmp_path / "o"), "--once"]
    code, err = run_cli([*args, "--interval", "0.1"], monkeypatch, capsys)
    assert code == 2 and "no complete orientation file" in err


def test_savemd_pairs_add_as_ratio_of_sums(ge, tmp_path: Path) -> None:
    """Two MDNorm data/normalisation pairs, each measuring one X-point voxel, fold to the
    ratio of the summed data to the summed normalisation (not the mean of the ratios)."""
    material, _ = ge
    n_energy = len(material.energy.centres)
    rng = np.random.default_rng(2)
    data, norm = rng.random((2, n_energy)) * 10, rng.random((2, n_energy)) + 0.1
    for number in range(2):
        mine = np.zeros((2, n_energy))
        weight = np.zeros((2, n_energy))
        mine[number], weight[number] = data[number], norm[number]
        volume = x_point_volume(material, mine, weight)
        volume.signal[[0, 2], 0, 0] = np.where(weight > 0, mine, np.nan)
        write_savemd(tmp_path / f"run{number}_data.nxs", volume)
        write_savemd(tmp_path / f"run{number}_norm.nxs", volume, normalisation=True)
    tracker = FolderTracker(tmp_path)
    tracker.poll()
    fold = RunningFold(material)
    for path, partner in tracker.poll():
        fold.add(path.name, read_file_sums(path, Geometry(material), partner))
    assert fold.files == ["run0_data.nxs", "run1_data.nxs"]
    intensity = fold.spectrum().intensity
    for index in [i for i, label in material.path.labels if label == "X"]:
        np.testing.assert_allclose(intensity[index], data.sum(0) / norm.sum(0), rtol=1e-12)
