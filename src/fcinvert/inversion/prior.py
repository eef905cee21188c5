"""What is known about θ before a spectrum is seen: a Gaussian prior, and where fits start.

The force-field ensemble (``fcinvert label``) brackets the plausible force constants; the prior
is centred on its per-parameter median (the material's reference) and is as wide as the
training domain (``fcinvert.labels.domain``): the ensemble's range r widened by 1.5 r towards
stiffer and 0.25 r towards softer bonds, so that a half-width of 1.375 r per parameter (at
least 10 % of its scale) is one σ. It only decides what the data leave open: a parameter the
spectrum determines is moved by the data whatever the prior says.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from fcinvert.labels.domain import EXPAND_ABOVE, EXPAND_BELOW, load_ensemble, parameter_scale
from fcinvert.physics.fcspace import FCSpace
from fcinvert.physics.material import Material

#: Smallest prior width, as a fraction of each parameter's scale (``parameter_scale``).
MIN_RELATIVE_WIDTH = 0.1


@dataclass(frozen=True)
class Prior:
    """Gaussian prior on θ: centre (P,) and width (P,) eV/Å² (one σ), independent parameters."""

    centre: np.ndarray
    width: np.ndarray

    def cap(self, covariance: np.ndarray) -> np.ndarray:
        """``covariance`` (P, P) with every variance above the prior's brought down to it
        (rows and columns scaled together): the data never make θ less known than before."""
        variance = np.diag(covariance)
        factor = np.sqrt(np.minimum(variance, self.width**2) / np.maximum(variance, 1e-300))
        return covariance * np.outer(factor, factor)

    @classmethod
    def around(cls, theta: np.ndarray, relative: float = 1.0) -> Prior:
        """A weak prior centred on θ, ``relative`` × ``parameter_scale(θ)`` wide."""
        theta = np.asarray(theta, dtype=float)
        return cls(theta, relative * np.maximum(parameter_scale(theta), 1e-6))


@dataclass(frozen=True)
class Start:
    """A starting θ (P,) eV/Å² for a refinement and where it came from."""

    name: str
    theta: np.ndarray


@dataclass(frozen=True)
class Ensemble:
    """The stable force-field members of a material: names and θ (M, P) eV/Å², the median
    reference (P,), and the prior they define."""

    names: list[str]
    members: np.ndarray
    reference: np.ndarray
    prior: Prior

    def starts(self) -> list[Start]:
        """The median and every member, as refinement starts."""
        return [Start("ensemble median", self.reference)] + [
            Start(f"member {name}", theta)
            for name, theta in zip(self.names, self.members, strict=True)
        ]


def load_prior_ensemble(material: Material, fcspace: FCSpace) -> Ensemble:
    """The material's ensemble and its prior (module docstring)."""
    names, members = load_ensemble(material, fcspace)
    reference = fcspace.reference_theta(material)
    spread = members.max(axis=0) - members.min(axis=0)
    half_width = 0.5 * (1.0 + EXPAND_ABOVE + EXPAND_BELOW) * spread
    width = np.maximum(half_width, MIN_RELATIVE_WIDTH * parameter_scale(reference))
    return Ensemble(names, members, reference, Prior(reference, width))


def draw_starts(
    prior: Prior, count: int, spread: float, seed: list[int], label: str
) -> list[Start]:
    """``count`` draws θ ~ N(centre, (spread · width)²) of ``prior``, as starts named ``label``
    and a number. From the ensemble's prior (spread 0.5) they reach truths far from every
    member (a Nb spectrum at 44 counts: the members' best minimum 4.2 meV off; with 16 prior
    draws, 0.2 meV); around the best minimum, they reach the nearby minima a local optimiser
    cannot cross."""
    rng = np.random.default_rng(seed)
    return [
        Start(
            f"{label} {n + 1}",
            prior.centre + spread * prior.width * rng.normal(size=len(prior.centre)),
        )
        for n in range(count)
    ]
