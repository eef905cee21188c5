"""Multi-start refinement under the ensemble prior (``fcinvert.inversion.pipeline.infer``).

The spectra are physical (eigenvectors, Debye–Waller, Bose at 5 K, folded over the Laue orbits
of three zones: ``fcinvert.physics.structure_factor``), which the refinement's free branch
intensities only approximate; the truths are not the prior's centre.
"""

from __future__ import annotations

import dataclasses
import json

import numpy as np
import pytest
from conftest import reference_theta
from small_dataset import run_cli

from fcinvert.data.spectrum_file import Spectrum, write_spectrum
from fcinvert.inversion import multistart as multistart_module
from fcinvert.inversion import side_by_side
from fcinvert.inversion.multistart import (
    MultiStartResult,
    ambiguity_notes,
    coarse_bin_factor,
    screened,
    stretched,
)
from fcinvert.inversion.pipeline import infer
from fcinvert.inversion.prior import Start, load_prior_ensemble
from fcinvert.inversion.refine import CONTINUATION, SpectrumFit, spectrum_grid
from fcinvert.inversion.result_file import write_inference
from fcinvert.physics.dynamics import dynamics_basis
from fcinvert.physics.material import EnergyGrid
from fcinvert.physics.structure_factor import (
    StructureFactorModel,
    folded_spectrum,
    gamma_mesh,
    zone_orbits,
    zones_from_hkl,
)

ZONES_HKL = [[1, 1, 1], [2, 2, 0], [3, 1, 1], [4, 0, 0], [3, 3, 1], [4, 2, 2]]


def physical_spectrum(material, fcspace, theta, qpoints, peak=None, seed=0) -> Spectrum:
    """The physical spectrum of θ at ``qpoints`` on the material's grid; Poisson counts with
    ``peak`` counts at the brightest pixel over a 3 % background when ``peak`` is given."""
    basis = dynamics_basis(fcspace, qpoints)
    structure = StructureFactorModel(material, basis, dynamics_basis(fcspace, gamma_mesh(4)))
    zones, weights = zone_orbits(material, zones_from_hkl(material, np.array(ZONES_HKL)))
    clean = folded_spectrum(structure, theta, 5.0, zones, weights)
    intensity = clean / np.nanmax(clean)
    if peak is not None:
        rng = np.random.default_rng(seed)
        intensity = rng.poisson(intensity * peak + 0.03 * peak).astype(float)
        error = np.sqrt(np.maximum(intensity, 1.0))
        return Spectrum(intensity, material.energy.centres, qpoints, material.name, 5.0, error)
    return Spectrum(intensity, material.energy.centres, qpoints, material.name, 5.0)


@pytest.fixture(scope="module")
def off_centre(ge):
    """A Ge truth between the ensemble median and the stiff Tersoff member (neither a start
    nor the prior's centre), its noisy physical spectrum on every 2nd path point, and the
    multi-start inference of it without a model."""
    material, fcspace = ge
    ensemble = load_prior_ensemble(material, fcspace)
    tersoff = ensemble.members[ensemble.names.index("tersoff-ge-1989")]
    truth = 0.55 * tersoff + 0.45 * ensemble.reference
    spectrum = physical_spectrum(material, fcspace, truth, material.path.qpoints[::2], peak=300)
    return truth, spectrum, infer(spectrum, material, fcspace, seed=0)


def test_truth_off_the_centre_is_found_or_honestly_bracketed(ge, off_centre):
    """The truth lies between the ensemble median and the stiff Tersoff member. The spectrum
    (300 counts) cannot single out its minimum among neighbours 1–3 meV away that fit as well
    (Δχ² ≪ √(2n)), so what is asserted is that the answer is far better than the median and
    that its intervals hold the truth: ≥ 80 % of the parameters within 3σ and of the
    dispersion points inside the 5–95 % band, pooled over three search seeds. The band of one
    search depends on which near-equal minima it met (here 0.78–0.90 of the points for seeds
    0–2), as on the held-out bench, where 24 % of the Ge spectra held under 80 % in a band
    that held 90 % of all points (``benchmarks/calibration.py``, seed 5)."""
    material, fcspace = ge
    truth, spectrum, first = off_centre
    basis = dynamics_basis(fcspace, spectrum.qpoints)
    truth_frequencies = basis.frequencies(truth)
    median = basis.frequencies(reference_theta(material, fcspace)) - truth_frequencies
    assert np.sqrt(np.mean(median**2)) > 5.0  # meV: the ensemble median is far off …
    inferences = [first] + [infer(spectrum, material, fcspace, seed=seed) for seed in (1, 2)]
    within, inside = [], []
    for inference in inferences:
        error = np.sqrt(np.mean((inference.frequencies - truth_frequencies) ** 2))
        assert error < 2.0  # … the answer is not
        within.append(np.abs(inference.theta - truth) < 3 * inference.std)
        inside.append(
            (truth_frequencies >= inference.band_low) & (truth_frequencies <= inference.band_high)
        )
        assert np.all(inference.band_low <= inference.frequencies + 1e-9)
        assert np.all(inference.frequencies <= inference.band_high + 1e-9)
    assert np.mean(within) >= 0.8
    assert np.mean(inside) >= 0.8


