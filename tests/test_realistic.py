"""Measurement-like training spectra: the quadratic-form fold against ``folded_spectrum`` (which
the structure-factor tests compare with phonopy and Euphonic), the window, seeds, the dataset
file, and the input rules that read such spectra."""

from __future__ import annotations

import json
from dataclasses import replace

import numpy as np
import pytest
import torch
from conftest import reference_theta

from fcinvert.data.dataset import SpectrumGenerator, generate_dataset, read_dataset
from fcinvert.data.realistic import MeasurementRanges, TofMasks, prepare_realistic
from fcinvert.labels.domain import StableSampler, build_domain, stability_check
from fcinvert.models.bundle import BundleConfig
from fcinvert.models.preprocess import INPUT_RULES, prepare_input
from fcinvert.physics.structure_factor import (
    FoldOperator,
    StructureFactorModel,
    folded_spectrum,
    folded_spectrum_quadratic,
    zone_orbits,
    zones_from_hkl,
    zones_within,
)

QPOINTS = np.array([[0.1, 0.0, 0.1], [0.3, 0.2, 0.1], [0.5, 0.25, 0.75], [0.0, 0.37, 0.37]])


@pytest.mark.parametrize("name", ["ge", "nb"])
@pytest.mark.parametrize("temperature", [5.0, 300.0])
def test_quadratic_fold_is_the_folded_spectrum(name, temperature, request):
    material, fcspace = request.getfixturevalue(name)
    model = StructureFactorModel.build(material, fcspace, qpoints=QPOINTS, mesh=6)
    theta = reference_theta(material, fcspace)
    theta = theta * (1 + 0.05 * np.random.default_rng(3).standard_normal(theta.shape))
    hkl = [[2, 2, 0], [1, 1, 1]] if name == "ge" else [[1, 1, 0], [2, 0, 0]]
    zones, weights = zone_orbits(material, zones_from_hkl(material, np.array(hkl)))
    weights = weights * np.random.default_rng(4).uniform(0.5, 1.5, len(weights))
    exact = folded_spectrum(model, theta, temperature, zones, weights)
    quadratic = folded_spectrum_quadratic(model, theta, temperature, zones, weights)
    np.testing.assert_allclose(quadratic, exact, rtol=0, atol=1e-6 * np.abs(exact).max())
    # a larger prebuilt pool gives the same image for the same zones
    pool = FoldOperator.build(model, np.vstack([zones, zones_within(material, 4.0)]))
    pooled = folded_spectrum_quadratic(model, theta, temperature, zones, weights, operator=pool)
    np.testing.assert_allclose(pooled, quadratic, rtol=1e-9, atol=1e-12)


@pytest.fixture(scope="module")
def base(ge) -> SpectrumGenerator:
    material, fcspace = ge
    theta = reference_theta(material, fcspace)
    ensemble = np.array([theta * 0.8, theta * 1.2])
    domain = build_domain("ge", fcspace.names, ensemble, theta, np.arange(4), 0.0, 0.0)
    sampler = StableSampler(domain, stability_check(material, fcspace))
    return SpectrumGenerator(sampler, material.energy, seed=7)


@pytest.fixture(scope="module")
def realistic(ge, base):
    material, _ = ge
    generator = prepare_realistic(material, base, tof=False)
    nq, n_energy = len(material.path.qpoints), len(material.energy.centres)
    rng = np.random.default_rng(0)  # stand-in ToF masks: the path of the code, not its physics
    masks = rng.random((6, nq, n_energy)) < 0.5
    generator.tof = TofMasks(masks, np.array([0, 0, 0, 1, 1, 1]))
    return generator


def test_generator_physics_is_the_folded_spectrum_at_the_reference(ge, realistic):
    """With every random choice pinned (all zones within 5/Å, 120 K, the instrument's own
    resolution), the generator's clean spectrum of the reference θ (whose Debye–Waller it
    holds) is ``folded_spectrum``."""
    material, _ = ge
    pinned = MeasurementRanges(
        temperature_K=(120.0, 120.0),
        resolution_scale=(1.0, 1.0),
        zone_radius=(5.0, 5.0),
        p_sphere=1.0,
    )
    generator = replace(realistic, ranges=pinned)
    theta = np.asarray(realistic.sampler.domain.reference)
    clean, highest = generator.physical(theta[None], np.random.default_rng(0))
    model = realistic.model
    zones = zones_within(material, 5.0)
    exact = folded_spectrum(model, theta, 120.0, zones)
    np.testing.assert_allclose(clean[0], exact, rtol=0, atol=2e-6 * np.abs(exact).max())
    assert highest[0] == pytest.approx(model.path.frequencies(theta).max(), rel=1e-9)


