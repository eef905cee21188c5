"""``fcinvert single-scan``: every scan of a ``fcinvert measure`` folder inverted alone and
compared with all orientations together (paper Fig. 4)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import h5py
import numpy as np
import pytest
import torch
from conftest import reference_theta
from hypothesis import given
from hypothesis import strategies as st
from small_dataset import run_cli, trained_models

import fcinvert
from fcinvert.analysis.single_scan import (
    fc_mse,
    pick_representatives,
    read_scan_folder,
    run_single_scan,
    training_box,
)
from fcinvert.analysis.single_scan_results import SingleScanResults
from fcinvert.cli.measure import measure
from fcinvert.data.dataset import read_dataset
from fcinvert.data.spectrum_file import Spectrum, read_spectrum, write_spectrum
from fcinvert.errors import FcinvertError
from fcinvert.inversion.invert import invert_spectrum
from fcinvert.models.bundle import load_bundle

ANGLES = "0:50:10"  # five orientations


@pytest.fixture(scope="module")
def models(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    torch.set_num_threads(1)
    return trained_models(str(tmp_path_factory.getbasetemp() / "tiny-models"))


@pytest.fixture(scope="module")
def scans(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Five synthetic ToF scans of Ge (reference θ; coarse 2° detector pixels), written by
    ``fcinvert measure``."""
    folder = tmp_path_factory.mktemp("scans")
    measure("ge", folder, orientations=ANGLES, pixel=2.0, q_step=0.05, plot=False)
    return folder


@pytest.fixture(scope="module")
def study(models, scans):
    return run_single_scan(scans, load_bundle(models["vae"]), n_samples=50, seed=3)


def test_each_scan_and_the_whole_are_inverted_like_invert_does(study, models, scans, ge):
    material, fcspace = ge
    bundle = load_bundle(models["vae"])
    selected = bundle.selected_indices
    assert len(study.results) == 5 and not study.skipped
    np.testing.assert_allclose(study.psi, np.arange(0.0, 50.0, 10.0))

    whole = invert_spectrum(read_spectrum(scans / "all.h5"), bundle, 50, 3, context=ge)
    np.testing.assert_array_equal(study.full.theta, whole.theta)
    one = invert_spectrum(read_spectrum(scans / "scan_003.h5"), bundle, 50, 3, context=ge)
    np.testing.assert_array_equal(study.theta[3], one.theta[selected])

    difference = study.theta - whole.theta[selected]  # (5, K) by hand
    std = np.array(bundle.config.target_std)
    np.testing.assert_allclose(study.mse_standardised, ((difference / std) ** 2).mean(axis=1))
    np.testing.assert_allclose(study.mse_raw, (difference**2).mean(axis=1))
    assert study.picks["best"] == np.argmin(study.mse_standardised)
    assert study.picks["worst"] == np.argmax(study.mse_standardised)
    # the scans were simulated from the material's reference; measure records it
    np.testing.assert_allclose(study.truth, reference_theta(material, fcspace))


def test_training_box_is_the_training_dataset_domain_or_the_scaler_estimate(models):
    bundle = load_bundle(models["vae"])
    stored = read_dataset(models["data"])
    box = training_box(bundle)
    np.testing.assert_array_equal(box.low, stored.low)
    np.testing.assert_array_equal(box.high, stored.high)
    bundle.config.training = {}  # no dataset recorded: mean ± √3 std of the training targets
    estimate = training_box(bundle)
    theta = stored.theta("train")[:, stored.selected]
    # θ was drawn uniformly in the box: the estimate lands within a few % of its width
    width = stored.high - stored.low
    assert np.all(np.abs(estimate.low - stored.low) < 0.05 * width)
    assert np.all(np.abs(estimate.high - stored.high) < 0.05 * width)
    assert np.all(theta.min(axis=0) >= stored.low) and np.all(theta.max(axis=0) <= stored.high)


def test_a_scan_equal_to_the_whole_has_zero_mse_and_an_empty_scan_is_skipped(
    models, scans, tmp_path: Path
):
    folder = tmp_path / "scans"
    shutil.copytree(scans, folder)
    shutil.copy(folder / "all.h5", folder / "scan_002.h5")
    empty = read_spectrum(folder / "scan_004.h5")  # moved above the model's energy window
    write_spectrum(
        folder / "scan_004.h5",
        Spectrum(empty.intensity, empty.energy + 500.0, empty.qpoints, "ge", 5.0, empty.error),
    )
    result = run_single_scan(folder, load_bundle(models["vae"]), n_samples=20, seed=1)
    # the same latent draws for every input: identical data, identical θ, MSE exactly 0
    assert result.picks["best"] == 2 and result.mse_standardised[2] == 0.0
    assert [i for i, _ in result.skipped] == [4] and "no measured pixel" in result.skipped[0][1]
    np.testing.assert_array_equal(result.index, [0, 1, 2, 3])


