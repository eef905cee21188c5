"""The inversion result a user keeps: one JSON file and the phonopy files of the force constants.

JSON (format ``fcinvert-inversion``, version 2): for every parameter its ``name``, reported
``value``, ``std``, ``interval_5_95``, ``determined`` with a ``reason``, ``source`` (refined,
inferred or reference), and the ML and refined estimates each with their σ where they exist;
the dispersion on the input's q-points with its 5–95 % band (``frequencies_meV``,
``frequencies_low_meV``, ``frequencies_high_meV``, nq × branches in the same order); the
refinement's minima; notes; the paths of the exported phonopy files (POSCAR, FORCE_CONSTANTS,
phonopy_disp.yaml, phonopy.yaml). ``InversionFile`` is its schema, field by field
(``InversionFile.model_json_schema()``; docs/schemas/inversion.schema.json).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Literal

import numpy as np
from pydantic import BaseModel, ConfigDict

from fcinvert import __version__
from fcinvert.inversion.pipeline import Inference, ml_spread
from fcinvert.inversion.resample import Coverage
from fcinvert.iohelpers import atomic_write_text
from fcinvert.physics.export import write_phonopy_files
from fcinvert.physics.fcspace import UNIT

RESULT_FORMAT = "fcinvert-inversion"
RESULT_VERSION = 2


class _Part(BaseModel):
    model_config = ConfigDict(extra="forbid")


class Estimate(_Part):
    """One estimate of a parameter (eV/Å²) with its σ, None where it has none."""

    value: float
    std: float | None


class MLEstimate(Estimate):
    """The model's estimate; ``inferred``: whether the model predicts this parameter (else it is
    the ensemble reference)."""

    inferred: bool


class ParameterRow(_Part):
    """A parameter: the reported value (eV/Å²), σ, 5–95 % interval, whether the data (or the
    model) determine it and why, where the value comes from, and the ML and refined estimates
    when there are."""

    name: str
    value: float
    std: float | None
    interval_5_95: tuple[float, float] | None
    determined: bool
    reason: str
    source: Literal["refined", "inferred", "reference"]
    ml: MLEstimate | None = None
    refined: Estimate | None = None


class ModelUsed(_Part):
    """The model bundle that inferred θ: its folder as given or its shipped name, architecture,
    ImageNet or fine-tuning source (ResNet), latent samples (VAE), the seed and its test R² by
    parameter name."""

    path: str
    architecture: Literal["vae", "resnet"]
    pretrained: str | None
    latent_samples: int | None
    seed: int
    test_r2: dict[str, float] | None


class Minimum(_Part):
    """A distinct minimum of the refinement: the starts that reached it, its dispersion's RMS
    distance (meV) and separation (σ) from the best (None for the best), its misfit, and whether
    it fits almost as well as the best."""

    starts: list[str]
    dispersion_distance_meV: float
    separation_sigma: float | None
    misfit: float
    ambiguous: bool


class Refinement(_Part):
    """The multi-start refinement: its intensity model, forward models run, seconds, the best
    minimum's misfit and noise variance (data units²), whether a minimum with another
    dispersion (``ambiguous``) or with the same dispersion but other force constants
    (``non_unique``) fits almost as well, and every minimum, best first."""

    intensities: Literal["free", "fast", "physical"]
    forward_models: int
    seconds: float
    misfit: float
    noise_variance: float
    ambiguous: bool
    non_unique: bool
    minima: list[Minimum]


class Dispersion(_Part):
    """ħω (meV) on the input's q-points (nq, 3 reduced): (nq, branches) value and 5–95 % band."""

    qpoints: list[tuple[float, float, float]]
    frequencies_meV: list[list[float]]
    frequencies_low_meV: list[list[float]]
    frequencies_high_meV: list[list[float]]


class PhonopyFiles(_Part):
    """Paths of the exported phonopy files."""

    poscar: str
    force_constants: str
    phonopy_yaml: str
    phonopy_yaml_with_fc: str


class InversionFile(_Part):
    """The result JSON of ``invert`` (``write_inference``)."""

    format: Literal["fcinvert-inversion"]
    version: Literal[2]
    fcinvert_version: str
    input: str
    material: str
    unit: str
    model: ModelUsed | None
    coverage: Coverage | None
    parameters: list[ParameterRow]
    refinement: Refinement | None
    dispersion: Dispersion
    force_constants: PhonopyFiles
    notes: list[str]


