"""Folding onto the path: exact on star points, close on a 4-D grid built from known θ, ratio of
sums for data/normalisation pairs, NaN where nothing was measured, per-zone coverage."""

from __future__ import annotations

import functools

import numpy as np
import pytest
from conftest import reference_theta
from hypothesis import given, settings
from hypothesis import strategies as st

from fcinvert.data.fold import PathMapper, fold_points, fold_volume
from fcinvert.data.readers import Points, Volume, dimension_name
from fcinvert.errors import FcinvertError
from fcinvert.physics.dynamics import FREQUENCY_TO_MEV
from fcinvert.physics.fcspace import phonopy_for
from fcinvert.physics.material import load_material
from fcinvert.physics.reciprocal import (
    hkl_to_reduced,
    laue_rotations,
    reciprocal_basis,
    reduced_to_hkl,
)
from fcinvert.physics.spectra import render


def phonopy_spectrum(material, fcspace, theta, hkl: np.ndarray) -> np.ndarray:
    """Fast-model I(E) (M, nE) at conventional hkl (M, 3), frequencies straight from phonopy."""
    phonon = phonopy_for(material)
    phonon.force_constants = fcspace.force_constants(theta)
    phonon.run_qpoints(hkl_to_reduced(material, hkl))
    frequencies = phonon.qpoints.frequencies * FREQUENCY_TO_MEV / phonon.unit_conversion_factor
    return render(frequencies, material.energy).astype(float)


def star_points(material, rng, count: int) -> tuple[np.ndarray, np.ndarray]:
    """hkl of Q = R (q_p + G) for random path points p, Laue rotations R and zones G."""
    reciprocal = reciprocal_basis(material.atoms.cell[:])
    rotations = laue_rotations(material)
    p = rng.integers(0, len(material.path.qpoints), count)
    zones = rng.integers(-3, 4, (count, 3))
    rotation = rotations[rng.integers(0, len(rotations), count)]
    cart = (material.path.qpoints[p] + zones) @ reciprocal
    rotated = np.einsum("nij,nj->ni", rotation, cart) @ np.linalg.inv(reciprocal)
    return reduced_to_hkl(material, rotated), p


def test_star_points_fold_exactly_onto_the_path(ge) -> None:
    """Independent physics: phonopy's spectrum at each rotated Q folds back to the path's."""
    material, fcspace = ge
    theta = reference_theta(material, fcspace)
    rng = np.random.default_rng(0)
    hkl, p = star_points(material, rng, 150)
    values = phonopy_spectrum(material, fcspace, theta, hkl)  # (M, nE)
    n_energy = values.shape[1]
    points = Points(
        hkl=np.repeat(hkl, n_energy, axis=0),
        energy=np.tile(material.energy.centres, len(hkl)),
        signal=values.ravel(),
        variance=None,
        weight=np.ones(values.size),
    )
    result = fold_points(points, material, perpendicular=1e-4)
    path = phonopy_spectrum(
        material, fcspace, theta, reduced_to_hkl(material, material.path.qpoints)
    )
    hit = np.unique(p)
    np.testing.assert_allclose(result.spectrum.intensity[hit], path[hit], rtol=1e-4, atol=1e-6)
    assert np.isnan(result.spectrum.intensity).any()  # 150 points cannot reach all 200


@functools.cache
def ge_mapper() -> PathMapper:
    return PathMapper(load_material("ge"))


@settings(max_examples=20, deadline=None)
@given(seed=st.integers(0, 2**31))
def test_matches_are_laue_invariant(seed) -> None:
    """Q and R Q + G fold onto the same path points."""
    mapper = ge_mapper()
    material = mapper.material
    rng = np.random.default_rng(seed)
    hkl, _ = star_points(material, rng, 20)
    hkl = hkl + 0.01 * rng.standard_normal(hkl.shape)
    reduced = hkl_to_reduced(material, hkl)
    reciprocal = reciprocal_basis(material.atoms.cell[:])
    rotation = mapper.rotations[rng.integers(0, len(mapper.rotations))]
    moved = (reduced @ reciprocal) @ rotation.T @ np.linalg.inv(reciprocal) + rng.integers(-2, 3, 3)
    first = mapper.match(hkl)
    second = mapper.match(reduced_to_hkl(material, moved))
    for i in range(len(hkl)):
        assert set(first.path[first.point == i]) == set(second.path[second.point == i])


def grid_volume(material, values_of, low=-0.05, high=1.05, step=0.05) -> Volume:
    """A 4-D volume on a cubic hkl grid with voxel spectra from ``values_of(hkl)``."""
    count = round((high - low) / step)
    edges = low + step * np.arange(count + 1)
    centres = 0.5 * (edges[1:] + edges[:-1])
    hkl = np.stack(np.meshgrid(centres, centres, centres, indexing="ij"), -1).reshape(-1, 3)
    values = values_of(hkl)
    names = [dimension_name(np.eye(3)[i], "HKL"[i]) for i in range(3)] + ["DeltaE"]
    return Volume(
        signal=values.reshape(count, count, count, -1),
        edges=[edges, edges, edges, material.energy.edges],
        projection=np.eye(3),
        names=names,
    )


