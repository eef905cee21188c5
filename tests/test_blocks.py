"""The symmetry-blocked eigen-solver against a dense eigen-solve."""

from __future__ import annotations

import numpy as np
import pytest
from conftest import reference_theta
from hypothesis import given, settings
from hypothesis import strategies as st

from fcinvert.physics.blocks import BlockedEigenvalues, _hermitian_2x2, _hermitian_3x3
from fcinvert.physics.dynamics import dynamics_basis


@pytest.mark.parametrize("name", ["ge", "nb"])
def test_blocked_equals_dense_on_the_path(name, request):
    material, fcspace = request.getfixturevalue(name)
    basis = dynamics_basis(fcspace, material.path.qpoints)
    blocked = BlockedEigenvalues(basis.matrices)
    rng = np.random.default_rng(5)
    theta = reference_theta(material, fcspace) * (
        1 + 0.1 * rng.standard_normal((20, fcspace.n_params))
    )
    dense = np.linalg.eigvalsh(basis.dynamical_matrices(theta))
    scale = np.abs(dense).max()
    assert np.abs(blocked(theta) - dense).max() < 1e-12 * scale
    # the structure is really used: no block larger than 3 survives on these paths
    assert max(g.matrices.shape[-1] for g in blocked.groups) <= 3


def test_blocked_on_a_generic_mesh_falls_back_correctly(ge):
    material, fcspace = ge
    q = np.random.default_rng(0).uniform(-0.5, 0.5, (30, 3))  # no symmetry: one 6×6 block each
    basis = dynamics_basis(fcspace, q)
    theta = reference_theta(material, fcspace)[None] * np.array([[1.0], [1.2]])
    dense = np.linalg.eigvalsh(basis.dynamical_matrices(theta))
    assert np.allclose(BlockedEigenvalues(basis.matrices)(theta), dense, rtol=0, atol=1e-12)


def _hermitian(rng, size, batch):
    a = rng.normal(size=(batch, size, size)) + 1j * rng.normal(size=(batch, size, size))
    return a + np.conj(np.swapaxes(a, -1, -2))


@settings(max_examples=20, deadline=None)
@given(seed=st.integers(0, 2**32 - 1), size=st.sampled_from([2, 3]))
def test_closed_forms_match_lapack(seed, size):
    matrices = _hermitian(np.random.default_rng(seed), size, 50)
    solver = {2: _hermitian_2x2, 3: _hermitian_3x3}[size]
    ours = solver(matrices.real, matrices.imag)
    assert np.allclose(ours, np.linalg.eigvalsh(matrices), rtol=1e-10, atol=1e-10)
