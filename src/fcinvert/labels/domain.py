"""The training domain: where Stage I draws FC parameters θ, and the stable sampler.

The K selected parameters are drawn jointly and uniformly over their ensemble range, expanded
on both sides; every other parameter stays at the material's reference (``reference.json``, the
ensemble median per parameter). With m = min and M = max of a parameter over the ensemble
members and r = M − m, the paper's "−25 % / +150 %" is read here as: the ensemble range
extended by 1.5 r towards STIFFER bonds (larger |θ|) and by 0.25 r towards softer ones. For a
parameter whose ensemble values are negative (the stretch terms of bonds)::

    low  = m − 1.5 · r        high = M + 0.25 · r

and mirrored for positive ones (``toward="magnitude"``, the default). The ML force fields are
10–40 % soft (../shared/notes/force-fields.md; Ge Γ-optical ensemble median 29 meV against 37.5
measured, Nb H 15 against 27), so the large extension must reach stiffer values; it also keeps
far more draws stable (rejected: Ge 55 %, Nb 71 %, against 92 % and 97 %). ``toward="value"``
is the literal reading, low = m − 0.25 r and high = M + 1.5 r in signed values. Both fractions are
arguments. Where r is ~0 (a single member, or members that agree), the interval is instead
[m − h, M + h] with the stated half width h = DEGENERATE_HALF_WIDTH · scale (0.1 by default),
scale = max(|θ_ref|, SCALE_FLOOR · max_k |θ_ref,k|): ±10 % around a single member's value, and
a parameter that is zero there still gets ±1 % of the largest |θ| of the reference.

Only dynamically stable samples are kept: no imaginary mode (below UNSTABLE_BELOW meV) off Γ on
the path or on a 6×6×6 mesh. The mesh is reduced by the crystal's point group and time reversal
(θ is space-group invariant, so symmetry-equivalent q have equal frequencies), and its test is
a batched Cholesky factorisation instead of an eigen-solve (the same decision, several times
cheaper: it matters where most draws are rejected). The path, whose frequencies the spectra
need anyway, is solved for the mesh's survivors only.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

import numpy as np
import spglib

from fcinvert.errors import FcinvertError
from fcinvert.iohelpers import atomic_write_text
from fcinvert.physics.dynamics import (
    FREQUENCY_TO_MEV,
    UNSTABLE_BELOW,
    DynamicsBasis,
    StabilityCheck,
    dynamics_basis,
)
from fcinvert.physics.fcspace import FCSpace
from fcinvert.physics.material import Material

#: K, the number of most sensitive parameters the domain draws (the rest stay at the reference)
DEFAULT_K = 8
EXPAND_BELOW = 0.25
EXPAND_ABOVE = 1.5
DEGENERATE_HALF_WIDTH = 0.1
SCALE_FLOOR = 0.1
#: A range below this fraction of the ensemble's largest |θ| counts as zero.
DEGENERATE_RANGE = 1e-9
#: The sampler gives up when fewer than this fraction of its (≥ 1000) draws are stable.
MIN_ACCEPTANCE = 0.001
#: Mesh points tested first (those that have rejected most draws).
MESH_FIRST = 2
ENSEMBLE_NAME = "ensemble.json"
DOMAIN_FORMAT = "fcinvert-domain"

Toward = Literal["value", "magnitude"]


def parameter_scale(reference: np.ndarray) -> np.ndarray:
    """(P,) eV/Å²: |θ_k|, but at least SCALE_FLOOR × the largest |θ| (so zeros get a scale)."""
    reference = np.abs(np.asarray(reference, dtype=float))
    return np.maximum(reference, SCALE_FLOOR * reference.max(initial=0.0))


def load_ensemble(material: Material, fcspace: FCSpace) -> tuple[list[str], np.ndarray]:
    """Names and θ (M, P) eV/Å² of the stable ensemble members in ``ensemble.json``.

    ``members`` is read as a ``{name: entry}`` dict or a list of entries with a ``name``; an
    entry counts when it has a ``parameters`` dict (θ by name; a missing one is taken from the
    reference) and its ``status``, if given, is "stable". With no such member (or no file) the
    reference is the only member.
    """
    reference = fcspace.reference_theta(material)
    alone = [str(material.reference_info.get("source", "reference"))], reference[None]
    path = Path(material.folder) / ENSEMBLE_NAME
    if not path.is_file():
        return alone
    try:
        members = json.loads(path.read_text())["members"]
        if isinstance(members, dict):
            members = [{"name": name, **entry} for name, entry in members.items()]
        usable = [
            m
            for m in members
            if isinstance(m.get("parameters"), dict) and m.get("status", "stable") == "stable"
        ]
        names = [str(m["name"]) for m in usable]
        values = [{str(k): float(v) for k, v in m["parameters"].items()} for m in usable]
        theta = np.array([fcspace.theta_from_dict(v, reference) for v in values])
    except (OSError, ValueError, KeyError, TypeError, AttributeError, FcinvertError) as error:
        raise FcinvertError(f"{path}: not an ensemble file ({error})") from None
    return (names, theta) if names else alone


@dataclass(frozen=True)
class Domain:
    """The box θ is drawn from.

    names: (P,) parameter names; reference: (P,) eV/Å², the value of every parameter that is
    not sampled; selected: (K,) int indices of the sampled parameters; low, high: (K,) eV/Å²
    bounds of the selected ones. ``info`` records how the bounds were made.
    """

    material: str
    names: list[str]
    reference: np.ndarray
    selected: np.ndarray
    low: np.ndarray
    high: np.ndarray
    info: dict = field(default_factory=dict)

    @property
    def selected_names(self) -> list[str]:
        return [self.names[i] for i in self.selected]

    def sample(self, rng: np.random.Generator, n: int) -> np.ndarray:
        """n uniform draws, θ (n, P) eV/Å²; consumes n·K uniforms of ``rng`` in order."""
        theta = np.tile(self.reference, (n, 1))
        theta[:, self.selected] = self.low + (self.high - self.low) * rng.random((n, len(self.low)))
        return theta

    def to_json(self) -> str:
        content = {
            "format": DOMAIN_FORMAT,
            "version": 1,
            "material": self.material,
            "names": list(self.names),
            "reference": self.reference.tolist(),
            "selected": self.selected.tolist(),
            "low": self.low.tolist(),
            "high": self.high.tolist(),
            "info": self.info,
        }
        return json.dumps(content, indent=2) + "\n"

    def save(self, path: str | Path) -> None:
        atomic_write_text(path, self.to_json())

    @classmethod
    def load(cls, path: str | Path) -> Domain:
        path = Path(path)
        try:
            content = json.loads(path.read_text())
            if content.get("format") != DOMAIN_FORMAT:
                raise ValueError("format is not 'fcinvert-domain'")
            domain = cls(
                str(content["material"]),
                [str(n) for n in content["names"]],
                np.asarray(content["reference"], dtype=float),
                np.asarray(content["selected"], dtype=np.int64),
                np.asarray(content["low"], dtype=float),
                np.asarray(content["high"], dtype=float),
                dict(content.get("info", {})),
            )
        except (OSError, ValueError, KeyError, TypeError, AttributeError) as error:
            raise FcinvertError(f"{path}: not a domain file ({error})") from None
        sizes = {len(domain.names), len(domain.reference)}
        k = len(domain.selected)
        if len(sizes) != 1 or {len(domain.low), len(domain.high)} != {k} or k == 0:
            raise FcinvertError(f"{path}: inconsistent lengths in the domain file")
        if domain.selected.min() < 0 or domain.selected.max() >= len(domain.names):
            raise FcinvertError(f"{path}: 'selected' must index 'names'")
        if np.any(domain.high < domain.low):
            raise FcinvertError(f"{path}: a 'high' bound lies below its 'low' bound")
        return domain


def build_domain(
    material: str,
    names: list[str],
    ensemble: np.ndarray,
    reference: np.ndarray,
    selected: np.ndarray,
    expand_below: float = EXPAND_BELOW,
    expand_above: float = EXPAND_ABOVE,
    toward: Toward = "magnitude",
    half_width: float = DEGENERATE_HALF_WIDTH,
) -> Domain:
    """The domain of ``selected`` parameters from the ensemble θ (M, P) and reference θ (P,)."""
    if expand_below < 0 or expand_above < 0 or half_width <= 0:
        raise FcinvertError("domain expansions must be ≥ 0 and the half width > 0")
    if toward not in ("value", "magnitude"):
        raise FcinvertError(f"toward must be 'value' or 'magnitude', not '{toward}'")
    ensemble = np.atleast_2d(np.asarray(ensemble, dtype=float))
    reference = np.asarray(reference, dtype=float)
    selected = np.asarray(selected, dtype=np.int64)
    values = ensemble[:, selected]
    smallest, largest = values.min(axis=0), values.max(axis=0)
    span = largest - smallest
    below = np.full(len(selected), expand_below)
    above = np.full(len(selected), expand_above)
    if toward == "magnitude":
        negative = largest < 0
        below[negative], above[negative] = expand_above, expand_below
    low, high = smallest - below * span, largest + above * span
    degenerate = span <= DEGENERATE_RANGE * np.abs(ensemble).max(initial=1.0)
    width = half_width * parameter_scale(reference)[selected]
    low = np.where(degenerate, smallest - width, low)
    high = np.where(degenerate, largest + width, high)
    info = {
        "expand_below": expand_below,
        "expand_above": expand_above,
        "toward": toward,
        "degenerate_half_width": half_width,
        "degenerate": [names[i] for i in selected[degenerate]],
        "n_members": len(ensemble),
        "ensemble_min": smallest.tolist(),
        "ensemble_max": largest.tolist(),
    }
    return Domain(material, list(names), reference, selected, low, high, info)


def irreducible_mesh(material: Material, divisions: int = 6) -> np.ndarray:
    """Irreducible points (reduced, Γ left out) of the Γ-centred divisions³ mesh: (n, 3)."""
    atoms = material.atoms
    cell = (atoms.cell[:], atoms.get_scaled_positions(), atoms.numbers)
    mapping, grid = spglib.get_ir_reciprocal_mesh([divisions] * 3, cell, is_shift=[0, 0, 0])
    points = grid[np.unique(mapping)] / divisions
    return points[np.any(points != 0, axis=1)]


def stability_check(material: Material, fcspace: FCSpace, divisions: int = 6) -> StabilityCheck:
    """StabilityCheck on the material's path and the irreducible part of the mesh."""
    return StabilityCheck(
        dynamics_basis(fcspace, material.path.qpoints),
        dynamics_basis(fcspace, irreducible_mesh(material, divisions)),
    )