def test_realistic_spectra_are_seeded_windowed_and_share_the_fast_draws(base, realistic):
    theta, spectra, drawn = realistic.spectra("train", 0, 48)
    _, again, again_drawn = realistic.spectra("train", 0, 48)
    np.testing.assert_array_equal(again, spectra)  # NaN in the same places, same values
    assert drawn == again_drawn
    fast_theta, fast, _ = base.spectra("train", 0, 48)
    np.testing.assert_array_equal(theta, fast_theta)
    other = realistic.spectra("train", 1, 48)[1]
    assert not np.array_equal(np.nan_to_num(other), np.nan_to_num(spectra))
    assert spectra.dtype == np.float32 and spectra.shape == fast.shape
    centres = realistic.grid.centres
    highest = realistic.model.path.frequencies(theta).max(axis=(1, 2))
    for image, top in zip(spectra, highest, strict=True):
        beyond = centres > realistic.ranges.window_top[1] * top
        assert np.all(np.isnan(image[:, beyond]))  # nothing measured above the window
        assert np.isfinite(image).mean() > 0.02
    measured = np.isfinite(spectra)
    assert 0.05 < measured.mean() < 0.95


def test_realistic_dataset_file_records_its_kind(ge, realistic, tmp_path):
    material, _ = ge
    out = tmp_path / "real.h5"
    generate_dataset(material, out, 40, 8, workers=0, chunk_size=32, generator=realistic)
    stored = read_dataset(out)
    assert stored.kind == "realistic" and stored.sizes == {"train": 40, "test": 8}
    spectra = stored.spectra("train")
    np.testing.assert_array_equal(spectra[:32], realistic.spectra("train", 0, 32)[1])
    assert np.isnan(spectra).any()
    import h5py

    with h5py.File(out) as handle:
        info = json.loads(handle.attrs["realistic"])
    assert info["kind"] == "realistic" and info["ranges"]["peak_counts"] == [10.0, 3000.0]
    # the dask path (a local worker) writes the same spectra
    dask = tmp_path / "dask.h5"
    generate_dataset(material, dask, 40, 8, workers=1, chunk_size=32, generator=realistic)
    np.testing.assert_array_equal(read_dataset(dask).spectra("train"), spectra)


@pytest.mark.parametrize("rule", ["sqrt", "sqrt-column"])
def test_root_rules_ignore_the_intensity_scale_and_mark_unmeasured(rule):
    rng = np.random.default_rng(0)
    spectra = rng.poisson(20.0, (3, 7, 9)).astype(np.float32) - 3.0
    spectra[rng.random(spectra.shape) < 0.3] = np.nan
    base = prepare_input(torch.from_numpy(spectra), True, rule).numpy()
    scaled = prepare_input(torch.from_numpy(123.0 * spectra), True, rule).numpy()
    np.testing.assert_allclose(scaled, base, atol=1e-6)
    measured = np.isfinite(spectra)
    np.testing.assert_array_equal(base[:, 1], measured)
    assert np.all(base[:, 0][~measured] == 0) and base[:, 0].min() >= 0
    highest = base[:, 0].max(axis=2) if rule == "sqrt-column" else base[:, 0].max(axis=(1, 2))
    assert np.allclose(highest[highest > 0], 1.0)
    nothing = torch.full((1, 4, 5), float("nan"))
    assert torch.all(prepare_input(nothing, True, rule)[:, 0] == 0)


def test_bundles_without_an_input_rule_keep_minmax():
    config = {
        "architecture": "vae",
        "material": "ge",
        "qpoints": [[0.0, 0.0, 0.0], [0.5, 0.0, 0.5]],
        "energy": {"centres": [1.0, 2.0], "width": 1.0, "fwhm0": 1.0, "slope": 0.0},
        "parameter_names": ["a"],
        "selected": ["a"],
        "reference": [1.0],
        "target_mean": [0.0],
        "target_std": [1.0],
        "mask_channel": False,
    }
    assert BundleConfig.model_validate(config).input_rule == "minmax"
    assert set(INPUT_RULES) >= {"minmax", "sqrt", "sqrt-column"}


