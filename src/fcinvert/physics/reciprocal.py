"""Reciprocal-space bookkeeping: conventional hkl (Mantid's H, K, L) ↔ primitive reduced q, and
the Laue group (point group plus inversion) in Cartesian form.

Measurements index Q in reciprocal lattice units of the conventional cell; fcinvert works in the
reduced coordinates of the standard primitive reciprocal basis. spglib's transformation matrix P
((a_s b_s c_s) = (a b c) P⁻¹) gives q_reduced = hkl @ P. Cartesian reciprocal vectors here are
in 1/Å without 2π unless a name says otherwise.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
import spglib

from fcinvert.errors import FcinvertError

if TYPE_CHECKING:
    from fcinvert.physics.material import Material


def _dataset(material: Material):
    atoms = material.atoms
    dataset = spglib.get_symmetry_dataset(
        (atoms.cell[:], atoms.get_scaled_positions(), atoms.numbers), symprec=1e-3
    )
    if dataset is None:
        raise FcinvertError(f"{material.name}: spglib finds no symmetry for this cell")
    return dataset


def reciprocal_basis(lattice: np.ndarray, two_pi: bool = False) -> np.ndarray:
    """(3, 3) rows b_i of the lattice reciprocal to ``lattice`` (3, 3) rows a_i in Å, with
    a_i · b_j = δ_ij: 1/Å without 2π, or with it when ``two_pi``. For a material's primitive
    reciprocal basis pass ``material.atoms.cell[:]``; reduced q → Cartesian is q @ b."""
    basis = np.linalg.inv(np.asarray(lattice, dtype=float)).T
    return 2.0 * np.pi * basis if two_pi else basis


def conventional_transform(material: Material) -> np.ndarray:
    """P (3, 3) with q_reduced = hkl @ P: conventional-cell hkl → standard primitive reduced q."""
    return np.asarray(_dataset(material).transformation_matrix, dtype=float)


def conventional_lattice(material: Material) -> np.ndarray:
    """(3, 3) rows: conventional lattice vectors (Å) in the material's Cartesian frame."""
    return np.linalg.inv(conventional_transform(material)).T @ material.atoms.cell[:]


def hkl_to_reduced(material: Material, hkl: np.ndarray) -> np.ndarray:
    """Conventional hkl (..., 3) → reduced q of the standard primitive reciprocal basis."""
    return np.asarray(hkl, dtype=float) @ conventional_transform(material)


def reduced_to_hkl(material: Material, reduced: np.ndarray) -> np.ndarray:
    """Reduced primitive q (..., 3) → conventional hkl."""
    return np.asarray(reduced, dtype=float) @ np.linalg.inv(conventional_transform(material))


def laue_rotations(material: Material) -> np.ndarray:
    """(n_ops, 3, 3) Cartesian rotations of the point group with inversion added.

    A one-phonon S(Q, E) is invariant under all of them (time reversal gives S(−Q) = S(Q)).
    """
    direct = material.atoms.cell[:].T  # columns a_i: x_cart = direct @ x_frac
    rotations = np.einsum(
        "ij,njk,kl->nil", direct, _dataset(material).rotations, np.linalg.inv(direct)
    )
    rotations = np.concatenate([rotations, -rotations])
    return np.unique(np.round(rotations, 8), axis=0)
