"""Stage I labels: force constants from an ensemble of force fields, projected onto θ.

For each member: take the material's primitive cell (fixed experimental lattice by default, or
relaxed by the member's own calculator), compute phonopy finite-displacement force constants on
the material's FC supercell (±0.01 Å by default, perfect-supercell forces subtracted), project
them onto the symmetry-reduced parameters θ by least squares (residual kept), and check dynamic
stability on the path and a q mesh. A member that fails (import missing, weights absent, an
exception inside the calculator) is reported and the others go on.

Results are cached per member in ``<material>/labels/<member>.json``; :func:`summarise` turns
the cache into ``ensemble.json`` and the material's ``reference.json`` (per-parameter median
over the stable members).
"""

from __future__ import annotations

import dataclasses
import datetime
import importlib.metadata
import json
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from ase import Atoms
from phonopy import Phonopy
from phonopy.physical_units import get_physical_units

from fcinvert.errors import FcinvertError
from fcinvert.iohelpers import atomic_write_text
from fcinvert.labels.members import Member
from fcinvert.physics.dynamics import StabilityCheck
from fcinvert.physics.fcspace import FCSpace, build_fcspace, phonopy_for
from fcinvert.physics.material import (
    Material,
    cubic_lattice_parameter,
    energy_window_for,
    save_reference,
    save_settings,
)

LABELS_DIR = "labels"
ENSEMBLE_NAME = "ensemble.json"
THZ_TO_MEV = get_physical_units().THzToEv * 1000.0


@dataclass(frozen=True)
class LabelSettings:
    """How members are labelled.

    displacement: finite-displacement amplitude (Å), applied as ± pairs.
    relax: relax the cell with the member's calculator (symmetry kept) instead of using the
        material's fixed experimental lattice.
    step_check: a second amplitude (Å) whose θ is compared with the first (None: skip).
    """

    displacement: float = 0.01
    relax: bool = False
    step_check: float | None = None


@dataclass
class LabelResult:
    """One member's label.

    theta: (n_params,) eV/Å² or None when the member failed. frequencies: summary in meV
    (highest, gamma_optical, lowest_off_gamma, points {label: sorted branch energies}).
    """

    name: str
    status: str
    message: str = ""
    theta: np.ndarray | None = None
    residual: float | None = None
    dispersion_rms: float | None = None
    frequencies: dict[str, Any] = field(default_factory=dict)
    provenance: dict[str, Any] = field(default_factory=dict)
    step_check: dict[str, Any] | None = None
    wall_s: float = 0.0

    def to_json(self, names: list[str]) -> dict[str, Any]:
        return {
            "member": self.name,
            "status": self.status,
            "message": self.message,
            "parameters": None
            if self.theta is None
            else dict(zip(names, map(float, self.theta), strict=True)),
            "projection": {
                "residual_eV_A2": self.residual,
                "dispersion_rms_meV": self.dispersion_rms,
            },
            "frequencies_meV": self.frequencies,
            "provenance": self.provenance,
            "step_check": self.step_check,
            "wall_s": round(self.wall_s, 2),
        }

    @classmethod
    def from_json(cls, content: dict[str, Any], names: list[str]) -> LabelResult:
        parameters = content.get("parameters")
        theta = None
        if parameters is not None:
            if list(parameters) != names:
                raise ValueError("its parameters are not this material's (stale label)")
            theta = np.array([float(parameters[n]) for n in names])
        projection = content.get("projection", {})
        return cls(
            name=str(content["member"]),
            status=str(content["status"]),
            message=str(content.get("message", "")),
            theta=theta,
            residual=projection.get("residual_eV_A2"),
            dispersion_rms=projection.get("dispersion_rms_meV"),
            frequencies=dict(content.get("frequencies_meV", {})),
            provenance=dict(content.get("provenance", {})),
            step_check=content.get("step_check"),
            wall_s=float(content.get("wall_s", 0.0)),
        )


