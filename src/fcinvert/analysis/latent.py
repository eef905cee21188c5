"""The VAE's latent space: how its dimensions are used, its UMAP map, a decoded latent ray, and
where spectra from other domains (noisy, measured) land on that map.

Active dimension (criterion of Burda, Grosse & Salakhutdinov 2016): dimension d is active when
the posterior mean moves with the input, Var_x(μ_d) > 0.01 over the test set. An inactive one
has μ_d ≈ 0 and log σ²_d ≈ 0 for every spectrum: it stayed at the N(0, 1) prior and carries
no information (its mean KL divergence to the prior is ≈ 0 nats).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from fcinvert.models.bundle import ModelBundle
from fcinvert.models.preprocess import prepare_input

ACTIVE_VARIANCE = 0.01
UMAP_NEIGHBOURS = 15
UMAP_MIN_DIST = 0.1


@dataclass(frozen=True)
class LatentSummary:
    """Posterior mean μ and log variance log σ² (N, L) of N spectra, per dimension."""

    mu: np.ndarray
    log_var: np.ndarray
    threshold: float = ACTIVE_VARIANCE

    @property
    def activity(self) -> np.ndarray:
        """(L,) variance of μ_d over the spectra."""
        return self.mu.var(axis=0)

    @property
    def active(self) -> np.ndarray:
        """(L,) bool: Var(μ_d) > threshold."""
        return self.activity > self.threshold

    @property
    def n_active(self) -> int:
        return int(self.active.sum())

    @property
    def mean_kl(self) -> np.ndarray:
        """(L,) mean KL(N(μ_d, σ_d²) ‖ N(0, 1)) over the spectra, nats."""
        return (0.5 * (self.mu**2 + np.exp(self.log_var) - 1.0 - self.log_var)).mean(axis=0)

    def as_dict(self) -> dict:
        """Per-dimension statistics, the criterion and the count of active dimensions."""
        return {
            "dimensions": int(self.mu.shape[1]),
            "mu_mean": _floats(self.mu.mean(axis=0)),
            "mu_std": _floats(self.mu.std(axis=0)),
            "log_var_mean": _floats(self.log_var.mean(axis=0)),
            "log_var_std": _floats(self.log_var.std(axis=0)),
            "mean_kl_nats": _floats(self.mean_kl),
            "active": self.active.tolist(),
            "n_active": self.n_active,
            "active_criterion": f"Var over the test set of the posterior mean > {self.threshold}",
        }


def fit_umap(points: np.ndarray, seed: int):
    """UMAP (umap-learn) of points (N, L) → (fitted reducer, embedding (N, 2)); seeded, so the
    same points give the same map (and run single-threaded)."""
    import umap  # slow to import (numba): only when a map is made

    reducer = umap.UMAP(
        n_neighbors=min(UMAP_NEIGHBOURS, len(points) - 1),
        min_dist=UMAP_MIN_DIST,
        random_state=seed,
        n_jobs=1,
    )
    embedding = reducer.fit_transform(np.asarray(points, dtype=np.float32))
    return reducer, np.asarray(embedding, dtype=float)


def umap_settings(seed: int) -> dict:
    """The UMAP settings ``fit_umap`` uses, for the record."""
    return {"n_neighbors": UMAP_NEIGHBOURS, "min_dist": UMAP_MIN_DIST, "seed": seed}


@torch.no_grad()
def decode(bundle: ModelBundle, z: np.ndarray) -> np.ndarray:
    """Decoded spectra (S, nq, nE) in input-rule units [0, 1] of latents z (S, L)."""
    return bundle.networks["vae"].decode(torch.as_tensor(z, dtype=torch.float32)).numpy()


@torch.no_grad()
def regress(bundle: ModelBundle, z: np.ndarray) -> np.ndarray:
    """Selected θ (S, K) eV/Å² the frozen regressor gives for latents z (S, L)."""
    standard = bundle.networks["regressor"](torch.as_tensor(z, dtype=torch.float32)).numpy()
    return bundle.scaler.to_physical(standard)


@dataclass(frozen=True)
class LatentRay:
    """A straight segment through the latent space, from the posterior mean of one test spectrum
    to another's, and what the decoder and the regressor make of points along it.

    z: (S, L); spectra: (S, nq, nE) decoded, input-rule units; theta: (S, K) eV/Å² regressed;
    start, end: test-set indices of the end points.
    """

    z: np.ndarray
    spectra: np.ndarray
    theta: np.ndarray
    start: int
    end: int


def latent_ray(
    bundle: ModelBundle, mu: np.ndarray, truth: np.ndarray, steps: int, parameter: int = 0
) -> LatentRay:
    """The ray between the test spectra with the lowest and the highest true value of selected
    parameter ``parameter`` (FC0 by default: the dominant one), sampled at ``steps`` points.

    mu: (N, L) posterior means of the test set; truth: (N, K) true selected θ eV/Å².
    """
    start, end = int(np.argmin(truth[:, parameter])), int(np.argmax(truth[:, parameter]))
    t = np.linspace(0.0, 1.0, steps)[:, None]
    z = (1.0 - t) * mu[start] + t * mu[end]
    return LatentRay(z, decode(bundle, z), regress(bundle, z), start, end)


def nearest_spectrum(candidates: np.ndarray, target: np.ndarray) -> int:
    """Index of the candidate (N, nq, nE) closest in mean squared difference to ``target``
    (nq, nE), both min–max scaled by the input rule, over the target's measured pixels."""
    scaled = prepare_input(torch.as_tensor(candidates), mask_channel=False)[:, 0].numpy()
    wanted = prepare_input(torch.as_tensor(target[None]), mask_channel=False)[0, 0].numpy()
    measured = np.isfinite(target)
    error = ((scaled - wanted)[:, measured] ** 2).mean(axis=1)
    return int(np.argmin(error))


