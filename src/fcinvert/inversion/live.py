"""Re-inverting a measurement as it grows: full multi-start searches, warm starts between them.

A full search refines from the starts of the pipeline's first round on one spectrum — the
ensemble median and every stable force-field member, the PRIOR_STARTS best of PRIOR_POOL draws
of the ensemble prior, the ML estimate with a model — plus the previous estimate, through the
multi-start machinery (``fcinvert.inversion.multistart``), in one round (no local rounds: an
update must keep up with one orientation a minute). It runs at the first update, every
``full_every``-th, and whenever the measured pixels have grown by COVERAGE_GROWTH since the
last full search: a new part of the dispersion can move the best minimum elsewhere, which a
warm start would not find — and after a warm start whose fit quality grew by more than
QUALITY_JUMP since the last update (it may have stayed in a wrong minimum). The updates
between refine from the previous estimate (and the ML estimate of the new data) alone: an
orientation that adds counts to pixels already measured moves the answer little, and two
starts cost a tenth of a full search (5–10 s on this CPU).
Unlike ``pipeline.infer`` there is no second round from prior draws when the fit is poor: on
time-of-flight data the fit is never within the noise (below), so that round would double
every full search and find nothing.

The uncertainty reported is the refinement's posterior (``MultiStartResult.covariance``: the
Gauss–Newton posterior with σ² the larger of the noise and the residual variance, the
cluster-robust sandwich, the ambiguous minima's spread, capped at the prior). The pipeline's
poor-fit widening to the prior is not applied: on time-of-flight data the free-intensity model
leaves residuals above the counting noise even at the truth (the zones an orientation reaches
change along E within a path column: fit quality 6 for one 10⁵-count Ge scan refined from the
true θ), so it would fire at the true minimum and replace every interval by the prior's as
counts accumulate. The fit quality (residual over noise variance, ``fit_quality``) is reported
instead, with a note when it exceeds ``POOR_FIT``.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

import numpy as np

from fcinvert.data.spectrum_file import Spectrum
from fcinvert.inversion.invert import invert_spectrum
from fcinvert.inversion.multistart import MultiStartResult, ambiguity_notes, multistart
from fcinvert.inversion.pipeline import (
    DETERMINED_SHARE,
    POOR_FIT,
    PRIOR_POOL,
    PRIOR_SPREAD,
    PRIOR_STARTS,
    check_signal,
    dispersion_band,
    fit_quality,
)
from fcinvert.inversion.prior import Start, draw_starts, load_prior_ensemble
from fcinvert.models.bundle import ModelBundle
from fcinvert.physics.dynamics import dynamics_basis
from fcinvert.physics.fcspace import FCSpace
from fcinvert.physics.material import Material

#: latent samples of the ML estimate
ML_SAMPLES = 50
#: relative growth of the measured pixels since the last full search that calls for another
COVERAGE_GROWTH = 0.2
#: a warm start whose fit quality (residual over noise variance) grew by more than this factor
#: since the last update is followed by a full search (it may have stayed in a wrong minimum)
QUALITY_JUMP = 1.5


@dataclass
class Estimate:
    """θ of the data so far and how well it is known.

    theta, std: (P,) eV/Å²; covariance: (P, P) (eV/Å²)²; determined: (P,) bool (posterior
    variance below DETERMINED_SHARE of the prior's); frequencies, band_low, band_high:
    (n_path, nb) meV, the dispersion on the material's path and its 5–95 % band; fitted:
    (n_path, nE) the model over the data (NaN unmeasured); quality: residual over noise
    variance; mode: "full" or "warm"; n_forward: forward models run; seconds: wall time.
    """

    theta: np.ndarray
    std: np.ndarray
    covariance: np.ndarray
    determined: np.ndarray
    frequencies: np.ndarray
    band_low: np.ndarray
    band_high: np.ndarray
    fitted: np.ndarray
    quality: float
    mode: str
    n_forward: int
    seconds: float
    notes: list[str] = field(default_factory=list)

    @property
    def band_width(self) -> float:
        """Median width (meV) of the 5–95 % dispersion band over the path and branches."""
        return float(np.median(self.band_high - self.band_low))


class LiveInversion:
    """Inverts successive versions of one growing spectrum on ``material``'s path.

    bundle: a trained model (None: the force-field ensemble alone); full_every: a full
    multi-start search every this many updates (1: always); seed: of every random draw.
    """

    def __init__(
        self,
        material: Material,
        fcspace: FCSpace,
        bundle: ModelBundle | None = None,
        *,
        full_every: int = 5,
        seed: int = 0,
    ) -> None:
        self.material = material
        self.fcspace = fcspace
        self.bundle = bundle
        self.full_every = max(1, int(full_every))
        self.seed = seed
        self.ensemble = load_prior_ensemble(material, fcspace)
        self.basis = dynamics_basis(fcspace, material.path.qpoints)
        self.previous: Estimate | None = None
        self.updates = 0
        self.covered_at_full = 0

    def update(self, spectrum: Spectrum, source: str = "folded data") -> Estimate:
        """Invert ``spectrum`` (on the material's path): a full search or a warm start."""
        started = time.perf_counter()
        check_signal(spectrum, source)
        covered = int(np.isfinite(spectrum.intensity).sum())
        full = (
            self.previous is None
            or self.updates % self.full_every == 0
            or covered > (1.0 + COVERAGE_GROWTH) * self.covered_at_full
        )
        starts = [] if self.previous is None else [Start("previous estimate", self.previous.theta)]
        if self.bundle is not None:
            ml = invert_spectrum(
                spectrum,
                self.bundle,
                ML_SAMPLES,
                self.seed,
                source=source,
                context=(self.material, self.fcspace),
                basis=self.basis,
            )
            starts.append(Start("ML estimate", ml.theta))
        search = self._search(spectrum, starts, full, covered)
        if not full and self.previous.quality * QUALITY_JUMP < fit_quality(search):
            full = True  # the warm start fits worse than before: it may sit in a wrong minimum
            search = self._search(spectrum, [], full, covered, search)
        self.updates += 1
        self.previous = self._estimate(search, "full" if full else "warm", started)
        return self.previous

    def _search(
        self,
        spectrum: Spectrum,
        starts: list[Start],
        full: bool,
        covered: int,
        before: MultiStartResult | None = None,
    ) -> MultiStartResult:
        """One multi-start round from ``starts``; a full one adds the ensemble's starts and the
        best prior draws, and compares its minima with those of ``before``."""
        prior = self.ensemble.prior
        pool = None
        if full:
            starts = starts + self.ensemble.starts()
            pool = draw_starts(
                prior, PRIOR_POOL, PRIOR_SPREAD, [self.seed, self.updates], "prior draw"
            )
            self.covered_at_full = covered
        return multistart(
            self.material,
            self.fcspace,
            spectrum,
            starts,
            prior,
            pool=pool,
            picks=PRIOR_STARTS if full else 0,
            known=before.basins if before is not None else None,
            basis=self.basis,
        )

    def _estimate(self, search: MultiStartResult, mode: str, started: float) -> Estimate:
        best = search.best
        covariance = search.covariance
        theta = best.theta
        frequencies = self.basis.frequencies(theta)
        low, high = dispersion_band(self.basis, theta, covariance, frequencies, self.seed)
        quality = fit_quality(search)
        determined = best.prior_share < DETERMINED_SHARE
        notes = [f"{mode} search: best of {len(search.basins)} minima from {search.winner}"]
        notes += ambiguity_notes(search, self.fcspace.names)
        if not determined.all():
            names = [self.fcspace.names[i] for i in np.flatnonzero(~determined)]
            notes.append(f"not determined by these data (prior width): {', '.join(names)}")
        if quality > POOR_FIT:
            notes.append(
                f"the residuals hold {quality:.1f}× the noise variance: the model does not "
                "explain every count (the intervals include it through the residual variance)"
            )
        return Estimate(
            theta=theta,
            std=np.sqrt(np.diag(covariance)),
            covariance=covariance,
            determined=determined,
            frequencies=frequencies,
            band_low=low,
            band_high=high,
            fitted=best.fitted,
            quality=quality,
            mode=mode,
            n_forward=search.n_forward,
            seconds=time.perf_counter() - started,
            notes=notes,
        )
