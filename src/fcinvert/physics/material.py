"""A crystal as fcinvert sees it: standard primitive cell, FC supercell, q-path, energy grid.

A material lives in a folder holding ``material.json`` (the settings, editable by hand), the
structure (``POSCAR`` of the seekpath standard primitive cell) and, once force constants are
known, ``reference.json`` (the reference FC parameters and where they came from).
Bundled materials (``ge``, ``nb``) sit inside the package; ``material init`` writes new ones
into the user library (``$FCINVERT_HOME/materials``, default ``~/.local/share/fcinvert``).
"""

from __future__ import annotations

import json
import math
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

import numpy as np
import seekpath
import spglib
from ase import Atoms
from pydantic import BaseModel, ConfigDict, Field

from fcinvert.errors import FcinvertError
from fcinvert.iohelpers import atomic_write_text, read_json, validated
from fcinvert.physics.reciprocal import reciprocal_basis

BUNDLED = Path(__file__).resolve().parent.parent / "materials"
CONFIG_NAME = "material.json"
STRUCTURE_NAME = "POSCAR"
REFERENCE_NAME = "reference.json"
FWHM_TO_SIGMA = 1.0 / (2.0 * math.sqrt(2.0 * math.log(2.0)))
PIXELS_TARGET = 20_000  # nq × nE of the paper's spectra
GE_EXPERIMENT_RATIO = 70.0 / 37.5  # the paper's Ge window over Ge's highest measured phonon


def user_library() -> Path:
    """Folder where ``material init`` puts new materials."""
    home = os.environ.get("FCINVERT_HOME")
    base = Path(home) if home else Path.home() / ".local" / "share" / "fcinvert"
    return base / "materials"


class EnergySettings(BaseModel):
    """Energy transfer window (meV) and its number of bins."""

    model_config = ConfigDict(extra="forbid")
    min_meV: float = 0.0
    max_meV: float = Field(gt=0)
    bins: int = Field(gt=1)


class ResolutionSettings(BaseModel):
    """Gaussian energy resolution, FWHM(E) = fwhm0_meV + slope · E (a ToF-like linear form)."""

    model_config = ConfigDict(extra="forbid")
    fwhm0_meV: float = Field(default=1.0, gt=0)
    slope: float = Field(default=0.02, ge=0)


class MaterialSettings(BaseModel):
    """Contents of ``material.json``."""

    model_config = ConfigDict(extra="forbid")
    name: str
    structure: str = STRUCTURE_NAME
    masses_amu: list[float]
    shells: int = Field(gt=0, description="neighbour shells (orbits, by distance) with free FCs")
    choose_shells: bool = Field(
        default=False,
        description="the next 'fcinvert label' measures how many shells the ensemble needs "
        "(fcinvert.labels.shells), sets 'shells' and clears this",
    )
    supercell: int = Field(gt=0, description="n of the n×n×n supercell of the primitive cell")
    path_points: int = Field(default=200, ge=10)
    energy: EnergySettings | None = None
    resolution: ResolutionSettings = ResolutionSettings()
    temperature_K: float = Field(default=5.0, ge=0)


@dataclass(frozen=True)
class QPath:
    """A high-symmetry path through the Brillouin zone.

    qpoints: (nq, 3) reduced coordinates in the reciprocal basis of the standard primitive cell.
    distances: (nq,) cumulative |q| along the path, 1/Å (without 2π); no advance across a break.
    labels: (index, label) of each high-symmetry point on the path.
    breaks: indices where a disconnected piece starts (e.g. the K after U in Γ-X-U|K-Γ).
    """

    qpoints: np.ndarray
    distances: np.ndarray
    labels: list[tuple[int, str]]
    breaks: list[int]


@dataclass(frozen=True)
class EnergyGrid:
    """Uniform energy bins. centres: (nE,) meV; width: meV; resolution FWHM(E) = a + b E."""

    centres: np.ndarray
    width: float
    fwhm0: float
    slope: float

    @classmethod
    def from_settings(cls, energy: EnergySettings, resolution: ResolutionSettings) -> EnergyGrid:
        width = (energy.max_meV - energy.min_meV) / energy.bins
        centres = energy.min_meV + width * (np.arange(energy.bins) + 0.5)
        return cls(centres, width, resolution.fwhm0_meV, resolution.slope)

    @property
    def edges(self) -> np.ndarray:
        """(nE + 1,) meV: the bin edges, centres ∓ width / 2."""
        return np.append(self.centres - 0.5 * self.width, self.centres[-1] + 0.5 * self.width)

    def sigma(self, energy: np.ndarray) -> np.ndarray:
        """Gaussian σ (meV) of the resolution at energies ``energy`` (meV), same shape."""
        return (self.fwhm0 + self.slope * np.abs(energy)) * FWHM_TO_SIGMA


