"""The Euphonic measurement-like generator of benchmarks/measurement_like.py (the independent
bench's spectra): Euphonic's frequencies are ours, counts are Poisson, the window and the gaps
are NaN as asked, one seed gives one spectrum."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "benchmarks"))

import measurement_like as ml
from conftest import reference_theta

from fcinvert.data.spectrum_file import read_spectrum

pytestmark = pytest.mark.filterwarnings("ignore:More than one OpenMP library")
GAPS = ml.Gaps(columns=0.1, segments=2, pixels=0.3)


@pytest.fixture(scope="module")
def truth(nb, tmp_path_factory) -> ml.Truth:
    material, fcspace = nb
    theta = reference_theta(material, fcspace) * 1.3  # not the reference itself
    return ml.truth_from_theta(material, theta, "nb-stiff", tmp_path_factory.mktemp("truth"))


def instrument(**changes) -> ml.Instrument:
    settings = {"path_points": 60, "zones": 4, "dw_mesh": 6, "peak_counts": 200.0}
    settings.update({"background": 0.05, "gaps": GAPS} | changes)
    return ml.Instrument.for_material("nb", **settings)


@pytest.fixture(scope="module")
def simulated(truth) -> ml.Simulated:
    return ml.simulate("nb", truth, instrument(), seed=3)


def test_euphonic_frequencies_are_ours(nb, truth):
    material, _ = nb
    check = ml.euphonic_agreement(truth, material.path.qpoints[::2])
    assert check["same_unit_meV"] < 1e-6
    assert check["raw_meV"] < 1e-5  # the two codes' unit factors differ by ~2e-7
    assert abs(check["unit_ratio_minus_1"]) < 1e-6


def test_truth_in_theta_space_has_no_floor(nb, truth):
    material, _ = nb
    qpoints = material.path.qpoints[::8]
    floor = ml.truncation_floor(material, qpoints, ml.truth_frequencies(truth, qpoints))
    assert floor.rms < 1e-5


def test_window_grid_and_gaps(simulated):
    spectrum = simulated.spectrum
    assert spectrum.energy[0] == pytest.approx(0.25) and spectrum.energy[-1] == pytest.approx(34.75)
    assert spectrum.intensity.shape == (60, 70)
    missing = np.isnan(spectrum.intensity)
    assert missing.mean() == pytest.approx(0.3, abs=1 / missing.size)
    assert np.all(missing, axis=1).sum() >= 6  # 10 % of the 60 q columns
    assert np.array_equal(np.isnan(spectrum.error), missing)
    assert simulated.frequencies.max() < 35.0  # the stiffened truth still fits the window


def test_counts_are_poisson(simulated):
    counts = simulated.spectrum.intensity
    measured = np.isfinite(counts)
    expected = simulated.expected[measured]
    values = counts[measured]
    assert np.all(values == np.round(values)) and values.min() >= 0
    pulls = (values - expected) / np.sqrt(expected)
    assert abs(pulls.mean()) < 0.1 and abs(pulls.var() - 1.0) < 0.15
    background = 0.05 * 200.0
    assert expected.min() == pytest.approx(background, rel=1e-3)  # flat background floor
    peak = np.percentile(simulated.expected, ml.PEAK_PERCENTILE)
    assert peak == pytest.approx(200.0 + background, rel=1e-6)
    error = simulated.spectrum.error[measured]
    assert np.allclose(error, np.sqrt(np.maximum(values, 1.0)))


def test_same_seed_same_spectrum(truth, simulated, tmp_path):
    again = ml.measurement_like("nb", truth, instrument(), seed=3, out=tmp_path / "case.h5")
    assert np.array_equal(again.intensity, simulated.spectrum.intensity, equal_nan=True)
    other = ml.simulate("nb", truth, instrument(), seed=4).spectrum
    assert not np.array_equal(other.intensity, again.intensity, equal_nan=True)
    read = read_spectrum(tmp_path / "case.h5")
    assert read.material == "nb" and read.frequencies is None  # no truth in the user's file
    assert np.array_equal(read.intensity, again.intensity, equal_nan=True)
    assert np.allclose(read.qpoints, again.qpoints)
