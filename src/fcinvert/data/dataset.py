"""Stage I datasets: stable θ drawn from the training domain and their spectra, in one HDF5 file.

Generation runs in chunks of ``chunk_size`` samples. Chunk i of a split draws from its own
random stream, seeded by (seed, split, i), so the file is the same whatever the number of
workers or the order in which chunks finish; only the chunks in flight are held in memory
(at most two per worker). A worker also compresses its chunk (``fcinvert.data.lzf``, or zlib),
so the writer only stores finished HDF5 chunks. Chunks run on a dask ``distributed`` cluster:
a local one (threads by default: the Cholesky tests, eigen-solves, the numba renderer and
encoder release the GIL) or any running scheduler (``scheduler="tcp://host:8786"``);
``workers=0`` runs in this process without dask (on a busy 2-core machine, the fastest).

Layout (written atomically; the models read it)::

    / attrs: format="fcinvert-dataset", version=1, material, seed, chunk_size,
             fcinvert_version, created (ISO 8601, UTC), n_rejected, rejection_rate,
             spectra_kind ("fast", or "realistic" with its settings as JSON in "realistic":
             measurement-like spectra, NaN where unmeasured; see ``data.realistic``)
    /parameter_names (P,) utf-8;  /selected (K,) int64 indices into parameter_names
    /reference (P,) float64 eV/Å²: the value of every parameter that is not sampled
    /domain/low, /domain/high (K,) float64 eV/Å²; attrs: how the domain was made (JSON)
    /qpoints (nq, 3) float64 reduced;  /energy (nE,) float64 meV bin centres,
             attrs width, fwhm0, slope (meV, resolution FWHM = fwhm0 + slope·E)
    /train/theta (N, P) float64 eV/Å²;  /train/spectra (N, nq, nE) float32 1/meV, chunked
             by STORE_CHUNK spectra and compressed
    /test/theta, /test/spectra (same, N_test)
"""

from __future__ import annotations

import datetime
import json
import logging
import time
import zlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import h5py
import numpy as np

from fcinvert import __version__, validate
from fcinvert.data import lzf
from fcinvert.errors import FcinvertError
from fcinvert.iohelpers import atomic_path, file_sha256, open_hdf5
from fcinvert.labels.domain import (
    DEFAULT_K,
    DEGENERATE_HALF_WIDTH,
    EXPAND_ABOVE,
    EXPAND_BELOW,
    Domain,
    StableSampler,
    Toward,
    build_domain,
    load_ensemble,
    stability_check,
)
from fcinvert.labels.sensitivity import compute_sensitivity
from fcinvert.physics.fcspace import build_fcspace
from fcinvert.physics.material import EnergyGrid, Material, load_material
from fcinvert.physics.spectra import render

FORMAT = "fcinvert-dataset"
VERSION = 1
SPLITS = ("train", "test")
CHUNK_SIZE = 512
STORE_CHUNK = 16
COMPRESSIONS = ("lzf", "gzip", "none")
QUIET_CLUSTER = {
    "distributed.admin.tick.interval": "1s",
    "distributed.admin.system-monitor.interval": "2s",
}


@dataclass
class Chunk:
    """One generated chunk of a split, spectra already encoded for HDF5.

    theta: (n, P) eV/Å²; blocks: one (filter mask, stored bytes) per HDF5 chunk of
    ``rows`` spectra (the last one zero-padded); drawn: candidates drawn for the n.
    """

    split: str
    index: int
    theta: np.ndarray
    blocks: list[tuple[int, bytes]]
    drawn: int