def test_same_input_and_seed_give_the_same_answer(ge, off_centre):
    _, spectrum, first = off_centre
    second = infer(spectrum, *ge, seed=0)
    np.testing.assert_array_equal(first.theta, second.theta)
    np.testing.assert_array_equal(first.covariance, second.covariance)
    np.testing.assert_array_equal(first.band_high, second.band_high)
    assert first.notes == second.notes


def test_a_spectrum_near_gamma_only_is_ambiguous_and_leaves_parameters_undetermined(ge, tmp_path):
    """Three q columns next to Γ pin the optical energy and the sound velocities, not the
    zone-boundary modes: other minima fit as well, and most parameters stay at the prior."""
    material, fcspace = ge
    ensemble = load_prior_ensemble(material, fcspace)
    truth = ensemble.members[ensemble.names.index("7net-mf-0-pbe")]
    spectrum = physical_spectrum(material, fcspace, truth, material.path.qpoints[1:4], peak=200)
    inference = infer(spectrum, material, fcspace, seed=1)
    assert inference.search.ambiguous
    assert any(note.startswith("ambiguous") for note in inference.notes)
    undetermined = ~inference.determined
    assert undetermined.sum() >= fcspace.n_params // 2
    width = ensemble.prior.width[undetermined]
    assert np.all(inference.std[undetermined] > 0.5 * width)
    assert np.all(inference.std <= ensemble.prior.width * (1 + 1e-9))
    content = write_inference(inference, tmp_path / "r.json")
    rows = [row for row in content["parameters"] if not row["determined"]]
    assert rows and all("do not constrain" in row["reason"] for row in rows)
    assert content["refinement"]["ambiguous"] is True


def test_minima_with_the_same_dispersion_are_non_unique_not_ambiguous(ge, off_centre):
    """A minimum the data cannot tell apart is *ambiguous* only when its dispersion differs;
    with the same dispersion and other force constants the note says *non-unique* and names
    the parameter that moved."""
    _, fcspace = ge
    search = off_centre[2].search
    best = search.basins[0]
    moved = 5
    shifted = best.fit.theta.copy()
    shifted[moved] += 10 * search.best.sigma[moved]
    same = dataclasses.replace(
        best, fit=dataclasses.replace(best.fit, theta=shifted), starts=["draw a"], distance=0.08
    )
    other = dataclasses.replace(best, starts=["draw b"], distance=1.3, separation=0.4)
    result = MultiStartResult(
        search.best, [best, same, other], [same, other], search.covariance, 0, 0.0
    )
    notes = ambiguity_notes(result, fcspace.names)
    assert len(notes) == 2
    assert notes[0].startswith("ambiguous") and "draw b" in notes[0] and "1.30 meV" in notes[0]
    assert notes[1].startswith("non-unique") and "draw a" in notes[1]
    assert notes[1].split("most in ")[1].startswith(fcspace.names[moved] + ",")
    alone = MultiStartResult(search.best, [best, same], [same], search.covariance, 0, 0.0)
    assert [note.split(":")[0] for note in ambiguity_notes(alone, fcspace.names)] == ["non-unique"]


def test_cli_refines_from_the_ensemble_without_a_model(
    ge, off_centre, tmp_path, monkeypatch, capsys
):
    _, spectrum, _ = off_centre
    write_spectrum(tmp_path / "s.h5", spectrum)
    out = tmp_path / "r.json"
    args = ["invert", str(tmp_path / "s.h5"), "--material", "ge", "--out", str(out)]
    code, err = run_cli([*args, "--plot", str(tmp_path / "r.png")], monkeypatch, capsys)
    assert code == 0, err
    content = json.loads(out.read_text())
    assert content["model"] is None and content["refinement"]["forward_models"] > 0
    for key in ("frequencies_meV", "frequencies_low_meV", "frequencies_high_meV"):
        assert np.shape(content["dispersion"][key]) == (len(spectrum.qpoints), 6)
    assert all(
        {"value", "std", "interval_5_95", "determined"} <= set(p) for p in content["parameters"]
    )
    assert (tmp_path / "r.png").stat().st_size > 10_000


@pytest.mark.parametrize(
    "fill", [0.0, -1.0, np.inf, -np.inf, np.nan], ids=["zero", "negative", "inf", "-inf", "nan"]
)
def test_spectra_without_signal_are_refused(ge, fill, tmp_path, monkeypatch, capsys):
    material, _ = ge
    qpoints = material.path.qpoints[::20]
    intensity = np.full((len(qpoints), len(material.energy.centres)), fill)
    if np.isinf(fill):
        intensity[:, ::2] = 1.0  # some signal, but infinities beside it
    write_spectrum(tmp_path / "s.h5", Spectrum(intensity, material.energy.centres, qpoints, "ge"))
    out = tmp_path / "r.json"
    args = ["invert", str(tmp_path / "s.h5"), "--material", "ge", "--out", str(out)]
    code, err = run_cli(args, monkeypatch, capsys)
    assert code == 2 and err.count("\n") == 1 and err.startswith("fcinvert: error:"), err
    assert not out.exists() and not (tmp_path / "r_phonopy").exists()