@dataclass
class StableDraw:
    """The first n stable samples of a random stream.

    theta: (n, P) eV/Å²; frequencies: (n, nq, nb) meV on the path; drawn: candidates examined
    up to and including the n-th stable one.
    """

    theta: np.ndarray
    frequencies: np.ndarray
    drawn: int

    @property
    def rejected(self) -> int:
        return self.drawn - len(self.theta)


@dataclass
class StableSampler:
    """Uniform draws from a domain, keeping the dynamically stable ones.

    failures: (n_mesh,) how often each mesh point has rejected a draw so far; the points that
    reject most are tested first. That changes the cost of a test, never its outcome.
    """

    domain: Domain
    check: StabilityCheck
    failures: np.ndarray = field(init=False, repr=False)

    def __post_init__(self) -> None:
        self.failures = np.zeros(len(self.check.mesh.qpoints))

    def screen(self, candidates: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Which rows of θ (B, P) are stable: their indices (S,) and path frequencies
        (S, nq, nb) meV. The mesh goes first (Cholesky tests, cheap: first at the MESH_FIRST
        points that rejected most so far, then at the rest); the path is solved only for its
        survivors, and its frequencies decide and are kept."""
        good = np.arange(len(candidates))
        order = np.argsort(-self.failures, kind="stable")
        for points in (order[:MESH_FIRST], order[MESH_FIRST:]):
            below = modes_below(self.check.mesh, candidates[good], points)
            self.failures[points] += below.sum(axis=0)
            good = good[~below.any(axis=1)]
        path = self.check.path
        omega = path.frequencies(candidates[good])
        off_gamma = np.any(np.abs(path.qpoints) > 1e-9, axis=1)
        stable = omega[:, off_gamma].min(axis=(1, 2), initial=np.inf) > UNSTABLE_BELOW
        return good[stable], omega[stable]

    def draw(self, n: int, rng: np.random.Generator, batch: int = 1024) -> StableDraw:
        """The first ``n`` stable samples of ``rng``'s stream (independent of ``batch``),
        with their path frequencies."""
        thetas, frequencies, drawn, kept = [], [], 0, 0
        while kept < n:
            acceptance = max(kept / drawn, MIN_ACCEPTANCE) if drawn else 1.0
            if drawn >= 1000 and kept < MIN_ACCEPTANCE * drawn:
                raise FcinvertError(
                    f"domain of {self.domain.material}: fewer than {MIN_ACCEPTANCE:.1%} of the "
                    f"samples are stable ({kept} of {drawn}); narrow it"
                )
            size = int(min(batch, max(8, np.ceil(1.1 * (n - kept) / acceptance))))
            candidates = self.domain.sample(rng, size)
            order, omega = self.screen(candidates)
            take = min(n - kept, len(order))
            thetas.append(candidates[order[:take]])
            frequencies.append(omega[:take])
            kept += take
            drawn += int(order[take - 1]) + 1 if kept == n and take else size
        path = self.check.path
        if not thetas:
            shape = (0, len(path.qpoints), path.n_branches)
            return StableDraw(np.empty((0, len(self.domain.names))), np.empty(shape), 0)
        return StableDraw(np.concatenate(thetas), np.concatenate(frequencies), drawn)


def no_mode_below(basis: DynamicsBasis, theta: np.ndarray) -> np.ndarray:
    """(B,) bool: no mode below UNSTABLE_BELOW meV at any q of ``basis`` off Γ, for θ (B, P)."""
    off_gamma = np.flatnonzero(np.any(np.abs(basis.qpoints) > 1e-9, axis=1))
    return ~modes_below(basis, theta, off_gamma).any(axis=1)


def modes_below(basis: DynamicsBasis, theta: np.ndarray, points: np.ndarray) -> np.ndarray:
    """(B, len(points)) bool: whether θ (B, P) has a mode below UNSTABLE_BELOW meV at each of
    the q-points ``points`` (indices into ``basis.qpoints``).

    Exactly the frequency test of StabilityCheck without an eigen-solve: ħω > −w for every
    mode means D(q) + (w/F)²·1 is positive definite, which a batched Cholesky factorisation
    (torch's reports each matrix's success) decides at a fraction of the cost.
    """
    import torch

    part = basis.matrices[:, points].reshape(len(basis.matrices), -1)
    matrices = (theta @ part.real + 1j * (theta @ part.imag)).reshape(
        len(theta), len(points), basis.n_branches, basis.n_branches
    )
    diagonal = np.arange(basis.n_branches)
    matrices[..., diagonal, diagonal] += (UNSTABLE_BELOW / FREQUENCY_TO_MEV) ** 2
    _, info = torch.linalg.cholesky_ex(torch.from_numpy(matrices))
    return info.numpy() != 0  # info is 0 where the factorisation succeeded