@dataclass
class SpectrumGenerator:
    """What a worker needs to make any chunk (plain arrays only, so it pickles)."""

    sampler: StableSampler
    grid: EnergyGrid
    seed: int

    def spectra(self, split: str, index: int, size: int) -> tuple[np.ndarray, np.ndarray, int]:
        """Chunk ``index`` of ``split``: the first ``size`` stable draws of its own stream,
        as θ (size, P), spectra (size, nq, nE) float32 and the number of candidates drawn."""
        rng = np.random.default_rng([self.seed, SPLITS.index(split), index])
        draw = self.sampler.draw(size, rng)
        return draw.theta, render(draw.frequencies, self.grid), draw.drawn

    def chunk(self, split: str, index: int, size: int, rows: int, compression: str) -> Chunk:
        """The chunk with its spectra encoded in HDF5 chunks of ``rows`` spectra."""
        theta, spectra, drawn = self.spectra(split, index, size)
        blocks = [
            encode_block(spectra[i : i + rows], rows, compression) for i in range(0, size, rows)
        ]
        return Chunk(split, index, theta, blocks, drawn)


def encode_block(spectra: np.ndarray, rows: int, compression: str) -> tuple[int, bytes]:
    """(filter mask, bytes) of one HDF5 chunk holding ``spectra`` (≤ rows, zero-padded).

    lzf: the zero-run encoder (``fcinvert.data.lzf``); gzip: zlib level 1 (the deflate
    filter's own format); a block that does not shrink is stored raw with the filter skipped.
    """
    if len(spectra) < rows:
        padding = np.zeros((rows - len(spectra), *spectra.shape[1:]), dtype=np.float32)
        spectra = np.concatenate([spectra, padding])
    raw = np.ascontiguousarray(spectra, dtype=np.float32)
    if compression == "none":
        return 0, raw.tobytes()
    packed = lzf.compress(raw) if compression == "lzf" else zlib.compress(raw.tobytes(), 1)
    if packed is None or len(packed) >= raw.nbytes:
        return 1, raw.tobytes()
    return 0, packed


def _make_chunk(
    generator: SpectrumGenerator, split: str, index: int, size: int, rows: int, compression: str
) -> Chunk:
    return generator.chunk(split, index, size, rows, compression)


def prepare_generator(
    material: Material,
    seed: int,
    k: int = DEFAULT_K,
    expand_below: float = EXPAND_BELOW,
    expand_above: float = EXPAND_ABOVE,
    toward: Toward = "magnitude",
    half_width: float = DEGENERATE_HALF_WIDTH,
) -> SpectrumGenerator:
    """Sensitivity → the K most influential parameters → their domain → a generator.

    The selection is computed here from the material's ensemble every time (it takes about
    a second), so it always follows the current ``ensemble.json`` and ``reference.json``.
    """
    fcspace = build_fcspace(material)
    options = (expand_below, expand_above, toward, half_width)
    selected = compute_sensitivity(material, fcspace, *options).select(k)
    members, ensemble = load_ensemble(material, fcspace)
    reference = fcspace.reference_theta(material)
    domain = build_domain(material.name, fcspace.names, ensemble, reference, selected, *options)
    domain.info["members"] = members
    sampler = StableSampler(domain, stability_check(material, fcspace))
    return SpectrumGenerator(sampler, material.energy, seed)


@dataclass
class DatasetSummary:
    """What ``generate_dataset`` did: file, sizes, rejections, wall time (s)."""

    path: Path
    sizes: dict[str, int]
    drawn: int
    rejected: int
    wall_s: float
    workers: int

    @property
    def rejection_rate(self) -> float:
        return self.rejected / self.drawn if self.drawn else 0.0


