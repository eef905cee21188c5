"""Physics refinement against realistic spectra: recovery, NaN pixels, exact Jacobian, σ(θ).

The measured spectra are built independently of the refinement's model: the coherent one-phonon
S(Q, E) of ``fcinvert.physics.structure_factor`` (eigenvectors, Debye–Waller, Bose at 5 K) folded
over the Laue orbits of a few zones, rendered by ``fcinvert.physics.spectra.render``, with
Poisson counts on a constant background and missing pixels. The truth is the reference with its
six largest parameters moved by 10–20 % and the others by up to ±50 %; the start (standing in
for the ML estimate of the six) moves those six again by ±8 % and holds the rest at the
reference.
"""

from __future__ import annotations

import numpy as np
import pytest
from conftest import reference_theta
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy.optimize import nnls

from fcinvert.data.spectrum_file import Spectrum, read_spectrum, write_spectrum
from fcinvert.errors import FcinvertError
from fcinvert.inversion.prior import Prior
from fcinvert.inversion.refine import (
    Derivatives,
    SpectrumFit,
    batched_nnls,
    branch_weights,
    iterative_baseline,
    merged_bins,
    pixel_errors,
    refine,
    refine_spectrum,
)
from fcinvert.inversion.refine.peaks import PeakShape
from fcinvert.physics.dynamics import StabilityCheck, dynamics_basis
from fcinvert.physics.material import FWHM_TO_SIGMA, EnergyGrid
from fcinvert.physics.spectra import render
from fcinvert.physics.structure_factor import (
    StructureFactorModel,
    folded_spectrum,
    gamma_mesh,
    zone_orbits,
    zones_from_hkl,
)

ZONES_HKL = {"ge": [[2, 2, 0], [1, 1, 1], [3, 1, 1]], "nb": [[1, 1, 0], [2, 0, 0], [2, 1, 1]]}
TEMPERATURE = 5.0
TOP = 6  # parameters moved away from the reference


class Scenario:
    """Truth, start and the physics needed to make spectra of one material on q-points."""

    def __init__(self, material, fcspace, q_stride: int, seed: int = 0) -> None:
        self.material, self.fcspace = material, fcspace
        self.qpoints = material.path.qpoints[::q_stride]
        self.basis = dynamics_basis(fcspace, self.qpoints)
        self.structure = StructureFactorModel(
            material, self.basis, dynamics_basis(fcspace, gamma_mesh(4))
        )
        self.zones, self.zone_weights = zone_orbits(
            material, zones_from_hkl(material, np.array(ZONES_HKL[material.name]))
        )
        rng = np.random.default_rng(seed)
        reference = reference_theta(material, fcspace)
        top = np.argsort(-np.abs(reference))[:TOP]
        check = StabilityCheck.build(fcspace, material.path.qpoints, divisions=4)
        rest = np.setdiff1d(np.arange(len(reference)), top)
        while True:  # the first stable draw (the reference itself may change)
            self.truth = reference.copy()
            self.truth[top] *= 1 + rng.choice([-1, 1], TOP) * rng.uniform(0.10, 0.20, TOP)
            self.truth[rest] *= 1 + rng.uniform(-0.5, 0.5, len(rest))
            self.start = self.truth.copy()
            self.start[top] *= 1 + rng.choice([-0.08, 0.08], TOP)
            self.start[rest] = reference[rest]  # as an ML estimate of the top parameters
            if check.is_stable(np.stack([self.truth, self.start])).all():
                break
        self.clean = folded_spectrum(
            self.structure, self.truth, TEMPERATURE, self.zones, self.zone_weights
        )

    def counts(
        self, peak: float, seed: int, missing: float = 0.2, background: float = 3.0
    ) -> np.ndarray:
        """Poisson counts (nq, nE): ``peak`` expected at the brightest pixel over a constant
        ``background``, a fraction ``missing`` of the pixels NaN."""
        rng = np.random.default_rng(seed)
        expected = self.clean / self.clean.max() * peak + background
        counts = rng.poisson(expected).astype(float)
        counts[rng.random(counts.shape) < missing] = np.nan
        return counts

    def rms(self, theta: np.ndarray) -> float:
        """Dispersion RMS (meV) of θ against the truth on the scenario's q-points."""
        difference = self.basis.frequencies(theta) - self.basis.frequencies(self.truth)
        return float(np.sqrt(np.mean(difference**2)))

    def refine(self, counts: np.ndarray, **options) -> object:
        return refine(
            self.material,
            self.fcspace,
            counts,
            self.qpoints,
            self.start,
            basis=self.basis,
            **options,
        )


@pytest.fixture(scope="module")
def ge_scenario(ge) -> Scenario:
    return Scenario(*ge, q_stride=2)


