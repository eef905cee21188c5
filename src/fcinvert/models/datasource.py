"""Training data for the models: a Stage I dataset file, read into memory or rendered from θ.

Dataset file (HDF5, written by ``fcinvert.data.dataset``): root attrs ``format`` =
"fcinvert-dataset", ``version``, ``material``; ``parameter_names`` (P,); ``selected`` (K,)
indices of the sampled parameters; ``reference`` (P,) eV/Å²; ``qpoints`` (nq, 3) reduced;
``energy`` (nE,) meV bin centres with attrs ``width``, ``fwhm0``, ``slope``; per split
(``train``, ``test``) ``theta`` (N, P) eV/Å² and ``spectra`` (N, nq, nE) float32 1/meV.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import h5py
import numpy as np
import torch
from torch.utils.data import Dataset, Sampler

from fcinvert.errors import FcinvertError
from fcinvert.physics.dynamics import DynamicsBasis
from fcinvert.physics.material import EnergyGrid
from fcinvert.physics.spectra import render

DATASET_FORMAT = "fcinvert-dataset"


@dataclass(frozen=True)
class DatasetInfo:
    """What a dataset file says about itself (everything but the spectra).

    qpoints: (nq, 3) reduced; energy: the bins and resolution of the spectra; reference: (P,)
    eV/Å²; selected: (K,) indices into ``parameter_names``; sizes: split name → count.
    """

    path: Path
    material: str
    parameter_names: list[str]
    selected: np.ndarray
    reference: np.ndarray
    qpoints: np.ndarray
    energy: EnergyGrid
    sizes: dict[str, int]
    has_spectra: bool

    @property
    def selected_names(self) -> list[str]:
        return [self.parameter_names[i] for i in self.selected]

    @property
    def shape(self) -> tuple[int, int]:
        """(nq, nE) of one spectrum."""
        return len(self.qpoints), len(self.energy.centres)


def read_dataset_info(path: str | Path) -> DatasetInfo:
    """Validate a dataset file and read its metadata; every problem is one FcinvertError line."""
    path = Path(path)
    if not path.is_file():
        raise FcinvertError(f"{path}: no such dataset file")
    try:
        handle = h5py.File(path, "r")
    except OSError:
        raise FcinvertError(f"{path}: not a readable HDF5 file") from None
    with handle:
        if _text(handle.attrs.get("format", "")) != DATASET_FORMAT:
            raise FcinvertError(f"{path}: not an fcinvert dataset (format attribute missing)")
        try:
            names = [_text(n) for n in handle["parameter_names"][()]]
            selected = np.asarray(handle["selected"][()], dtype=np.int64)
            reference = np.asarray(handle["reference"][()], dtype=float)
            qpoints = np.asarray(handle["qpoints"][()], dtype=float)
            energy = handle["energy"]
            centres = np.asarray(energy[()], dtype=float)
            grid = EnergyGrid(
                centres,
                float(energy.attrs["width"]),
                float(energy.attrs["fwhm0"]),
                float(energy.attrs["slope"]),
            )
            sizes = {s: int(handle[s]["theta"].shape[0]) for s in ("train", "test") if s in handle}
            has_spectra = all("spectra" in handle[s] for s in sizes)
            for split in sizes:
                if handle[split]["theta"].shape != (sizes[split], len(names)):
                    raise FcinvertError(f"{path}: {split}/theta has the wrong shape")
                if has_spectra and handle[split]["spectra"].shape != (
                    sizes[split],
                    len(qpoints),
                    len(centres),
                ):
                    raise FcinvertError(f"{path}: {split}/spectra has the wrong shape")
        except (KeyError, ValueError, TypeError, OSError) as error:
            raise FcinvertError(f"{path}: malformed dataset ({error})") from None
        material = _text(handle.attrs.get("material", ""))
    if "train" not in sizes or sizes["train"] == 0:
        raise FcinvertError(f"{path}: the dataset has no training spectra")
    if len(selected) == 0 or selected.min() < 0 or selected.max() >= len(names):
        raise FcinvertError(f"{path}: 'selected' must index parameter_names")
    if reference.shape != (len(names),) or qpoints.ndim != 2 or qpoints.shape[1] != 3:
        raise FcinvertError(f"{path}: reference or qpoints has the wrong shape")
    return DatasetInfo(
        path, material, names, selected, reference, qpoints, grid, sizes, has_spectra
    )


def read_split(
    info: DatasetInfo, split: str, spectra: bool = True, limit: int | None = None
) -> tuple[np.ndarray | None, np.ndarray]:
    """(spectra (N, nq, nE) float32 or None, θ (N, P) float64) of one split, the first ``limit``."""
    if split not in info.sizes:
        raise FcinvertError(f"{info.path}: the dataset has no '{split}' split")
    count = info.sizes[split] if limit is None else min(limit, info.sizes[split])
    with h5py.File(info.path, "r") as handle:
        theta = np.asarray(handle[split]["theta"][:count], dtype=float)
        images = None
        if spectra:
            if not info.has_spectra:
                raise FcinvertError(f"{info.path}: no stored spectra (train with rendering)")
            images = np.asarray(handle[split]["spectra"][:count], dtype=np.float32)
    return images, theta


class ArraySpectra(Dataset):
    """In-memory pairs: spectrum (nq, nE) float32 1/meV and selected θ (K,) float32 eV/Å²."""

    def __init__(self, spectra: np.ndarray, targets: np.ndarray) -> None:
        self.spectra = torch.from_numpy(np.ascontiguousarray(spectra, dtype=np.float32))
        self.targets = torch.from_numpy(np.asarray(targets, dtype=np.float32))

    def __len__(self) -> int:
        return len(self.targets)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, torch.Tensor]:
        return self.spectra[index], self.targets[index]

    def arrays(self) -> tuple[np.ndarray, np.ndarray]:
        """All spectra (N, nq, nE) and targets (N, K), as numpy."""
        return self.spectra.numpy(), self.targets.numpy()


class RenderedSpectra(Dataset):
    """Pairs rendered on demand from full θ (N, P) by the fast model (no stored spectra).

    A DataLoader fetches a batch through ``__getitems__``: one batched eigen-solve and render.
    """

    def __init__(
        self, theta: np.ndarray, selected: np.ndarray, basis: DynamicsBasis, grid: EnergyGrid
    ) -> None:
        self.theta = np.asarray(theta, dtype=float)
        self.targets = torch.from_numpy(self.theta[:, selected].astype(np.float32))
        self.basis = basis
        self.grid = grid

    def __len__(self) -> int:
        return len(self.theta)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, torch.Tensor]:
        return self.__getitems__([index])[0]

    def __getitems__(self, indices: list[int]) -> list[tuple[torch.Tensor, torch.Tensor]]:
        images = render(self.basis.frequencies(self.theta[indices]), self.grid)
        return [(torch.from_numpy(images[i]), self.targets[j]) for i, j in enumerate(indices)]

    def arrays(self, chunk: int = 512) -> tuple[np.ndarray, np.ndarray]:
        """All spectra (N, nq, nE), rendered in chunks, and targets (N, K), as numpy."""
        parts = [
            render(self.basis.frequencies(self.theta[i : i + chunk]), self.grid)
            for i in range(0, len(self.theta), chunk)
        ]
        return np.concatenate(parts), self.targets.numpy()


class EpochShuffle(Sampler[int]):
    """A permutation of ``indices`` drawn from (seed, epoch): resuming repeats the same order.

    Lightning calls ``set_epoch`` before every epoch.
    """

    def __init__(self, indices: np.ndarray, seed: int) -> None:
        self.indices = np.asarray(indices)
        self.seed = seed
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __len__(self) -> int:
        return len(self.indices)

    def __iter__(self):
        order = np.random.default_rng([self.seed, self.epoch]).permutation(self.indices)
        return iter(order.tolist())


def split_indices(n: int, fraction: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """(train, validation) index arrays: a seeded random ``fraction`` (at least 1) validates."""
    if n < 2:
        raise FcinvertError(f"need at least 2 training spectra, got {n}")
    order = np.random.default_rng(seed).permutation(n)
    n_val = min(n - 1, max(1, round(fraction * n)))
    return np.sort(order[n_val:]), np.sort(order[:n_val])


def _text(value: object) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)
