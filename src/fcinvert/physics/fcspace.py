"""Symmetry-reduced force constants θ ↔ full phonopy FC arrays Φ.

hiphive's ClusterSpace gives the space-group-invariant basis of each neighbour-shell orbit, with
the acoustic sum rule fixing the self term. Its raw coordinates carry an internal normalisation,
so fcinvert re-expresses each orbit in *physical* coordinates: independent Cartesian components
(eV/Å²) of the FC tensor of one named pair, e.g. ``shell1_(0.25,0.25,0.25)_xx``. Φ is linear in θ,
so the basis arrays B_k are computed once and Φ(θ) = Σ_k θ_k B_k.
"""

from __future__ import annotations

import hashlib
import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
from ase import Atoms

from fcinvert.errors import FcinvertError
from fcinvert.physics.material import Material, user_library

if TYPE_CHECKING:
    from phonopy import Phonopy

COMPONENTS = ("xx", "yy", "zz", "xy", "xz", "yz", "yx", "zx", "zy")
UNIT = "eV/Å²"


@dataclass(frozen=True)
class Parameter:
    """One free FC parameter: a Cartesian component (eV/Å²) of one pair's 3×3 FC tensor.

    shell: orbit rank by distance (1 = nearest neighbours); vector: the named pair's bond in Å;
    atoms: indices (in the primitive cell) of the pair's two atoms.
    """

    name: str
    shell: int
    vector: tuple[float, float, float]
    component: str
    atoms: tuple[int, int]


@dataclass
class FCSpace:
    """The free FC parameters of a material and the linear map θ → Φ.

    basis: (n_params, N, N, 3, 3) float64, eV/Å² per unit θ, in phonopy's full layout for the
    supercell ``phonopy.supercell`` (N atoms).
    """

    parameters: list[Parameter]
    basis: np.ndarray
    material: Material
    _phonopy: Phonopy | None = field(default=None, repr=False)

    @property
    def phonopy(self) -> Phonopy:
        """The material's phonopy object (``phonopy_for``), made on first use (its symmetry
        search takes about a second, which listing the parameters does not need)."""
        if self._phonopy is None:
            self._phonopy = phonopy_for(self.material)
        return self._phonopy

    @property
    def names(self) -> list[str]:
        return [p.name for p in self.parameters]

    @property
    def n_params(self) -> int:
        return len(self.parameters)

    def force_constants(self, theta: np.ndarray) -> np.ndarray:
        """Full phonopy FC array (N, N, 3, 3) eV/Å² for θ of shape (n_params,)."""
        theta = np.asarray(theta, dtype=float)
        return np.tensordot(theta, self.basis, axes=1)

    def theta_from_dict(self, values: dict[str, float], base: np.ndarray) -> np.ndarray:
        """θ (n_params,) from ``values`` by name, the rest taken from ``base``."""
        theta = np.array(base, dtype=float)
        index = {name: i for i, name in enumerate(self.names)}
        for name, value in values.items():
            if name not in index:
                raise FcinvertError(f"unknown parameter '{name}' (known: {', '.join(self.names)})")
            if not np.isfinite(value):
                raise FcinvertError(f"parameter '{name}' is not a finite number ({value})")
            theta[index[name]] = value
        return theta

    def reference_theta(self, material: Material) -> np.ndarray:
        """θ (n_params,) eV/Å² of the material's reference (``reference.json``, the median of
        the stable force fields); a parameter it does not name is 0."""
        return self.theta_from_dict(material.require_reference(), np.zeros(self.n_params))

    def as_dict(self, theta: np.ndarray) -> dict[str, float]:
        return {name: float(v) for name, v in zip(self.names, theta, strict=True)}

    def project(self, force_constants: np.ndarray) -> tuple[np.ndarray, float]:
        """Least-squares θ for a full FC array (N, N, 3, 3) on this supercell.

        Only the pair blocks inside the cutoff are fitted (the self term follows from the sum
        rule, and a source reaching beyond the cutoff would bias it). Returns θ and the RMS
        residual (eV/Å²) over the fitted entries.
        """
        force_constants = np.asarray(force_constants, dtype=float)
        if force_constants.shape != self.basis.shape[1:]:
            raise FcinvertError(
                f"force constants of shape {force_constants.shape}; this material's supercell "
                f"needs {self.basis.shape[1:]}"
            )
        mask = self._fitted_blocks()
        design = self.basis[:, mask].reshape(self.n_params, -1).T
        target = force_constants[mask].ravel()
        theta, *_ = np.linalg.lstsq(design, target, rcond=None)
        residual = float(np.sqrt(np.mean((design @ theta - target) ** 2)))
        return theta, residual

    def _fitted_blocks(self) -> np.ndarray:
        touched = np.any(self.basis != 0, axis=(0, 3, 4))
        np.fill_diagonal(touched, False)
        return touched