@pytest.fixture(scope="module")
def nb_scenario(nb) -> Scenario:
    return Scenario(*nb, q_stride=2)


@pytest.mark.parametrize("name", ["ge", "nb"])
def test_recovers_theta_from_a_realistic_spectrum(name, request):
    scenario = request.getfixturevalue(f"{name}_scenario")
    counts = scenario.counts(peak=1000.0, seed=1)
    result = scenario.refine(counts)
    before, after = scenario.rms(scenario.start), scenario.rms(result.theta)
    assert before > 0.3  # the start is visibly off …
    assert after < 0.15  # … and the refinement lands on the truth (meV)
    assert after < before / 5
    assert np.all(result.sigma > 0) and np.all(np.isfinite(result.sigma))
    assert result.n_forward == sum(stage.n_forward for stage in result.stages)
    assert [stage.extra_fwhm for stage in result.stages] == [2.0, 1.0, 0.0]
    measured = np.isfinite(counts)
    assert np.array_equal(np.isfinite(result.fitted), measured)
    # the fit explains the counts: residual variance close to the Poisson variance
    assert result.misfit < 1.5 * np.mean(counts[measured])


def test_fitting_every_parameter_beats_holding_the_rest_at_the_reference(nb_scenario):
    """Even the six top parameters exactly right, with the rest at the reference, leave a
    dispersion error that fitting all parameters removes."""
    top = np.argsort(-np.abs(nb_scenario.truth))[:TOP]
    reference = reference_theta(nb_scenario.material, nb_scenario.fcspace)
    top_only = np.where(np.isin(np.arange(len(reference)), top), nb_scenario.truth, reference)
    result = nb_scenario.refine(nb_scenario.counts(peak=1000.0, seed=8))
    assert nb_scenario.rms(result.theta) < nb_scenario.rms(top_only) / 2


def test_unmeasured_pixels_are_ignored(ge_scenario):
    """NaN intensity and non-finite error both mark a pixel unmeasured: values under the mask,
    however absurd, change nothing; and 40 % missing pixels still give the truth."""
    counts = ge_scenario.counts(peak=1000.0, seed=2, missing=0.4)
    hidden = ~np.isfinite(counts)
    garbage = np.where(hidden, 1e6, counts)
    error = np.where(hidden, np.inf, np.sqrt(np.maximum(counts, 1.0)))
    with_nan = ge_scenario.refine(counts, error=np.where(hidden, 1.0, error))
    with_garbage = ge_scenario.refine(garbage, error=error)
    assert np.allclose(with_nan.theta, with_garbage.theta, rtol=0, atol=1e-12)
    assert ge_scenario.rms(with_nan.theta) < 0.2


@pytest.mark.parametrize("intensities", ["free", "fast", "physical"])
@pytest.mark.parametrize("extra_fwhm", [0.0, 2.0])
def test_analytic_jacobian_equals_finite_differences(ge, intensities, extra_fwhm):
    material, fcspace = ge
    qpoints = material.path.qpoints[::10]  # Γ included: its acoustic modes are pinned at 0
    basis = dynamics_basis(fcspace, qpoints)
    theta = reference_theta(material, fcspace)
    rng = np.random.default_rng(3)
    image = render(basis.frequencies(theta * 1.05), material.energy).astype(float)
    data = (
        image * rng.uniform(0.5, 2.0, (len(qpoints), 1)) * 10 + 1 + rng.normal(0, 0.1, image.shape)
    )
    data[rng.random(data.shape) < 0.2] = np.nan
    weights = None
    if intensities == "physical":
        structure = StructureFactorModel(material, basis, dynamics_basis(fcspace, gamma_mesh(4)))
        weights = branch_weights(structure, theta, TEMPERATURE, np.array([[1, 1, 1], [2, 0, 0]]))
    fit = SpectrumFit(
        basis,
        material.energy,
        data,
        np.full(data.shape, 0.3),
        Prior.around(theta),
        intensities=intensities,
        extra_fwhm=extra_fwhm,
        branch_weights=weights,
    )
    point = theta * 0.97 + 0.01
    evaluation = fit.evaluate(point)
    analytic = evaluation.derivatives.rows()
    numeric = np.empty_like(analytic)
    for k in range(len(point)):
        step = 1e-6 * max(1.0, abs(point[k]))
        up, down = point.copy(), point.copy()
        up[k] += step
        down[k] -= step
        numeric[:, k] = (
            fit.evaluate(up, jacobian=False).residual - fit.evaluate(down, jacobian=False).residual
        ) / (2 * step)
    scale = np.linalg.norm(numeric, axis=0) + 1e-12
    assert np.max(np.linalg.norm(analytic - numeric, axis=0) / scale) < 1e-5
    # the Gauss–Newton terms, reduced per column without J, are those of J itself
    formed = Derivatives.of_rows(analytic, evaluation.residual, *evaluation.frequencies.shape)
    reduced = evaluation.derivatives
    for ours, theirs in [
        (reduced.curvature, formed.curvature),
        (reduced.gradient, formed.gradient),
        (reduced.columns.curvature, formed.columns.curvature),
        (reduced.columns.scores, formed.columns.scores),
    ]:
        assert np.allclose(ours, theirs, rtol=1e-9, atol=1e-12 * np.abs(theirs).max())