@dataclass
class Material:
    """Everything the physics needs to know about one crystal.

    atoms: the seekpath standard primitive cell (Å). masses: (n_atoms,) amu.
    reference: FC parameter name → value (eV/Å²), or None before any force constants exist.
    """

    name: str
    folder: Path
    settings: MaterialSettings
    atoms: Atoms
    path: QPath
    reference: dict[str, float] | None = None
    reference_info: dict = field(default_factory=dict)

    @property
    def masses(self) -> np.ndarray:
        return np.asarray(self.settings.masses_amu, dtype=float)

    @property
    def supercell_matrix(self) -> np.ndarray:
        return np.eye(3, dtype=int) * self.settings.supercell

    @property
    def energy(self) -> EnergyGrid:
        if self.settings.energy is None:
            raise FcinvertError(
                f"{self.folder / CONFIG_NAME}: no energy grid yet; set 'energy' or run "
                "'fcinvert label' to derive it from reference force constants"
            )
        return EnergyGrid.from_settings(self.settings.energy, self.settings.resolution)

    @property
    def cutoff(self) -> float:
        """Pair cutoff (Å): midway between the last included shell and the next."""
        return shell_cutoff(self.atoms, self.settings.shells)

    @property
    def lattice_parameter(self) -> float | None:
        """Conventional cubic a (Å) when the crystal is cubic, else None."""
        return cubic_lattice_parameter(self.atoms)

    def require_reference(self) -> dict[str, float]:
        if self.reference is None:
            raise FcinvertError(
                f"{self.folder}: material '{self.name}' has no reference force constants; run "
                "'fcinvert label' first"
            )
        return self.reference


def load_material(name_or_folder: str | Path) -> Material:
    """Load a material by folder path, bundled name (``ge``, ``nb``) or user-library name."""
    folder = find_material_folder(name_or_folder)
    config_file = folder / CONFIG_NAME
    settings = validated(MaterialSettings, read_json(config_file, "material settings"), config_file)
    atoms = read_structure(folder / settings.structure, poscar=settings.structure == STRUCTURE_NAME)
    if len(settings.masses_amu) != len(atoms):
        raise FcinvertError(
            f"{config_file}: {len(settings.masses_amu)} masses for {len(atoms)} atoms"
        )
    standard, converted = standard_primitive(atoms)
    if converted:
        raise FcinvertError(
            f"{folder / settings.structure}: not the seekpath standard primitive cell; "
            "recreate the material with 'fcinvert material init'"
        )
    reference, info = None, {}
    reference_file = folder / REFERENCE_NAME
    if reference_file.exists():
        try:
            content = json.loads(reference_file.read_text())
            reference = {str(k): float(v) for k, v in content["parameters"].items()}
        except (OSError, ValueError, KeyError, TypeError, AttributeError) as error:
            raise FcinvertError(f"{reference_file}: not a reference file ({error})") from None
        info = {k: v for k, v in content.items() if k != "parameters"}
    path = sample_path(standard, settings.path_points)
    return Material(settings.name, folder, settings, standard, path, reference, info)


def find_material_folder(name_or_folder: str | Path) -> Path:
    """The folder of a material given as a path, a bundled name or a user-library name."""
    candidate = Path(name_or_folder)
    if (candidate / CONFIG_NAME).is_file():
        return candidate
    for base in (BUNDLED, user_library()):
        if (base / str(name_or_folder) / CONFIG_NAME).is_file():
            return base / str(name_or_folder)
    known = sorted(p.parent.name for p in BUNDLED.glob(f"*/{CONFIG_NAME}"))
    raise FcinvertError(
        f"{name_or_folder}: no such material (bundled: {', '.join(known)}; or a folder with "
        f"{CONFIG_NAME}; or 'fcinvert material init')"
    )


