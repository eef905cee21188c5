"""The physical S(Q, E) against phonopy's DynamicStructureFactor and thermal displacements, and
its symmetry, Bose factor and zone bookkeeping."""

from __future__ import annotations

import numpy as np
import pytest
from conftest import reference_theta
from phonopy.phonon.thermal_displacement import ThermalDisplacementMatrices

from fcinvert.data.fold import PathMapper
from fcinvert.errors import FcinvertError
from fcinvert.physics.dynamics import FREQUENCY_TO_MEV
from fcinvert.physics.fcspace import phonopy_for
from fcinvert.physics.reciprocal import laue_rotations, reciprocal_basis, reduced_to_hkl
from fcinvert.physics.structure_factor import (
    ACOUSTIC_CUTOFF,
    BOLTZMANN,
    SCATTERING_LENGTHS_FM,
    UNITS,
    StructureFactorModel,
    folded_spectrum,
    resolve_zones,
    zone_orbits,
    zones_from_hkl,
)

MESH = 6
QPOINTS = np.array([[0.1, 0.0, 0.1], [0.3, 0.2, 0.1], [0.5, 0.25, 0.75], [0.0, 0.37, 0.37]])
ZONES = np.array([[0, 0, 0], [1, 1, 1], [0, 1, 1], [2, -1, 1], [-1, 2, 0]])


@pytest.fixture(scope="module")
def model(ge) -> StructureFactorModel:
    material, fcspace = ge
    return StructureFactorModel.build(material, fcspace, qpoints=QPOINTS, mesh=MESH)


def perturbed(material, fcspace, seed: int) -> np.ndarray:
    theta = reference_theta(material, fcspace)
    rng = np.random.default_rng(seed)
    return theta * (1 + 0.05 * rng.standard_normal(theta.shape))


def phonopy_dsf(material, fcspace, theta, q_reduced, temperature):
    """phonopy's S per band at Q (reduced), in our units (phonopy gives m²/J)."""
    phonon = phonopy_for(material)
    phonon.force_constants = fcspace.force_constants(theta)
    phonon.run_mesh(
        [MESH] * 3, is_mesh_symmetry=False, with_eigenvectors=True, is_gamma_center=True
    )
    thz_per_mev = phonon.unit_conversion_factor / FREQUENCY_TO_MEV
    lengths = {s: SCATTERING_LENGTHS_FM[s] for s in set(material.atoms.get_chemical_symbols())}
    dsf = phonon.init_dynamic_structure_factor(
        q_reduced, temperature, scattering_lengths=lengths, freq_min=ACOUSTIC_CUTOFF * thz_per_mev
    )
    dsf.run()
    conversion = UNITS.AMU * (2 * np.pi * UNITS.THz) ** 2  # theirs = ours · ħω/f / conversion
    frequencies = dsf.frequencies / thz_per_mev
    with np.errstate(invalid="ignore", divide="ignore"):
        ours_scale = np.where(frequencies > 0, dsf.frequencies / frequencies * conversion, 0.0)
    return dsf.dynamic_structure_factors * ours_scale, frequencies


def degenerate_sums(values: np.ndarray, frequencies: np.ndarray) -> np.ndarray:
    """Sum over modes of equal energy (within 1e-3 meV): basis-independent in a degenerate set."""
    order = np.argsort(frequencies)
    group = np.cumsum(np.r_[0, np.diff(frequencies[order]) > 1e-3])
    return np.bincount(group, weights=values[order])


@pytest.mark.parametrize(("seed", "temperature"), [(None, 5.0), (1, 300.0)])
def test_agrees_with_phonopy_dynamic_structure_factor(ge, model, seed, temperature) -> None:
    material, fcspace = ge
    theta = (
        reference_theta(material, fcspace) if seed is None else perturbed(material, fcspace, seed)
    )
    index = np.repeat(np.arange(len(QPOINTS)), len(ZONES))
    zones = np.tile(ZONES, (len(QPOINTS), 1))
    frequencies, create, _ = model.mode_intensities(theta, temperature, index, zones)
    theirs, their_frequencies = phonopy_dsf(
        material, fcspace, theta, QPOINTS[index] + zones, temperature
    )
    np.testing.assert_allclose(frequencies[index], their_frequencies, rtol=1e-9, atol=1e-9)
    largest = 0.0
    for i in range(len(index)):
        ours = degenerate_sums(create[i], frequencies[index[i]])
        reference = degenerate_sums(theirs[i], frequencies[index[i]])
        np.testing.assert_allclose(ours, reference, rtol=1e-8, atol=1e-10 * reference.max())
        largest = max(largest, reference.max())
    assert largest > 1.0  # not trivially zero


def test_thermal_displacements_agree_with_phonopy(ge, model) -> None:
    material, fcspace = ge
    theta = reference_theta(material, fcspace)
    phonon = phonopy_for(material)
    phonon.force_constants = fcspace.force_constants(theta)
    phonon.run_mesh(
        [MESH] * 3, is_mesh_symmetry=False, with_eigenvectors=True, is_gamma_center=True
    )
    thz_per_mev = phonon.unit_conversion_factor / FREQUENCY_TO_MEV
    reference = ThermalDisplacementMatrices(phonon.mesh, freq_min=ACOUSTIC_CUTOFF * thz_per_mev)
    reference.temperatures = [300.0]
    reference.run()
    ours = model.thermal_displacements(theta, 300.0)
    np.testing.assert_allclose(
        ours, reference.thermal_displacement_matrices[0], rtol=1e-9, atol=1e-14
    )
    assert 0.003 < ours[0, 0, 0] < 0.03  # Å²: Ge at room temperature, B ≈ 0.6 Å²