class Labeller:
    """Labels members for one material; the FC space and the stability check are built once."""

    def __init__(self, material: Material, settings: LabelSettings | None = None) -> None:
        self.material = material
        self.settings = settings or LabelSettings()
        self.fcspace: FCSpace = build_fcspace(material)
        self.check = StabilityCheck.build(self.fcspace, material.path.qpoints)

    # ---- members -------------------------------------------------------------------------
    def label(self, member: Member) -> LabelResult:
        """Run one member end to end; any exception becomes a 'failed' result."""
        start = time.perf_counter()
        try:
            result = self._label(member)
        except Exception as error:  # a member may fail in any way; the ensemble goes on
            result = LabelResult(
                member.name, "failed", _one_line(error), provenance=self._base_provenance(member)
            )
        result.wall_s = time.perf_counter() - start
        return result

    def _label(self, member: Member) -> LabelResult:
        symbols = set(self.material.atoms.get_chemical_symbols())
        if member.elements is not None and not symbols <= member.elements:
            raise FcinvertError(
                f"{member.name}: describes only {', '.join(sorted(member.elements))}"
            )
        calculator = member.make()
        cell, lattice = self._cell(calculator)
        phonon, extra = finite_displacement_fcs(
            self.material, cell, calculator, self.settings.displacement
        )
        provenance = {
            **self._base_provenance(member),
            "lattice": lattice,
            "a_A": _lattice_parameter(cell),
            "volume_per_atom_A3": cell.get_volume() / len(cell),
            **extra,
        }
        result = self.from_phonopy(member.name, phonon, provenance)
        if self.settings.step_check is not None and result.theta is not None:
            second, _ = finite_displacement_fcs(
                self.material, cell, calculator, self.settings.step_check
            )
            result.step_check = self._compare(result, second.force_constants)
        return result

    def from_phonopy(self, name: str, phonon: Phonopy, provenance: dict) -> LabelResult:
        """Label from a phonopy object whose full force constants live on the material's FC
        supercell (same atom order as ``fcspace.phonopy.supercell``)."""
        theta, residual = self.fcspace.project(phonon.force_constants)
        own = member_dispersion(phonon, self.material.path.qpoints)
        return self.from_theta(name, theta, residual, own, provenance)

    def from_theta(
        self,
        name: str,
        theta: np.ndarray,
        residual: float,
        own: np.ndarray | None,
        provenance: dict,
    ) -> LabelResult:
        """Finish a label from projected θ: stability, frequencies, and the RMS (meV) between
        θ's dispersion and the source's own (``own``: (nq, nb) meV on the path, or None)."""
        ours = self.check.path.frequencies(theta)
        lowest = float(self.check.lowest(theta)[0])
        stable = bool(self.check.is_stable(theta)[0])
        rms = None if own is None else float(np.sqrt(np.mean((ours - own) ** 2)))
        frequencies = summarise_frequencies(self.material, ours)
        frequencies["lowest_off_gamma"] = lowest
        message = "" if stable else f"imaginary modes (lowest {lowest:.2f} meV off Γ)"
        if own is not None:
            off_gamma = np.any(np.abs(self.material.path.qpoints) > 1e-9, axis=1)
            own_lowest = float(own[off_gamma].min())
            frequencies["own_lowest_off_gamma_path"] = own_lowest
            if not stable:
                message += f"; the source's own FCs: lowest {own_lowest:.2f} meV on the path"
        return LabelResult(
            name,
            "stable" if stable else "unstable",
            message,
            theta,
            residual,
            rms,
            frequencies,
            provenance,
        )

    def _compare(self, result: LabelResult, force_constants: np.ndarray) -> dict[str, Any]:
        theta, _ = self.fcspace.project(force_constants)
        first = self.check.path.frequencies(result.theta)
        second = self.check.path.frequencies(theta)
        scale = np.linalg.norm(result.theta)
        return {
            "displacement_A": self.settings.step_check,
            "theta_change_relative": float(np.linalg.norm(theta - result.theta) / scale),
            "dispersion_rms_change_meV": float(np.sqrt(np.mean((second - first) ** 2))),
            "highest_meV": float(second.max()),
        }

    def _cell(self, calculator: Any) -> tuple[Atoms, str]:
        atoms = self.material.atoms.copy()
        if not self.settings.relax:
            return atoms, "fixed (material cell)"
        return relax_cell(atoms, calculator), "relaxed (member's own, symmetry kept)"

    def _base_provenance(self, member: Member) -> dict[str, Any]:
        return {
            "package": member.package or None,
            "model": member.model,
            "version": member.version(),
            "note": member.note or None,
            **self._method(),
        }

    def _method(self) -> dict[str, Any]:
        return {
            "displacement_A": self.settings.displacement,
            "plus_minus": True,
            "supercell_matrix": self.material.supercell_matrix.tolist(),
            "perfect_cell_forces": "subtracted",
            "fc_symmetrization": "phonopy symmetrize_force_constants",
            "relax": self.settings.relax,
            "fcinvert_version": _version("fcinvert"),
            "phonopy_version": _version("phonopy"),
            "created": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d"),
        }

    def matches(self, content: dict[str, Any]) -> bool:
        """Whether a cached label was made with these settings for these parameters."""
        provenance = content.get("provenance", {})
        parameters = content.get("parameters") or {}
        return (
            content.get("status") in ("stable", "unstable")
            and list(parameters) == self.fcspace.names
            and provenance.get("displacement_A") == self.settings.displacement
            and provenance.get("relax") == self.settings.relax
            and provenance.get("supercell_matrix") == self.material.supercell_matrix.tolist()
        )