def read_structure(path: str | Path, poscar: bool = False) -> Atoms:
    """Read any structure file ase understands (POSCAR, CIF, …) and check it is a 3-D crystal.

    ``poscar``: the file is a VASP POSCAR (a material's own ``POSCAR``), read by phonopy's
    reader: importing ``ase.io`` alone takes about a second, which every command would pay.
    """
    path = Path(path)
    if not path.is_file():
        raise FcinvertError(f"{path}: no such structure file")
    try:
        atoms = _read_poscar(path) if poscar else _read_any(path)
    except Exception as error:  # ase raises many types for malformed files
        message = str(error).splitlines()[0] if str(error) else type(error).__name__
        raise FcinvertError(f"{path}: cannot read a crystal structure ({message})") from None
    if isinstance(atoms, list):
        atoms = atoms[0]
    if len(atoms) == 0:
        raise FcinvertError(f"{path}: the structure has no atoms")
    if not all(atoms.pbc) or atoms.cell.rank < 3 or abs(atoms.cell.volume) < 1e-6:
        raise FcinvertError(f"{path}: not a 3-D periodic crystal (no full unit cell)")
    return atoms


def _read_poscar(path: Path) -> Atoms:
    from phonopy.interface.vasp import read_vasp

    cell = read_vasp(path)
    return Atoms(
        symbols=cell.symbols, cell=cell.cell, scaled_positions=cell.scaled_positions, pbc=True
    )


def _read_any(path: Path) -> Atoms | list[Atoms]:
    from ase.io import read

    return read(path)


def standard_primitive(atoms: Atoms) -> tuple[Atoms, bool]:
    """The seekpath standard primitive cell of ``atoms`` and whether it differs from the input.

    When the lattice already is the standard one, the input is returned unchanged: the path and
    its labels depend only on the lattice, and the choice of origin (which seekpath does not
    make idempotently for non-centrosymmetric crystals) does not matter.
    """
    cell = (atoms.cell[:], atoms.get_scaled_positions(), atoms.numbers)
    result = seekpath.get_path(cell, with_time_reversal=True, symprec=1e-3)
    standard = Atoms(
        numbers=result["primitive_types"],
        cell=result["primitive_lattice"],
        scaled_positions=result["primitive_positions"],
        pbc=True,
    )
    same = len(standard) == len(atoms) and np.allclose(standard.cell[:], atoms.cell[:], atol=1e-4)
    if same:  # the path and its labels depend only on the lattice: keep the user's basis
        return atoms, False
    return standard, True


def sample_path(atoms: Atoms, n_points: int) -> QPath:
    """seekpath's path for ``atoms`` sampled at ``n_points`` points spaced evenly in |q|.

    Every high-symmetry point is on the sample; the spacing is tuned so the total is exact
    where the segment lengths allow it (otherwise the nearest achievable total).
    """
    result = seekpath.get_path(
        (atoms.cell[:], atoms.get_scaled_positions(), atoms.numbers), with_time_reversal=True
    )
    coords = {k: np.asarray(v, dtype=float) for k, v in result["point_coords"].items()}
    segments = [(a, b) for a, b in result["path"]]
    reciprocal = reciprocal_basis(atoms.cell[:])
    lengths = np.array([np.linalg.norm((coords[b] - coords[a]) @ reciprocal) for a, b in segments])
    joined = [segments[i][0] == segments[i - 1][1] for i in range(1, len(segments))]

    def intervals(step: float) -> np.ndarray:
        return np.maximum(1, np.round(lengths / step)).astype(int)

    def total(step: float) -> int:
        return int(np.sum(intervals(step) + 1) - sum(joined))

    low, high = lengths.sum() / (10 * n_points), lengths.sum()
    for _ in range(100):
        mid = 0.5 * (low + high)
        low, high = (mid, high) if total(mid) > n_points else (low, mid)
    step = high if abs(total(high) - n_points) <= abs(total(low) - n_points) else low
    counts = intervals(step)

    qpoints, distances, labels, breaks = [], [], [], []
    position = 0.0
    for i, ((start, end), count) in enumerate(zip(segments, counts, strict=True)):
        t = np.linspace(0.0, 1.0, count + 1)
        continues = i > 0 and joined[i - 1]
        if continues:
            t = t[1:]
        elif i > 0:
            breaks.append(len(qpoints))
        if not continues:
            labels.append((len(qpoints), _pretty(start)))
        qpoints.extend(coords[start] + np.outer(t, coords[end] - coords[start]))
        distances.extend(position + t * lengths[i])
        position += lengths[i]
        labels.append((len(qpoints) - 1, _pretty(end)))
    return QPath(np.array(qpoints), np.array(distances), labels, breaks)


