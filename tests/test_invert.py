"""``fcinvert invert``: resampling onto a model's grid, the inversion result, the CLI."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from phonopy.file_IO import parse_FORCE_CONSTANTS
from small_dataset import run_cli, trained_models

from fcinvert.data.spectrum_file import Spectrum, read_spectrum, write_spectrum
from fcinvert.errors import FcinvertError
from fcinvert.inversion.invert import instability_note, invert_spectrum
from fcinvert.inversion.pipeline import infer
from fcinvert.inversion.resample import default_tolerance, resample
from fcinvert.inversion.result_file import InversionFile, write_inference
from fcinvert.models.bundle import load_bundle
from fcinvert.physics.dynamics import dynamics_basis
from fcinvert.physics.material import EnergyGrid
from fcinvert.physics.reciprocal import reciprocal_basis
from fcinvert.physics.spectra import render


@pytest.fixture(scope="module")
def models(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    return trained_models(str(tmp_path_factory.getbasetemp() / "tiny-models"))


def grid(n: int = 30, low: float = 0.0, high: float = 60.0) -> EnergyGrid:
    width = (high - low) / n
    return EnergyGrid(low + width * (np.arange(n) + 0.5), width, 1.0, 0.02)


# ---------------------------------------------------------------- resampling


def test_resample_on_the_model_grid_is_the_identity(ge):
    material, _ = ge
    qpoints, energy = material.path.qpoints[::7], grid()
    image = np.random.default_rng(0).random((len(qpoints), 30))
    image[3, 4] = np.nan
    out, coverage = resample(
        image, qpoints, energy.centres, qpoints, energy, reciprocal_basis(material.atoms.cell[:])
    )
    np.testing.assert_array_equal(out, image)
    assert coverage.outside_pixels == 0 and coverage.unmeasured_model_pixels == 1
    assert coverage.input_pixels == image.size - 1


def test_resample_interpolates_energy_linearly_and_counts_what_is_outside(ge):
    material, _ = ge
    reciprocal = reciprocal_basis(material.atoms.cell[:])
    model_q, model_e = material.path.qpoints[::10], grid(30, 0.0, 60.0)
    fine = np.linspace(-10.0, 45.0, 111)  # starts below the window, ends inside it
    rng = np.random.default_rng(1)
    far = np.array([[0.37, 0.11, 0.05]])  # not on the Ge path
    qpoints = np.vstack([model_q, far])
    intensity = rng.random((len(qpoints), len(fine)))
    out, coverage = resample(intensity, qpoints, fine, model_q, model_e, reciprocal)
    for row, values in zip(out, intensity, strict=False):
        inside = model_e.centres <= fine[-1]
        np.testing.assert_allclose(row[inside], np.interp(model_e.centres[inside], fine, values))
        assert np.all(np.isnan(row[~inside]))
    below = int(np.sum(fine < 0.0))
    assert coverage.off_path_pixels == len(fine)
    assert coverage.off_energy_pixels == below * len(model_q)
    assert coverage.unmeasured_model_pixels == len(model_q) * int(np.sum(model_e.centres > 45.0))


@settings(max_examples=25, deadline=None)
@given(keep=st.lists(st.booleans(), min_size=20, max_size=20), twice=st.booleans())
def test_resample_averages_repeats_and_leaves_missing_q_unmeasured(ge, keep, twice):
    material, _ = ge
    reciprocal = reciprocal_basis(material.atoms.cell[:])
    model_q, energy = material.path.qpoints[::10], grid(12)
    values = np.arange(len(model_q) * 12, dtype=float).reshape(len(model_q), 12)
    chosen, missing = np.flatnonzero(keep), np.flatnonzero(~np.array(keep))
    qpoints, image = model_q[chosen], values[chosen]
    if twice:  # each q-point measured twice, +1 and −1 off: the average is the value
        qpoints = np.vstack([qpoints, qpoints])
        image = np.vstack([image + 1.0, image - 1.0])
    out, coverage = resample(image, qpoints, energy.centres, model_q, energy, reciprocal)
    np.testing.assert_allclose(out[chosen], values[chosen])
    assert np.all(np.isnan(out[missing]))
    assert coverage.unmeasured_model_pixels == 12 * len(missing)


def test_default_tolerance_reaches_every_point_of_the_path(ge):
    material, _ = ge
    path = material.path
    reciprocal = reciprocal_basis(material.atoms.cell[:])
    t = np.random.default_rng(2).random((len(path.qpoints) - 1, 1))
    between = path.qpoints[:-1] + t * np.diff(path.qpoints, axis=0)  # anywhere along the path
    between = np.delete(between, [b - 1 for b in path.breaks], axis=0)  # not across a break
    distance = np.linalg.norm(
        (between @ reciprocal)[:, None] - (path.qpoints @ reciprocal)[None], axis=-1
    ).min(axis=1)
    assert distance.max() <= default_tolerance(path.qpoints, reciprocal)


# ---------------------------------------------------------------- inversion


def simulated(models: dict[str, Path], ge, index: int) -> tuple[Spectrum, np.ndarray]:
    """A test-set θ and its spectrum on the tiny models' grid."""
    import h5py

    material, fcspace = ge
    with h5py.File(models["data"]) as handle:
        theta = handle["test/theta"][index]
        qpoints = handle["qpoints"][()]
    bundle = load_bundle(models["vae"])
    frequencies = dynamics_basis(fcspace, qpoints).frequencies(theta)
    intensity = render(frequencies, bundle.energy)
    spectrum = Spectrum(intensity, bundle.energy.centres, qpoints, material.name)
    return spectrum, theta


