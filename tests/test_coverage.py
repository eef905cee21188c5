"""Do the reported intervals cover the truth? A small calibration set made by Euphonic.

Nb truths (every stable force-field member, and the median scaled stiffer and softer) measured
as ``benchmarks/measurement_like.py`` makes them (Euphonic intensities, Debye–Waller and Bose,
Poisson counts on a background), inverted without a model. The pooled 90 % intervals of the
parameters and the dispersion band must cover 75–100 % of the truths: intervals a third as wide
(a broken calibration) fail, as the test checks on the same numbers.
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "benchmarks"))

import measurement_like as ml

from fcinvert.inversion.pipeline import Z90, infer
from fcinvert.inversion.prior import load_prior_ensemble
from fcinvert.physics.dynamics import dynamics_basis

pytestmark = pytest.mark.filterwarnings("ignore:More than one OpenMP library")


@pytest.fixture(scope="module")
def calibration_set(nb, tmp_path_factory):
    """(z of every parameter, truth-in-band flags) pooled over the set."""
    material, fcspace = nb
    ensemble = load_prior_ensemble(material, fcspace)
    truths = [*ensemble.members[:4], 1.25 * ensemble.reference, 0.8 * ensemble.reference]
    z, inside = [], []
    for index, theta in enumerate(truths):
        settings = {"path_points": 80, "zones": 6, "dw_mesh": 6, "background": 0.05}
        instrument = ml.Instrument.for_material("nb", peak_counts=150.0, **settings)
        simulated = ml.simulate("nb", theta, instrument, seed=index)
        inference = infer(simulated.spectrum, material, fcspace, seed=index)
        truth_frequencies = dynamics_basis(fcspace, simulated.spectrum.qpoints).frequencies(theta)
        z.append((inference.theta - theta) / inference.std)
        inside.append(
            (truth_frequencies >= inference.band_low) & (truth_frequencies <= inference.band_high)
        )
    return np.concatenate(z), np.concatenate([i.ravel() for i in inside])


def test_90_percent_intervals_cover_the_truth(calibration_set):
    z, inside = calibration_set
    assert 0.75 <= np.mean(np.abs(z) <= Z90) <= 1.0
    assert 0.75 <= np.mean(inside) <= 1.0
    assert np.mean(np.abs(3.0 * z) <= Z90) < 0.75  # intervals a third as wide would fail
