"""Watching a measurement folder during an experiment: fold each new orientation, re-invert,
keep a history, stop at a target.

A file is read once it is complete: its size and modification time are the same at two
successive polls (a writer still appending changes them; one that writes a temporary and
renames it shows the file only when done). A SaveMD data file named ``*_data.<ext>`` waits
for its normalisation ``*_norm.<ext>``. A complete file that cannot be read is reported once
and skipped (read again only if it changes). Hidden files, temporaries (``*.tmp``,
``*.part``) and suffixes no reader takes are ignored.

Every update adds the new files' sums to the running fold (``RunningFold``), inverts the
folded spectrum (``LiveInversion``) and appends a ``HistoryEntry``. The stopping rule: every
determined parameter's σ at most ``target_std`` (eV/Å²) and/or the median width of the 5–95 %
dispersion band at most ``target_band`` (meV); both must hold when both are given.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import numpy as np

from fcinvert.data.accumulate import SUFFIXES, Geometry, RunningFold, read_file_sums
from fcinvert.errors import FcinvertError
from fcinvert.inversion.live import Estimate, LiveInversion

IGNORED_SUFFIXES = (".tmp", ".part", ".partial", ".swp", ".lock")
#: name endings of a SaveMD data/normalisation pair (MDNorm's two output workspaces)
DATA_TAG, NORM_TAG = "_data", "_norm"


@dataclass(frozen=True)
class Snapshot:
    """A file's size (bytes) and modification time (ns) at one poll."""

    size: int
    mtime: int