def _pretty(label: str) -> str:
    return "Γ" if label == "GAMMA" else label.replace("_", "")


def pair_distances(atoms: Atoms, radius: float) -> np.ndarray:
    """Sorted distinct pair distances (Å) up to ``radius`` from any atom of the cell."""
    lattice = atoms.cell[:]
    reach = int(np.ceil(radius / min(np.linalg.norm(lattice, axis=1)))) + 2
    grid = np.arange(-reach, reach + 1)
    shifts = np.stack(np.meshgrid(grid, grid, grid, indexing="ij"), -1).reshape(-1, 3) @ lattice
    positions = atoms.positions
    vectors = positions[None, :, None, :] + shifts[None, None] - positions[:, None, None, :]
    lengths = np.linalg.norm(vectors, axis=-1).ravel()
    lengths = lengths[(lengths > 1e-6) & (lengths <= radius)]
    return np.unique(np.round(lengths, 4))


def shell_cutoff(atoms: Atoms, shells: int) -> float:
    """Cutoff (Å) that includes exactly ``shells`` distance shells: midway to the next one."""
    radius = 4.0 * (atoms.get_volume() / len(atoms)) ** (1 / 3)
    while True:
        distances = pair_distances(atoms, radius)
        if len(distances) > shells:
            return float(0.5 * (distances[shells - 1] + distances[shells]))
        radius *= 1.5


def minimal_supercell(atoms: Atoms, cutoff: float) -> int:
    """Smallest n so that the n×n×n supercell holds pairs up to ``cutoff`` without images."""
    lattice = atoms.cell[:]
    grid = np.arange(-2, 3)
    combos = np.stack(np.meshgrid(grid, grid, grid, indexing="ij"), -1).reshape(-1, 3)
    combos = combos[np.any(combos != 0, axis=1)]
    shortest = np.min(np.linalg.norm(combos @ lattice, axis=1))
    return int(np.floor(2.0 * cutoff / shortest)) + 1


def cubic_lattice_parameter(atoms: Atoms) -> float | None:
    """Conventional lattice parameter a (Å) of a cubic crystal, else None."""
    cell = (atoms.cell[:], atoms.get_scaled_positions(), atoms.numbers)
    dataset = spglib.get_symmetry_dataset(cell, symprec=1e-3)
    if dataset is None or not 195 <= dataset.number <= 230:
        return None
    return float(np.linalg.norm(dataset.std_lattice[0]))


def phonopy_masses(symbols: list[str]) -> list[float]:
    """phonopy's standard atomic masses (amu), so exported files reproduce our numbers."""
    from phonopy.structure.atomic_data import get_atomic_data

    data = get_atomic_data()
    return [float(data.atom_data[data.symbol_map[s]][3]) for s in symbols]


#: shells of the probe labelling of a material whose shells ``label`` chooses
PROBE_SHELLS = 8
#: the probe takes fewer shells when its supercell would hold more atoms than this
PROBE_MAX_ATOMS = 256


def probe_shells(atoms: Atoms) -> int:
    """Shells of the probe for the primitive cell ``atoms``: PROBE_SHELLS, or fewer so that
    the smallest n×n×n supercell holding them has at most PROBE_MAX_ATOMS atoms."""
    for shells in range(PROBE_SHELLS, 1, -1):
        n = minimal_supercell(atoms, shell_cutoff(atoms, shells))
        if n**3 * len(atoms) <= PROBE_MAX_ATOMS:
            return shells
    return 1


def energy_window_for(highest_frequency: float, path_points: int) -> EnergySettings:
    """Energy grid chosen by the paper's Ge rule: window ≈ 1.87 × the highest phonon (Ge:
    70 meV for 37.5 meV), rounded up to 5 meV; bins so that nq × nE ≈ 20 000 pixels."""
    maximum = 5.0 * math.ceil(GE_EXPERIMENT_RATIO * highest_frequency / 5.0)
    return EnergySettings(max_meV=maximum, bins=round(PIXELS_TARGET / path_points))