def test_invert_recovers_known_parameters(models, ge, tmp_path: Path):
    _, fcspace = ge
    bundle = load_bundle(models["vae"])
    mae = np.array(list(bundle.config.training["test"]["mae_eV_A2"].values()))
    selected = bundle.selected_indices
    for index in range(3):
        spectrum, theta = simulated(models, ge, index)
        result = invert_spectrum(spectrum, bundle, n_samples=100, seed=0, context=ge)
        assert np.all(np.abs(result.theta[selected] - theta[selected]) < 5 * mae)
        held = ~result.inferred
        np.testing.assert_array_equal(result.theta[held], np.array(bundle.config.reference)[held])
    assert np.all(result.std[selected] > 0) and np.all(result.std[held] == 0)
    expected = dynamics_basis(fcspace, spectrum.qpoints).frequencies(result.theta)
    np.testing.assert_allclose(result.frequencies, expected)

    inference = infer(spectrum, *ge, bundle, refine=False, seed=0)
    np.testing.assert_allclose(inference.theta, result.theta)
    content = write_inference(inference, tmp_path / "result.json", source="sim", model="tiny")
    saved = json.loads((tmp_path / "result.json").read_text())
    assert saved == content and saved["format"] == "fcinvert-inversion"
    assert InversionFile.model_validate(saved).model_dump(mode="json", exclude_unset=True) == saved
    names = [p["name"] for p in saved["parameters"]]
    assert names == fcspace.names
    inferred = [p for p in saved["parameters"] if p["source"] == "inferred"]
    assert [p["name"] for p in inferred] == bundle.config.selected
    for row in inferred:
        low, high = row["interval_5_95"]
        assert low <= row["value"] <= high and row["std"] > 0
    assert np.shape(saved["dispersion"]["frequencies_meV"]) == result.frequencies.shape
    band = (
        np.array(saved["dispersion"]["frequencies_low_meV"]),
        np.array(saved["dispersion"]["frequencies_high_meV"]),
    )
    assert np.all(band[0] <= result.frequencies + 1e-6)
    assert np.all(result.frequencies <= band[1] + 1e-6)
    assert all(p["determined"] == (p["source"] == "inferred") for p in saved["parameters"])
    written = parse_FORCE_CONSTANTS(saved["force_constants"]["force_constants"])
    np.testing.assert_allclose(written, fcspace.force_constants(result.theta), atol=1e-9)
    assert saved["coverage"]["outside_pixels"] == 0


def test_resnet_inversion_has_no_uncertainty(models, ge, tmp_path: Path):
    spectrum, _ = simulated(models, ge, 0)
    bundle = load_bundle(models["resnet"])
    result = invert_spectrum(spectrum, bundle, context=ge)
    content = write_inference(infer(spectrum, *ge, bundle, refine=False), tmp_path / "r.json")
    inferred = [p for p in content["parameters"] if p["source"] == "inferred"]
    assert all(p["std"] is None and p["interval_5_95"] is None for p in inferred)
    assert result.reconstruction is None and "deterministic" in " ".join(result.notes)


def test_invert_refuses_another_material_and_off_grid_spectra(models, ge):
    spectrum, _ = simulated(models, ge, 0)
    bundle = load_bundle(models["vae"])
    spectrum.material = "nb"
    with pytest.raises(FcinvertError, match=r"spectrum of 'nb'.*model is for 'ge'"):
        invert_spectrum(spectrum, bundle)
    spectrum.material = "ge"
    spectrum.energy = spectrum.energy + 500.0
    with pytest.raises(FcinvertError, match="no measured pixel falls on the model's grid"):
        invert_spectrum(spectrum, bundle)