def test_uncertainty_shrinks_with_more_counts_and_is_calibrated(nb_scenario):
    """σ(θ) shrinks with exposure (less than 1/√counts: at 1600 counts the small model error
    of the free intensities shows, and the robust covariance keeps it), and at good statistics
    it matches the scatter of repeated measurements: the pooled z = (θ − truth)/σ of the top
    parameters has an RMS near 1."""
    top = np.argsort(-np.abs(nb_scenario.truth))[:TOP]
    low = nb_scenario.refine(nb_scenario.counts(peak=100.0, seed=4, background=3.0))
    pulls, sigmas = [], []
    for seed in range(8):
        high = nb_scenario.refine(nb_scenario.counts(peak=1600.0, seed=10 + seed, background=48))
        pulls.append((high.theta[top] - nb_scenario.truth[top]) / high.sigma[top])
        sigmas.append(high.sigma[top])
    assert np.all(low.sigma[top] > 1.5 * np.mean(sigmas, axis=0))
    assert 0.6 < np.sqrt(np.mean(np.square(pulls))) < 1.6


def test_iterative_baseline_is_the_same_fit_with_many_more_forward_models(nb):
    """The finite-difference fit from the reference lands where the analytic fit from the
    reference does (the prior's centre, the start, is part of the objective)."""
    scenario = Scenario(*nb, q_stride=4)
    counts = scenario.counts(peak=1000.0, seed=5)
    reference = reference_theta(scenario.material, scenario.fcspace)
    analytic = refine(
        scenario.material,
        scenario.fcspace,
        counts,
        scenario.qpoints,
        reference,
        basis=scenario.basis,
    )
    baseline = iterative_baseline(
        scenario.material, scenario.fcspace, counts, scenario.qpoints, basis=scenario.basis
    )
    assert baseline.method == "iterative"
    assert np.allclose(baseline.theta, analytic.theta, rtol=0, atol=1e-6)
    assert baseline.misfit == pytest.approx(analytic.misfit, rel=1e-6)
    assert baseline.n_forward > 5 * analytic.n_forward


def test_intensity_models_on_a_physical_spectrum(ge_scenario):
    """The physical model fits physical intensities like free ones do; the paper's
    equal-weight model cannot, and lands far off (the domain gap the free model closes)."""
    counts = ge_scenario.counts(peak=1000.0, seed=6)
    options = dict(
        zones=ge_scenario.zones,
        zone_weights=ge_scenario.zone_weights,
        temperature=TEMPERATURE,
        structure=ge_scenario.structure,
    )
    physical = ge_scenario.refine(counts, intensities="physical", **options)
    fast = ge_scenario.refine(counts, intensities="fast")
    assert ge_scenario.rms(physical.theta) < 0.15
    assert ge_scenario.rms(fast.theta) > 3 * ge_scenario.rms(physical.theta)
    assert physical.misfit < 0.2 * fast.misfit


def test_refine_spectrum_fits_a_spectrum_file(nb_scenario, tmp_path):
    """Through the file contract: weighted by the smoothed errors (``pixel_errors``; the same
    fit as on the array with them), a reduced χ² near 1 for Poisson counts, with or without
    the file's errors."""
    material = nb_scenario.material
    counts = nb_scenario.counts(peak=1000.0, seed=7)
    path = tmp_path / "measured.h5"
    error = np.sqrt(np.maximum(counts, 1.0))
    write_spectrum(
        path, Spectrum(counts, material.energy.centres, nb_scenario.qpoints, "nb", error=error)
    )
    spectrum = read_spectrum(path)
    options = dict(basis=nb_scenario.basis)
    weighted = refine_spectrum(
        material, nb_scenario.fcspace, spectrum, nb_scenario.start, **options
    )
    errors = pixel_errors(counts, error, material.energy)
    on_array = nb_scenario.refine(counts, error=errors)
    assert np.allclose(weighted.theta, on_array.theta, rtol=0, atol=1e-10)
    assert 0.7 < weighted.misfit < 1.5
    assert nb_scenario.rms(weighted.theta) < 0.15
    spectrum.error = None  # Poisson-like variances from the counts themselves
    from_counts = refine_spectrum(material, nb_scenario.fcspace, spectrum, nb_scenario.start)
    assert 0.7 < from_counts.misfit < 1.5 and nb_scenario.rms(from_counts.theta) < 0.15
    spectrum.energy = spectrum.energy**1.01
    with pytest.raises(FcinvertError, match="uniform"):
        refine_spectrum(material, nb_scenario.fcspace, spectrum, nb_scenario.start, **options)