@given(st.lists(st.floats(0.0, 1e3, allow_nan=False), min_size=1, max_size=40))
def test_best_median_worst(values):
    picks = pick_representatives(np.array(values))
    ordered = sorted(values)
    assert values[picks["best"]] == ordered[0] and values[picks["worst"]] == ordered[-1]
    assert values[picks["median"]] == ordered[(len(values) - 1) // 2]


def test_fc_mse_by_hand():
    theta = np.array([[1.0, 2.0], [0.0, 4.0]])
    np.testing.assert_allclose(fc_mse(theta, np.array([1.0, 1.0])), [0.5, 5.0])
    np.testing.assert_allclose(
        fc_mse(theta, np.array([1.0, 1.0]), np.array([1.0, 2.0])), [0.125, 1.625]
    )


def test_cli_writes_the_report_and_refines(models, scans, tmp_path: Path, monkeypatch, capsys):
    out = tmp_path / "report"
    args = ["single-scan", str(scans), "--model", str(models["vae"]), "--out", str(out)]
    code, err = run_cli([*args, "--samples", "20", "--refine"], monkeypatch, capsys)
    assert code == 0, err
    for stem in ("mse_vs_orientation", "inversions", "fc_values"):
        assert (out / f"{stem}.png").stat().st_size > 0 and (out / f"{stem}.svg").is_file()
    results = json.loads((out / "results.json").read_text())
    page = (out / "index.html").read_text()
    assert "best" in page and "results.json" in page and "inversions.png" in page
    assert results["summary"]["n_inverted"] == 5 and results["truth_known"]
    assert SingleScanResults.from_dict(results).to_dict() == results  # the typed schema
    assert (out / results["scans_folder"]).resolve() == scans.resolve()  # relative to the report
    scans_mse = [row["mse_standardised"] for row in results["scans"]]
    assert results["picks"]["worst"]["mse_standardised"] == max(scans_mse)
    refined = results["refinement"]["all"]
    # started inside the basin, the fit of every parameter brings the all-orientations
    # dispersion closer to the truth than the two-parameter ML estimate (measured: 0.59 → 0.22
    # meV; single scans, sparser, do not always improve)
    assert (
        refined["refined_versus_truth"]["dispersion_rms_meV"]
        < (refined["ml_versus_truth"]["dispersion_rms_meV"])
    )
    assert set(results["refinement"]) == {"all", "best", "median", "worst"}


def test_cli_errors_are_one_line(models, scans, tmp_path: Path, monkeypatch, capsys):
    empty = tmp_path / "empty"
    empty.mkdir()
    base = ["--model", str(models["vae"]), "--out", str(tmp_path / "out")]
    code, err = run_cli(["single-scan", str(empty), *base], monkeypatch, capsys)
    assert code == 2 and "no scans.json" in err and len(err.strip().splitlines()) == 1

    other = tmp_path / "nb-scans"
    shutil.copytree(scans, other)
    listing = json.loads((other / "scans.json").read_text())
    (other / "scans.json").write_text(json.dumps({**listing, "material": "nb"}))
    code, err = run_cli(["single-scan", str(other), *base], monkeypatch, capsys)
    assert code == 2 and "model is for 'ge'" in err and len(err.strip().splitlines()) == 1

    del listing["all"]
    (other / "scans.json").write_text(json.dumps(listing))
    with pytest.raises(FcinvertError, match="not a scan listing"):
        read_scan_folder(other)


def test_recorded_truth_is_read_from_the_files(scans):
    with h5py.File(scans / "all.h5") as handle:
        recorded = json.loads(handle.attrs["parameters"])
    folder = read_scan_folder(scans)
    assert folder.truth == recorded and folder.material == "ge"
    assert [p.name for p in folder.files] == [f"scan_{i:03d}.h5" for i in range(5)]


@pytest.mark.parametrize(
    "config",
    sorted(Path(fcinvert.__file__).parent.glob("materials/*/models/*/config.json")),
    ids=lambda p: f"{p.parent.parent.parent.name}-{p.parent.name}",
)
def test_shipped_bundles_carry_their_training_domain_and_no_path(config: Path):
    text = config.read_text()
    assert '"/' not in text  # no absolute path of the machine that trained it
    bundle = load_bundle(config.parent)
    box = training_box(bundle)
    recorded = bundle.config.training["dataset"]
    assert box.source == f"domain of {recorded['file']}"
    assert np.all(box.low < box.high)
    # the training targets were drawn inside the box
    centre, half = 0.5 * (box.low + box.high), 0.5 * (box.high - box.low)
    assert np.all(np.abs(bundle.scaler.mean - centre) < half)