def test_folding_images_keep_the_intensity(ge) -> None:
    """S at Q = R(q + G) equals S at q + G' with the G' the fold mapper assigns (phonopy checks)."""
    material, fcspace = ge
    theta = reference_theta(material, fcspace)
    rng = np.random.default_rng(2)
    reciprocal = reciprocal_basis(material.atoms.cell[:])
    rotations = laue_rotations(material)
    p = rng.integers(1, len(material.path.qpoints), 12)
    zones = rng.integers(-2, 3, (12, 3))
    rotation = rotations[rng.integers(0, len(rotations), 12)]
    cart = np.einsum("nij,nj->ni", rotation, (material.path.qpoints[p] + zones) @ reciprocal)
    q_reduced = cart @ np.linalg.inv(reciprocal)
    matches = PathMapper(material, perpendicular=1e-4).match(reduced_to_hkl(material, q_reduced))
    first = np.unique(matches.point, return_index=True)[1]
    assert len(first) == 12
    reached, index = np.unique(matches.path[first], return_inverse=True)
    model = StructureFactorModel.build(
        material, fcspace, qpoints=material.path.qpoints[reached], mesh=MESH
    )
    frequencies, ours, _ = model.mode_intensities(theta, 5.0, index, matches.path_zone[first])
    theirs, _ = phonopy_dsf(material, fcspace, theta, q_reduced, 5.0)
    for i in range(12):
        np.testing.assert_allclose(
            degenerate_sums(ours[i], frequencies[index[i]]),
            degenerate_sums(theirs[i], frequencies[index[i]]),
            rtol=1e-7,
            atol=1e-9 * theirs[i].max(),
        )


def test_acoustic_modes_at_bragg_points_are_masked(ge) -> None:
    material, fcspace = ge
    theta = reference_theta(material, fcspace)
    model = StructureFactorModel.build(material, fcspace, qpoints=np.zeros((1, 3)), mesh=4)
    frequencies, create, annihilate = model.mode_intensities(
        theta, 300.0, np.zeros(2, int), np.array([[1, 1, 1], [0, 1, 1]])
    )
    assert np.all(np.isfinite(create)) and np.all(np.isfinite(annihilate))
    acoustic = frequencies[0] < ACOUSTIC_CUTOFF
    assert acoustic.sum() == 3
    assert np.all(create[:, acoustic] == 0)


def test_detailed_balance(ge, model) -> None:
    material, fcspace = ge
    theta = reference_theta(material, fcspace)
    index = np.arange(len(QPOINTS))
    zones = np.tile([1, 1, 1], (len(QPOINTS), 1))
    frequencies, create, annihilate = model.mode_intensities(theta, 100.0, index, zones)
    ratio = annihilate / np.where(create > 0, create, np.nan)
    expected = np.exp(-frequencies / (BOLTZMANN * 100.0))
    finite = np.isfinite(ratio)
    np.testing.assert_allclose(ratio[finite], expected[finite], rtol=1e-12)
    _, _, cold = model.mode_intensities(theta, 0.0, index, zones)
    assert np.all(cold == 0)


def test_zone_bookkeeping(ge) -> None:
    material, _ = ge
    orbit, weights = zone_orbits(material, zones_from_hkl(material, [[2, 0, 0]]))
    assert len(orbit) == 6 and weights.sum() == pytest.approx(1.0)
    hkl = np.round(reduced_to_hkl(material, orbit)).astype(int)
    assert sorted(map(tuple, np.abs(hkl))) == sorted(
        [(2, 0, 0)] * 2 + [(0, 2, 0)] * 2 + [(0, 0, 2)] * 2
    )
    with pytest.raises(FcinvertError, match="not a reciprocal lattice vector"):
        zones_from_hkl(material, [[1, 0, 0]])
    with pytest.raises(FcinvertError, match="expected 'auto'"):
        resolve_zones(material, "two,two")
    zones, _, _ = resolve_zones(material, "4.0")
    magnitude = np.linalg.norm(2 * np.pi * zones @ reciprocal_basis(material.atoms.cell[:]), axis=1)
    assert magnitude.max() <= 4.0 and len(zones) > 10


def test_folded_spectrum_is_the_mean_over_the_orbit(ge, model) -> None:
    """Equal-weight orbit of (1,1,1): the folded spectrum is the mean of its members'."""
    material, fcspace = ge
    theta = reference_theta(material, fcspace)
    orbit, weights = zone_orbits(material, zones_from_hkl(material, [[1, 1, 1]]))
    folded = folded_spectrum(model, theta, 5.0, orbit, weights)
    one = [
        model.pixel_spectra(
            theta, 5.0, np.arange(len(QPOINTS)), np.tile(g, (len(QPOINTS), 1)), material.energy
        )
        for g in orbit
    ]
    np.testing.assert_allclose(folded, np.mean(one, axis=0), rtol=1e-10)
    assert not np.allclose(one[0], one[1])  # the members differ: the orbit matters
