"""θ ↔ Φ: named parameters, exact round trip, projection with a reported residual."""

from __future__ import annotations

import numpy as np
import phonopy
from ase.build import bulk
from conftest import reference_theta
from hypothesis import given, settings
from hypothesis import strategies as st

from fcinvert.physics.dynamics import FREQUENCY_TO_MEV, dynamics_basis
from fcinvert.physics.export import write_phonopy_files
from fcinvert.physics.fcspace import build_fcspace
from fcinvert.physics.material import init_material, load_material


def test_parameter_counts_follow_the_shells(ge, nb):
    # shells 1–5 alone: Ge 2+4+4+2+4 = 16, Nb 2+2+3+4+2 = 13 (the paper's counts)
    for (_, fcspace), first_five in ((ge, 16), (nb, 13)):
        assert sum(p.shell <= 5 for p in fcspace.parameters) == first_five
    assert ge[1].names[:2] == ["shell1_(0.25,0.25,0.25)_xx", "shell1_(0.25,0.25,0.25)_xy"]
    assert nb[1].names[2:4] == ["shell2_(1,0,0)_xx", "shell2_(1,0,0)_yy"]


def test_physical_parameters_are_tensor_components(ge):
    material, fcspace = ge
    theta = reference_theta(material, fcspace)
    phi = fcspace.force_constants(theta)
    p2s = fcspace.phonopy.primitive.p2s_map
    supercell = fcspace.phonopy.supercell
    for k, parameter in enumerate(fcspace.parameters):
        a, _ = parameter.atoms
        # find the supercell atom at the named bond from primitive atom a
        target = supercell.positions[p2s[a]] + np.array(parameter.vector)
        delta = np.linalg.solve(supercell.cell.T, (supercell.positions - target).T).T
        j = int(np.argmin(np.linalg.norm(delta - np.round(delta), axis=1)))
        row, column = "xyz".index(parameter.component[0]), "xyz".index(parameter.component[1])
        assert phi[p2s[a], j, row, column] == np.float64(theta[k]) or np.isclose(
            phi[p2s[a], j, row, column], theta[k], atol=1e-12
        )


@settings(max_examples=10, deadline=None)
@given(seed=st.integers(0, 2**31 - 1))
def test_round_trip_is_exact(ge, seed):
    _, fcspace = ge
    theta = np.random.default_rng(seed).normal(size=fcspace.n_params)
    back, residual = fcspace.project(fcspace.force_constants(theta))
    assert np.allclose(back, theta, atol=1e-10)
    assert residual < 1e-10


def test_projection_reports_what_it_cannot_represent(ge):
    material, fcspace = ge
    theta = reference_theta(material, fcspace)
    phi = fcspace.force_constants(theta)
    noise = np.random.default_rng(0).normal(scale=1e-3, size=phi.shape)
    back, residual = fcspace.project(phi + noise)
    assert 1e-4 < residual < 1e-2
    assert np.abs(back - theta).max() < 1e-2


def test_export_loads_in_phonopy_with_the_same_frequencies(ge, tmp_path):
    material, fcspace = ge
    theta = reference_theta(material, fcspace) * 1.05
    paths = write_phonopy_files(material, fcspace, theta, tmp_path)
    phonon = phonopy.load(
        paths["phonopy_yaml"],
        force_constants_filename=paths["force_constants"],
        produce_fc=False,
        symmetrize_fc=False,
    )
    q = material.path.qpoints[::9]
    phonon.run_qpoints(q)
    theirs = phonon.qpoints.frequencies * FREQUENCY_TO_MEV / phonon.unit_conversion_factor
    ours = dynamics_basis(fcspace, q).frequencies(theta)
    assert np.allclose(ours, theirs, rtol=1e-8, atol=1e-5)


def test_any_crystal_from_a_cif(tmp_path):
    cif = tmp_path / "gaas.cif"
    bulk("GaAs", "zincblende", a=5.65, cubic=True).write(cif)  # conventional 8-atom cell
    folder, converted = init_material(cif, "gaas", out=tmp_path / "gaas", shells=3, energy_max=40)
    assert converted  # the conventional cell was turned into the 2-atom primitive one
    material = load_material(folder)
    assert len(material.atoms) == 2
    fcspace = build_fcspace(material)
    assert fcspace.names[0].startswith("shell1_Ga-As_(0.25,0.25,0.25)")
    theta = np.zeros(fcspace.n_params)
    theta[:2] = [-3.0, -2.0]
    back, residual = fcspace.project(fcspace.force_constants(theta))
    assert np.allclose(back, theta, atol=1e-10) and residual < 1e-10
