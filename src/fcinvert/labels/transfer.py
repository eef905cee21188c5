"""Labels from force constants computed elsewhere (DFT, another code): phonopy files → θ.

The source supercell may differ from the material's (e.g. a 2×2×2 conventional cell): the fit
is done in the *source* supercell. Each source pair block (i', j') is the sum, over all periodic
images of j' in the source supercell, of the true FC blocks; the θ-model is folded the same way
(Σ over the images whose bond lies inside the material's cutoff of the basis block for that
bond) and θ is fitted by least squares to the blocks that some image within the cutoff reaches
(self blocks excluded, as in ``FCSpace.project``). Parameters that the source supercell cannot
separate (images of two bonds that fold onto one block) are reported as undetermined; the
minimum-norm solution then shares their sum.

The source crystal must have the material's orientation (same Cartesian axes); its lattice may
be uniformly scaled (e.g. a DFT-relaxed a) and its origin shifted.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import numpy as np
import phonopy
from phonopy import Phonopy

from fcinvert.errors import FcinvertError
from fcinvert.labels.ensemble import Labeller, LabelResult, member_dispersion
from fcinvert.physics.fcspace import FCSpace
from fcinvert.physics.material import Material

STRUCTURE_FILES = ("phonopy_disp.yaml", "phonopy.yaml", "phonopy_params.yaml")
TOLERANCE = 0.03  # reduced-coordinate tolerance when matching atoms and lattices


def load_force_constants(
    path: str | Path, structure: str | Path | None = None, dim: list[int] | None = None
) -> Phonopy:
    """A phonopy object with full force constants from ``path``.

    ``path`` is a phonopy yaml (with force constants inside or FORCE_CONSTANTS / FORCE_SETS
    beside it) or a FORCE_CONSTANTS / force_constants.hdf5 file. For the latter the structure
    comes from ``structure`` (a unit cell, with ``dim``: 3 or 9 integers of the supercell
    matrix; an SPOSCAR needs no ``dim``) or, if not given, from a phonopy yaml or SPOSCAR
    beside the file.
    """
    path = Path(path)
    if not path.is_file():
        raise FcinvertError(f"{path}: no such file")
    options: dict[str, Any] = dict(is_nac=False, is_compact_fc=False, log_level=0)
    try:
        if path.suffix in (".yaml", ".yml"):
            phonon = phonopy.load(path, **options)
        else:
            phonon = _load_with_structure(path, structure, dim, options)
    except FcinvertError:
        raise
    except Exception as error:  # phonopy raises many types on malformed input
        lines = str(error).strip().splitlines()
        why = lines[0] if lines else type(error).__name__
        raise FcinvertError(f"{path}: cannot read force constants ({why})") from None
    if phonon.force_constants is None:
        raise FcinvertError(f"{path}: no force constants in it or beside it")
    fc = np.asarray(phonon.force_constants)
    n_super, n_prim = len(phonon.supercell), len(phonon.primitive)
    if fc.ndim != 4 or fc.shape[1:] != (n_super, 3, 3) or fc.shape[0] not in (n_prim, n_super):
        raise FcinvertError(
            f"{path}: force constants of shape {fc.shape} do not fit the {n_super}-atom "
            "supercell (check --dim and --structure)"
        )
    if not np.all(np.isfinite(fc)):
        raise FcinvertError(f"{path}: the force constants hold non-finite values")
    return phonon


def _load_with_structure(
    path: Path, structure: str | Path | None, dim: list[int] | None, options: dict[str, Any]
) -> Phonopy:
    if structure is None:
        for name in STRUCTURE_FILES:
            if (path.parent / name).is_file():
                return phonopy.load(
                    path.parent / name, force_constants_filename=path, produce_fc=True, **options
                )
        if (path.parent / "SPOSCAR").is_file():
            structure = path.parent / "SPOSCAR"
        else:
            raise FcinvertError(
                f"{path}: no structure: give its unit cell and supercell dimensions, or put "
                "phonopy_disp.yaml or SPOSCAR beside it"
            )
    structure = Path(structure)
    if not structure.is_file():
        raise FcinvertError(f"{structure}: no such structure file")
    if dim is None:
        if structure.name != "SPOSCAR":
            raise FcinvertError(f"{structure}: give the supercell dimensions it was used with")
        dim = [1, 1, 1]
    if len(dim) not in (3, 9):
        raise FcinvertError(f"supercell dimensions: 3 or 9 integers, got {len(dim)}")
    matrix = np.diag(dim) if len(dim) == 3 else np.reshape(dim, (3, 3))
    return phonopy.load(
        supercell_matrix=matrix,
        unitcell_filename=structure,
        force_constants_filename=path,
        primitive_matrix="auto",
        **options,
    )


def label_force_constants(
    labeller: Labeller, phonon: Phonopy, name: str, source: str
) -> LabelResult:
    """Label from a source phonopy object with force constants on any supercell."""
    start = time.perf_counter()
    material, fcspace = labeller.material, labeller.fcspace
    theta, residual, info = fit_source(material, fcspace, phonon)
    own = member_dispersion(phonon, _source_qpoints(material, phonon))
    provenance = {
        "package": "phonopy force constants",
        "model": source,
        "version": None,
        "source_supercell_atoms": len(phonon.supercell),
        "source_supercell_matrix": np.asarray(phonon.supercell_matrix).tolist(),
        **info,
    }
    result = labeller.from_theta(name, theta, residual, own, provenance)
    if info["undetermined_parameters"]:
        result.message = (result.message + "; " if result.message else "") + (
            f"{len(info['undetermined_parameters'])} parameters not separable in the source "
            "supercell"
        )
    result.wall_s = time.perf_counter() - start
    return result


def _source_qpoints(material: Material, phonon: Phonopy) -> np.ndarray:
    """The material's path q-points expressed in the source primitive's reciprocal basis."""
    ours = material.atoms.cell[:]
    theirs = np.asarray(phonon.primitive.cell) / _scale(material, phonon)
    # q·r is invariant: q_theirs = q_ours · A_ours A_theirs⁻¹ with rows as lattice vectors
    return material.path.qpoints @ ours @ np.linalg.inv(theirs)


def _scale(material: Material, phonon: Phonopy) -> float:
    """Source length / material length, from the volume per atom."""
    ours = material.atoms.get_volume() / len(material.atoms)
    supercell = phonon.supercell
    theirs = abs(np.linalg.det(supercell.cell)) / len(supercell)
    return float((theirs / ours) ** (1 / 3))


def fit_source(
    material: Material, fcspace: FCSpace, phonon: Phonopy
) -> tuple[np.ndarray, float, dict[str, Any]]:
    """θ (n_params,), RMS residual (eV/Å²) and facts from the source's full FCs."""
    lattice = material.atoms.cell[:]
    tau = material.atoms.get_scaled_positions()
    numbers = material.atoms.numbers
    scale = _scale(material, phonon)
    supercell = phonon.supercell
    inverse = np.linalg.inv(lattice)
    raw_super = np.asarray(supercell.cell) / scale @ inverse
    source_super = np.round(raw_super)
    if np.abs(raw_super - source_super).max() > TOLERANCE or abs(np.linalg.det(source_super)) < 0.5:
        raise FcinvertError(
            "source supercell is not a supercell of the material's lattice in the same "
            "orientation (rotate or re-standardise it)"
        )
    reduced = np.asarray(supercell.positions) / scale @ inverse
    basis_index, cells = _match_sites(reduced, np.asarray(supercell.numbers), tau, numbers)
    exact = cells + tau[basis_index]  # (Ns, 3) exact positions in our reduced coordinates

    ours = fcspace.phonopy
    ours_super = np.asarray(ours.supercell_matrix, dtype=float)
    ours_reduced = np.asarray(ours.supercell.scaled_positions) @ ours_super  # primitive coords
    lookup = {_key(x, ours_super): j for j, x in enumerate(ours_reduced)}
    p2s = ours.primitive.p2s_map
    cutoff = material.cutoff
    reach = _image_reach(source_super @ lattice, cutoff)

    force_constants = np.asarray(phonon.force_constants)
    rows, targets, folded = [], [], 0
    for b in range(len(tau)):
        representative = int(np.flatnonzero(basis_index == b)[0])
        for j in range(len(supercell)):
            if j == representative:
                continue
            base = exact[j] - exact[representative]
            block = np.zeros((fcspace.n_params, 3, 3))
            images = 0
            for shift in reach:
                bond = base + shift @ source_super
                if np.linalg.norm(bond @ lattice) > cutoff:
                    continue
                target = lookup.get(_key(ours_reduced[p2s[b]] + bond, ours_super))
                if target is None:
                    raise FcinvertError(
                        "internal: a bond of the source has no partner in our supercell"
                    )
                block += fcspace.basis[:, p2s[b], target]
                images += 1
            if images == 0:
                continue
            folded += images > 1
            rows.append(block.reshape(fcspace.n_params, 9).T)
            targets.append(force_constants[representative, j].ravel())
    design = np.concatenate(rows)
    target = np.concatenate(targets)
    theta, *_ = np.linalg.lstsq(design, target, rcond=None)
    residual = float(np.sqrt(np.mean((design @ theta - target) ** 2)))
    return (
        theta,
        residual,
        {
            "source_scale": scale,
            "a_A": (material.lattice_parameter or 1.0) * scale,
            "fitted_blocks": len(rows),
            "blocks_with_several_images": int(folded),
            "undetermined_parameters": _undetermined(design, fcspace.names),
        },
    )