# ---- physics helpers ------------------------------------------------------------------------
def finite_displacement_fcs(
    material: Material, cell: Atoms, calculator: Any, displacement: float
) -> tuple[Phonopy, dict[str, Any]]:
    """Phonopy force constants of ``calculator`` on the material's FC supercell built on
    ``cell`` (the material's primitive cell, possibly rescaled).

    ±``displacement`` (Å) pairs; the perfect supercell's forces are subtracted from every
    displaced set (removes spurious static forces, e.g. DIEP's); full FCs, symmetrized by
    phonopy. Returns the phonopy object (``.force_constants`` (N, N, 3, 3) eV/Å²) and facts
    for the provenance.
    """
    phonon = phonopy_for(dataclasses.replace(material, atoms=cell))
    phonon.generate_displacements(distance=displacement, is_plusminus=True)
    perfect = _forces(phonon.supercell, calculator)
    forces = [_forces(s, calculator) - perfect for s in phonon.supercells_with_displacements]
    phonon.forces = np.array(forces)
    phonon.produce_force_constants(show_drift=False)
    phonon.symmetrize_force_constants(show_drift=False)
    return phonon, {
        "n_displaced_supercells": len(forces),
        "perfect_cell_max_force_eV_A": float(np.abs(perfect).max()),
    }


def _forces(supercell: Any, calculator: Any) -> np.ndarray:
    """Forces (N, 3) eV/Å on a phonopy supercell."""
    atoms = Atoms(
        symbols=supercell.symbols,
        cell=supercell.cell,
        scaled_positions=supercell.scaled_positions,
        pbc=True,
    )
    atoms.calc = calculator
    forces = np.array(atoms.get_forces(), dtype=float)
    if not np.all(np.isfinite(forces)):
        raise FcinvertError("the calculator returned non-finite forces")
    return forces


def relax_cell(atoms: Atoms, calculator: Any, fmax: float = 1e-4, steps: int = 500) -> Atoms:
    """Relax cell and positions with ``calculator`` keeping the space group (BFGS, Fréchet cell
    filter, ``fmax`` in eV/Å)."""
    from ase.constraints import FixSymmetry
    from ase.filters import FrechetCellFilter
    from ase.optimize import BFGS

    relaxed = atoms.copy()
    relaxed.calc = calculator
    relaxed.set_constraint(FixSymmetry(relaxed))
    optimizer = BFGS(FrechetCellFilter(relaxed), logfile=None)
    if not optimizer.run(fmax=fmax, steps=steps):
        raise FcinvertError(f"cell relaxation did not converge in {steps} steps")
    relaxed.set_constraint()
    relaxed.calc = None
    return relaxed


def member_dispersion(phonon: Phonopy, qpoints: np.ndarray) -> np.ndarray:
    """ħω (nq, nb) meV of phonopy's own force constants at ``qpoints`` (imaginary negative)."""
    phonon.run_qpoints(qpoints)
    return np.asarray(phonon.qpoints.frequencies) * THZ_TO_MEV