def phonopy_for(material: Material) -> Phonopy:
    """A phonopy object for the material's primitive cell and FC supercell (no FCs set).

    primitive_matrix="P": the unit cell IS the primitive cell (phonopy 4 would otherwise pick its
    own primitive basis, breaking the q convention).
    """
    from phonopy import Phonopy
    from phonopy.structure.atoms import PhonopyAtoms

    atoms = material.atoms
    unitcell = PhonopyAtoms(
        symbols=atoms.get_chemical_symbols(),
        cell=atoms.cell[:],
        scaled_positions=atoms.get_scaled_positions(),
        masses=material.masses,
    )
    return Phonopy(unitcell, supercell_matrix=material.supercell_matrix, primitive_matrix="P")


def build_fcspace(material: Material, cache: bool = True) -> FCSpace:
    """The material's FC space; the basis is cached on disk (it takes seconds to build)."""
    key = _cache_key(material)
    cache_file = user_library().parent / "cache" / f"fcspace-{key}.npz"
    if cache and cache_file.is_file():
        with np.load(cache_file, allow_pickle=False) as stored:
            basis = stored["basis"]
            meta = stored["parameters"]
        parameters = [
            Parameter(str(n), int(s), tuple(float(x) for x in v), str(c), (int(a), int(b)))
            for n, s, v, c, a, b in zip(
                meta["name"],
                meta["shell"],
                meta["vector"],
                meta["component"],
                meta["a"],
                meta["b"],
                strict=True,
            )
        ]
        return FCSpace(parameters, basis, material)
    phonon = phonopy_for(material)
    parameters, basis = _physical_basis(material, phonon)
    if cache:
        _write_cache(cache_file, parameters, basis)
    return FCSpace(parameters, basis, material, phonon)


def _cache_key(material: Material) -> str:
    atoms = material.atoms
    text = repr(
        (
            np.round(atoms.cell[:], 8).tolist(),
            np.round(atoms.get_scaled_positions(), 8).tolist(),
            atoms.numbers.tolist(),
            material.settings.shells,
            material.settings.supercell,
            2,  # version of the basis construction
        )
    )
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def _write_cache(path: Path, parameters: list[Parameter], basis: np.ndarray) -> None:
    from fcinvert.iohelpers import atomic_path

    meta = np.array(
        [(p.name, p.shell, p.vector, p.component, p.atoms[0], p.atoms[1]) for p in parameters],
        dtype=[
            ("name", "U80"),
            ("shell", "i4"),
            ("vector", "f8", 3),
            ("component", "U2"),
            ("a", "i4"),
            ("b", "i4"),
        ],
    )
    with atomic_path(path) as temporary, open(temporary, "wb") as handle:
        np.savez(handle, basis=basis, parameters=meta)


def _raw_basis(material: Material, phonon: Phonopy) -> np.ndarray:
    """hiphive's basis: (n_dofs, N, N, 3, 3), one full FC array per raw degree of freedom."""
    from hiphive import ClusterSpace
    from hiphive.force_constant_model import ForceConstantModel
    from hiphive.input_output.logging_tools import set_config

    set_config(level=logging.WARNING)
    cluster_space = ClusterSpace(material.atoms, [material.cutoff])
    supercell = phonon.supercell
    supercell_atoms = Atoms(
        symbols=supercell.symbols,
        cell=supercell.cell,
        scaled_positions=supercell.scaled_positions,
        pbc=True,
    )
    model = ForceConstantModel(supercell_atoms, cluster_space)
    basis = []
    for k in range(cluster_space.n_dofs):
        unit = np.zeros(cluster_space.n_dofs)
        unit[k] = 1.0
        model.parameters = unit
        basis.append(model.get_force_constants().get_fc_array(order=2))
    return np.array(basis)


