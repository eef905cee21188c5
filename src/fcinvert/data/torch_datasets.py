"""torch Datasets over Stage I data: a dataset file read lazily, or spectra rendered on demand.

Both yield (spectrum (nq, nE) float32 1/meV, target (K,) float32 eV/Å² = the selected θ).
Both define ``__getitems__`` so a DataLoader fetches a batch in one call.
"""

from __future__ import annotations

import os
from pathlib import Path

import h5py
import numpy as np
import torch
from torch.utils.data import Dataset

from fcinvert.data.dataset import SpectrumGenerator, read_dataset
from fcinvert.physics.spectra import render

#: HDF5 chunk cache per open file: many compressed chunks stay decoded between reads.
CHUNK_CACHE_BYTES = 256 * 2**20
#: Stream index of on-the-fly samples (dataset files use 0 = train and 1 = test).
RENDERED_STREAM = 2


class HDF5Spectra(Dataset):
    """One split of a dataset file, spectra read from disk on demand.

    The file is validated on construction and opened lazily in each process that reads (so a
    DataLoader's workers each get their own handle); θ is small and held in memory.
    """

    def __init__(self, path: str | Path, split: str = "train") -> None:
        self.info = read_dataset(path)
        self.split = split
        self.theta = self.info.theta(split)  # (N, P) eV/Å²
        self.targets = torch.from_numpy(self.theta[:, self.info.selected].astype(np.float32))
        self._handle: h5py.File | None = None
        self._pid: int | None = None

    def __len__(self) -> int:
        return len(self.targets)

    def _spectra(self) -> h5py.Dataset:
        if self._handle is None or self._pid != os.getpid():
            self._handle = h5py.File(self.info.path, "r", rdcc_nbytes=CHUNK_CACHE_BYTES)
            self._pid = os.getpid()
        return self._handle[self.split]["spectra"]

    def __getitem__(self, index: int) -> tuple[torch.Tensor, torch.Tensor]:
        index = range(len(self))[index]  # negative indices and bounds as for a list
        return torch.from_numpy(self._spectra()[index]), self.targets[index]

    def __getitems__(self, indices: list[int]) -> list[tuple[torch.Tensor, torch.Tensor]]:
        rows = np.asarray([range(len(self))[i] for i in indices], dtype=np.int64)
        unique, inverse = np.unique(rows, return_inverse=True)
        block = self._spectra()[unique]  # h5py reads increasing indices in one call
        return [
            (torch.from_numpy(block[j]), self.targets[r])
            for j, r in zip(inverse, rows, strict=True)
        ]

    def __getstate__(self) -> dict:
        state = dict(self.__dict__)
        state["_handle"], state["_pid"] = None, None
        return state

    def close(self) -> None:
        if self._handle is not None:
            self._handle.close()
            self._handle = None


class RenderedSpectra(Dataset):
    """``length`` fresh samples of a generator's domain, rendered when asked for.

    Item i is the first stable draw of its own stream, seeded by (generator seed, 2, i), and is
    rendered on its own: the same whether fetched alone, in a batch, or in another process.
    """

    def __init__(self, generator: SpectrumGenerator, length: int) -> None:
        self.generator = generator
        self.length = length
        self.selected = generator.sampler.domain.selected

    def __len__(self) -> int:
        return self.length

    def theta(self, indices: list[int]) -> tuple[np.ndarray, np.ndarray]:
        """θ (B, P) eV/Å² and path frequencies (B, nq, nb) meV of items ``indices``."""
        sampler = self.generator.sampler
        streams = [
            np.random.default_rng([self.generator.seed, RENDERED_STREAM, i]) for i in indices
        ]
        path = sampler.check.path
        theta = np.empty((len(indices), len(sampler.domain.names)))
        frequencies = np.empty((len(indices), len(path.qpoints), path.n_branches))
        waiting = np.arange(len(indices))
        while len(waiting):
            candidates = np.concatenate([sampler.domain.sample(streams[i], 1) for i in waiting])
            stable, omega = sampler.screen(candidates)
            theta[waiting[stable]] = candidates[stable]
            frequencies[waiting[stable]] = omega
            waiting = np.delete(waiting, stable)
        return theta, frequencies

    def __getitems__(self, indices: list[int]) -> list[tuple[torch.Tensor, torch.Tensor]]:
        rows = [range(self.length)[i] for i in indices]
        theta, frequencies = self.theta(rows)
        targets = torch.from_numpy(theta[:, self.selected].astype(np.float32))
        return [
            (torch.from_numpy(render(omega, self.generator.grid)), target)
            for omega, target in zip(frequencies, targets, strict=True)
        ]

    def __getitem__(self, index: int) -> tuple[torch.Tensor, torch.Tensor]:
        return self.__getitems__([index])[0]
