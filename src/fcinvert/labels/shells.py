"""How many neighbour shells a new crystal needs, measured on its force-field ensemble.

A material made with ``material init --shells auto`` is labelled once with the probe's shells
(``fcinvert.physics.material.probe_shells``: 8, fewer when the supercell would pass 256
atoms). For every stable member, the dispersion on the material's path is computed with its
parameters cut after shell n, for n = 1 … the probe's; the *change* of shell n is the RMS
(meV) between the dispersions cut after n and after n − 1, and the ensemble's change is the
median over the stable members. The rule: keep every shell up to the last one whose ensemble
change exceeds ``SHELL_THRESHOLD_MEV``.

Cutting θ after shell n is the n-shell projection of the member's force constants (each
parameter fits its own pair blocks, so the projections nest), hence the material keeps the
probe's supercell and the labels are the probe's, truncated: no force field runs twice.
"""

from __future__ import annotations

import json
from dataclasses import dataclass

import numpy as np
from ase import Atoms

from fcinvert.errors import FcinvertError
from fcinvert.iohelpers import atomic_write_text
from fcinvert.labels.ensemble import Labeller, read_labels, write_label
from fcinvert.physics.dynamics import dynamics_basis
from fcinvert.physics.fcspace import FCSpace
from fcinvert.physics.material import (
    Material,
    load_material,
    pair_distances,
    save_settings,
)

#: a shell is kept while its ensemble-induced dispersion change exceeds this (meV)
SHELL_THRESHOLD_MEV = 0.1
SHELLS_NAME = "shells.json"


@dataclass(frozen=True)
class ShellChoice:
    """The rule's measurements and its choice.

    changes: member → (probe shells,) RMS dispersion change (meV) of adding shell n (index
    n − 1; shell 1's is its change from no force constants at all); ensemble: (probe shells,)
    median over the members; chosen: the number of shells kept.
    """

    changes: dict[str, np.ndarray]
    ensemble: np.ndarray
    threshold_meV: float
    chosen: int

    @property
    def probe_shells(self) -> int:
        return len(self.ensemble)

    def to_json(self) -> dict:
        return {
            "rule": f"keep every shell up to the last whose ensemble-median RMS dispersion "
            f"change exceeds {self.threshold_meV} meV",
            "threshold_meV": self.threshold_meV,
            "probe_shells": len(self.ensemble),
            "chosen": self.chosen,
            "ensemble_change_meV": [round(float(x), 4) for x in self.ensemble],
            "member_change_meV": {
                name: [round(float(x), 4) for x in values] for name, values in self.changes.items()
            },
        }


def distance_shells(fcspace: FCSpace, atoms: Atoms) -> np.ndarray:
    """(n_params,) the distance shell (1 = nearest bond length; orbits of equal length share
    one, as ``material init --shells`` counts them) of each parameter; ``atoms``: the
    material's primitive cell."""
    lengths = np.array([np.linalg.norm(p.vector) for p in fcspace.parameters])
    distances = pair_distances(atoms, float(lengths.max()) + 1e-3)
    return np.array([int(np.argmin(np.abs(distances - x))) + 1 for x in lengths])


def shell_changes(material: Material, fcspace: FCSpace, theta: np.ndarray) -> np.ndarray:
    """RMS change (meV) of the dispersion on the material's path from adding each distance
    shell in turn to θ (n_params,) cut after the previous one: (n_shells,), shell 1 measured
    from zero."""
    shells = distance_shells(fcspace, material.atoms)
    qpoints = material.path.qpoints
    basis = dynamics_basis(fcspace, qpoints)
    previous = np.zeros((len(qpoints), 3 * len(fcspace.phonopy.primitive)))
    changes = []
    for shell in range(1, int(shells.max()) + 1):
        current = basis.frequencies(np.where(shells <= shell, theta, 0.0))
        changes.append(float(np.sqrt(np.mean((current - previous) ** 2))))
        previous = current
    return np.array(changes)


def choose_shells(
    material: Material,
    fcspace: FCSpace,
    thetas: dict[str, np.ndarray],
    threshold: float = SHELL_THRESHOLD_MEV,
) -> ShellChoice:
    """The rule (module docstring) on the stable members' θ (name → (n_params,))."""
    changes = {name: shell_changes(material, fcspace, theta) for name, theta in thetas.items()}
    ensemble = np.median(np.array(list(changes.values())), axis=0)
    above = np.flatnonzero(ensemble > threshold)
    chosen = int(above[-1]) + 1 if len(above) else 1
    return ShellChoice(changes, ensemble, threshold, chosen)


def write_choice(material: Material, choice: ShellChoice) -> None:
    """Record the rule's measurements in ``<material>/shells.json`` (atomic)."""
    text = json.dumps(choice.to_json(), indent=2) + "\n"
    atomic_write_text(material.folder / SHELLS_NAME, text)


def settle_shells(labeller: Labeller) -> tuple[Labeller, ShellChoice | None]:
    """Apply the rule to a material labelled at the probe's shells, once: record the choice,
    set ``shells`` in material.json (``choose_shells`` cleared, supercell kept) and rewrite
    every label cut after the chosen shell. Returns the labeller of the material as it now is,
    and the choice (None when the material does not ask for one or has no stable member)."""
    material = labeller.material
    if not material.settings.choose_shells:
        return labeller, None
    results, _ = read_labels(material, labeller.fcspace.names)
    stable = {r.name: r.theta for r in results if r.status == "stable"}
    if not stable:
        return labeller, None
    choice = choose_shells(material, labeller.fcspace, stable)
    write_choice(material, choice)
    material.settings.shells = choice.chosen
    material.settings.choose_shells = False
    save_settings(material)
    settled = Labeller(load_material(material.folder), labeller.settings)
    kept = len(settled.fcspace.names)
    if settled.fcspace.names != labeller.fcspace.names[:kept]:
        raise FcinvertError(f"{material.folder}: the chosen shells' parameters do not nest")
    for result in results:
        provenance = {**result.provenance, "shells_probe": choice.probe_shells}
        cut = settled.from_theta(
            result.name, result.theta[:kept], result.residual, None, provenance
        )
        cut.wall_s = result.wall_s
        write_label(settled.material, cut, settled.fcspace.names)
    return settled, choice