def test_fast_intensities_recover_equal_weight_spectra_exactly(nb):
    material, fcspace = nb
    qpoints = material.path.qpoints[::4]
    basis = dynamics_basis(fcspace, qpoints)
    truth = reference_theta(material, fcspace) * 1.1
    image = render(basis.frequencies(truth), material.energy).astype(float) * 50.0 + 2.0
    start = truth * np.where(np.arange(len(truth)) % 2, 0.95, 1.05)
    result = refine(material, fcspace, image, qpoints, start, intensities="fast", basis=basis)
    difference = basis.frequencies(result.theta) - basis.frequencies(truth)
    assert np.sqrt(np.mean(difference**2)) < 2e-3
    assert result.scale == pytest.approx(50.0, rel=1e-3)
    assert np.allclose(result.background, 2.0, atol=1e-3)


@settings(max_examples=40, deadline=None)
@given(
    seed=st.integers(0, 2**32 - 1),
    rows=st.integers(8, 30),
    columns=st.integers(1, 6),
    ridge=st.sampled_from([0.0, 1e-3, 1.0]),
)
def test_batched_nnls_equals_scipy(seed, rows, columns, ridge):
    rng = np.random.default_rng(seed)
    design = rng.normal(size=(5, columns, rows))
    target = rng.normal(size=(5, rows))
    mu = np.full(5, ridge)
    gram = design @ np.swapaxes(design, 1, 2) + mu[:, None, None] * np.eye(columns)
    rhs = (design @ target[..., None])[..., 0]
    solution, free = batched_nnls(gram, rhs, design, target, mu)
    for q in range(5):
        matrix = np.vstack([design[q].T, np.sqrt(ridge) * np.eye(columns)])
        expected, _ = nnls(matrix, np.concatenate([target[q], np.zeros(columns)]))
        assert np.allclose(solution[q], expected, atol=1e-8)
        assert np.array_equal(free[q], solution[q] > 0)


@settings(max_examples=30, deadline=None)
@given(
    seed=st.integers(0, 2**32 - 1),
    factor=st.integers(2, 4),
    bins=st.integers(20, 41),
    extra_fwhm=st.sampled_from([0.0, 1.0, 2.0]),
)
def test_merged_bins_keep_the_bin_integrated_model(seed, factor, bins, extra_fwhm):
    """On bins ``factor`` times wider the model is the mean of the narrow bins' (it is
    bin-integrated), so the coarse stage fits the same model to merged data; a run with an
    unmeasured pixel is unmeasured; independent errors σ merge to σ/√factor."""
    rng = np.random.default_rng(seed)
    grid = EnergyGrid(0.25 + 0.5 * np.arange(bins), 0.5, 0.8, 0.02)
    frequencies = rng.uniform(2.0, 0.5 * bins - 2.0, size=(3, 4))
    narrow, _ = PeakShape(grid, extra_fwhm * FWHM_TO_SIGMA)(frequencies, derivative=False)
    narrow = narrow.reshape(3 * 4, bins)
    error = np.full_like(narrow, 0.1)
    error[0, 1] = np.nan
    merged, merged_error, wide = merged_bins(narrow, error, grid, factor)
    wide_model, _ = PeakShape(wide, extra_fwhm * FWHM_TO_SIGMA)(frequencies, derivative=False)
    assert wide.width == pytest.approx(0.5 * factor)
    assert merged.shape == (12, bins // factor)
    assert np.allclose(merged, wide_model.reshape(12, -1), atol=1e-9)
    assert np.isnan(merged_error[0, 0]) and np.isfinite(merged_error[1:]).all()
    assert np.allclose(merged_error[1:], 0.1 / np.sqrt(factor))


def test_bad_inputs_are_one_line_errors(nb):
    material, fcspace = nb
    qpoints = material.path.qpoints[:5]
    theta = reference_theta(material, fcspace)
    good = np.ones((5, len(material.energy.centres)))
    with pytest.raises(FcinvertError, match="energy grid"):
        refine(material, fcspace, good[:, :3], qpoints, theta)
    with pytest.raises(FcinvertError, match="NaN"):
        refine(material, fcspace, good * np.nan, qpoints, theta)
    with pytest.raises(FcinvertError, match="start"):
        refine(material, fcspace, good, qpoints, theta[:3])
    with pytest.raises(FcinvertError, match="intensities"):
        refine(material, fcspace, good, qpoints, theta, intensities="weird")
    with pytest.raises(FcinvertError, match="zones"):
        refine(material, fcspace, good, qpoints, theta, intensities="physical")