def _physical_basis(material: Material, phonon: Phonopy) -> tuple[list[Parameter], np.ndarray]:
    """Re-express hiphive's basis in named Cartesian components of one pair per orbit.

    Pair blocks are grouped into orbits by their norm under every raw basis array (a symmetry
    operation preserves it); orbits are ranked by bond length. Going through the orbits in that
    order and through the components of each orbit's named pair in the order of COMPONENTS,
    a component becomes a parameter when it is independent of those already chosen.
    """
    raw = _raw_basis(material, phonon)
    supercell = phonon.supercell
    p2s = phonon.primitive.p2s_map
    images = np.stack(np.meshgrid(*[np.arange(-1, 2)] * 3, indexing="ij"), -1).reshape(-1, 3)

    def bond(a: int, j: int) -> np.ndarray:
        """Shortest vector (Å) from primitive atom a to supercell atom j."""
        delta = supercell.scaled_positions[j] - supercell.scaled_positions[p2s[a]]
        candidates = (delta - np.round(delta) + images) @ supercell.cell
        return candidates[np.argmin(np.linalg.norm(candidates, axis=1))]

    norms = np.linalg.norm(raw[:, p2s], axis=(3, 4))  # (n_dofs, n_prim, N)
    orbits: dict[tuple, list[tuple[int, int]]] = {}
    for a, j in zip(*np.nonzero(np.any(norms > 0, axis=0)), strict=True):
        if p2s[a] != j:
            signature = tuple(np.round(norms[:, a, j], 8))
            orbits.setdefault(signature, []).append((int(a), int(j)))
    ordered = sorted(orbits.values(), key=lambda pairs: np.linalg.norm(bond(*pairs[0])))

    scale = material.lattice_parameter
    symbols = material.atoms.get_chemical_symbols()
    several_species = len(set(symbols)) > 1
    parameters: list[Parameter] = []
    rows: list[np.ndarray] = []  # θ_phys = P θ_raw, row by row
    for shell, pairs in enumerate(ordered, start=1):
        a, j = max(pairs, key=lambda pair: _vector_preference(bond(*pair)))
        vector = bond(a, j)
        shown = ",".join(_short(x) for x in (vector / scale if scale else vector))
        species = f"{symbols[a]}-{supercell.symbols[j]}_" if several_species else ""
        partner = int(phonon.primitive.p2p_map[phonon.primitive.s2p_map[j]])
        for component in COMPONENTS:
            row = raw[:, p2s[a], j].reshape(len(raw), 9)[:, _flat_index(component)]
            if np.linalg.matrix_rank(np.array([*rows, row]), tol=1e-8) > len(rows):
                rows.append(row)
                parameters.append(
                    Parameter(
                        f"shell{shell}_{species}({shown})_{component}",
                        shell,
                        tuple(float(x) for x in vector),
                        component,
                        (a, partner),
                    )
                )
    if len(rows) != len(raw):
        raise RuntimeError("could not name every free FC parameter")
    basis = np.tensordot(np.linalg.inv(np.array(rows)).T, raw, axes=1)
    return parameters, basis


def _flat_index(component: str) -> int:
    axes = "xyz"
    return 3 * axes.index(component[0]) + axes.index(component[1])


def _vector_preference(vector: np.ndarray) -> tuple:
    """Prefer bonds with few negative components, then the lexicographically largest."""
    rounded = np.round(vector, 6)
    return (-int(np.sum(rounded < 0)), *rounded.tolist())


def _short(x: float) -> str:
    text = f"{x:.4f}".rstrip("0").rstrip(".")
    return "0" if text in ("-0", "") else text
