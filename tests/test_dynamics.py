"""Frequencies against phonopy, symmetry, sum rules, torch twin, gradients."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
import torch
from conftest import reference_theta
from hypothesis import given, settings
from hypothesis import strategies as st

from fcinvert.physics.dynamics import FREQUENCY_TO_MEV, StabilityCheck, dynamics_basis
from fcinvert.physics.fcspace import phonopy_for


def phonopy_frequencies(material, fcspace, theta, qpoints):
    phonon = phonopy_for(material)
    phonon.force_constants = fcspace.force_constants(theta)
    phonon.run_qpoints(qpoints)
    return phonon.qpoints.frequencies * FREQUENCY_TO_MEV / phonon.unit_conversion_factor


def near_reference(material, fcspace, rng, spread=0.05):
    theta = reference_theta(material, fcspace)
    return theta + spread * np.abs(theta).max() * rng.standard_normal(theta.shape) * (theta != 0)


@pytest.mark.parametrize("name", ["ge", "nb"])
def test_frequencies_equal_phonopy_on_the_path(name, request):
    material, fcspace = request.getfixturevalue(name)
    rng = np.random.default_rng(1)
    basis = dynamics_basis(fcspace, material.path.qpoints)
    for _ in range(3):
        theta = near_reference(material, fcspace, rng)
        ours = basis.frequencies(theta)
        theirs = phonopy_frequencies(material, fcspace, theta, material.path.qpoints)
        above = np.abs(theirs) > 1.0
        relative = np.abs(ours[above] - theirs[above]) / np.abs(theirs[above])
        assert relative.max() <= 1e-8


@pytest.mark.parametrize("name", ["ge", "nb"])
@settings(max_examples=5, deadline=None)
@given(seed=st.integers(0, 2**32 - 1))
def test_dynamical_matrices_equal_phonopy_anywhere(name, request, seed):
    """D(q; θ) of the vectorised basis is phonopy's own dynamical matrix at random q."""
    material, fcspace = request.getfixturevalue(name)
    rng = np.random.default_rng(seed)
    qpoints = rng.uniform(-1, 1, (7, 3))
    theta = near_reference(material, fcspace, rng)
    ours = dynamics_basis(fcspace, qpoints, chunk=3).dynamical_matrices(theta)[0]
    phonon = phonopy_for(material)
    phonon.force_constants = fcspace.force_constants(theta)
    theirs = phonon.run_qpoints(qpoints, with_dynamical_matrices=True).dynamical_matrices
    assert np.abs(ours - theirs).max() <= 1e-12 * np.abs(theirs).max()


@pytest.mark.parametrize("name", ["ge", "nb"])
def test_acoustic_sum_rule_and_gamma(name, request):
    material, fcspace = request.getfixturevalue(name)
    theta = reference_theta(material, fcspace)
    phi = fcspace.force_constants(theta)
    assert np.abs(phi.sum(axis=1)).max() < 1e-10  # Σ_j Φ(i, j) = 0
    gamma = dynamics_basis(fcspace, np.zeros((1, 3))).frequencies(theta)[0]
    assert np.abs(gamma[:3]).max() < 1e-4


def _degeneracy_pattern(frequencies, tol=1e-6):
    groups, count = [], 1
    for a, b in itertools.pairwise(frequencies):
        if abs(b - a) < tol:
            count += 1
        else:
            groups.append(count)
            count = 1
    return [*groups, count]


def test_germanium_degeneracies(ge):
    material, fcspace = ge
    theta = reference_theta(material, fcspace)
    points = {"X": [0.5, 0.0, 0.5], "L": [0.5, 0.5, 0.5], "Γ": [0, 0, 0]}
    freqs = dynamics_basis(fcspace, np.array(list(points.values()))).frequencies(theta)
    assert _degeneracy_pattern(freqs[0]) == [2, 2, 2]  # X: TA2, LA=LO, TO2
    assert _degeneracy_pattern(freqs[1]) == [2, 1, 1, 2]  # L: TA2, LA, LO, TO2
    assert _degeneracy_pattern(freqs[2], tol=1e-4) == [3, 3]


def test_niobium_degeneracies(nb):
    material, fcspace = nb
    theta = reference_theta(material, fcspace)
    points = {"H": [0.5, -0.5, 0.5], "P": [0.25, 0.25, 0.25]}
    freqs = dynamics_basis(fcspace, np.array(list(points.values()))).frequencies(theta)
    assert _degeneracy_pattern(freqs[0]) == [3]
    assert _degeneracy_pattern(freqs[1]) == [3]


def test_high_symmetry_labels_sit_where_expected(ge, nb):
    for material, expected in (
        (ge[0], {"X": [0.5, 0, 0.5], "L": [0.5, 0.5, 0.5]}),
        (nb[0], {"H": [0.5, -0.5, 0.5], "P": [0.25, 0.25, 0.25]}),
    ):
        lookup = {label: material.path.qpoints[i] for i, label in material.path.labels}
        for label, q in expected.items():
            assert np.allclose(lookup[label], q)


def test_torch_twin_and_gradients(ge):
    material, fcspace = ge
    basis = dynamics_basis(fcspace, material.path.qpoints[::10])
    theta = reference_theta(material, fcspace)
    twin = basis.torch()
    t = torch.tensor(theta, requires_grad=True)
    omega = twin.frequencies(t)
    assert np.allclose(omega.detach().numpy(), basis.frequencies(theta), rtol=1e-12, atol=1e-6)
    weights = torch.linspace(0.5, 1.5, omega.shape[-1], dtype=torch.float64)
    loss = (omega[1:] * weights).sum()  # Γ (row 0) has a kink at ω = 0
    (grad,) = torch.autograd.grad(loss, t)
    step = 1e-6
    for k in (0, 1, 4):
        plus, minus = theta.copy(), theta.copy()
        plus[k] += step
        minus[k] -= step
        w = weights.numpy()
        numeric = ((basis.frequencies(plus)[1:] - basis.frequencies(minus)[1:]) * w).sum() / (
            2 * step
        )
        assert grad[k].item() == pytest.approx(numeric, rel=1e-5, abs=1e-6)


def test_batch_equals_one_at_a_time(ge):
    material, fcspace = ge
    rng = np.random.default_rng(3)
    basis = dynamics_basis(fcspace, material.path.qpoints[::7])
    batch = np.array([near_reference(material, fcspace, rng) for _ in range(5)])
    together = basis.frequencies(batch)
    for i, theta in enumerate(batch):
        assert np.allclose(together[i], basis.frequencies(theta), rtol=1e-12, atol=1e-6)


@settings(max_examples=15, deadline=None)
@given(scale=st.floats(0.3, 3.0))
def test_frequencies_scale_as_square_root_of_fcs(ge, scale):
    material, fcspace = ge
    basis = dynamics_basis(fcspace, material.path.qpoints[::20])
    theta = reference_theta(material, fcspace)
    scaled = basis.frequencies(scale * theta)
    assert np.allclose(scaled, np.sqrt(scale) * basis.frequencies(theta), rtol=1e-10, atol=1e-5)


def test_stability_check(ge):
    material, fcspace = ge
    check = StabilityCheck.build(fcspace, material.path.qpoints, divisions=4)
    theta = reference_theta(material, fcspace)
    soft = theta.copy()
    soft[fcspace.names.index("shell1_(0.25,0.25,0.25)_xy")] *= 3.0  # destroys the TA branch
    assert list(check.is_stable(np.array([theta, -theta, soft]))) == [True, False, False]
