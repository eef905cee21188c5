"""ToF geometry (kinematic limits, orientation conventions) and simulated scans (Poisson noise,
seeds, coverage, the written 4-D volume folding back to the same spectrum)."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
from conftest import reference_theta
from hypothesis import given, settings
from hypothesis import strategies as st

from fcinvert.data.fold import fold_volume
from fcinvert.data.measurement import parse_orientations, simulate_scans
from fcinvert.data.readers import read_volume, write_savemd
from fcinvert.errors import FcinvertError
from fcinvert.physics.instrument import (
    Orientation,
    Spectrometer,
    measured_points,
    rotation_y,
    wavevector,
)
from fcinvert.physics.reciprocal import conventional_lattice
from fcinvert.physics.structure_factor import StructureFactorModel

CUBIC = 5.658 * np.eye(3)


@settings(max_examples=20, deadline=None)
@given(
    ei=st.floats(5.0, 150.0),
    psi=st.floats(-180.0, 180.0),
    u=st.sampled_from([(1, 0, 0), (1, 1, 0), (1, 1, 1)]),
)
def test_no_point_outside_the_kinematic_limits(ei, psi, u) -> None:
    """Every measured (Q, E): E < Ei, |Q|² = ki² + kf² − 2 ki kf cos 2θ with 2θ inside the
    detector coverage; and points that fail E < Ei are flagged."""
    spectrometer = Spectrometer(ei=ei, pixel=4.0)
    v = (0, 0, 1) if u != (0, 0, 1) else (1, 0, 0)
    orientation = Orientation.from_vectors(CUBIC, u, v)
    energy = np.linspace(-ei, 1.5 * ei, 23)
    hkl, valid, _ = measured_points(spectrometer, orientation, psi, energy)
    assert np.array_equal(valid, np.broadcast_to(energy < ei, valid.shape))
    q = np.linalg.norm(orientation.lab_from_hkl(hkl.reshape(-1, 3), psi), axis=1).reshape(
        valid.shape
    )
    ki = wavevector(ei)
    kf = wavevector(np.clip(ei - energy, 0, None))
    with np.errstate(invalid="ignore", divide="ignore"):
        cosine = (ki**2 + kf**2 - q**2) / (2 * ki * kf)
    low, high = spectrometer.scattering_angle_range()
    inside = cosine[valid]
    assert np.all(inside <= math.cos(math.radians(low)) + 1e-9)
    assert np.all(inside >= math.cos(math.radians(high)) - 1e-9)
    assert np.all(q[valid] <= ki + kf[None, :].repeat(len(q), 0)[valid] + 1e-9)
    for j in np.nonzero(energy < ei)[0]:  # the powder-average reach agrees with each point
        assert np.all(spectrometer.reach(q[:, j], energy[j : j + 1]))


def test_orientation_conventions() -> None:
    """u along the beam (+z), v towards +x, ψ turns counter-clockwise about +y."""
    orientation = Orientation.from_vectors(CUBIC, [1, 1, 0], [0, 0, 1])
    along = orientation.lab_from_hkl(np.array([[1.0, 1.0, 0.0]]), 0.0)[0]
    np.testing.assert_allclose(along / np.linalg.norm(along), [0, 0, 1], atol=1e-12)
    side = orientation.lab_from_hkl(np.array([[0.0, 0.0, 1.0]]), 0.0)[0]
    np.testing.assert_allclose(side / np.linalg.norm(side), [1, 0, 0], atol=1e-12)
    np.testing.assert_allclose(np.linalg.norm(along), 2 * math.pi * math.sqrt(2) / 5.658)
    turned = orientation.lab_from_hkl(np.array([[1.0, 1.0, 0.0]]), 90.0)[0]
    np.testing.assert_allclose(turned / np.linalg.norm(turned), [1, 0, 0], atol=1e-12)
    np.testing.assert_allclose(rotation_y(30.0) @ rotation_y(-30.0), np.eye(3), atol=1e-15)
    hkl = np.random.default_rng(0).normal(size=(5, 3))
    np.testing.assert_allclose(orientation.hkl_from_lab(orientation.lab_from_hkl(hkl, 17), 17), hkl)
    with pytest.raises(FcinvertError, match="parallel"):
        Orientation.from_vectors(CUBIC, [1, 0, 0], [2, 0, 0])


def test_parse_orientations() -> None:
    np.testing.assert_allclose(parse_orientations("0:120:1"), np.arange(120.0))
    np.testing.assert_allclose(parse_orientations("0,30,-15"), [0, 30, -15])
    with pytest.raises(FcinvertError, match="start:stop:step"):
        parse_orientations("0:10:-1")


@pytest.fixture(scope="module")
def scans(ge):
    material, fcspace = ge
    theta = reference_theta(material, fcspace)
    model = StructureFactorModel.build(material, fcspace, mesh=4)
    orientation = Orientation.from_vectors(conventional_lattice(material), [1, 1, 0], [0, 0, 1])
    spectrometer = Spectrometer(ei=40.0, pixel=2.0)

    def run(seed: int, keep_volume: bool = False, bank: Spectrometer = spectrometer):
        return simulate_scans(
            material,
            model,
            theta,
            bank,
            orientation,
            np.array([0.0, 7.0]),
            1e5,
            background=0.1,
            q_step=0.1,
            seed=seed,
            keep_volume=keep_volume,
        )

    return material, run


def test_scans_are_seeded_and_noisy_as_poisson(scans) -> None:
    _, run = scans
    first, again, other = run(1), run(1), run(2)
    a, b = first.combined.spectrum, other.combined.spectrum
    np.testing.assert_array_equal(a.intensity, again.combined.spectrum.intensity)
    assert not np.array_equal(a.intensity, b.intensity, equal_nan=True)
    np.testing.assert_array_equal(np.isnan(a.intensity), np.isnan(b.intensity))  # same coverage
    many = np.isfinite(a.intensity) & (a.intensity / a.error > 10)  # ≥ 100 counts
    z = (a.intensity - b.intensity)[many] / np.hypot(a.error, b.error)[many]
    assert many.sum() > 200
    assert 0.8 < np.std(z) < 1.2  # the errors are the Poisson scatter


def test_coverage_within_energy_and_orientations(scans) -> None:
    material, run = scans
    result = run(0)
    energy = material.energy.centres
    combined = result.combined.spectrum.intensity
    assert np.all(np.isnan(combined[:, energy >= 40.0]))  # nothing above Ei
    single = [np.isfinite(s.intensity) for s in result.single]
    np.testing.assert_array_equal(np.isfinite(combined), single[0] | single[1])
    assert 0 < single[0].mean() < result.combined.measured_fraction
    assert result.combined.zones and result.combined.zones[0].path_pixels > 0


def test_written_volume_folds_back_to_the_same_spectrum(scans, tmp_path: Path) -> None:
    material, run = scans
    bank = Spectrometer(ei=40.0, horizontal=((20.0, 50.0),), vertical=(-4.0, 4.0), pixel=1.0)
    result = run(3, keep_volume=True, bank=bank)
    assert result.volume.signal.size < 5_000_000
    write_savemd(tmp_path / "data.nxs", result.volume)
    write_savemd(tmp_path / "norm.nxs", result.volume, normalisation=True)
    volume = read_volume(tmp_path / "data.nxs", tmp_path / "norm.nxs")
    folded = fold_volume(volume, material).spectrum.intensity
    np.testing.assert_allclose(
        folded, result.combined.spectrum.intensity, rtol=1e-10, equal_nan=True
    )
