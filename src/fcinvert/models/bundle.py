"""A trained inverter as a folder: ``config.json`` plus safetensors weights, and its use.

Folder: ``config.json`` (``BundleConfig``: material, q-points and energy grid, parameter names,
selected names, reference θ, target scaler, architecture, training summary, fcinvert version);
``vae.safetensors`` + ``regressor.safetensors`` or ``resnet.safetensors``; ``logs/`` with the
training CSV logs. Loading reads JSON and safetensors only: nothing is ever unpickled.
Weights are stored in float16 (computed in float32): the ResNet's ~11 M parameters take
~22 MB, the default VAE ~13 MB. Measured on a Ge VAE: test R² unchanged to 4 decimals, θ
moved by at most 5e-4 of its spread. Training rounds the weights before its test scores, so
the scores are those of the stored model.

``ModelBundle.predict`` is Stage III: spectra on the bundle's grid → θ with uncertainty.
The VAE route encodes, draws latent samples z ~ N(μ, σ²) and regresses each one; the ResNet
route is deterministic (one value, no spread).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import numpy as np
import torch
from pydantic import BaseModel, ConfigDict
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file
from torch import nn

from fcinvert import __version__
from fcinvert.errors import FcinvertError
from fcinvert.iohelpers import atomic_path, atomic_write_text, read_json, validated
from fcinvert.models.preprocess import InputRule, TargetScaler, input_channels, prepare_input
from fcinvert.models.regressor import LatentRegressor, RegressorConfig
from fcinvert.models.resnet import ResNet18, ResNetConfig
from fcinvert.models.vae import SpectrumVAE, VAEConfig
from fcinvert.physics.material import BUNDLED, EnergyGrid, user_library

BUNDLE_FORMAT = "fcinvert-model"
CONFIG_NAME = "config.json"
#: where the shipped bundles live: materials/<material>/models/<folder>/ (vae: the default)
MODELS_FOLDER = "models"
STORAGE = torch.float16


class EnergyConfig(BaseModel):
    """The energy bins (meV centres, width) and resolution FWHM(E) = fwhm0 + slope·E."""

    model_config = ConfigDict(extra="forbid")
    centres: list[float]
    width: float
    fwhm0: float
    slope: float

    @classmethod
    def from_grid(cls, grid: EnergyGrid) -> EnergyConfig:
        return cls(
            centres=grid.centres.tolist(), width=grid.width, fwhm0=grid.fwhm0, slope=grid.slope
        )

    def grid(self) -> EnergyGrid:
        return EnergyGrid(np.asarray(self.centres), self.width, self.fwhm0, self.slope)


class BundleConfig(BaseModel):
    """Contents of ``config.json``."""

    model_config = ConfigDict(extra="forbid")
    format: Literal["fcinvert-model"] = BUNDLE_FORMAT
    version: Literal[1] = 1
    fcinvert_version: str = __version__
    architecture: Literal["vae", "resnet"]
    material: str
    qpoints: list[tuple[float, float, float]]
    energy: EnergyConfig
    parameter_names: list[str]
    selected: list[str]
    reference: list[float]
    target_mean: list[float]
    target_std: list[float]
    mask_channel: bool
    #: how spectra become network inputs (``preprocess``); bundles without it used minmax
    input_rule: InputRule = "minmax"
    vae: VAEConfig | None = None
    regressor: RegressorConfig | None = None
    resnet: ResNetConfig | None = None
    training: dict = {}


@dataclass(frozen=True)
class Prediction:
    """θ of the selected parameters for B spectra, eV/Å², each (B, K).

    mean, std: over latent samples (VAE) — std is 0 for the deterministic ResNet;
    low, high: the 5 % and 95 % quantiles (equal to mean for the ResNet).
    samples: (S, B, K) the physical θ draws behind those statistics (one latent sample each;
    S = 1, the mean, for the ResNet): starting points for a multi-start refinement.
    """

    mean: np.ndarray
    std: np.ndarray
    low: np.ndarray
    high: np.ndarray
    sampled: bool
    samples: np.ndarray | None = None


@dataclass
class ModelBundle:
    """A trained inverter: its config and networks (``vae`` + ``regressor``, or ``resnet``)."""

    config: BundleConfig
    networks: dict[str, nn.Module]

    @property
    def architecture(self) -> str:
        return self.config.architecture

    @property
    def scaler(self) -> TargetScaler:
        return TargetScaler(np.array(self.config.target_mean), np.array(self.config.target_std))

    @property
    def qpoints(self) -> np.ndarray:
        """(nq, 3) reduced q-points of the model's grid."""
        return np.array(self.config.qpoints, dtype=float)

    @property
    def energy(self) -> EnergyGrid:
        return self.config.energy.grid()

    @property
    def shape(self) -> tuple[int, int]:
        return len(self.config.qpoints), len(self.config.energy.centres)

    @property
    def selected_indices(self) -> np.ndarray:
        """(K,) indices of the selected parameters in ``parameter_names``."""
        index = {name: i for i, name in enumerate(self.config.parameter_names)}
        return np.array([index[name] for name in self.config.selected], dtype=np.int64)

    @torch.no_grad()
    def predict(
        self, spectra: np.ndarray, n_samples: int = 100, seed: int = 0, batch: int = 256
    ) -> Prediction:
        """θ of the selected parameters for spectra (B, nq, nE) on this bundle's grid (NaN =
        unmeasured); ``n_samples`` latent draws per spectrum (VAE), seeded by ``seed``."""
        spectra = self._check(spectra)
        if self.architecture == "resnet":
            parts = [self._resnet(spectra[i : i + batch]) for i in range(0, len(spectra), batch)]
            mean = self.scaler.to_physical(np.concatenate(parts))
            return Prediction(
                mean, np.zeros_like(mean), mean.copy(), mean.copy(), False, mean[None].copy()
            )
        if n_samples < 1:
            raise FcinvertError(f"number of latent samples must be at least 1, got {n_samples}")
        generator = torch.Generator().manual_seed(seed)
        draws = [
            self._latent_draws(spectra[i : i + batch], n_samples, generator)
            for i in range(0, len(spectra), batch)
        ]
        samples = self.scaler.to_physical(np.concatenate(draws, axis=1))  # (S, B, K)
        low, high = np.quantile(samples, [0.05, 0.95], axis=0)
        return Prediction(samples.mean(axis=0), samples.std(axis=0), low, high, True, samples)

    @torch.no_grad()
    def latent(self, spectra: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """VAE posterior μ and log σ², each (B, latent), of spectra (B, nq, nE)."""
        vae = self._vae()
        mu, log_var = vae.encode(self._inputs(self._check(spectra)))
        return mu.numpy(), log_var.numpy()

    @torch.no_grad()
    def reconstruct(self, spectra: np.ndarray) -> np.ndarray:
        """VAE reconstruction (B, nq, nE) of spectra, in the scaled units of the input rule."""
        vae = self._vae()
        mu, _ = vae.encode(self._inputs(self._check(spectra)))
        return vae.decode(mu).numpy()

    def _vae(self) -> SpectrumVAE:
        if self.architecture != "vae":
            raise FcinvertError(f"a {self.architecture} model has no VAE latent space")
        return self.networks["vae"]

    def _check(self, spectra: np.ndarray) -> np.ndarray:
        spectra = np.asarray(spectra, dtype=np.float32)
        if spectra.ndim == 2:
            spectra = spectra[None]
        if spectra.shape[1:] != self.shape:
            raise FcinvertError(
                f"spectra of shape {spectra.shape[1:]} for a model on a {self.shape} grid "
                "(resample onto the model's grid first)"
            )
        return spectra

    def _inputs(self, spectra: np.ndarray) -> torch.Tensor:
        return prepare_input(
            torch.from_numpy(spectra), self.config.mask_channel, self.config.input_rule
        )

    def _resnet(self, spectra: np.ndarray) -> np.ndarray:
        return self.networks["resnet"](self._inputs(spectra)).numpy()

    def _latent_draws(
        self, spectra: np.ndarray, n_samples: int, generator: torch.Generator
    ) -> np.ndarray:
        mu, log_var = self.networks["vae"].encode(self._inputs(spectra))
        noise = torch.randn((n_samples, *mu.shape), generator=generator)
        z = mu + torch.exp(0.5 * log_var) * noise  # (S, B, latent)
        return self.networks["regressor"](z.flatten(0, 1)).view(n_samples, len(mu), -1).numpy()


def build_networks(config: BundleConfig) -> dict[str, nn.Module]:
    """Fresh (untrained) networks of the architecture ``config`` describes, in eval mode."""
    channels = input_channels(config.mask_channel)
    outputs = len(config.selected)
    shape = (len(config.qpoints), len(config.energy.centres))
    if config.architecture == "vae":
        if config.vae is None or config.regressor is None:
            raise FcinvertError("a VAE bundle needs 'vae' and 'regressor' settings")
        networks: dict[str, nn.Module] = {
            "vae": SpectrumVAE(config.vae, channels, shape),
            "regressor": LatentRegressor(config.regressor, config.vae.latent, outputs),
        }
    else:
        if config.resnet is None:
            raise FcinvertError("a ResNet bundle needs 'resnet' settings")
        networks = {"resnet": ResNet18(config.resnet, channels, outputs)}
    for network in networks.values():
        network.eval()
    return networks


def round_to_storage(networks: dict[str, nn.Module]) -> None:
    """Round every floating tensor to the precision it is stored in, in place, so that a saved
    and reloaded bundle predicts exactly what the in-memory one does."""
    with torch.no_grad():
        for network in networks.values():
            for tensor in network.state_dict().values():
                if tensor.is_floating_point():
                    tensor.copy_(tensor.to(STORAGE).to(tensor.dtype))


def save_bundle(bundle: ModelBundle, folder: str | Path) -> Path:
    """Write ``bundle`` into ``folder`` (created; weights first, config.json last)."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    for name, network in bundle.networks.items():
        state = {
            key: (value.to(STORAGE) if value.is_floating_point() else value).contiguous()
            for key, value in network.state_dict().items()
        }
        if not all(torch.isfinite(v).all() for v in state.values() if v.is_floating_point()):
            raise FcinvertError(f"{folder}: {name} weights overflow {STORAGE}")
        with atomic_path(folder / f"{name}.safetensors") as temporary:
            save_file(state, str(temporary), metadata={"fcinvert_version": __version__})
    atomic_write_text(folder / CONFIG_NAME, bundle.config.model_dump_json(indent=1) + "\n")
    return folder


def find_bundle(name_or_folder: str | Path) -> Path:
    """Folder of a bundle given as a path or a shipped name ``<material>[-<folder>]`` for
    materials/<material>/models/<folder>: ``ge`` or ``ge-vae`` (the default VAE + regressor,
    trained on measurement-like spectra), ``ge-paper`` and ``ge-paper-resnet`` (the paper's
    models, trained on clean fast-model spectra). A folder holding a config.json wins over a
    shipped name; a material of the user library (``fcinvert build``) is found the same way."""
    candidate = Path(name_or_folder)
    if (candidate / CONFIG_NAME).is_file():
        return candidate
    material, _, architecture = str(name_or_folder).partition("-")
    places = [(material, architecture or "vae"), (str(name_or_folder), "vae")]
    for library in (BUNDLED, user_library()):  # shipped, then built (fcinvert build)
        for owner, folder in places:
            shipped = library / owner / MODELS_FOLDER / folder
            if (shipped / CONFIG_NAME).is_file():
                return shipped
    if candidate.is_dir():
        return candidate  # loading it reports what is missing
    known = sorted(
        f"{p.parent.parent.parent.name}-{p.parent.name}"
        for p in BUNDLED.glob(f"*/{MODELS_FOLDER}/*/{CONFIG_NAME}")
    )
    raise FcinvertError(
        f"{name_or_folder}: no such model (a bundle folder, or shipped: "
        f"{', '.join(known) or 'none yet'})"
    )


def load_bundle(name_or_folder: str | Path) -> ModelBundle:
    """Load a bundle folder or a shipped model by name; every problem is one FcinvertError line."""
    folder = find_bundle(name_or_folder)
    config_file = folder / CONFIG_NAME
    if not config_file.is_file():
        raise FcinvertError(f"{folder}: not a model bundle (no {CONFIG_NAME})")
    content = read_json(config_file, "model config")
    if not isinstance(content, dict) or content.get("format") != BUNDLE_FORMAT:
        raise FcinvertError(f"{config_file}: not an fcinvert model config (format)")
    config = validated(BundleConfig, content, config_file)
    _check_consistent(config, config_file)
    networks = build_networks(config)
    for name, network in networks.items():
        weights = folder / f"{name}.safetensors"
        if not weights.is_file():
            raise FcinvertError(f"{folder}: missing {weights.name}")
        try:
            state = load_file(weights)
            own = network.state_dict()
            state = {k: v.to(own[k].dtype) if k in own else v for k, v in state.items()}
            network.load_state_dict(state, strict=True)
            bad = [k for k, v in state.items() if v.is_floating_point() and not v.isfinite().all()]
            if bad:
                raise FcinvertError(f"{weights}: non-finite weights ({bad[0]})")
        except (SafetensorError, OSError) as error:
            raise FcinvertError(f"{weights}: unreadable weights ({error})") from None
        except RuntimeError as error:
            first = str(error).splitlines()[1 if "\n" in str(error) else 0].strip()
            raise FcinvertError(f"{weights}: weights do not fit the config ({first})") from None
    return ModelBundle(config, networks)


def _check_consistent(config: BundleConfig, where: Path) -> None:
    names = set(config.parameter_names)
    if len(config.reference) != len(config.parameter_names):
        raise FcinvertError(f"{where}: 'reference' and 'parameter_names' differ in length")
    if not config.selected or not set(config.selected) <= names:
        raise FcinvertError(f"{where}: 'selected' must name some of 'parameter_names'")
    k = len(config.selected)
    if len(config.target_mean) != k or len(config.target_std) != k:
        raise FcinvertError(f"{where}: target scaler must have one entry per selected parameter")
    if not config.qpoints or len(config.energy.centres) < 2:
        raise FcinvertError(f"{where}: the grid needs q-points and at least 2 energy bins")
    numbers = {
        "reference": config.reference,
        "target_mean": config.target_mean,
        "qpoints": config.qpoints,
        "energy.centres": config.energy.centres,
        "energy.width/fwhm0/slope": [config.energy.width, config.energy.fwhm0, config.energy.slope],
    }
    for key, values in numbers.items():
        if not np.all(np.isfinite(np.asarray(values, dtype=float))):
            raise FcinvertError(f"{where}: '{key}' holds non-finite numbers")
    std = np.asarray(config.target_std, dtype=float)
    if not np.all(np.isfinite(std) & (std > 0)):
        raise FcinvertError(f"{where}: 'target_std' must be finite and positive: {std.tolist()}")