@pytest.mark.parametrize("name", ["ge", "nb"])
def test_resample_onto_its_own_path_leaves_no_column_empty(name, request):
    """Ge's path passes Γ (0, 108) and X (44, 199) twice: every repeat gets the input too."""
    from fcinvert.inversion.resample import resample
    from fcinvert.physics.reciprocal import reciprocal_basis

    material, _ = request.getfixturevalue(name)
    qpoints, energy = material.path.qpoints, material.energy
    image = np.random.default_rng(0).random((len(qpoints), len(energy.centres)))
    reciprocal = reciprocal_basis(material.atoms.cell[:])
    same = np.linalg.norm((qpoints[:, None] - qpoints[None]) @ reciprocal, axis=-1) < 1e-9
    image = same @ image / same.sum(axis=1, keepdims=True)  # one value per place, as measured
    out, coverage = resample(image, qpoints, energy.centres, qpoints, energy, reciprocal)
    assert coverage.unmeasured_model_pixels == 0 and coverage.outside_pixels == 0
    np.testing.assert_allclose(out, image, rtol=1e-12)
    if name == "ge":
        assert same[0, 108] and same[44, 199]


def test_prediction_carries_its_samples():
    from fcinvert.models.bundle import ModelBundle, build_networks

    config = BundleConfig.model_validate(
        {
            "architecture": "vae",
            "material": "ge",
            "qpoints": [[0.0, 0.0, float(i) / 10] for i in range(8)],
            "energy": {"centres": list(np.arange(8.0)), "width": 1.0, "fwhm0": 1.0, "slope": 0.0},
            "parameter_names": ["a", "b"],
            "selected": ["a", "b"],
            "reference": [1.0, 2.0],
            "target_mean": [1.0, 2.0],
            "target_std": [0.1, 0.2],
            "mask_channel": True,
            "input_rule": "sqrt-column",
            "vae": {"latent": 3, "channels": [4, 8], "hidden": 8},
            "regressor": {"hidden": [8]},
        }
    )
    bundle = ModelBundle(config, build_networks(config))
    spectra = np.random.default_rng(0).random((2, 8, 8))
    spectra[0, :, 5:] = np.nan
    prediction = bundle.predict(spectra, n_samples=5, seed=1)
    assert prediction.samples.shape == (5, 2, 2)
    np.testing.assert_allclose(prediction.samples.mean(axis=0), prediction.mean, rtol=1e-6)
    again = bundle.predict(spectra, n_samples=5, seed=1)
    np.testing.assert_array_equal(again.samples, prediction.samples)


@pytest.mark.parametrize("shipped", ["ge", "nb"])
def test_default_shipped_models_read_measurement_like_spectra(shipped, request):
    """The default bundles were trained on realistic spectra: on fresh ones (another seed) the
    ML alone lands closer to the truth's dispersion than the ensemble median does."""
    from fcinvert.data.dataset import prepare_generator
    from fcinvert.models.bundle import load_bundle
    from fcinvert.physics.dynamics import dynamics_basis

    bundle = load_bundle(shipped)
    if bundle.config.input_rule == "minmax":
        pytest.skip(f"{shipped}: the shipped default is still a clean-trained model")
    material, fcspace = request.getfixturevalue(bundle.config.material)
    generator = prepare_realistic(material, prepare_generator(material, seed=12345), tof=False)
    theta, spectra, _ = generator.spectra("test", 0, 24)
    predicted = theta.copy()
    predicted[:, bundle.selected_indices] = bundle.predict(spectra, 50, 0).mean
    median = np.array(bundle.config.reference)
    basis = dynamics_basis(fcspace, material.path.qpoints)
    truth = basis.frequencies(theta)

    def rms(guess: np.ndarray) -> np.ndarray:
        return np.sqrt(((basis.frequencies(guess) - truth) ** 2).mean(axis=(-2, -1)))

    ml, reference = rms(predicted), rms(np.broadcast_to(median, theta.shape))
    assert np.median(ml) < 0.6 * np.median(reference), (np.median(ml), np.median(reference))
