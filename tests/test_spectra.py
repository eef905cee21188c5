"""The fast spectrum model: normalisation, agreement with a dense reference, batching."""

from __future__ import annotations

import numpy as np
import torch
from conftest import reference_theta
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy.stats import norm

from fcinvert.physics.dynamics import dynamics_basis
from fcinvert.physics.material import EnergyGrid, EnergySettings, ResolutionSettings
from fcinvert.physics.spectra import render, render_torch

GRID = EnergyGrid.from_settings(EnergySettings(max_meV=70.0, bins=100), ResolutionSettings())


def dense(frequencies, grid):
    """Reference: every branch's Gaussian integrated over every bin, no truncation."""
    edges = np.append(grid.centres - grid.width / 2, grid.centres[-1] + grid.width / 2)
    sigma = grid.sigma(frequencies)[..., None]
    cdf = norm.cdf((edges - frequencies[..., None]) / sigma)
    return np.diff(cdf, axis=-1).sum(axis=-2) / grid.width


@settings(max_examples=30, deadline=None)
@given(
    peaks=st.lists(st.floats(5.0, 60.0), min_size=1, max_size=6),
)
def test_columns_integrate_to_the_number_of_branches(peaks):
    frequencies = np.array([peaks])
    column = render(frequencies, GRID)[0]
    assert abs(column.sum() * GRID.width - len(peaks)) < 1e-4 * len(peaks)
    assert np.allclose(column, dense(frequencies, GRID)[0], atol=1e-4)


def test_out_of_window_and_imaginary_modes_do_not_leak():
    image = render(np.array([[-20.0, 200.0, 35.0]]), GRID)
    assert abs(image.sum() * GRID.width - 1.0) < 1e-4


def test_germanium_spectrum_matches_dense_reference(ge):
    material, fcspace = ge
    theta = reference_theta(material, fcspace)
    frequencies = dynamics_basis(fcspace, material.path.qpoints).frequencies(theta)
    image = render(frequencies, material.energy)
    assert image.dtype == np.float32 and image.shape == (200, 100)
    assert np.allclose(image, dense(frequencies, material.energy), atol=2e-4)
    away_from_gamma = np.all(frequencies > 3.0, axis=1)
    totals = image[away_from_gamma].sum(axis=1) * material.energy.width
    assert np.allclose(totals, 6.0, atol=1e-3)


def test_one_or_many_spectra_same_function(ge):
    material, fcspace = ge
    theta = reference_theta(material, fcspace)
    basis = dynamics_basis(fcspace, material.path.qpoints[::5])
    batch = np.array([theta, 1.1 * theta, 0.9 * theta])
    many = render(basis.frequencies(batch), material.energy)
    for i in range(3):
        assert np.allclose(many[i], render(basis.frequencies(batch[i]), material.energy), atol=1e-6)


def test_torch_renderer_agrees(ge):
    material, fcspace = ge
    theta = reference_theta(material, fcspace)
    frequencies = dynamics_basis(fcspace, material.path.qpoints[::10]).frequencies(theta)
    twin = render_torch(torch.from_numpy(frequencies), material.energy).numpy()
    assert np.allclose(twin, dense(frequencies, material.energy), atol=1e-8)