# ---------------------------------------------------------------- command line


def test_cli_invert_writes_result_figure_and_phonopy_files(
    models, ge, tmp_path, monkeypatch, capsys
):
    spectrum, _ = simulated(models, ge, 1)
    write_spectrum(tmp_path / "s.h5", spectrum)
    args = ["invert", str(tmp_path / "s.h5"), "--model", str(models["vae"])]
    args += ["--out", str(tmp_path / "r.json"), "--plot", str(tmp_path / "r.png")]
    code, err = run_cli(args, monkeypatch, capsys)
    assert code == 0, err
    assert (tmp_path / "r.png").stat().st_size > 10_000
    content = json.loads((tmp_path / "r.json").read_text())
    assert Path(content["force_constants"]["force_constants"]).is_file()
    assert content["model"]["path"] == str(models["vae"])  # as named: no installation path
    assert "0 off the model's path" in err


def test_cli_errors_are_one_line(models, ge, tmp_path, monkeypatch, capsys):
    spectrum, _ = simulated(models, ge, 1)
    write_spectrum(tmp_path / "s.h5", spectrum)
    (tmp_path / "broken.h5").write_bytes(b"\x89HDF\r\n\x1a\n truncated")
    (tmp_path / "empty-model").mkdir()
    cases = [
        ["invert", str(tmp_path / "broken.h5"), "--model", str(models["vae"])],
        ["invert", str(tmp_path / "s.h5"), "--model", str(tmp_path / "empty-model")],
        ["invert", str(tmp_path / "s.h5"), "--model", "nosuchmaterial-vae"],
    ]
    for args in cases:
        code, err = run_cli([*args, "--out", str(tmp_path / "x.json")], monkeypatch, capsys)
        assert code == 2 and err.count("\n") == 1 and err.startswith("fcinvert: error:"), err
    assert not (tmp_path / "x.json").exists()


@pytest.mark.parametrize(
    "shipped",
    ["ge-paper", "ge-paper-resnet", "nb-paper", "nb-paper-resnet", "nb-paper-resnet-noise"],
)
def test_shipped_models_invert_a_simulated_spectrum(shipped, request):
    bundle = load_bundle(shipped)
    material, fcspace = request.getfixturevalue(bundle.config.material)
    test = bundle.config.training["test"]
    rng = np.random.default_rng(5)
    theta = np.array(bundle.config.reference)
    selected = bundle.selected_indices
    spread = np.array(bundle.config.target_std)
    mean = np.array(bundle.config.target_mean)
    theta[selected] = mean + 0.5 * spread * rng.uniform(-1, 1, size=len(selected))
    frequencies = dynamics_basis(fcspace, material.path.qpoints).frequencies(theta)
    spectrum = Spectrum(
        render(frequencies, material.energy),
        material.energy.centres,
        material.path.qpoints,
        material.name,
    )
    result = invert_spectrum(spectrum, bundle)
    checked = 0
    for k, name in zip(selected, bundle.config.selected, strict=True):
        if test["r2"][name] >= 0.9:  # well-determined parameters: within 5 test MAEs
            assert abs(result.theta[k] - theta[k]) < 5 * test["mae_eV_A2"][name], name
            checked += 1
    assert checked >= 4


def test_spectrum_file_round_trip_feeds_invert(models, ge, tmp_path):
    spectrum, _ = simulated(models, ge, 2)
    write_spectrum(tmp_path / "s.h5", spectrum)
    again = read_spectrum(tmp_path / "s.h5")
    bundle = load_bundle(models["vae"])
    direct = invert_spectrum(spectrum, bundle, seed=3, context=ge)
    via_file = invert_spectrum(again, bundle, seed=3, context=ge)
    np.testing.assert_allclose(via_file.theta, direct.theta, rtol=1e-6)


def test_unstable_force_constants_are_flagged(ge):
    material, fcspace = ge
    reference = fcspace.theta_from_dict(material.require_reference(), np.zeros(fcspace.n_params))
    qpoints = material.path.qpoints
    basis = dynamics_basis(fcspace, qpoints)
    assert instability_note(basis.frequencies(reference), qpoints) is None
    note = instability_note(basis.frequencies(-reference), qpoints)  # every ω² flips sign
    assert note is not None and "dynamically unstable" in note
    lowest = float(note.split("mode at ")[1].split(" meV")[0])
    assert lowest == pytest.approx(-basis.frequencies(reference).max(), abs=0.01)