def energy_settings_from_centres(centres: np.ndarray, where: str) -> EnergySettings:
    """The energy grid of a measurement, unchanged: its bin centres (nE,) meV, which must be
    uniform (to 1e-3 of a bin), become the material's bins — a measurement is never rebinned
    without a word. ``where`` names the source in the error."""
    centres = np.asarray(centres, dtype=float)
    steps = np.diff(centres)
    if len(centres) < 2 or np.any(steps <= 0):
        raise FcinvertError(f"{where}: needs at least two increasing energy bins")
    width = float(steps.mean())
    if np.max(np.abs(steps - width)) > 1e-3 * width:
        raise FcinvertError(
            f"{where}: energy bins are not uniform (widths {steps.min():.4g}–{steps.max():.4g} "
            "meV); rebin the measurement onto uniform bins first"
        )
    return EnergySettings(
        min_meV=float(centres[0] - 0.5 * width),
        max_meV=float(centres[-1] + 0.5 * width),
        bins=len(centres),
    )


def init_material(
    structure_file: str | Path,
    name: str,
    *,
    out: Path | None = None,
    shells: int | None = 5,
    path_points: int = 200,
    energy_max: float | None = None,
    energy: EnergySettings | None = None,
    resolution: ResolutionSettings | None = None,
    temperature: float = 5.0,
    on_conversion: Literal["convert", "refuse"] = "convert",
) -> tuple[Path, bool]:
    """Write a material folder from any structure file; returns (folder, converted).

    A cell that is not seekpath's standard primitive one is converted to it (the q-path and the
    FC basis are only meaningful there) or, with ``on_conversion='refuse'``, rejected.
    energy: the grid (e.g. a measurement's, :func:`energy_settings_from_centres`); else
    ``energy_max`` with the 20 000-pixel rule, else none until ``label`` derives it from the
    ensemble (:func:`energy_window_for`). resolution: default FWHM(E) = 1.0 meV + 0.02·E.
    shells None: ``label`` chooses them (``fcinvert.labels.shells``) from a probe labelling
    at :func:`probe_shells`, whose supercell the material keeps.
    """
    atoms = read_structure(structure_file)
    standard, converted = standard_primitive(atoms)
    if converted and on_conversion == "refuse":
        raise FcinvertError(
            f"{structure_file}: not the seekpath standard primitive cell (convert it or allow "
            "conversion)"
        )
    folder = Path(out) if out is not None else user_library() / name
    if (folder / CONFIG_NAME).exists():
        raise FcinvertError(f"{folder}: a material already exists there")
    choose_shells = shells is None
    if choose_shells:
        shells = probe_shells(standard)
    cutoff = shell_cutoff(standard, shells)
    if energy is None and energy_max is not None:
        energy = EnergySettings(max_meV=energy_max, bins=round(PIXELS_TARGET / path_points))
    settings = MaterialSettings(
        name=name,
        masses_amu=phonopy_masses(standard.get_chemical_symbols()),
        shells=shells,
        choose_shells=choose_shells,
        supercell=minimal_supercell(standard, cutoff),
        path_points=path_points,
        energy=energy,
        resolution=resolution or ResolutionSettings(),
        temperature_K=temperature,
    )
    folder.mkdir(parents=True, exist_ok=True)
    write_poscar(standard, folder / STRUCTURE_NAME)
    atomic_write_text(folder / CONFIG_NAME, settings.model_dump_json(indent=2) + "\n")
    return folder, converted


def write_poscar(atoms: Atoms, path: Path) -> None:
    """POSCAR (VASP 5, direct coordinates) written atomically."""
    symbols = atoms.get_chemical_symbols()
    runs = [[symbols[0], 0]]  # consecutive runs keep the atom order of the cell
    for symbol in symbols:
        if symbol != runs[-1][0]:
            runs.append([symbol, 0])
        runs[-1][1] += 1
    lines = ["fcinvert standard primitive cell", "1.0"]
    lines += [" ".join(f"{x:22.16f}" for x in row) for row in atoms.cell[:]]
    lines += [" ".join(s for s, _ in runs), " ".join(str(n) for _, n in runs), "Direct"]
    lines += [" ".join(f"{x:20.16f}" for x in row) for row in atoms.get_scaled_positions()]
    atomic_write_text(path, "\n".join(lines) + "\n")


def save_settings(material: Material) -> None:
    """Rewrite ``material.json`` from ``material.settings``."""
    text = material.settings.model_dump_json(indent=2) + "\n"
    atomic_write_text(material.folder / CONFIG_NAME, text)


def save_reference(material: Material, parameters: dict[str, float], info: dict) -> None:
    """Write ``reference.json``: the reference parameter values and their provenance."""
    content = {"parameters": parameters, **info}
    atomic_write_text(material.folder / REFERENCE_NAME, json.dumps(content, indent=2) + "\n")
    material.reference, material.reference_info = dict(parameters), dict(info)