def _match_sites(
    reduced: np.ndarray, species: np.ndarray, tau: np.ndarray, numbers: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Basis index (Ns,) and lattice cell (Ns, 3) of each source atom, allowing one origin
    shift; raises when the source is not the material's crystal."""
    for first in np.flatnonzero(numbers == species[0]):
        shift = reduced[0] - tau[first]
        relative = reduced - shift
        offsets = relative[:, None, :] - tau[None, :, :]  # (Ns, nb, 3)
        distance = np.abs(offsets - np.round(offsets)).max(axis=2)
        distance[species[:, None] != numbers[None, :]] = np.inf
        basis_index = np.argmin(distance, axis=1)
        if np.all(distance[np.arange(len(reduced)), basis_index] < TOLERANCE):
            cells = np.round(offsets[np.arange(len(reduced)), basis_index])
            return basis_index, cells
    raise FcinvertError(
        "source structure does not match the material's crystal (species, positions or "
        "orientation differ)"
    )


def _key(position: np.ndarray, supercell: np.ndarray) -> tuple[int, ...]:
    """Hashable key of a position (primitive reduced coordinates) modulo the supercell."""
    fractional = position @ np.linalg.inv(supercell)
    wrapped = np.round((fractional - np.floor(fractional + 1e-6)) * 1e4).astype(int) % 10_000
    return tuple(int(x) for x in wrapped)


def _image_reach(super_cartesian: np.ndarray, cutoff: float) -> np.ndarray:
    """Integer supercell translations (M, 3) enough to find every image within ``cutoff``."""
    heights = abs(np.linalg.det(super_cartesian)) / np.linalg.norm(
        np.cross(super_cartesian[[1, 2, 0]], super_cartesian[[2, 0, 1]]), axis=1
    )
    reach = np.ceil(cutoff / heights).astype(int) + 1
    axes = [np.arange(-r, r + 1) for r in reach]
    return np.stack(np.meshgrid(*axes, indexing="ij"), -1).reshape(-1, 3)


def _undetermined(design: np.ndarray, names: list[str]) -> list[str]:
    """Parameters with a component in the null space of the design matrix."""
    _, singular, vt = np.linalg.svd(design, full_matrices=True)
    rank = int(np.sum(singular > singular.max() * 1e-10)) if len(singular) else 0
    null = vt[rank:]
    if len(null) == 0:
        return []
    weight = np.linalg.norm(null, axis=0)
    return [name for name, w in zip(names, weight, strict=True) if w > 1e-6]
