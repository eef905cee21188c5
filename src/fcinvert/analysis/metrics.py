"""Accuracy of predicted force constants: R² and mean absolute error per parameter."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


def r2_score(truth: np.ndarray, predicted: np.ndarray) -> np.ndarray:
    """Coefficient of determination per column, 1 − Σ(y − ŷ)² / Σ(y − ȳ)².

    truth, predicted: (N, K) (any unit, the same for both). Returns (K,); NaN for a column whose
    truth is constant (R² is undefined there). A prediction no better than the mean gives 0,
    a worse one a negative value.
    """
    truth, predicted = _pair(truth, predicted)
    residual = ((truth - predicted) ** 2).sum(axis=0)
    spread = ((truth - truth.mean(axis=0)) ** 2).sum(axis=0)
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(spread > 0, 1.0 - residual / np.where(spread > 0, spread, 1.0), np.nan)


def mean_absolute_error(truth: np.ndarray, predicted: np.ndarray) -> np.ndarray:
    """Mean |y − ŷ| per column (K,), in the unit of the inputs (N, K) (eV/Å² for θ)."""
    truth, predicted = _pair(truth, predicted)
    return np.abs(truth - predicted).mean(axis=0)


@dataclass(frozen=True)
class ParameterScores:
    """R² (K,) and MAE (K,) eV/Å² of K named parameters over one set of spectra."""

    names: list[str]
    r2: np.ndarray
    mae: np.ndarray

    @classmethod
    def of(cls, names: list[str], truth: np.ndarray, predicted: np.ndarray) -> ParameterScores:
        """Scores of predictions (N, K) against the truth (N, K), both eV/Å²."""
        return cls(list(names), r2_score(truth, predicted), mean_absolute_error(truth, predicted))

    def as_dict(self) -> dict[str, dict[str, float | None]]:
        """{"r2": {name: value}, "mae_eV_A2": {name: value}} (NaN written as null)."""
        return {
            "r2": dict(zip(self.names, _plain(self.r2), strict=True)),
            "mae_eV_A2": dict(zip(self.names, _plain(self.mae), strict=True)),
        }


def _plain(values: np.ndarray) -> list[float | None]:
    return [None if not np.isfinite(v) else float(v) for v in values]


def _pair(truth: np.ndarray, predicted: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    truth = np.asarray(truth, dtype=float)
    predicted = np.asarray(predicted, dtype=float)
    if truth.ndim == 1:
        truth, predicted = truth[:, None], predicted.reshape(-1, 1)
    if truth.shape != predicted.shape or truth.ndim != 2:
        raise ValueError(f"truth {truth.shape} and predictions {predicted.shape} differ in shape")
    return truth, predicted