class FolderTracker:
    """Which files of ``folder`` are complete and not yet read (module docstring)."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.last: dict[Path, Snapshot] = {}
        self.read: set[Path] = set()
        self.damaged: dict[Path, Snapshot] = {}
        self.polls = 0

    def _listing(self) -> dict[Path, Snapshot]:
        if not self.folder.is_dir():
            raise FcinvertError(f"{self.folder}: not a folder")
        found = {}
        for path in self.folder.iterdir():
            name = path.name
            if name.startswith(".") or name.lower().endswith(IGNORED_SUFFIXES):
                continue
            if path.suffix.lower() not in SUFFIXES:
                continue
            try:
                stat = path.stat()
            except OSError:  # removed between the listing and the stat
                continue
            if path.is_file():
                found[path] = Snapshot(stat.st_size, stat.st_mtime_ns)
        return found

    def poll(self) -> list[tuple[Path, Path | None]]:
        """The files that became complete since the last poll, as (data, normalisation or
        None), in name order; call ``done`` or ``failed`` for each."""
        now = self._listing()
        self.polls += 1
        stable = {
            path
            for path, snap in now.items()
            if snap.size > 0 and self.last.get(path) == snap and self.damaged.get(path) != snap
        }
        self.last = now
        ready = []
        for path in sorted(stable - self.read):
            stem = path.stem
            if stem.endswith(NORM_TAG):
                continue  # read with its data file
            norm = None
            if stem.endswith(DATA_TAG):
                partner = path.with_name(stem[: -len(DATA_TAG)] + NORM_TAG + path.suffix)
                if partner not in stable:
                    continue  # its normalisation is not there, or not complete yet
                norm = partner
            ready.append((path, norm))
        return ready

    def done(self, path: Path, norm: Path | None) -> None:
        self.read.add(path)
        if norm is not None:
            self.read.add(norm)

    def failed(self, path: Path) -> None:
        """Remember a damaged file at its current state (retried only if it changes)."""
        self.damaged[path] = self.last[path]

    def pending(self) -> list[str]:
        """Names of files seen but not read (still being written, or waiting for a pair)."""
        return sorted(p.name for p in self.last if p not in self.read and p not in self.damaged)


@dataclass(frozen=True)
class Targets:
    """The stopping rule: σ (eV/Å²) of every determined parameter, median band width (meV);
    None: not used."""

    std: float | None = None
    band: float | None = None

    def reached(self, estimate: Estimate) -> bool:
        if self.std is None and self.band is None:
            return False
        ok = True
        if self.std is not None:
            determined = estimate.std[estimate.determined]
            ok &= determined.size > 0 and float(determined.max()) <= self.std
        if self.band is not None:
            ok &= estimate.band_width <= self.band
        return bool(ok)


@dataclass
class HistoryEntry:
    """One update: files folded so far (and the new ones), rotations, counts, acquisition
    time, the estimate and how long each step took (s)."""

    update: int
    time: str
    elapsed_s: float
    files: int
    new_files: list[str]
    psi_deg: list[float | None]
    counts: float | None
    measured_fraction: float
    estimate: Estimate
    fcspace_names: list[str]
    seconds: dict[str, float]
    reached: bool

    def as_dict(self) -> dict:
        e = self.estimate
        parameters = [
            {
                "name": name,
                "value": float(value),
                "std": float(std),
                "determined": bool(determined),
            }
            for name, value, std, determined in zip(
                self.fcspace_names, e.theta, e.std, e.determined, strict=True
            )
        ]
        determined_std = e.std[e.determined]
        return {
            "update": self.update,
            "time": self.time,
            "elapsed_s": round(self.elapsed_s, 3),
            "files": self.files,
            "new_files": self.new_files,
            "psi_deg": self.psi_deg,
            "counts": self.counts,
            "measured_fraction": self.measured_fraction,
            "mode": e.mode,
            "fit_quality": e.quality,
            "band_median_meV": e.band_width,
            "max_std_determined": float(determined_std.max()) if determined_std.size else None,
            "n_determined": int(e.determined.sum()),
            "parameters": parameters,
            "seconds": {k: round(v, 3) for k, v in self.seconds.items()},
            "target_reached": self.reached,
            "notes": e.notes,
        }


@dataclass
class WatchState:
    """Everything the page shows: the running fold, the latest estimate, the history, the
    files skipped (name → reason) and still pending, and whether it has stopped (and why)."""

    fold: RunningFold
    history: list[HistoryEntry] = field(default_factory=list)
    skipped: dict[str, str] = field(default_factory=dict)
    pending: list[str] = field(default_factory=list)
    stopped: str = ""

    @property
    def estimate(self) -> Estimate | None:
        return self.history[-1].estimate if self.history else None


class Watcher:
    """Polls ``folder`` and updates ``state`` (module docstring). ``message`` receives one
    line per event (a file skipped, an update, the target reached)."""

    def __init__(
        self,
        folder: Path,
        geometry: Geometry,
        inversion: LiveInversion,
        targets: Targets,
        message: Callable[[str], None],
    ) -> None:
        self.tracker = FolderTracker(folder)
        self.geometry = geometry
        self.inversion = inversion
        self.targets = targets
        self.message = message
        self.state = WatchState(RunningFold(geometry.material))
        self.started = time.perf_counter()

    def step(self) -> HistoryEntry | None:
        """One poll: fold the files that became complete, re-invert when any did. Returns the
        new history entry, or None when nothing new was folded."""
        began = time.perf_counter()
        fold = self.state.fold
        added = []
        for path, norm in self.tracker.poll():
            try:
                sums = read_file_sums(path, self.geometry, norm)
            except FcinvertError as error:
                self.tracker.failed(path)
                self.state.skipped[path.name] = str(error)
                self.message(f"skipped {path.name}: {error}")
                continue
            self.tracker.done(path, norm)
            fold.add(path.name, sums)
            added.append(path.name)
        self.state.pending = self.tracker.pending()
        if not added:
            return None
        folded = time.perf_counter()
        estimate = self.inversion.update(fold.spectrum(), f"{len(fold.files)} folded files")
        inverted = time.perf_counter()
        entry = HistoryEntry(
            update=len(self.state.history) + 1,
            time=datetime.now(UTC).isoformat(timespec="seconds"),
            elapsed_s=inverted - self.started,
            files=len(fold.files),
            new_files=added,
            psi_deg=list(fold.psi),
            counts=fold.counts,
            measured_fraction=float(np.mean(fold.measured)),
            estimate=estimate,
            fcspace_names=list(self.inversion.fcspace.names),
            seconds={"fold": folded - began, "invert": inverted - folded},
            reached=self.targets.reached(estimate),
        )
        self.state.history.append(entry)
        self.message(
            f"update {entry.update}: {entry.files} files, band {estimate.band_width:.3f} meV, "
            f"{int(estimate.determined.sum())} determined, {estimate.mode} inversion "
            f"{entry.seconds['invert']:.1f} s"
        )
        if entry.reached:
            self.state.stopped = "target reached: " + self.describe_targets()
            self.message(self.state.stopped)
        return entry

    def describe_targets(self) -> str:
        parts = []
        if self.targets.std is not None:
            parts.append(f"σ ≤ {self.targets.std:g} eV/Å² on every determined parameter")
        if self.targets.band is not None:
            parts.append(f"median dispersion band ≤ {self.targets.band:g} meV")
        return " and ".join(parts)
