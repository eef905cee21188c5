"""The resume rules of a training run: a run killed part-way resumes from its checkpoints only
with the same settings and data; a finished bundle trains further only with its checkpoints and
more epochs; a checkpoint is loaded only if it holds plain tensors and numbers."""

from __future__ import annotations

import json
import warnings
from pathlib import Path

import torch

from fcinvert.data.dataset import StoredDataset
from fcinvert.errors import FcinvertError
from fcinvert.iohelpers import atomic_write_text
from fcinvert.models.training.config import STAGES, WORK, TrainConfig, resolve_input_rule

#: settings that may change between a run and its resumption or continuation
RESUMABLE_CHANGES = {"epochs", "regressor_epochs", "patience", "accelerator", "checkpoint_every"}


def check_resumable(path: Path, config: TrainConfig, info: StoredDataset) -> None:
    """Record the run's settings and data; an interrupted run resumes only with the same."""
    current = {**config.model_dump(mode="json"), "data": str(info.path.resolve())}
    if path.exists():
        previous = json.loads(path.read_text())
        if previous.get("input_rule", "auto") == "auto":  # recorded before it was resolved
            was = config.model_copy(
                update={"input_rule": "auto", "mask_channel": previous.get("mask_channel", False)}
            )
            resolved = resolve_input_rule(was, info)
            previous["input_rule"] = resolved.input_rule
            previous["mask_channel"] = resolved.mask_channel
        if previous.get("vae_target", "auto") == "auto":
            was = config.model_copy(update={"vae_target": "auto"})
            previous["vae_target"] = resolve_input_rule(was, info).vae_target
        changed = {k for k in current if current[k] != previous.get(k)} - RESUMABLE_CHANGES
        if changed:
            raise FcinvertError(
                f"{path.parent.parent}: holds an interrupted run with other settings "
                f"({', '.join(sorted(changed))}); resume it unchanged or choose another --out"
            )
    path.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_text(path, json.dumps(current, indent=1) + "\n")


def check_continuable(out: Path, config: TrainConfig) -> None:
    """A folder holding a finished bundle trains further only with its checkpoints and with
    more epochs asked for than a stage has had."""
    work = out / WORK
    if not (work / "train_config.json").exists():
        raise FcinvertError(
            f"{out}: already holds a trained model without its checkpoints; choose another --out"
        )
    stages = STAGES[config.architecture]
    epochs = {"regressor": config.regressor_epochs}
    if not any(stage_pending(work / s, epochs.get(s, config.epochs)) for s in stages):
        raise FcinvertError(
            f"{out}: already trained as far as asked (stopped early, or no more epochs than "
            "before); raise --epochs to train further or choose another --out"
        )


def stage_pending(folder: Path, epochs: int) -> bool:
    """Whether a stage still has epochs to train: never finished, or finished short of
    ``epochs`` without early stopping (an adopted encoder is never trained further)."""
    done = folder / "done.json"
    if not done.exists():
        return True
    summary = json.loads(done.read_text())
    if "encoder_from" in summary:
        return False
    return not summary["stopped_early"] and summary["epochs"] < epochs


def latest_checkpoint(folder: Path) -> Path | None:
    found = [p for p in (folder / "last.ckpt", folder / "steps.ckpt") if p.exists()]
    return max(found, key=lambda p: p.stat().st_mtime) if found else None


def check_checkpoint(path: Path) -> None:
    """Refuse, as one line, a checkpoint that is not plain tensors and numbers (a pickle of
    arbitrary objects is never loaded) or that is damaged."""
    try:
        with warnings.catch_warnings():  # a foreign pickle protocol warns before it is refused
            warnings.simplefilter("ignore")
            torch.load(path, map_location="cpu", weights_only=True)
    except Exception as error:  # UnpicklingError, a damaged zip, … : all the same to a user
        why = (str(error).strip().splitlines() or [type(error).__name__])[0][:120]
        raise FcinvertError(
            f"{path}: not a checkpoint this run can resume ({why}); delete it to restart the stage"
        ) from None
