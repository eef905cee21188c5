"""Re-inverting a measurement as it grows: full multi-start searches, warm starts between them.

The first update, and every ``full_every``-th after it, runs the whole pipeline
(``fcinvert.inversion.pipeline.infer``: ML estimate, every force-field member, prior draws,
multi-start refinement). The updates between them refine from the previous estimate (and the
ML estimate of the new data, with a model) through the same multi-start machinery: a new
orientation moves the answer little, and two starts cost a fraction of a full search (the
full one takes 5–10 s on this CPU, too slow to keep up with a file a minute beside other work).

The uncertainty reported is the refinement's posterior (``MultiStartResult.covariance``: the
Gauss–Newton posterior with σ² the larger of the noise and the residual variance, the
cluster-robust sandwich, the ambiguous minima's spread, capped at the prior). The pipeline's
poor-fit widening to the prior is not applied: on time-of-flight data the free-intensity model
leaves residuals above the counting noise even at the truth (the zones an orientation reaches
change along E within a path column), so it would fire at the true minimum and replace every
interval by the prior's as counts accumulate. The fit quality is reported instead (residual
over noise variance, ``fit_quality``) with a note when it exceeds ``POOR_FIT``.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

import numpy as np

from fcinvert.data.spectrum_file import Spectrum
from fcinvert.inversion.invert import invert_spectrum
from fcinvert.inversion.multistart import MultiStartResult, multistart
from fcinvert.inversion.pipeline import (
    DETERMINED_SHARE,
    POOR_FIT,
    dispersion_band,
    fit_quality,
    infer,
)
from fcinvert.inversion.prior import Start, load_prior_ensemble
from fcinvert.models.bundle import ModelBundle
from fcinvert.physics.dynamics import dynamics_basis
from fcinvert.physics.fcspace import FCSpace
from fcinvert.physics.material import Material

#: latent samples of the ML estimate in a warm update (the full update uses infer's default)
WARM_SAMPLES = 50


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

    def update(self, spectrum: Spectrum, source: str = "folded data") -> Estimate:
        """Invert ``spectrum`` (on the material's path): a full search or a warm start."""
        started = time.perf_counter()
        full = self.previous is None or self.updates % self.full_every == 0
        if full:
            inference = infer(
                spectrum, self.material, self.fcspace, self.bundle, seed=self.seed, source=source
            )
            search = inference.search
            notes = [n for n in inference.notes if not n.startswith("poor fit")]
        else:
            search = self._warm(spectrum, source)
            notes = []
        self.updates += 1
        self.previous = self._estimate(search, "full" if full else "warm", started, notes)
        return self.previous

    def _warm(self, spectrum: Spectrum, source: str) -> MultiStartResult:
        starts = [Start("previous estimate", self.previous.theta)]
        if self.bundle is not None:
            ml = invert_spectrum(
                spectrum,
                self.bundle,
                WARM_SAMPLES,
                self.seed,
                source=source,
                context=(self.material, self.fcspace),
                basis=self.basis,
            )
            starts.append(Start("ML estimate", ml.theta))
        return multistart(
            self.material, self.fcspace, spectrum, starts, self.ensemble.prior, basis=self.basis
        )

    def _estimate(
        self, search: MultiStartResult, mode: str, started: float, notes: list[str]
    ) -> Estimate:
        best = search.best
        covariance = search.covariance
        theta = best.theta
        frequencies = self.basis.frequencies(theta)
        low, high = dispersion_band(self.basis, theta, covariance, frequencies, self.seed)
        quality = fit_quality(search)
        if quality > POOR_FIT:
            notes = [
                *notes,
                f"the residuals hold {quality:.1f}× the noise variance: the model does not "
                "explain every count (the intervals include it through the residual variance)",
            ]
        return Estimate(
            theta=theta,
            std=np.sqrt(np.diag(covariance)),
            covariance=covariance,
            determined=best.prior_share < DETERMINED_SHARE,
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