def summarise_frequencies(material: Material, frequencies: np.ndarray) -> dict[str, Any]:
    """Highest, Γ-optical (None for one atom per cell) and the branch energies at each labelled
    point of the path (first occurrence), from path frequencies (nq, nb) meV."""
    points: dict[str, list[float]] = {}
    for index, label in material.path.labels:
        if label not in points:
            points[label] = [round(float(x), 4) for x in np.sort(frequencies[index])]
    gamma = [i for i, label in material.path.labels if label == "Γ"]
    optical = None
    if gamma and frequencies.shape[1] > 3:
        optical = float(frequencies[gamma[0]].max())
    return {"highest": float(frequencies.max()), "gamma_optical": optical, "points": points}


def zone_boundary_label(material: Material) -> str:
    """The first labelled point after Γ on the path (X for fcc, H for bcc)."""
    labels = [label for _, label in material.path.labels if label != "Γ"]
    return labels[0] if labels else "Γ"


# ---- ensemble and cache ---------------------------------------------------------------------
def labels_folder(material: Material) -> Path:
    return material.folder / LABELS_DIR


def label_file(material: Material, name: str) -> Path:
    return labels_folder(material) / f"{name}.json"


def write_label(material: Material, result: LabelResult, names: list[str]) -> Path:
    """Write one label file (atomic)."""
    target = label_file(material, result.name)
    atomic_write_text(target, json.dumps(result.to_json(names), indent=2) + "\n")
    return target


def read_labels(material: Material, names: list[str]) -> tuple[list[LabelResult], dict[str, str]]:
    """Every cached label of the material, and the files that could not be used (with why)."""
    results, skipped = [], {}
    for path in sorted(labels_folder(material).glob("*.json")):
        try:
            result = LabelResult.from_json(json.loads(path.read_text()), names)
        except (OSError, ValueError, KeyError, TypeError) as error:
            skipped[path.name] = _one_line(error)
            continue
        if result.theta is None or result.status not in ("stable", "unstable"):
            skipped[path.name] = f"no parameters (status {result.status})"
            continue
        results.append(result)
    return results, skipped


def run_members(
    labeller: Labeller,
    members: Iterable[Member],
    *,
    recompute: bool = False,
    on_start: Callable[[Member], None] | None = None,
    on_done: Callable[[LabelResult], None] | None = None,
) -> list[LabelResult]:
    """Label ``members`` (cached labels made with the same settings are reused unless
    ``recompute``); successful labels are written, failures only returned, so a missing
    package never overwrites a label made elsewhere."""
    material, names = labeller.material, labeller.fcspace.names
    results = []
    for member in members:
        if on_start is not None:
            on_start(member)
        cached = label_file(material, member.name)
        result = None
        if cached.is_file() and not recompute:
            try:
                content = json.loads(cached.read_text())
                if labeller.matches(content):
                    result = LabelResult.from_json(content, names)
                    result.message = result.message or "cached"
            except (OSError, ValueError, KeyError, TypeError):
                result = None
        if result is None:
            result = labeller.label(member)
            if result.status != "failed":
                write_label(material, result, names)
        results.append(result)
        if on_done is not None:
            on_done(result)
    return results


