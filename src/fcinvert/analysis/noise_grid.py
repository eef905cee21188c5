"""Robustness to counting noise: the INS noise model, its signal-to-noise ratio, the (B, P) grid.

Noise model (the paper's SI §4, the same as training augmentation in ``models.augment``): each
spectrum x (nq, nE) is normalised to its peak, a constant background B (a fraction of the peak)
is added, and counts are drawn with P expected counts at a background-free peak pixel:

    x_noisy = Poisson(P · (x / max x + B)) / P

so E[x_noisy] = x / max x + B and Var[x_noisy] = (x / max x + B) / P at every pixel. The input
rule min–max scales every spectrum, so the unit of x_noisy never matters. NaN (unmeasured) pixels
stay NaN.

Signal-to-noise ratio of a setting (B, P) on a set of spectra: the phonon signal is judged
where it is, at the brightest pixel of every q-column (each q-point's strongest branch).
Such a pixel of peak fraction s_q = max_E x(q, E) / max x expects P·s_q signal counts on P·B
background counts, with Poisson variance P·(s_q + B). Then

    SNR = ⟨P·s_q⟩ / sqrt(⟨P·(s_q + B)⟩) = sqrt(P) · m / sqrt(m + B),  m = ⟨s_q⟩,

the mean over all q-columns of all spectra: mean signal counts of the column peaks over the
root of their mean variance, background included. (Ge's reference spectrum has m ≈ 0.64.)

Grid: B ∈ (0, 0.1, 0.3, 1, 3) × P ∈ (1000, 300, 100, 30, 10): from nearly clean (Ge SNR ≈ 25,
branches sharp) to barely readable (SNR ≈ 1.1: 30 background counts per pixel under column
peaks of ~6). The representative noisy case beside the clean scores is mild noise, B = 0.1,
P = 300 (Ge SNR ≈ 13), where the paper's ResNet already loses accuracy.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass, field

import numpy as np

from fcinvert.analysis.metrics import mean_absolute_error, r2_score

BACKGROUNDS = (0.0, 0.1, 0.3, 1.0, 3.0)
COUNTS = (1000.0, 300.0, 100.0, 30.0, 10.0)
#: chunk of spectra made noisy and predicted at once (fixes the latent-draw seeds per chunk)
CHUNK = 500


def counting_noise(
    spectra: np.ndarray, background: float, counts: float, rng: np.random.Generator
) -> np.ndarray:
    """Noisy copies (N, nq, nE) float32 of spectra (N, nq, nE) (any unit, NaN = unmeasured):
    Poisson(P · (x / max x + B)) / P with B = ``background``, P = ``counts`` (peak counts)."""
    x = np.asarray(spectra, dtype=float)
    peak = _peaks(x)
    rate = counts * (np.nan_to_num(x, nan=0.0) / peak[:, None, None] + background)
    noisy = rng.poisson(np.clip(rate, 0.0, None)) / counts
    return np.where(np.isfinite(x), noisy, np.nan).astype(np.float32)


def column_peak_fraction(spectra: np.ndarray) -> float:
    """m: mean over q-columns and spectra (N, nq, nE) of max_E x / max x (measured pixels)."""
    x = np.asarray(spectra, dtype=float)
    columns = np.nanmax(np.where(np.isfinite(x), x, -np.inf), axis=2)
    columns = np.where(np.isfinite(columns), columns, np.nan)
    return float(np.nanmean(columns / _peaks(x)[:, None]))


def signal_to_noise(peak_fraction: float, background: float, counts: float) -> float:
    """SNR = sqrt(P) · m / sqrt(m + B) for the mean column-peak fraction m (module docstring)."""
    return float(np.sqrt(counts) * peak_fraction / np.sqrt(peak_fraction + background))


def _peaks(x: np.ndarray) -> np.ndarray:
    """(N,) maximum over finite pixels of each spectrum (N, nq, nE); 1 where there is none."""
    flat = np.where(np.isfinite(x), x, -np.inf).reshape(len(x), -1)
    peak = flat.max(axis=1) if flat.shape[1] else np.ones(len(x))
    return np.where(np.isfinite(peak) & (peak > 0), peak, 1.0)


@dataclass(frozen=True)
class NoiseGrid:
    """Backgrounds B (nB,) as fractions of the peak × peak counts P (nP,); ``representative``
    is the (i, j) setting shown beside the clean scores."""

    backgrounds: tuple[float, ...] = BACKGROUNDS
    counts: tuple[float, ...] = COUNTS
    representative: tuple[int, int] = (1, 1)

    @property
    def shape(self) -> tuple[int, int]:
        return len(self.backgrounds), len(self.counts)

    def settings(self) -> Iterator[tuple[int, int, float, float]]:
        """(i, j, B, P) of every setting, row by row."""
        for i, background in enumerate(self.backgrounds):
            for j, counts in enumerate(self.counts):
                yield i, j, background, counts

    def snr(self, spectra: np.ndarray) -> np.ndarray:
        """(nB, nP) SNR of every setting on spectra (N, nq, nE)."""
        m = column_peak_fraction(spectra)
        return np.array([[signal_to_noise(m, b, p) for p in self.counts] for b in self.backgrounds])

    def rng(self, seed: int, i: int, j: int) -> np.random.Generator:
        """The random stream of setting (i, j): the same noisy spectra for every model."""
        return np.random.default_rng([seed, i, j])


#: a model as the grid sees it: (spectra (n, nq, nE), chunk index) → θ (n, K) eV/Å²
Predictor = Callable[[np.ndarray, int], np.ndarray]


@dataclass
class GridScores:
    """Scores of each model at each setting: r2, mae (nB, nP, K) (MAE eV/Å²); snr (nB, nP);
    ``examples`` (nB, nP, len(keep), nq, nE) float32: the noisy versions of the kept spectra."""

    r2: dict[str, np.ndarray]
    mae: dict[str, np.ndarray]
    snr: np.ndarray
    examples: np.ndarray
    keep: list[int] = field(default_factory=list)


def score_grid(
    grid: NoiseGrid,
    spectra: np.ndarray,
    truth: np.ndarray,
    predictors: dict[str, Predictor],
    seed: int,
    keep: list[int],
    advance: Callable[[], None] | None = None,
) -> GridScores:
    """Apply every setting of ``grid`` to all spectra (N, nq, nE), predict with each model and
    score against the truth (N, K) eV/Å². ``keep``: indices whose noisy versions are returned;
    ``advance`` is called once per setting (progress)."""
    n_b, n_p = grid.shape
    k = truth.shape[1]
    r2 = {name: np.full((n_b, n_p, k), np.nan) for name in predictors}
    mae = {name: np.full((n_b, n_p, k), np.nan) for name in predictors}
    examples = np.zeros((n_b, n_p, len(keep), *spectra.shape[1:]), dtype=np.float32)
    for i, j, background, counts in grid.settings():
        rng = grid.rng(seed, i, j)
        predicted = {name: [] for name in predictors}
        for chunk, start in enumerate(range(0, len(spectra), CHUNK)):
            noisy = counting_noise(spectra[start : start + CHUNK], background, counts, rng)
            for position, index in enumerate(keep):
                if start <= index < start + CHUNK:
                    examples[i, j, position] = noisy[index - start]
            for name, predict in predictors.items():
                predicted[name].append(predict(noisy, chunk))
        for name in predictors:
            values = np.concatenate(predicted[name])
            r2[name][i, j] = r2_score(truth, values)
            mae[name][i, j] = mean_absolute_error(truth, values)
        if advance is not None:
            advance()
    return GridScores(r2, mae, grid.snr(spectra), examples, list(keep))
