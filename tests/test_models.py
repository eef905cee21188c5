"""The inversion models: input rule, architectures, training, bundles, pretrained weights."""

from __future__ import annotations

import csv
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import h5py
import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from safetensors import safe_open
from safetensors.torch import save_file
from small_dataset import run_cli, tiny_config, trained_models, write_small_dataset

from fcinvert.errors import FcinvertError
from fcinvert.models.augment import AugmentConfig, augment
from fcinvert.models.bundle import load_bundle, save_bundle
from fcinvert.models.preprocess import prepare_input
from fcinvert.models.resnet import ResNet18, ResNetConfig, load_torchvision_weights
from fcinvert.models.training import cosine_factor, train_model
from fcinvert.models.vae import SpectrumVAE, VAEConfig

TORCHVISION_RESNET18_PARAMETERS = 11_689_512  # torchvision.models.resnet18(): 3 → 1000 classes


@pytest.fixture(scope="module")
def models(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    return trained_models(str(tmp_path_factory.getbasetemp() / "tiny-models"))


def split_arrays(data: Path, split: str) -> tuple[np.ndarray, np.ndarray]:
    with h5py.File(data) as handle:
        selected = handle["selected"][()]
        return handle[f"{split}/spectra"][()], handle[f"{split}/theta"][()][:, selected]


# ---------------------------------------------------------------- input rule and augmentation


@settings(max_examples=30, deadline=None)
@given(
    scale=st.floats(0.01, 1e4),
    offset=st.floats(-100, 100),
    seed=st.integers(0, 2**16),
    hidden=st.floats(0.0, 0.9),
)
def test_input_rule_ignores_intensity_units_and_zeroes_unmeasured(scale, offset, seed, hidden):
    rng = np.random.default_rng(seed)
    spectra = rng.random((3, 7, 9)).astype(np.float32)
    spectra[rng.random(spectra.shape) < hidden] = np.nan
    spectra[:, 0, 0] = 0.5  # at least one measured pixel per spectrum
    base = prepare_input(torch.from_numpy(spectra), mask_channel=True).numpy()
    moved = prepare_input(torch.from_numpy(scale * spectra + offset), mask_channel=True).numpy()
    np.testing.assert_allclose(moved, base, atol=2e-3)
    measured = np.isfinite(spectra)
    np.testing.assert_array_equal(base[:, 1], measured.astype(np.float32))
    assert np.all(base[:, 0][~measured] == 0.0)
    for image, mask in zip(base[:, 0], measured, strict=True):
        assert image[mask].min() == 0.0 and image[mask].max() == pytest.approx(1.0)


def test_input_rule_edge_cases():
    flat = torch.full((1, 4, 5), 3.0)
    nothing = torch.full((1, 4, 5), float("nan"))
    assert torch.all(prepare_input(flat, False) == 0) and torch.all(
        prepare_input(nothing, False) == 0
    )
    assert prepare_input(flat, False).shape == (1, 1, 4, 5)


def test_counting_noise_at_high_counts_reproduces_the_normalised_spectrum():
    x = torch.rand(4, 10, 12) * 7.0
    config = AugmentConfig(noise=True, background_max=0.0, counts_min=1e7, counts_max=1e7)
    noisy = augment(x, config, torch.Generator().manual_seed(1))
    peak = x.flatten(1).amax(dim=1)[:, None, None]
    torch.testing.assert_close(noisy, x / peak, atol=2e-3, rtol=0)


def test_a_clean_share_of_the_noisy_batch_keeps_the_normalised_spectrum():
    x = torch.rand(400, 6, 8) * 3.0 + 0.1
    config = AugmentConfig(noise=True, counts_min=20, counts_max=50, clean_share=0.3)
    out = augment(x, config, torch.Generator().manual_seed(2))
    normalised = x / x.flatten(1).amax(dim=1)[:, None, None]
    clean = torch.all((out - normalised).abs().flatten(1) < 1e-6, dim=1)
    assert 0.22 < clean.float().mean().item() < 0.38  # binomial(400, 0.3): ±3.5σ
    noisy = AugmentConfig(noise=True, counts_min=20, counts_max=50)
    assert not torch.any(
        torch.all(
            (augment(x, noisy, torch.Generator()) - normalised).abs().flatten(1) < 1e-6, dim=1
        )
    )


def test_augmentation_is_seeded_and_masks_with_nan():
    x = torch.rand(8, 20, 30)
    config = AugmentConfig(noise=True, mask=True, pixel_fraction_max=0.5)
    first = augment(x, config, torch.Generator().manual_seed(3))
    second = augment(x, config, torch.Generator().manual_seed(3))
    assert torch.equal(torch.isnan(first), torch.isnan(second))
    torch.testing.assert_close(first.nan_to_num(-1), second.nan_to_num(-1))
    hidden = torch.isnan(first).float().mean().item()
    assert 0.02 < hidden < 0.6
    assert torch.equal(augment(x, AugmentConfig(), torch.Generator()), x)


# ---------------------------------------------------------------- architectures


@settings(max_examples=15, deadline=None)
@given(nq=st.integers(3, 61), n_energy=st.integers(3, 61), stages=st.integers(1, 4))
def test_vae_reconstructs_any_grid_shape(nq, n_energy, stages):
    config = VAEConfig(latent=3, channels=(2,) * stages, hidden=8)
    vae = SpectrumVAE(config, in_channels=2, shape=(nq, n_energy)).eval()
    x = torch.rand(2, 2, nq, n_energy)
    logits, mu, log_var = vae(x, torch.zeros(2, 3))
    assert logits.shape == (2, nq, n_energy) and mu.shape == log_var.shape == (2, 3)


def test_resnet18_is_the_standard_network():
    imagenet = ResNet18(ResNetConfig(), in_channels=3, outputs=1000)
    assert sum(p.numel() for p in imagenet.parameters()) == TORCHVISION_RESNET18_PARAMETERS
    keys = set(imagenet.state_dict())
    assert {"conv1.weight", "layer2.0.downsample.0.weight", "layer4.1.bn2.running_var"} <= keys
    blocks = [name for name, _ in imagenet.named_children() if name.startswith("layer")]
    assert [len(getattr(imagenet, b)) for b in blocks] == [2, 2, 2, 2]
    ours = ResNet18(ResNetConfig(), in_channels=1, outputs=4).eval()
    assert ours(torch.rand(2, 1, 200, 100)).shape == (2, 4)


def test_torchvision_weights_load_with_rgb_summed(tmp_path: Path):
    imagenet = ResNet18(ResNetConfig(), in_channels=3, outputs=1000)
    state = imagenet.state_dict()
    torch.save(state, tmp_path / "resnet18.pth")
    save_file({k: v.contiguous() for k, v in state.items()}, str(tmp_path / "resnet18.safetensors"))
    for name in ("resnet18.pth", "resnet18.safetensors"):
        model = ResNet18(ResNetConfig(), in_channels=2, outputs=4)
        head = model.fc.weight.clone()
        description = load_torchvision_weights(model, tmp_path / name)
        assert "torchvision resnet18" in description and "sha256" in description
        torch.testing.assert_close(model.conv1.weight[:, :1], state["conv1.weight"].sum(1, True))
        assert torch.all(model.conv1.weight[:, 1] == 0)  # the mask channel starts at zero
        assert torch.equal(model.layer3[1].conv2.weight, state["layer3.1.conv2.weight"])
        assert torch.equal(model.fc.weight, head)  # ImageNet head not taken


class Payload:
    """Any object that is not a tensor: a weights file holding one must be refused."""


def test_pickled_objects_in_weights_are_refused(tmp_path: Path):
    torch.save({"conv1.weight": Payload()}, tmp_path / "evil.pth")
    (tmp_path / "junk.safetensors").write_bytes(b"not a safetensors file")
    model = ResNet18(ResNetConfig(), in_channels=1, outputs=2)
    for name in ("evil.pth", "junk.safetensors", "missing.pth"):
        with pytest.raises(FcinvertError) as error:
            load_torchvision_weights(model, tmp_path / name)
        assert "\n" not in str(error.value) and name in str(error.value)
    narrow = ResNet18(ResNetConfig(width=8), in_channels=1, outputs=2)
    save_file({"conv1.weight": torch.zeros(8, 3, 7, 7)}, str(tmp_path / "partial.safetensors"))
    with pytest.raises(FcinvertError, match="not a torchvision resnet18"):
        load_torchvision_weights(ResNet18(ResNetConfig(), 1, 2), tmp_path / "partial.safetensors")
    with pytest.raises(FcinvertError, match="standard width"):
        load_torchvision_weights(narrow, tmp_path / "partial.safetensors")


# ---------------------------------------------------------------- training and bundles


def test_training_reduces_the_loss(models: dict[str, Path]):
    for architecture, stages in (("vae", ("vae", "regressor")), ("resnet", ("resnet",))):
        for stage in stages:
            with (models[architecture] / "logs" / f"{stage}.csv").open() as handle:
                rows = list(csv.DictReader(handle))
            validation = [float(r["val_loss"]) for r in rows]
            assert [int(r["epoch"]) for r in rows] == list(range(len(rows)))
            assert min(validation) < 0.6 * validation[0], (stage, validation)


def test_models_beat_predicting_the_mean(models: dict[str, Path]):
    spectra, truth = split_arrays(models["data"], "test")
    _, train_truth = split_arrays(models["data"], "train")
    baseline = ((truth - train_truth.mean(axis=0)) ** 2).mean(axis=0)
    for architecture, ratio in (("vae", 0.35), ("resnet", 0.2)):
        bundle = load_bundle(models[architecture])
        predicted = bundle.predict(spectra, n_samples=50).mean
        error = ((truth - predicted) ** 2).mean(axis=0)
        assert np.all(error < baseline), (architecture, error / baseline)
        assert np.mean(error / baseline) < ratio, (architecture, error / baseline)
        recorded = bundle.config.training["test"]["r2"]
        assert min(recorded.values()) > 0.5 and len(recorded) == 2


def test_bundle_round_trip_predicts_identically(models: dict[str, Path], tmp_path: Path):
    spectra, _ = split_arrays(models["data"], "test")
    spectra = spectra[:20]
    spectra[:, :3] = np.nan  # unmeasured q-points take the same route both times
    for architecture in ("vae", "resnet"):
        original = load_bundle(models[architecture])
        copy = load_bundle(save_bundle(original, tmp_path / architecture))
        assert copy.config == original.config
        first, second = original.predict(spectra, seed=4), copy.predict(spectra, seed=4)
        for field in ("mean", "std", "low", "high"):
            np.testing.assert_array_equal(getattr(first, field), getattr(second, field))
    assert first.sampled is False and np.all(first.std == 0)
    with safe_open(models["resnet"] / "resnet.safetensors", "pt") as handle:
        assert handle.get_tensor("layer1.0.conv1.weight").dtype == torch.float16
    with safe_open(models["vae"] / "vae.safetensors", "pt") as handle:
        assert handle.get_tensor("encoder.0.weight").dtype == torch.float16
    vae = load_bundle(models["vae"])
    draws = vae.predict(spectra[:2], n_samples=200, seed=1)
    assert np.all(draws.std > 0) and np.all((draws.low <= draws.mean) & (draws.mean <= draws.high))
    assert vae.reconstruct(spectra[:2]).shape == spectra[:2].shape


BREAKERS = {
    "no config": lambda f: (f / "config.json").unlink(),
    "config not JSON": lambda f: (f / "config.json").write_text("{not json"),
    "wrong format": lambda f: _edit(f, format="something-else"),
    "missing field": lambda f: _edit(f, drop="selected"),
    "weights missing": lambda f: (f / "regressor.safetensors").unlink(),
    "weights truncated": lambda f: (f / "vae.safetensors").write_bytes(b"\x00" * 20),
    "weights do not fit": lambda f: _edit(f, vae={"latent": 5, "channels": [8, 16], "hidden": 32}),
    "scaler length": lambda f: _edit(f, target_mean=[0.0]),
}


def _edit(folder: Path, drop: str | None = None, **changes) -> None:
    config = json.loads((folder / "config.json").read_text())
    config.update(changes)
    config.pop(drop, None)
    (folder / "config.json").write_text(json.dumps(config))


@pytest.mark.parametrize("problem", sorted(BREAKERS))
def test_malformed_bundles_give_one_line_errors(problem, models: dict[str, Path], tmp_path: Path):
    folder = tmp_path / "bundle"
    shutil.copytree(models["vae"], folder)
    BREAKERS[problem](folder)
    with pytest.raises(FcinvertError) as error:
        load_bundle(folder)
    assert "\n" not in str(error.value) and str(folder) in str(error.value)


def test_unknown_model_name_is_one_line_error():
    with pytest.raises(FcinvertError, match="no such model"):
        load_bundle("unobtainium-vae")


def test_resume_after_kill_continues_to_the_same_weights(models: dict[str, Path], tmp_path: Path):
    settings = {"epochs": 3, "regressor_epochs": 1, "limit": 96, "seed": 2}
    interrupted, straight = tmp_path / "interrupted", tmp_path / "straight"
    script = (
        "import sys, torch; torch.set_num_threads(1); sys.path.insert(0, sys.argv[1]);"
        "from small_dataset import tiny_config; from fcinvert.models.training import train_model;"
        f"train_model(sys.argv[2], sys.argv[3], tiny_config('vae', **{settings!r}), progress=False)"
    )
    env = {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}
    args = [sys.executable, "-c", script, str(Path(__file__).parent), str(models["data"])]
    process = subprocess.Popen([*args, str(interrupted)], env=env, stderr=subprocess.DEVNULL)
    checkpoint = interrupted / "checkpoints" / "vae" / "last.ckpt"
    deadline = time.monotonic() + 300
    while not checkpoint.exists() and process.poll() is None and time.monotonic() < deadline:
        time.sleep(0.02)
    process.send_signal(signal.SIGKILL)
    process.wait()
    assert checkpoint.exists() and not (interrupted / "config.json").exists()

    torch.set_num_threads(1)
    resumed = train_model(
        models["data"], interrupted, tiny_config("vae", **settings), progress=False
    )
    assert resumed.stages["vae"]["resumed_from_epoch"] >= 1
    assert resumed.stages["vae"]["epochs"] == settings["epochs"]
    with (interrupted / "logs" / "vae.csv").open() as handle:
        assert [int(r["epoch"]) for r in csv.DictReader(handle)] == list(range(settings["epochs"]))
    reference = train_model(
        models["data"], straight, tiny_config("vae", **settings), progress=False
    )
    for name, network in reference.bundle.networks.items():
        for key, value in network.state_dict().items():
            assert torch.equal(value, resumed.bundle.networks[name].state_dict()[key]), key
    assert not list((interrupted / "checkpoints").glob("*/steps.ckpt"))
    with pytest.raises(FcinvertError, match="already trained as far as asked"):
        train_model(models["data"], interrupted, tiny_config("vae", **settings), progress=False)


def test_resume_mid_epoch_counts_only_training_time(models: dict[str, Path], tmp_path: Path):
    settings = {"epochs": 1, "limit": 200, "seed": 2, "checkpoint_every": 2, "batch_size": 8}
    out = tmp_path / "mid-epoch"
    script = (
        "import sys, torch; torch.set_num_threads(1); sys.path.insert(0, sys.argv[1]);"
        "from small_dataset import tiny_config; from fcinvert.models.training import train_model;"
        f"train_model(sys.argv[2], sys.argv[3], tiny_config('resnet', **{settings!r}), "
        "progress=False)"
    )
    env = {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}
    args = [sys.executable, "-c", script, str(Path(__file__).parent), str(models["data"])]
    process = subprocess.Popen([*args, str(out)], env=env, stderr=subprocess.DEVNULL)
    checkpoint = out / "checkpoints" / "resnet" / "steps.ckpt"
    deadline = time.monotonic() + 300
    while not checkpoint.exists() and process.poll() is None and time.monotonic() < deadline:
        time.sleep(0.02)
    process.send_signal(signal.SIGKILL)
    process.wait()
    assert checkpoint.exists() and not (out / "checkpoints" / "resnet" / "last.ckpt").exists()

    torch.set_num_threads(1)
    start = time.perf_counter()
    resumed = train_model(models["data"], out, tiny_config("resnet", **settings), progress=False)
    wall = time.perf_counter() - start
    assert resumed.stages["resnet"]["resumed_from_epoch"] == 0
    assert 0 < resumed.stages["resnet"]["wall_s"] <= wall


@pytest.mark.parametrize(
    ("architecture", "before", "after"),
    [
        ("resnet", {"epochs": 1}, {"epochs": 3}),
        ("vae", {"epochs": 1, "regressor_epochs": 1}, {"epochs": 1, "regressor_epochs": 3}),
        ("vae", {"epochs": 1, "regressor_epochs": 2}, {"epochs": 2, "regressor_epochs": 2}),
    ],
)
def test_more_epochs_continue_a_finished_bundle_as_one_longer_run(
    architecture, before, after, models: dict[str, Path], tmp_path: Path
):
    torch.set_num_threads(1)
    common = {"limit": 96, "seed": 3, "patience": 50}
    continued, straight = tmp_path / "continued", tmp_path / "straight"
    data = models["data"]
    train_model(data, continued, tiny_config(architecture, **common, **before), progress=False)
    result = train_model(
        data, continued, tiny_config(architecture, **common, **after), progress=False
    )
    reference = train_model(
        data, straight, tiny_config(architecture, **common, **after), progress=False
    )
    for name, network in reference.bundle.networks.items():
        for key, value in network.state_dict().items():
            assert torch.equal(value, result.bundle.networks[name].state_dict()[key]), key
    assert load_bundle(continued).config.training == result.bundle.config.training
    for stage, summary in reference.stages.items():
        assert result.stages[stage]["epochs"] == summary["epochs"]
        with (continued / "logs" / f"{stage}.csv").open() as handle:
            assert [int(r["epoch"]) for r in csv.DictReader(handle)] == list(
                range(summary["epochs"])
            )


def test_a_bundle_without_checkpoints_is_not_trained_further(
    models: dict[str, Path], tmp_path: Path
):
    out = tmp_path / "copy"
    shutil.copytree(models["resnet"], out, ignore=shutil.ignore_patterns("checkpoints"))
    with pytest.raises(FcinvertError, match="without its checkpoints"):
        train_model(models["data"], out, tiny_config("resnet", epochs=50), progress=False)


def test_resume_refuses_changed_settings(models: dict[str, Path], tmp_path: Path):
    out = tmp_path / "run"
    (out / "checkpoints").mkdir(parents=True)
    recorded = {
        **tiny_config("resnet", limit=50).model_dump(),
        "data": str(models["data"].resolve()),
    }
    (out / "checkpoints" / "train_config.json").write_text(json.dumps(recorded))
    with pytest.raises(FcinvertError, match=r"other settings \(limit\)"):
        train_model(models["data"], out, tiny_config("resnet", limit=60), progress=False)


def test_pretrained_start_is_recorded(models: dict[str, Path], tmp_path: Path):
    imagenet = ResNet18(ResNetConfig(), in_channels=3, outputs=1000).state_dict()
    save_file({k: v.contiguous() for k, v in imagenet.items()}, str(tmp_path / "r18.safetensors"))
    config = tiny_config("resnet", epochs=1, limit=40, resnet=ResNetConfig())
    result = train_model(
        models["data"],
        tmp_path / "out",
        config,
        pretrained=tmp_path / "r18.safetensors",
        progress=False,
    )
    assert "torchvision resnet18 weights r18.safetensors" in result.bundle.config.resnet.pretrained
    scratch = load_bundle(models["resnet"]).config.resnet.pretrained
    assert scratch.startswith("none")
    with pytest.raises(FcinvertError, match="ResNet only"):
        train_model(models["data"], tmp_path / "v", tiny_config("vae"), pretrained=tmp_path / "x")


def test_cosine_schedule_warms_up_then_decays_to_zero():
    factors = np.array([cosine_factor(step, total=100, warmup=10) for step in range(101)])
    np.testing.assert_allclose(factors[:10], np.arange(1, 11) / 11)
    assert factors[10] == 1.0 and factors[100] == 0.0
    assert np.all(np.diff(factors[10:]) < 0)
    assert factors[55] == pytest.approx(0.5)  # half-way through the decay
    assert cosine_factor(0, total=10, warmup=0) == 1.0


def _lr_and_val(folder: Path) -> tuple[list[float], list[float]]:
    with (folder / "logs" / "resnet.csv").open() as handle:
        rows = list(csv.DictReader(handle))
    return [float(r["lr"]) for r in rows], [float(r["val_loss"]) for r in rows]


def test_fine_tuning_from_a_bundle_with_a_cosine_schedule(models: dict[str, Path], tmp_path: Path):
    source = load_bundle(models["resnet"])
    config = tiny_config(
        "resnet",
        epochs=3,
        learning_rate=1e-3,
        schedule="cosine",
        warmup_epochs=1,
        init_from=str(models["resnet"]),
        resnet=ResNetConfig(width=16),  # replaced by the source's
    )
    result = train_model(models["data"], tmp_path / "tuned", config, progress=False)
    bundle = result.bundle
    assert bundle.config.resnet.width == source.config.resnet.width
    assert bundle.config.resnet.pretrained.startswith(f"fine-tuned from bundle {models['resnet']}")
    assert bundle.config.target_mean == source.config.target_mean
    lr, validation = _lr_and_val(tmp_path / "tuned")
    steps = result.stages["resnet"]
    assert steps["epochs"] == 3
    assert lr[0] == pytest.approx(1e-3, rel=0.05)  # warmed up by the end of epoch 0
    assert lr[0] > lr[1] > lr[2] and lr[2] < 1e-6  # cosine down to zero at the last step
    _, scratch = _lr_and_val(models["resnet"])
    assert validation[0] < 0.5 * scratch[0]  # starts where the source ended, not from scratch
    assert validation[0] < 2 * source.config.training["stages"]["resnet"]["best_val_loss"]
    r2 = bundle.config.training["test"]["r2"]
    before = source.config.training["test"]["r2"]
    assert min(r2.values()) > min(before.values()) - 0.05


def test_init_from_is_refused_where_it_does_not_fit(
    models: dict[str, Path], tmp_path: Path, monkeypatch, capsys
):
    args = ["train", "ge", "--model", "resnet", "--data", str(models["data"]), "--out"]
    args += [str(tmp_path / "cli"), "--init-from", "ge-paper-resnet", "--schedule", "cosine"]
    code, err = run_cli(args, monkeypatch, capsys)
    assert code == 2 and err.count("\n") == 1, err
    assert "--init-from ge-paper-resnet: its (q, E) grid is not the dataset's" in err
    with pytest.raises(FcinvertError, match="a vae model, not a ResNet"):
        train_model(
            models["data"],
            tmp_path / "a",
            tiny_config("resnet", init_from=str(models["vae"])),
            progress=False,
        )
    with pytest.raises(FcinvertError, match="--init-from applies to the ResNet only"):
        train_model(
            models["data"],
            tmp_path / "b",
            tiny_config("vae", init_from=str(models["resnet"])),
            progress=False,
        )
    with pytest.raises(FcinvertError, match="not the dataset's"):
        train_model(
            models["data"],
            tmp_path / "c",
            tiny_config("resnet", init_from="ge-paper-resnet"),
            progress=False,
        )


def test_cli_trains_a_bundle(models: dict[str, Path], tmp_path: Path, monkeypatch, capsys):
    args = ["train", "ge", "--model", "resnet", "--data", str(models["data"])]
    args += ["--out", str(tmp_path / "cli"), "--epochs", "1", "--resnet-width", "4"]
    code, err = run_cli([*args, "--limit", "40", "--quiet", "--threads", "1"], monkeypatch, capsys)
    assert code == 0, err
    bundle = load_bundle(tmp_path / "cli")
    assert bundle.config.training["stages"]["resnet"]["epochs"] == 1
    assert "test set (200 spectra)" in err
    code, err = run_cli([*args[:1], "nb", *args[2:]], monkeypatch, capsys)
    assert code == 2 and err.count("\n") == 1 and "a dataset for 'ge', not 'nb'" in err


def test_training_on_spectra_rendered_on_the_fly(ge, models: dict[str, Path], tmp_path: Path):
    material, fcspace = ge
    reference = fcspace.theta_from_dict(material.require_reference(), np.zeros(fcspace.n_params))
    data = write_small_dataset(
        tmp_path / "path.h5",
        material,
        fcspace,
        reference,
        n_train=40,
        n_test=8,
        q_stride=1,
        bins=len(material.energy.centres),
    )
    config = tiny_config("resnet", epochs=1, render=True, resnet=ResNetConfig(width=4))
    result = train_model(data, tmp_path / "rendered", config, progress=False)
    assert result.bundle.config.training["config"]["render"] is True
    assert result.stages["resnet"]["epochs"] == 1
    with pytest.raises(FcinvertError, match="rendering needs spectra on the material's path"):
        train_model(models["data"], tmp_path / "off-path", config, progress=False)


def test_augmented_training_with_a_mask_channel(models: dict[str, Path], tmp_path: Path):
    augment = AugmentConfig(noise=True, mask=True)
    config = tiny_config(
        "vae", epochs=1, regressor_epochs=1, limit=64, augment=augment, mask_channel=True
    )
    bundle = train_model(models["data"], tmp_path / "augmented", config, progress=False).bundle
    assert bundle.config.mask_channel and bundle.networks["vae"].encoder[0].in_channels == 2
    spectra, _ = split_arrays(models["data"], "test")
    spectra[:, ::2] = np.nan
    assert np.all(np.isfinite(bundle.predict(spectra[:4], n_samples=5).mean))


def test_a_frozen_encoder_is_reused_and_only_the_regressor_trains(
    models: dict[str, Path], tmp_path: Path
):
    torch.set_num_threads(1)
    config = tiny_config("vae", regressor_epochs=15, encoder=str(models["vae"]), vae=VAEConfig())
    result = train_model(models["data"], tmp_path / "reuse", config, progress=False)
    source = load_bundle(models["vae"])
    for key, value in source.networks["vae"].state_dict().items():
        assert torch.equal(value, result.bundle.networks["vae"].state_dict()[key]), key
    assert result.bundle.config.vae == source.config.vae  # the bundle's settings, not the config's
    assert result.stages["vae"]["encoder_from"] == str(models["vae"])
    assert result.stages["regressor"]["epochs"] > 0
    spectra, truth = split_arrays(models["data"], "test")
    predicted = result.bundle.predict(spectra, n_samples=20).mean
    baseline = ((truth - truth.mean(axis=0)) ** 2).mean()
    assert ((predicted - truth) ** 2).mean() < 0.3 * baseline


def test_an_encoder_that_does_not_fit_is_refused(models: dict[str, Path], tmp_path: Path):
    with pytest.raises(FcinvertError, match="a resnet model has no encoder"):
        train_model(
            models["data"],
            tmp_path / "a",
            tiny_config("vae", encoder=str(models["resnet"])),
            progress=False,
        )
    with pytest.raises(FcinvertError, match=r"its \(q, E\) grid is not the dataset's"):
        train_model(
            models["data"], tmp_path / "b", tiny_config("vae", encoder="ge"), progress=False
        )
    with pytest.raises(FcinvertError, match="applies to the VAE only"):
        config = tiny_config("resnet", encoder=str(models["vae"]))
        train_model(models["data"], tmp_path / "c", config, progress=False)