def write_inference(
    inference: Inference,
    out: str | Path,
    fc_folder: str | Path | None = None,
    source: str = "",
    model: str = "",
) -> dict:
    """Write the result JSON to ``out`` and the phonopy files into ``fc_folder`` (default:
    ``<out stem>_phonopy`` beside it); returns the JSON content, checked by ``InversionFile``."""
    out = Path(out)
    fc_folder = Path(fc_folder) if fc_folder else out.with_name(f"{out.stem}_phonopy")
    files = write_phonopy_files(inference.material, inference.fcspace, inference.theta, fc_folder)
    record = {
        "format": RESULT_FORMAT,
        "version": RESULT_VERSION,
        "fcinvert_version": __version__,
        "input": source,
        "material": inference.material.name,
        "unit": UNIT,
        "model": _model(inference, model),
        "coverage": inference.ml.coverage.as_dict() if inference.ml is not None else None,
        "parameters": _parameters(inference),
        "refinement": _refinement(inference),
        "dispersion": {
            "qpoints": inference.qpoints.tolist(),
            "frequencies_meV": _rounded(inference.frequencies),
            "frequencies_low_meV": _rounded(inference.band_low),
            "frequencies_high_meV": _rounded(inference.band_high),
        },
        "force_constants": {key: str(path) for key, path in files.items()},
        "notes": inference.notes,
    }
    content = InversionFile.model_validate(record).model_dump(mode="json", exclude_unset=True)
    atomic_write_text(out, json.dumps(content, indent=1, ensure_ascii=False) + "\n")
    return content


def _model(inference: Inference, path: str) -> dict | None:
    if inference.ml is None:
        return None
    config = inference.ml.bundle.config
    return {
        "path": path,
        "architecture": config.architecture,
        "pretrained": config.resnet.pretrained if config.resnet else None,
        "latent_samples": inference.ml.n_samples if config.architecture == "vae" else None,
        "seed": inference.seed,
        "test_r2": config.training.get("test", {}).get("r2"),
    }


def _parameters(inference: Inference) -> list[dict]:
    rows = []
    ml, search = inference.ml, inference.search
    spread = ml_spread(ml) if ml is not None else None
    for i, name in enumerate(inference.fcspace.names):
        row = {
            "name": name,
            "value": float(inference.theta[i]),
            "std": _number(inference.std[i]),
            "interval_5_95": [float(inference.low[i]), float(inference.high[i])]
            if np.isfinite(inference.std[i])
            else None,
            "determined": bool(inference.determined[i]),
            "reason": _reason(inference, i),
            "source": inference.source[i],
        }
        if ml is not None:
            row["ml"] = {
                "value": float(ml.theta[i]),
                "std": _number(spread[i]) if ml.inferred[i] else None,
                "inferred": bool(ml.inferred[i]),
            }
        if search is not None:
            row["refined"] = {
                "value": float(search.best.theta[i]),
                "std": _number(search.best.sigma[i]),
            }
        rows.append(row)
    return rows


def _reason(inference: Inference, index: int) -> str:
    if inference.determined[index]:
        return "constrained by the data" if inference.search else "inferred by the model"
    if inference.search is not None:
        return "the data do not constrain it: held near the force-field ensemble (prior width)"
    return "not inferred by the model: held at the ensemble reference (prior width)"


def _refinement(inference: Inference) -> dict | None:
    search = inference.search
    if search is None:
        return None
    return {
        "intensities": search.best.intensities,
        "forward_models": search.n_forward,
        "seconds": round(search.seconds, 3),
        "misfit": search.best.misfit,
        "noise_variance": search.best.noise,
        "ambiguous": bool(search.other_dispersions),
        "non_unique": bool(search.same_dispersion),
        "minima": [
            {
                "starts": basin.starts,
                "dispersion_distance_meV": round(basin.distance, 4),
                "separation_sigma": None if np.isinf(basin.separation) else basin.separation,
                "misfit": basin.fit.misfit,
                "ambiguous": basin in search.ambiguous,
            }
            for basin in search.basins
        ],
    }


def _number(value: float) -> float | None:
    return float(value) if np.isfinite(value) else None


def _rounded(values: np.ndarray) -> list:
    return np.round(values, 6).tolist()