@pytest.fixture(scope="module")
def stiff(ge):
    """A crystal 35 % stiffer than the ensemble median in every FC (branches √1.35 = 1.16×
    higher): its θ and the coarse-stage fit of its noisy physical spectrum on every 4th path
    point."""
    material, fcspace = ge
    ensemble = load_prior_ensemble(material, fcspace)
    truth = 1.35 * ensemble.reference
    qpoints = material.path.qpoints[::4]
    spectrum = physical_spectrum(material, fcspace, truth, qpoints, peak=100)
    fit = SpectrumFit(
        dynamics_basis(fcspace, qpoints),
        spectrum_grid(material, spectrum),
        spectrum.intensity,
        spectrum.error,
        ensemble.prior,
        extra_fwhm=CONTINUATION[0],
    )
    return ensemble, truth, fit


def test_a_start_is_stretched_to_the_crystal_stiffness(stiff):
    """The median start is scaled to the stiffer crystal before its coarse stage; the truth
    itself is kept as it is."""
    ensemble, truth, fit = stiff
    scale = stretched(ensemble.reference, fit) / ensemble.reference
    assert np.allclose(scale, scale[0]) and 1.35 / 1.03**2 <= scale[0] <= 1.35 * 1.03**2
    assert np.allclose(stretched(truth, fit), truth)


def test_screening_keeps_the_candidates_that_fit(stiff):
    """Among 40 draws of the prior, the truth (hidden at a random place) and a draw near it are
    the two the screen keeps; an empty pool or no picks give no starts."""
    ensemble, truth, fit = stiff
    rng = np.random.default_rng(3)
    prior = ensemble.prior
    pool = [
        Start(f"draw {n}", prior.centre + prior.width * rng.normal(size=truth.size))
        for n in range(40)
    ]
    near = truth + 0.02 * prior.width * rng.normal(size=truth.size)
    pool[17], pool[29] = Start("truth", truth), Start("near", near)
    assert {start.name for start in screened(pool, 2, fit.misfits)} == {"truth", "near"}
    assert screened(pool, 0, fit.misfits) == [] and screened([], 3, fit.misfits) == []


def test_batched_misfits_are_those_of_one_evaluation_each(stiff):
    """``SpectrumFit.misfits`` judges many θ in one eigen-solve: the data misfit of each is the
    one ``evaluate`` gives alone, and each counts as one forward model."""
    ensemble, truth, fit = stiff
    rng = np.random.default_rng(5)
    prior = ensemble.prior
    thetas = prior.centre + 0.5 * prior.width * rng.normal(size=(23, truth.size))
    thetas[4] = truth
    before = fit.n_forward
    batched = fit.misfits(thetas)
    assert fit.n_forward - before == len(thetas)
    alone = [fit.evaluate(theta, jacobian=False).rss for theta in thetas]
    assert np.allclose(batched, alone, rtol=1e-9, atol=0.0)
    assert int(np.argmin(batched)) == 4


def test_the_answer_does_not_depend_on_the_number_of_workers(ge, monkeypatch):
    """Starts refined side by side (``multistart.WORKERS``), on forked processes or on threads
    (off Linux), give exactly the sequential answer and count the same forward models."""
    material, fcspace = ge
    ensemble = load_prior_ensemble(material, fcspace)
    truth = ensemble.members[ensemble.names.index("diep")]
    spectrum = physical_spectrum(material, fcspace, truth, material.path.qpoints[::8], peak=150)
    answers = []
    for workers, platform in [(1, "linux"), (3, "linux"), (2, "darwin")]:
        monkeypatch.setattr(multistart_module, "WORKERS", workers)
        monkeypatch.setattr(side_by_side.sys, "platform", platform)
        inference = infer(spectrum, material, fcspace, seed=2)
        answers.append((inference.theta, inference.std, inference.search.n_forward))
    for other in answers[1:]:
        assert np.array_equal(answers[0][0], other[0])
        assert np.array_equal(answers[0][1], other[1])
        assert answers[0][2] == other[2]


def test_coarse_bins_merge_in_pairs_unless_that_drops_measured_pixels():
    """0.5 meV bins merge in pairs for the 2 meV coarse stage; contiguous gaps (a cut top of
    the window, whole columns) lose only edges and still merge; 30 % scattered missing pixels
    would leave half of the pairs unmeasured, so those data are fitted on their own bins."""
    grid = EnergyGrid(0.25 + 0.5 * np.arange(80), 0.5, 1.0, 0.02)
    errors = np.ones((200, 80))
    assert coarse_bin_factor(grid, errors) == 2
    assert coarse_bin_factor(EnergyGrid(grid.centres * 4, 2.0, 1.0, 0.02), errors) == 1
    contiguous = errors.copy()
    contiguous[:, 61:] = np.nan
    contiguous[50:70] = np.nan
    assert coarse_bin_factor(grid, contiguous) == 2
    scattered = errors.copy()
    scattered[np.random.default_rng(0).random(errors.shape) < 0.3] = np.nan
    assert coarse_bin_factor(grid, scattered) == 1