def summarise(labeller: Labeller, failures: dict[str, str] | None = None) -> dict[str, Any]:
    """Write ``ensemble.json`` from every cached label and, when any member is stable,
    ``reference.json`` = per-parameter median over the stable members. The material's energy
    grid is derived from the reference (``energy_window_for``) only if it has none.
    ``failures``: member → message of this run's failures; they join those recorded by
    earlier runs under ``not_labelled`` until the member has a label."""
    material, names = labeller.material, labeller.fcspace.names
    results, skipped = read_labels(material, names)
    stable = [r for r in results if r.status == "stable"]
    boundary = zone_boundary_label(material)
    summary: dict[str, Any] = {
        "material": material.name,
        "parameters": names,
        "zone_boundary_point": boundary,
        "members": {r.name: _member_summary(r, names) for r in results},
        "stable": [r.name for r in stable],
        "unstable": [r.name for r in results if r.status == "unstable"],
        "not_labelled": _not_labelled(material, results, failures or {}),
        "unreadable_label_files": skipped,
        "statistics_meV": _statistics(stable, boundary),
    }
    if stable:
        theta = np.median(np.array([r.theta for r in stable]), axis=0)
        reference = labeller.from_theta("reference", theta, 0.0, None, {})
        info = {
            "source": f"per-parameter median over {len(stable)} stable force-field ensemble "
            "members (fcinvert label)",
            "members": [r.name for r in stable],
            "stable": reference.status == "stable",
            "frequencies_meV": reference.frequencies,
        }
        save_reference(material, labeller.fcspace.as_dict(theta), info)
        summary["reference"] = info
        if material.settings.energy is None:
            material.settings.energy = energy_window_for(
                reference.frequencies["highest"], material.settings.path_points
            )
            save_settings(material)
            summary["energy_grid_set"] = material.settings.energy.model_dump()
    target = material.folder / ENSEMBLE_NAME
    atomic_write_text(target, json.dumps(summary, indent=2, ensure_ascii=False) + "\n")
    return summary


def _not_labelled(
    material: Material, results: list[LabelResult], failures: dict[str, str]
) -> dict[str, str]:
    """Failures of this run and of earlier ones (from ensemble.json), less labelled members."""
    previous: dict[str, str] = {}
    try:
        previous = dict(json.loads((material.folder / ENSEMBLE_NAME).read_text())["not_labelled"])
    except (OSError, ValueError, KeyError, TypeError):
        previous = {}
    labelled = {r.name for r in results}
    merged = {**previous, **failures}
    return {k: str(v) for k, v in sorted(merged.items()) if k not in labelled}


def _member_summary(result: LabelResult, names: list[str]) -> dict[str, Any]:
    """One member's entry in ensemble.json: status, key energies (meV) and θ by name."""
    return {
        "status": result.status,
        "message": result.message if result.message != "cached" else "",
        "model": result.provenance.get("model"),
        "version": result.provenance.get("version"),
        "a_A": result.provenance.get("a_A"),
        "highest_meV": result.frequencies.get("highest"),
        "gamma_optical_meV": result.frequencies.get("gamma_optical"),
        "lowest_off_gamma_meV": result.frequencies.get("lowest_off_gamma"),
        "points_meV": result.frequencies.get("points"),
        "residual_eV_A2": result.residual,
        "dispersion_rms_meV": result.dispersion_rms,
        "parameters": dict(zip(names, map(float, result.theta), strict=True)),
    }


def _statistics(stable: list[LabelResult], boundary: str) -> dict[str, Any]:
    """min / median / max over stable members of the highest, Γ-optical and zone-boundary
    (every branch) energies, meV."""
    if not stable:
        return {}

    def spread(values: list[float]) -> dict[str, float]:
        array = np.array(values, dtype=float)
        return {
            "min": float(array.min()),
            "median": float(np.median(array)),
            "max": float(array.max()),
        }

    statistics: dict[str, Any] = {"highest": spread([r.frequencies["highest"] for r in stable])}
    optical = [r.frequencies.get("gamma_optical") for r in stable]
    if all(x is not None for x in optical):
        statistics["gamma_optical"] = spread(optical)
    branches = np.array([r.frequencies["points"][boundary] for r in stable])
    statistics[boundary] = [spread(list(column)) for column in branches.T]
    return statistics


def _lattice_parameter(cell: Atoms) -> float:
    """Conventional cubic a (Å), or the cube root of the cell volume when not cubic."""
    cubic = cubic_lattice_parameter(cell)
    return float(cubic if cubic is not None else cell.get_volume() ** (1 / 3))


def _version(distribution: str) -> str | None:
    try:
        return importlib.metadata.version(distribution)
    except importlib.metadata.PackageNotFoundError:
        return None


def _one_line(error: BaseException) -> str:
    text = str(error).strip().splitlines()
    first = text[0] if text else ""
    return f"{type(error).__name__}: {first}" if first else type(error).__name__
