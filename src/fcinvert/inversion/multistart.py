"""ML proposes, physics decides: refine from many starts, keep the best, say when it is unsure.

A single refinement ends in the minimum nearest its start, and a spectrum has several (notes:
from an ML estimate 5 meV off, refinement ended 1–3 meV off; of 24 random starts the one with
the lowest misfit was also the most accurate). So every candidate start — draws of the ML
posterior, the force-field members, the ensemble median — is first stretched to the crystal's
stiffness (``stretched``: the overall scale of θ that fits best; a Ge 1.6× stiffer than the
median, at 25 counts, ended 4.5 meV off without it, 0.3–0.6 meV with it), then refined through
the coarse stage of the continuation (cheap: a 2 meV wider model has fewer minima, and needs
fewer q columns, and bins ``COARSE_BIN_SHARE`` of its extra width wide); the ``KEEP`` best
distinct ones are refined to the end, and the lowest
objective (the posterior's −2 log, the same prior for every start, so objectives compare) wins.
The starts are refined side by side on ``WORKERS`` forked processes (``side_by_side``).

Another minimum — its dispersion differs (RMS > ``SAME_BASIN`` meV) or its θ does (by more than
``SAME_THETA`` prior widths) — is *ambiguous* when the data
cannot tell the two apart: the paired difference of their per-q-column misfits, summed over
blocks of adjacent columns, is less than ``DISTINGUISHABLE`` standard errors from zero. Its θ then
widens the reported covariance (the two as an equal mixture, no wider than the prior), and a
note (``ambiguity_notes``) names it: *ambiguous* when its dispersion differs from the best's,
*non-unique* when the dispersion is the same and only the force constants differ (free branch
intensities leave the eigenvectors open).
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from fcinvert.data.spectrum_file import Spectrum
from fcinvert.inversion.prior import Prior, Start
from fcinvert.inversion.refine import (
    CLUSTERS,
    CONTINUATION,
    MISFIT_CHUNK,
    Intensities,
    RefineResult,
    SpectrumFit,
    bin_runs,
    merged_bins,
    pixel_errors,
    refine,
    spectrum_grid,
)
from fcinvert.inversion.side_by_side import SideBySide
from fcinvert.physics.dynamics import DynamicsBasis, dynamics_basis
from fcinvert.physics.fcspace import FCSpace
from fcinvert.physics.material import EnergyGrid, Material

#: Distinct coarse results refined to the end.
KEEP = 3
#: Dispersions closer than this (RMS, meV) are one basin.
SAME_BASIN = 0.25
#: θ further apart than this many prior widths (in any parameter) are two minima.
SAME_THETA = 0.25
#: Standard errors of the paired misfit difference that tell two minima apart.
DISTINGUISHABLE = 2.0
#: A minimum whose data misfit exceeds the best's by more than this fraction is never
#: ambiguous, whatever the paired test says (on noise-free data the best misfit is ~0 and a
#: difference concentrated in a few columns passed the test at +64 000 %).
CLEARLY_WORSE = 1.0
#: Workers that refine starts side by side (``FCINVERT_THREADS``; default one per core, at most
#: 4): forked processes on Linux, threads elsewhere (``side_by_side``). The fits
#: are independent, so the answer does not depend on it.
WORKERS = int(os.environ.get("FCINVERT_THREADS", min(4, os.cpu_count() or 1)))
#: Trial steps of the coarse stage per start, and the q columns it fits at most (every
#: n-th column of a denser spectrum: a 2 meV wider model does not need them all).
COARSE_ITERATIONS = 10
COARSE_COLUMNS = 100
#: Extra model FWHM (meV) of the coarse stages every start goes through, and of the stages
#: that finish the chosen ones (``refine.CONTINUATION`` split in two).
COARSE_CONTINUATION = CONTINUATION[:1]
FINE_CONTINUATION = CONTINUATION[1:]
#: The coarse stage (and the stretch and screening on it) fits the data on energy bins merged
#: up to this share of its extra FWHM (``merged_bins``: 0.5–0.7 meV bins in pairs at 2 meV):
#: the bin-integrated model loses nothing the broadened one resolves, and the stage's cost,
#: most of it per pixel, falls by nearly the merge factor.
COARSE_BIN_SHARE = 0.7
#: ... as long as the merged bins keep this share of the measured pixels (a merged bin with an
#: unmeasured pixel is unmeasured): scattered missing pixels (30 % of them: 70 % of the coarse
#: pixels kept) would cost the coarse stage data (a Ge bench case ended 0.62 meV off instead
#: of 0.30), while contiguous gaps (cut columns, ToF limits) lose only their edges.
COARSE_BINS_KEEP = 0.9
#: Frequency factors √s tried on every start before its coarse stage (θ → s·θ scales every
#: frequency by √s exactly): 0.71 to 1.41, 9 % apart, 1 among them; then ±3 % around the best.
STRETCHES = 1.09 ** np.arange(-4, 5)
STRETCH_STEP = 1.03
#: Trial θ (forward models) of one stretch: the STRETCHES and the two steps around the best.
STRETCH_TRIALS = len(STRETCHES) + 2
#: q columns (every n-th) the stretch is judged on: the stiffness is a property of the whole
#: spectrum, and this keeps its 11 trial forward models cheap.
STRETCH_COLUMNS = 25


@dataclass(frozen=True, eq=False)
class Basin:
    """A minimum that a refinement reached: its result, the starts that led there, its
    dispersion's RMS distance (meV) from the best one, the paired t statistic of its misfit
    against the best (∞ for the best itself; small = the data cannot tell them apart) and the
    relative excess of its data misfit over the best's (0 for the best)."""

    fit: RefineResult
    starts: list[str]
    distance: float
    separation: float
    excess: float


