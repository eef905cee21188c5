"""Lightning callbacks and settings of a training stage: the record of its best weights, wall
time and per-epoch log; checkpoints written whole or not at all; Lightning kept quiet."""

from __future__ import annotations

import contextlib
import csv
import logging
import math
import os
import time
import warnings
from collections.abc import Iterator
from pathlib import Path

import lightning as L
from lightning.pytorch.callbacks import Callback, ModelCheckpoint
from safetensors.torch import save_file

from fcinvert.iohelpers import atomic_path

#: Lightning warnings about things done on purpose: data in memory (no workers needed), the
#: frozen encoder in eval mode, resuming into a checkpoint folder, deterministic fallbacks
QUIET = (
    ".*does not have many workers.*",
    ".*LeafSpec.*",
    ".*deterministic.*",
    ".*module\\(s\\) in eval mode.*",
    ".*exists and is not empty.*",
)


class StageRecord(Callback):
    """Keeps the best weights (safetensors), the wall time and the per-epoch CSV log of a stage;
    its state is part of the checkpoint, so all three survive a kill and resume."""

    def __init__(self, folder: Path, log_file: Path) -> None:
        self.folder = folder
        self.log_file = log_file
        self.best = math.inf
        self.best_epoch = -1
        self.elapsed = 0.0
        self.started_at_epoch = 0
        self._clock = 0.0

    def state_dict(self) -> dict:
        return {"best": self.best, "best_epoch": self.best_epoch, "elapsed": self.elapsed}

    def load_state_dict(self, state: dict) -> None:
        self.best, self.best_epoch = float(state["best"]), int(state["best_epoch"])
        self.elapsed = float(state["elapsed"])

    def on_train_start(self, trainer, module) -> None:
        self.started_at_epoch = trainer.current_epoch
        self._clock = time.perf_counter()  # a resume mid-epoch skips on_train_epoch_start
        if self.log_file.exists():  # drop epochs the checkpoint does not hold (killed mid-way)
            with self.log_file.open(newline="") as handle:
                rows = [
                    r for r in csv.DictReader(handle) if int(r["epoch"]) < trainer.current_epoch
                ]
            self._write(rows, "w")

    def on_train_epoch_start(self, trainer, module) -> None:
        self._clock = time.perf_counter()

    def on_validation_end(self, trainer, module) -> None:
        if trainer.sanity_checking:
            return
        value = float(trainer.callback_metrics["val_loss"])
        if value < self.best:
            self.best, self.best_epoch = value, trainer.current_epoch
            state = {
                k: v.detach().cpu().contiguous() for k, v in module.network.state_dict().items()
            }
            with atomic_path(self.folder / "best.safetensors") as temporary:
                save_file(state, str(temporary))

    def on_train_epoch_end(self, trainer, module) -> None:
        self.elapsed += time.perf_counter() - self._clock
        metrics = {k: float(v) for k, v in trainer.callback_metrics.items()}
        row = {
            "epoch": trainer.current_epoch,
            "step": trainer.global_step,
            "lr": trainer.optimizers[0].param_groups[0]["lr"],
            "elapsed_s": round(self.elapsed, 3),
            **{k: metrics[k] for k in sorted(metrics)},
        }
        self._write([row], "a")

    def _write(self, rows: list[dict], mode: str) -> None:
        fresh = mode == "w" or not self.log_file.exists()
        if not rows and not fresh:
            return
        fields = list(rows[0]) if rows else ["epoch"]
        with self.log_file.open("w" if fresh else "a", newline="") as handle:
            writer = csv.DictWriter(handle, fieldnames=fields, extrasaction="ignore")
            if fresh:
                writer.writeheader()
            writer.writerows(rows)


class AtomicCheckpoint(ModelCheckpoint):
    """A ModelCheckpoint whose file appears whole or not at all (written beside, then renamed):
    a kill while saving leaves the previous checkpoint intact."""

    def _save_checkpoint(self, trainer: L.Trainer, filepath: str) -> None:
        target = Path(filepath)
        temporary = target.with_name(f".{target.name}.partial")
        trainer.save_checkpoint(temporary, self.save_weights_only)
        if trainer.is_global_zero:
            os.replace(temporary, target)
        self._last_global_step_saved = trainer.global_step
        self._last_checkpoint_saved = filepath


@contextlib.contextmanager
def quiet_lightning() -> Iterator[None]:
    """Silence Lightning's start-up chatter and the warnings that do not apply here."""
    log = logging.getLogger("lightning.pytorch")
    level = log.level
    log.setLevel(logging.WARNING)
    try:
        with warnings.catch_warnings():
            for pattern in QUIET:
                warnings.filterwarnings("ignore", pattern)
            yield
    finally:
        log.setLevel(level)