def test_grid_volume_from_known_theta_recovers_the_path_spectrum(ge) -> None:
    material, fcspace = ge
    theta = reference_theta(material, fcspace)
    volume = grid_volume(material, lambda hkl: phonopy_spectrum(material, fcspace, theta, hkl))
    result = fold_volume(volume, material)
    path = render(phonopy_frequencies(material, fcspace, theta), material.energy)
    folded = result.spectrum.intensity
    assert result.measured_fraction == 1.0  # the box [0, 1]³ holds an image of every segment
    correlation = np.corrcoef(folded.ravel(), path.ravel())[0, 1]
    assert correlation > 0.95
    # the branches stay where they are: the mean energy of a q column moves by < 0.3 meV
    energy = material.energy.centres
    shift = (folded @ energy) / folded.sum(axis=1) - (path @ energy) / path.sum(axis=1)
    assert np.mean(np.abs(shift)) < 0.3


def phonopy_frequencies(material, fcspace, theta) -> np.ndarray:
    phonon = phonopy_for(material)
    phonon.force_constants = fcspace.force_constants(theta)
    phonon.run_qpoints(material.path.qpoints)
    return phonon.qpoints.frequencies * FREQUENCY_TO_MEV / phonon.unit_conversion_factor


def test_finer_energy_bins_fold_the_same(ge) -> None:
    material, _ = ge
    rng = np.random.default_rng(4)
    volume = grid_volume(material, lambda hkl: rng.random((len(hkl), 100)), 0.3, 0.7, 0.05)
    fine = Volume(
        signal=np.repeat(volume.signal, 2, axis=3),
        edges=[*volume.edges[:3], np.linspace(volume.edges[3][0], volume.edges[3][-1], 201)],
        projection=volume.projection,
        names=volume.names,
    )
    coarse_result = fold_volume(volume, material).spectrum.intensity
    fine_result = fold_volume(fine, material).spectrum.intensity
    np.testing.assert_allclose(fine_result, coarse_result, rtol=1e-12, equal_nan=True)


def x_point_volume(material, data, norm) -> Volume:
    """Voxels at (−1, 0, 0) and (1, 0, 0) (both X) with the given data/norm; the rest unmeasured."""
    h = np.array([-1.025, -0.975, 0.975, 1.025])
    k = np.array([-0.025, 0.025])
    n_energy = len(material.energy.centres)
    signal = np.zeros((3, 1, 1, n_energy))
    weight = np.zeros_like(signal)
    signal[[0, 2], 0, 0] = data
    weight[[0, 2], 0, 0] = norm
    signal[1] = np.nan  # the big middle voxel: not measured
    names = ["[H,0,0]", "[0,K,0]", "[0,0,L]", "DeltaE"]
    return Volume(
        signal=signal,
        edges=[h, k, k, material.energy.edges],
        projection=np.eye(3),
        names=names,
        normalisation=weight,
    )


def test_data_and_normalisation_fold_as_ratio_of_sums(ge) -> None:
    material, _ = ge
    n_energy = len(material.energy.centres)
    rng = np.random.default_rng(5)
    data = rng.random((2, n_energy)) * 10
    norm = rng.random((2, n_energy)) + 0.1
    result = fold_volume(x_point_volume(material, data, norm), material)
    x_points = [i for i, label in material.path.labels if label == "X"]
    expected = data.sum(axis=0) / norm.sum(axis=0)
    for index in x_points:
        np.testing.assert_allclose(result.spectrum.intensity[index], expected, rtol=1e-12)
    gamma_l = [i for i, label in material.path.labels if label in ("Γ", "L")]
    assert np.all(np.isnan(result.spectrum.intensity[gamma_l]))
    normalised = x_point_volume(material, data / norm, 1.0)
    normalised.normalisation = None
    mean = fold_volume(normalised, material).spectrum.intensity
    for index in x_points:
        np.testing.assert_allclose(mean[index], (data / norm).mean(axis=0), rtol=1e-12)


def test_zone_coverage_names_the_zone(ge) -> None:
    material, _ = ge
    volume = grid_volume(material, lambda hkl: np.ones((len(hkl), 100)), 1.55, 2.45, 0.05)
    volume.edges[1] = volume.edges[1] - 2.0  # K and L around 0: the box around (2, 0, 0)
    volume.edges[2] = volume.edges[2] - 2.0
    result = fold_volume(volume, material)
    assert result.zones[0].hkl == (2, 0, 0)
    assert result.zones[0].voxels > 0.5 * sum(z.voxels for z in result.zones)
    assert 0 < result.measured_fraction < 1
    np.testing.assert_allclose(result.spectrum.intensity[np.isfinite(result.spectrum.intensity)], 1)


def test_wrong_lattice_is_refused(ge) -> None:
    material, _ = ge
    volume = grid_volume(material, lambda hkl: np.ones((len(hkl), 100)), 0.3, 0.5, 0.1)
    volume.ub = np.eye(3) / 4.0
    with pytest.raises(FcinvertError, match="wrong material"):
        fold_volume(volume, material)


def test_nb_star_points_fold() -> None:
    """bcc: exact star points of random path points reach exactly those path points."""
    material = load_material("nb")
    rng = np.random.default_rng(6)
    hkl, p = star_points(material, rng, 200)
    matches = PathMapper(material, perpendicular=1e-4).match(hkl)
    for i in range(len(hkl)):
        assert p[i] in matches.path[matches.point == i]
    assert matches.distance.max() < 1e-9  # every match is an exact image of its path point