@dataclass
class MultiStartResult:
    """The best refinement, every basin reached (best first), the ambiguous ones among them,
    the covariance (P, P) (eV/Å²)² of θ including the ambiguous basins' spread, and the cost."""

    best: RefineResult
    basins: list[Basin]
    ambiguous: list[Basin]
    covariance: np.ndarray
    n_forward: int
    seconds: float

    @property
    def other_dispersions(self) -> list[Basin]:
        """Ambiguous minima whose dispersion differs from the best's (RMS > SAME_BASIN meV)."""
        return [basin for basin in self.ambiguous if basin.distance > SAME_BASIN]

    @property
    def same_dispersion(self) -> list[Basin]:
        """Ambiguous minima with the best's dispersion (RMS ≤ SAME_BASIN meV) and other θ."""
        return [basin for basin in self.ambiguous if basin.distance <= SAME_BASIN]

    @property
    def winner(self) -> str:
        """The start (or starts) the best basin was reached from: the first three, and how
        many more."""
        return starts_text(self.basins[0].starts)


def multistart(
    material: Material,
    fcspace: FCSpace,
    spectrum: Spectrum,
    starts: list[Start],
    prior: Prior,
    *,
    pool: list[Start] | None = None,
    picks: int = 0,
    known: list[Basin] | None = None,
    intensities: Intensities = "free",
    keep: int = KEEP,
    basis: DynamicsBasis | None = None,
) -> MultiStartResult:
    """Refine ``spectrum`` from every start, and from the ``picks`` candidates of ``pool`` whose
    models fit the data best as they are (``screened``) (module docstring); ``known``: minima an
    earlier search reached, compared with the new ones as they are. basis: D_k at the
    spectrum's q-points (built when None)."""
    started = time.perf_counter()
    grid = spectrum_grid(material, spectrum)
    basis = dynamics_basis(fcspace, spectrum.qpoints) if basis is None else basis
    intensity = np.asarray(spectrum.intensity, dtype=float)
    errors = pixel_errors(intensity, spectrum.error, grid)
    options = dict(prior=prior, intensities=intensities)
    factor = coarse_bin_factor(grid, errors)
    stride = max(1, len(spectrum.qpoints) // COARSE_COLUMNS)
    coarse_basis = DynamicsBasis(basis.qpoints[::stride], basis.matrices[:, ::stride])
    coarse_intensity, coarse_errors, coarse_grid = merged_bins(
        intensity[::stride], errors[::stride], grid, factor
    )
    sparse = max(1, len(spectrum.qpoints) // STRETCH_COLUMNS)
    stretch_intensity, stretch_errors, _ = merged_bins(
        intensity[::sparse], errors[::sparse], grid, factor
    )
    stretch_fit = SpectrumFit(
        DynamicsBasis(basis.qpoints[::sparse], basis.matrices[:, ::sparse]),
        coarse_grid,
        stretch_intensity,
        stretch_errors,
        prior,
        intensities=intensities,
        extra_fwhm=COARSE_CONTINUATION[0],
    )

    def coarse_fit(start: Start) -> RefineResult:
        return refine(
            material,
            fcspace,
            coarse_intensity,
            spectrum.qpoints[::stride],
            stretched(start.theta, stretch_fit),
            error=coarse_errors,
            continuation=COARSE_CONTINUATION,
            partial=True,
            max_iterations=COARSE_ITERATIONS,
            basis=coarse_basis,
            grid=coarse_grid,
            **options,
        )

    def fine_fit(theta: np.ndarray) -> RefineResult:
        return refine(
            material,
            fcspace,
            intensity,
            spectrum.qpoints,
            theta,
            error=errors,
            continuation=FINE_CONTINUATION,
            basis=basis,
            grid=grid,
            **options,
        )

    jobs = {"misfits": stretch_fit.misfits, "coarse": coarse_fit, "fine": fine_fit}
    n_forward = stretch_fit.n_forward  # counted here: a forked worker's counts stay there
    with SideBySide(jobs, WORKERS) as workers:

        def misfits(thetas: np.ndarray) -> np.ndarray:
            chunks = [thetas[i : i + MISFIT_CHUNK] for i in range(0, len(thetas), MISFIT_CHUNK)]
            return np.concatenate(workers.map("misfits", chunks))

        picked = screened(pool or [], picks, misfits)
        starts = starts + picked
        coarse = workers.map("coarse", starts)
        chosen = _distinct(coarse, prior, keep)
        fine = workers.map("fine", [coarse[index].theta for index in chosen])
    n_forward += (len(pool or []) if picked else 0) + STRETCH_TRIALS * len(starts)
    n_forward += sum(fit.n_forward for fit in coarse)
    finals = [(basin.fit, list(basin.starts)) for basin in known or []]
    for index, fit in zip(chosen, fine, strict=True):
        n_forward += fit.n_forward
        finals.append((fit, [starts[index].name]))
    basins = _basins(finals, prior)
    ambiguous = [
        b for b in basins[1:] if b.separation < DISTINGUISHABLE and b.excess <= CLEARLY_WORSE
    ]
    covariance = prior.cap(_mixture_covariance([basins[0], *ambiguous]))
    return MultiStartResult(
        basins[0].fit,
        basins,
        ambiguous,
        covariance,
        n_forward,
        time.perf_counter() - started,
    )


def coarse_bin_factor(grid: EnergyGrid, errors: np.ndarray) -> int:
    """How many of ``grid``'s bins the coarse stage merges into one: as many as fit in
    COARSE_BIN_SHARE of its extra FWHM, at least 1; 1 when merging would keep less than
    COARSE_BINS_KEEP of the measured pixels (``errors`` (nq, nE), NaN = unmeasured)."""
    factor = max(1, int(COARSE_BIN_SHARE * COARSE_CONTINUATION[0] / grid.width + 1e-9))
    measured = np.isfinite(errors)
    kept = bin_runs(measured, factor).all(axis=-1).sum() * factor
    return factor if kept >= COARSE_BINS_KEEP * measured.sum() else 1


def starts_text(names: list[str], shown: int = 3) -> str:
    """Start names for a note: the first ``shown`` and how many more."""
    more = f" and {len(names) - shown} more" if len(names) > shown else ""
    return ", ".join(names[:shown]) + more


def ambiguity_notes(search: MultiStartResult, names: list[str]) -> list[str]:
    """Notes on the minima the data cannot tell from the best: one per minimum with another
    dispersion (*ambiguous*: the answer itself may be wrong), one for all those with the same
    dispersion (*non-unique*: the force constants are not, naming the parameters (``names``)
    that differ most in units of their reported σ)."""
    notes = [
        f"ambiguous: another minimum (from {starts_text(basin.starts)}) fits almost as well "
        f"(misfit +{basin.excess:.1%}, separation {basin.separation:.1f} σ) with a dispersion "
        f"{basin.distance:.2f} meV RMS away; the intervals include it"
        for basin in search.other_dispersions
    ]
    same = search.same_dispersion
    if same:
        best = search.best
        shift = np.max([np.abs(b.fit.theta - best.theta) for b in same], axis=0)
        order = np.argsort(-shift / np.maximum(np.sqrt(np.diag(search.covariance)), 1e-300))
        starts = [name for basin in same for name in basin.starts]
        notes.append(
            f"non-unique: {len(same)} other minim{'a' if len(same) > 1 else 'um'} (from "
            f"{starts_text(starts)}) fit almost as well with the same dispersion on these "
            f"q-points (within {max(b.distance for b in same):.2f} meV RMS) but other force "
            f"constants, most in {', '.join(names[i] for i in order[:3])}; the intervals "
            "include them"
        )
    return notes


def screened(
    pool: list[Start], count: int, misfits: Callable[[np.ndarray], np.ndarray]
) -> list[Start]:
    """The ``count`` starts of ``pool`` whose models fit the data best as they are: lowest
    ``misfits`` (θ (B, P) → residual sums of squares (B,), e.g. ``SpectrumFit.misfits``; one
    forward model each, no optimisation), a cheap look at many θ so that only the promising
    ones are refined."""
    if count <= 0 or not pool:
        return []
    residuals = misfits(np.array([start.theta for start in pool]))
    return [pool[i] for i in np.argsort(residuals, kind="stable")[:count]]


def stretched(theta: np.ndarray, fit: SpectrumFit) -> np.ndarray:
    """θ (P,) eV/Å² scaled by the s = f² whose model fits the data of ``fit`` best (residual sum
    of squares; the frequency factor f among ``STRETCHES``, then ±``STRETCH_STEP`` around the
    best).

    The commonest way a start misses a crystal is its overall stiffness (a measured Ge is ~1.6×
    stiffer than the force-field median): scaling θ moves every branch by the same factor √s,
    which a local optimiser started at θ does not find when the branches it would pass
    through fit the data too (a ladder of minima, one per branch overlap)."""

    def misfits(factors: np.ndarray) -> np.ndarray:
        return fit.misfits(factors[:, None] ** 2 * theta)

    coarse = misfits(STRETCHES)
    best = STRETCHES[int(np.argmin(coarse))]
    steps = np.array([best / STRETCH_STEP, best * STRETCH_STEP])
    fine = misfits(steps)
    # the first smallest of (best / step, best, best · step), as min() picks it
    candidates = [(fine[0], steps[0]), (float(coarse.min()), best), (fine[1], steps[1])]
    return min(candidates, key=lambda pair: pair[0])[1] ** 2 * theta


def _distinct(fits: list[RefineResult], prior: Prior, keep: int) -> list[int]:
    """Indices of up to ``keep`` fits, lowest objective first, none in the basin of one chosen
    before it (``_same_basin``)."""
    chosen: list[int] = []
    for index in np.argsort([fit.objective for fit in fits], kind="stable"):
        if not any(_same_basin(fits[index], fits[other], prior) for other in chosen):
            chosen.append(int(index))
        if len(chosen) == keep:
            break
    return chosen


def _basins(finals: list[tuple[RefineResult, list[str]]], prior: Prior) -> list[Basin]:
    """Final fits merged into basins (``_same_basin``), best objective first, with their
    distance from the best, the paired separation of their misfits from it and their excess."""
    finals = sorted(finals, key=lambda item: item[0].objective)
    merged: list[tuple[RefineResult, list[str]]] = []
    for fit, names in finals:
        for _, kept_names in (m for m in merged if _same_basin(m[0], fit, prior)):
            kept_names.extend(names)
            break
        else:
            merged.append((fit, list(names)))
    best = merged[0][0]
    return [
        Basin(
            fit,
            names,
            _distance(fit, best),
            _separation(fit, best) if i else np.inf,
            _excess(fit, best) if i else 0.0,
        )
        for i, (fit, names) in enumerate(merged)
    ]


def _same_basin(a: RefineResult, b: RefineResult, prior: Prior) -> bool:
    """One minimum: dispersions within SAME_BASIN meV (RMS) and every θ_k within SAME_THETA
    prior widths. Two θ far apart with the same dispersion are two minima: free branch
    intensities leave the eigenvectors open, and Born–von Kármán parameters that fit one
    dispersion need not be unique (a Ge test: shell-2 and shell-3 terms 0.2–0.3 eV/Å² apart,
    dispersions 0.1 meV apart)."""
    close = np.max(np.abs(a.theta - b.theta) / prior.width) <= SAME_THETA
    return bool(close) and _distance(a, b) <= SAME_BASIN


def _distance(a: RefineResult, b: RefineResult) -> float:
    """RMS difference (meV) of two fits' dispersions on the spectrum's q-points."""
    return float(np.sqrt(np.mean((a.frequencies - b.frequencies) ** 2)))


def _separation(other: RefineResult, best: RefineResult) -> float:
    """Paired t statistic of other's misfit over best's: per-block sums of the per-column misfit
    difference (blocks of adjacent q columns, as in the robust covariance)."""
    difference = other.column_misfit - best.column_misfit
    blocks = np.array_split(difference, min(len(difference), CLUSTERS))
    sums = np.array([block.sum() for block in blocks])
    spread = float(np.std(sums, ddof=1)) * np.sqrt(len(sums)) if len(sums) > 1 else 0.0
    total = float(sums.sum())
    return total / spread if spread > 0 else np.inf


def _excess(other: RefineResult, best: RefineResult) -> float:
    """Relative excess of other's data misfit over best's (∞ when best's is 0)."""
    total = float(best.column_misfit.sum())
    return float(other.column_misfit.sum()) / total - 1.0 if total > 0 else np.inf


def _mixture_covariance(basins: list[Basin]) -> np.ndarray:
    """Covariance (P, P) of an equal mixture of the basins' posteriors, centred on the best θ."""
    best = basins[0].fit.theta
    covariance = np.mean([b.fit.covariance for b in basins], axis=0)
    for basin in basins[1:]:
        shift = basin.fit.theta - best
        covariance = covariance + np.outer(shift, shift) / len(basins)
    return covariance
