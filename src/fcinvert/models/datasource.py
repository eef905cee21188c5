"""Training data for the models, from a Stage I dataset file (``fcinvert.data.dataset``).

Two sources: the stored spectra, read into memory once (10 000 Ge spectra are 0.8 GB, and a
random batch from memory costs nothing next to a training step); or spectra rendered on the fly
(``RenderedSpectra`` of ``fcinvert.data.torch_datasets``): fresh stable θ drawn from the
dataset's own domain for every item, so a file without useful spectra (another resolution, or
none) still trains a model. Validation and test always use the stored spectra.
"""

from __future__ import annotations

import numpy as np
import torch
from torch.utils.data import Dataset, Sampler

from fcinvert import validate
from fcinvert.data.dataset import SpectrumGenerator, StoredDataset
from fcinvert.data.torch_datasets import RenderedSpectra
from fcinvert.errors import FcinvertError
from fcinvert.labels.domain import Domain, StableSampler, stability_check
from fcinvert.physics.fcspace import build_fcspace
from fcinvert.physics.material import load_material


class ArraySpectra(Dataset):
    """In-memory pairs: spectrum (nq, nE) float32 1/meV and selected θ (K,) float32 eV/Å²."""

    def __init__(self, spectra: np.ndarray, targets: np.ndarray) -> None:
        self.spectra = torch.from_numpy(np.ascontiguousarray(spectra, dtype=np.float32))
        self.targets = torch.from_numpy(np.asarray(targets, dtype=np.float32))

    @classmethod
    def read(cls, stored: StoredDataset, split: str, limit: int | None = None) -> ArraySpectra:
        """The first ``limit`` (default all) samples of a split."""
        count = stored.sizes.get(split, 0) if limit is None else limit
        try:
            spectra = stored.spectra(split, slice(0, count))
            theta = stored.theta(split)[:count]
        except validate.DAMAGE as error:  # a corrupt chunk
            raise FcinvertError(
                f"{stored.path}: damaged {split} data ({validate.why(error)})"
            ) from None
        check_finite(spectra, theta[:, stored.selected], f"{stored.path}: {split}")
        return cls(spectra, theta[:, stored.selected])

    def __len__(self) -> int:
        return len(self.targets)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, torch.Tensor]:
        return self.spectra[index], self.targets[index]


def check_finite(spectra: np.ndarray, targets: np.ndarray, where: str) -> None:
    """Refuse data a network cannot learn from: a spectrum (nq, nE) with no finite pixel (NaN
    marks unmeasured pixels; all of them unmeasured is nothing), ±inf, or a non-finite θ."""
    if np.any(np.isinf(spectra)):
        raise FcinvertError(f"{where}: spectra hold ±inf (mark unmeasured pixels NaN)")
    empty = ~np.isfinite(spectra).reshape(len(spectra), -1).any(axis=1)
    if np.any(empty):
        raise FcinvertError(
            f"{where}: {int(empty.sum())} of {len(spectra)} spectra have no finite pixel "
            f"(the first: #{int(np.argmax(empty))}); nothing to learn from"
        )
    if not np.all(np.isfinite(targets)):
        raise FcinvertError(f"{where}: θ holds non-finite values")


def rendered(stored: StoredDataset, length: int, seed: int) -> RenderedSpectra:
    """``length`` spectra drawn and rendered on demand from the dataset's domain and grid.

    Needs the dataset's q-points to be its material's path (the stable sampler renders there).
    """
    material = load_material(stored.material)
    fcspace = build_fcspace(material)
    if fcspace.names != stored.parameter_names:
        raise FcinvertError(f"{stored.path}: its parameters are not those of '{stored.material}'")
    path = material.path.qpoints
    if stored.qpoints.shape != path.shape or not np.allclose(stored.qpoints, path, atol=1e-9):
        raise FcinvertError(
            f"{stored.path}: rendering needs spectra on the material's path; these are not"
        )
    domain = Domain(
        stored.material,
        stored.parameter_names,
        stored.reference,
        stored.selected,
        stored.low,
        stored.high,
    )
    sampler = StableSampler(domain, stability_check(material, fcspace))
    return RenderedSpectra(SpectrumGenerator(sampler, stored.energy, seed), length)


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