@dataclass(frozen=True)
class CrossDomain:
    """Where spectra of other domains land on the fitted UMAP map (coordinates (…, 2)).

    test: (N, 2) the map of the clean test set; anchor: test index of the reference spectrum;
    noisy: (nB, nP, 2) its noisy versions on the noise grid; measured: file name → (2,).
    """

    test: np.ndarray
    anchor: int
    noisy: np.ndarray
    measured: dict[str, np.ndarray]

    def nearest_noisy(self, point: np.ndarray) -> tuple[int, int]:
        """(i, j) of the noisy version embedded closest to ``point`` (2,)."""
        distance = np.linalg.norm(self.noisy - np.asarray(point), axis=-1)
        i, j = np.unravel_index(int(np.argmin(distance)), distance.shape)
        return int(i), int(j)

    def as_dict(self) -> dict:
        return {
            "anchor_index": self.anchor,
            "anchor": _floats(self.test[self.anchor]),
            "noisy": self.noisy.round(4).tolist(),
            "measured": {name: _floats(point) for name, point in self.measured.items()},
        }


def cross_domain(
    bundle: ModelBundle,
    reducer,
    embedding: np.ndarray,
    anchor: int,
    noisy: np.ndarray,
    measured: dict[str, np.ndarray],
) -> CrossDomain:
    """Project the noisy versions (nB, nP, nq, nE) of test spectrum ``anchor`` and the measured
    spectra (name → (nq, nE) on the model's grid, NaN unmeasured) with the UMAP ``reducer``
    fitted on the test set's μ (its map: ``embedding`` (N, 2))."""
    n_b, n_p = noisy.shape[:2]
    images = [*noisy.reshape(n_b * n_p, *noisy.shape[2:]), *measured.values()]
    mu, _ = bundle.latent(np.stack(images))
    points = np.asarray(reducer.transform(mu.astype(np.float32)), dtype=float)
    return CrossDomain(
        embedding,
        anchor,
        points[: n_b * n_p].reshape(n_b, n_p, 2),
        dict(zip(measured, points[n_b * n_p :], strict=True)),
    )


def _floats(values: np.ndarray) -> list[float]:
    return [round(float(v), 6) for v in np.ravel(values)]