def generate_dataset(
    material: str | Path | Material,
    out: str | Path,
    n_train: int,
    n_test: int = 0,
    seed: int = 0,
    k: int = DEFAULT_K,
    workers: int = 2,
    scheduler: str | None = None,
    processes: bool = False,
    chunk_size: int = CHUNK_SIZE,
    compression: str = "lzf",
    progress: Callable[[int], None] | None = None,
    generator: SpectrumGenerator | None = None,
) -> DatasetSummary:
    """Write a dataset of ``n_train`` + ``n_test`` stable samples to ``out`` (HDF5).

    workers: local dask workers (0: no dask, this process); scheduler: address of a running
    dask scheduler (then ``workers`` is ignored); processes: local workers as processes
    instead of threads; progress: called with the number of samples each finished chunk adds.
    ``generator`` replaces the one built from the material, ``k`` and ``seed`` (domain
    options, tests); the file records the generator's seed.
    """
    start = time.perf_counter()
    if n_train < 1 or n_test < 0:
        raise FcinvertError(f"need n ≥ 1 training and ≥ 0 test samples, not {n_train}, {n_test}")
    if chunk_size < 1 or chunk_size % STORE_CHUNK:
        raise FcinvertError(f"chunk size must be a positive multiple of {STORE_CHUNK}")
    if compression not in COMPRESSIONS:
        raise FcinvertError(f"compression must be one of {', '.join(COMPRESSIONS)}")
    if not isinstance(material, Material):
        material = load_material(material)
    if generator is None:
        generator = prepare_generator(material, seed, k)
    sizes = {"train": n_train, "test": n_test}
    rows = {split: max(1, min(STORE_CHUNK, n)) for split, n in sizes.items()}
    tasks = [
        (split, i, min(chunk_size, sizes[split] - i * chunk_size), rows[split], compression)
        for split in SPLITS
        for i in range(-(-sizes[split] // chunk_size))
    ]
    drawn = 0
    out = Path(out)
    with atomic_path(out) as temporary, h5py.File(temporary, "w") as handle:
        _write_header(handle, material.name, generator, sizes, chunk_size, compression)
        chunks, used = _run(generator, tasks, workers, scheduler, processes)
        try:
            for chunk in chunks:
                first = chunk.index * chunk_size
                group = handle[chunk.split]
                group["theta"][first : first + len(chunk.theta)] = chunk.theta
                for b, (mask, payload) in enumerate(chunk.blocks):
                    offset = (first + b * rows[chunk.split], 0, 0)
                    group["spectra"].id.write_direct_chunk(offset, payload, filter_mask=mask)
                drawn += chunk.drawn
                if progress is not None:
                    progress(len(chunk.theta))
        finally:
            chunks.close()
        rejected = drawn - n_train - n_test
        handle.attrs["n_rejected"] = rejected
        handle.attrs["rejection_rate"] = rejected / drawn
    return DatasetSummary(out, sizes, drawn, rejected, time.perf_counter() - start, used)


def _write_header(
    handle: h5py.File,
    material: str,
    generator: SpectrumGenerator,
    sizes: dict[str, int],
    chunk_size: int,
    compression: str,
) -> None:
    domain: Domain = generator.sampler.domain
    grid = generator.grid
    qpoints = generator.sampler.check.path.qpoints
    attrs = {
        "format": FORMAT,
        "version": VERSION,
        "material": material,
        "seed": generator.seed,
        "chunk_size": chunk_size,
        "fcinvert_version": __version__,
        "created": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
    }
    handle.attrs.update(attrs)
    extra = getattr(generator, "header_attrs", None)  # e.g. the realistic generator's settings
    handle.attrs.update(extra() if extra is not None else {"spectra_kind": "fast"})
    strings = h5py.string_dtype("utf-8")
    handle.create_dataset(
        "parameter_names", data=np.array(domain.names, dtype=object), dtype=strings
    )
    handle["selected"] = np.asarray(domain.selected, dtype=np.int64)
    handle["reference"] = np.asarray(domain.reference, dtype=float)
    group = handle.create_group("domain")
    group["low"] = domain.low
    group["high"] = domain.high
    group.attrs["info"] = json.dumps(domain.info, ensure_ascii=False)
    handle["qpoints"] = qpoints
    energy = handle.create_dataset("energy", data=grid.centres)
    energy.attrs.update({"width": grid.width, "fwhm0": grid.fwhm0, "slope": grid.slope})
    shape = (len(qpoints), len(grid.centres))
    filters = {} if compression == "none" else {"compression": compression}
    for split in SPLITS:
        group = handle.create_group(split)
        group.create_dataset("theta", shape=(sizes[split], len(domain.names)), dtype=float)
        layout = {"chunks": (min(STORE_CHUNK, sizes[split]), *shape), **filters}
        group.create_dataset(
            "spectra",
            shape=(sizes[split], *shape),
            dtype=np.float32,
            **(layout if sizes[split] else {}),
        )


def _run(
    generator: SpectrumGenerator,
    tasks: list[tuple],
    workers: int,
    scheduler: str | None,
    processes: bool,
) -> tuple[Iterator[Chunk], int]:
    """Chunks as they finish, and the number of workers that make them."""
    if scheduler is None and workers <= 0:
        return (generator.chunk(*task) for task in tasks), 0
    from distributed import Client, LocalCluster

    if scheduler is not None:
        try:
            client = Client(scheduler, timeout="10s")
        except OSError as error:
            raise FcinvertError(f"{scheduler}: cannot reach the dask scheduler ({error})") from None
    else:
        import dask

        # no memory manager (this loop bounds memory itself) and slower housekeeping ticks:
        # on a busy 2-core machine they cost a quarter of the run
        with dask.config.set(QUIET_CLUSTER):
            cluster = LocalCluster(
                n_workers=workers,
                threads_per_worker=1,
                processes=processes,
                memory_limit=0,
                dashboard_address=None,
                silence_logs=logging.ERROR,
            )
        client = Client(cluster)
    size = max(1, len(client.scheduler_info()["workers"]))
    return _stream(client, generator, tasks, 2 * size), size


def _stream(
    client: object, generator: SpectrumGenerator, tasks: list[tuple], window: int
) -> Iterator[Chunk]:
    """Submit at most ``window`` chunks at a time; yield each as it finishes; close the client
    (and a local cluster) at the end."""
    from distributed import as_completed

    try:
        remote = client.scatter(generator, broadcast=True)
        queue = iter(tasks)
        running = as_completed()
        for task in queue:
            running.add(client.submit(_make_chunk, remote, *task, pure=False))
            if running.count() >= window:
                break
        for future in running:
            chunk = future.result()
            future.release()
            following = next(queue, None)
            if following is not None:
                running.add(client.submit(_make_chunk, remote, *following, pure=False))
            yield chunk
    finally:
        cluster = getattr(client, "cluster", None)
        client.close()
        if cluster is not None:
            cluster.close()


@dataclass(frozen=True)
class StoredDataset:
    """A validated dataset file's metadata (spectra stay on disk).

    parameter_names: (P,); selected: (K,) indices; reference: (P,) eV/Å²; low, high: (K,) eV/Å²
    domain bounds; qpoints: (nq, 3) reduced; energy: the spectra's bins and resolution;
    sizes: split → number of samples.
    """

    path: Path
    material: str
    seed: int
    parameter_names: list[str]
    selected: np.ndarray
    reference: np.ndarray
    low: np.ndarray
    high: np.ndarray
    qpoints: np.ndarray
    energy: EnergyGrid
    sizes: dict[str, int]
    n_rejected: int
    rejection_rate: float
    #: "fast" (the paper's model) or "realistic" (``data.realistic``: measurement-like)
    kind: str = "fast"

    @property
    def selected_names(self) -> list[str]:
        return [self.parameter_names[i] for i in self.selected]

    def record(self) -> dict:
        """What identifies this dataset on any machine, as a trained bundle records it: the
        file name and SHA-256 of its bytes, its kind, generator seed and split sizes, and the
        domain (low, high: (K,) eV/Å²) of its selected parameters."""
        return {
            "file": self.path.name,
            "sha256": file_sha256(self.path),
            "kind": self.kind,
            "seed": self.seed,
            "sizes": dict(self.sizes),
            "low": self.low.tolist(),
            "high": self.high.tolist(),
        }

    def theta(self, split: str) -> np.ndarray:
        """θ (N, P) eV/Å² of a split."""
        with h5py.File(self.path, "r") as handle:
            return np.asarray(handle[self._split(split)]["theta"][()], dtype=float)

    def spectra(self, split: str, rows: slice = slice(None)) -> np.ndarray:
        """Spectra (n, nq, nE) float32 1/meV of a split, ``rows`` of them."""
        with h5py.File(self.path, "r") as handle:
            return np.asarray(handle[self._split(split)]["spectra"][rows], dtype=np.float32)

    def _split(self, split: str) -> str:
        if split not in self.sizes:
            raise FcinvertError(f"{self.path}: no split '{split}' (it has {', '.join(self.sizes)})")
        return split


@validate.reads_file("dataset file")
def read_dataset(path: str | Path) -> StoredDataset:
    """Open and validate a dataset file; any problem is one FcinvertError line."""
    path = Path(path)
    with open_hdf5(path, "dataset file") as handle:
        kind = handle.attrs.get("format", "")
        kind = kind.decode() if isinstance(kind, bytes) else str(kind)
        if kind != FORMAT:
            raise FcinvertError(f"{path}: not an fcinvert dataset (no format='{FORMAT}')")
        if int(handle.attrs.get("version", -1)) != VERSION:
            raise FcinvertError(
                f"{path}: dataset version {handle.attrs.get('version')} "
                f"(this fcinvert reads {VERSION})"
            )
        try:
            stored = _read_metadata(path, handle)
            _check_layout(path, handle, stored)
        except (KeyError, ValueError, TypeError, OSError) as error:
            reason = str(error).splitlines()[0] if str(error) else type(error).__name__
            raise FcinvertError(f"{path}: damaged or incomplete dataset ({reason})") from None
    return stored


def _read_metadata(path: Path, handle: h5py.File) -> StoredDataset:
    energy = handle["energy"]
    grid = EnergyGrid(
        np.asarray(energy[()], dtype=float),
        float(energy.attrs["width"]),
        float(energy.attrs["fwhm0"]),
        float(energy.attrs["slope"]),
    )
    names = [n.decode() if isinstance(n, bytes) else str(n) for n in handle["parameter_names"][()]]
    return StoredDataset(
        path=path,
        material=str(handle.attrs["material"]),
        seed=int(handle.attrs["seed"]),
        parameter_names=names,
        selected=np.asarray(handle["selected"][()], dtype=np.int64),
        reference=np.asarray(handle["reference"][()], dtype=float),
        low=np.asarray(handle["domain/low"][()], dtype=float),
        high=np.asarray(handle["domain/high"][()], dtype=float),
        qpoints=np.asarray(handle["qpoints"][()], dtype=float),
        energy=grid,
        sizes={s: int(handle[s]["theta"].shape[0]) for s in SPLITS},
        n_rejected=int(handle.attrs["n_rejected"]),
        rejection_rate=float(handle.attrs["rejection_rate"]),
        kind=str(handle.attrs.get("spectra_kind", "fast")),
    )


def _check_layout(path: Path, handle: h5py.File, stored: StoredDataset) -> None:
    """Shapes agree with each other; every spectra chunk is present (a write that stopped
    midway leaves some out)."""
    p, k = len(stored.parameter_names), len(stored.selected)
    nq, n_energy = len(stored.qpoints), len(stored.energy.centres)
    problems = []
    if stored.reference.shape != (p,) or stored.qpoints.shape != (nq, 3):
        problems.append("reference or qpoints has the wrong shape")
    if k == 0 or stored.selected.min() < 0 or stored.selected.max() >= p:
        problems.append("'selected' does not index parameter_names")
    if stored.low.shape != (k,) or stored.high.shape != (k,):
        problems.append("domain bounds do not match 'selected'")
    for split, n in stored.sizes.items():
        spectra = handle[split]["spectra"]
        if handle[split]["theta"].shape != (n, p):
            problems.append(f"{split}/theta is not ({n}, {p})")
        if spectra.shape != (n, nq, n_energy) or spectra.dtype != np.float32:
            problems.append(f"{split}/spectra is not float32 ({n}, {nq}, {n_energy})")
        elif spectra.chunks is not None and n:
            expected = -(-n // spectra.chunks[0])
            if spectra.id.get_num_chunks() != expected:
                problems.append(
                    f"{split}/spectra holds {spectra.id.get_num_chunks()} of {expected} chunks"
                )
    if stored.sizes["train"] == 0:
        problems.append("no training samples")
    if problems:
        raise FcinvertError(f"{path}: wrong dataset layout: {'; '.join(problems)}")
