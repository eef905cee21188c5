"""Coherent one-phonon S(Q, E): the physical spectrum model, as a measurement sees it.

For Q = q + G (q reduced on the path, G a reciprocal lattice vector) and mode j of energy ħω_j(q):

    S_j(Q) = (n_j + 1)/ħω_j · |Σ_κ b_κ / √(2 m_κ) · exp(−W_κ(Q)) · (Q·e*_κj(q)) · exp(2πi G·r_κ)|²

for phonon creation (energy loss, E = +ħω_j) and n_j in place of n_j + 1 for annihilation
(E = −ħω_j). e are the eigenvectors of phonopy's dynamical matrix (its phase convention carries
the atom positions, hence the exp(2πi G·r_κ) factor, as in phonopy's DynamicStructureFactor),
n the Bose factor at T, W_κ = ½ Qᵀ U_κ Q the Debye–Waller exponent with U_κ the thermal
displacement matrix from a Γ-centred q mesh, b the coherent scattering lengths. Units: Q in 1/Å
(with 2π), b in fm, m in amu, ħω in meV: S in fm² Å⁻² amu⁻¹ meV⁻¹ (an arbitrary overall scale;
phonopy's m²/J differs by a constant). Modes below ``ACOUSTIC_CUTOFF`` meV (acoustic modes near
Γ, which diverge through 1/ω and the Bose factor) are left out.

Because S(RQ) = S(Q) for every rotation R of the Laue group, a measurement folded onto the path
over the zones Z and all rotations is the average over the orbits of Z of S(q + G').
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
from phonopy.physical_units import get_physical_units

from fcinvert.errors import FcinvertError
from fcinvert.physics.dynamics import DynamicsBasis, dynamics_basis
from fcinvert.physics.fcspace import FCSpace
from fcinvert.physics.material import EnergyGrid, Material
from fcinvert.physics.reciprocal import hkl_to_reduced, laue_rotations, reciprocal_basis
from fcinvert.physics.spectra import render

UNITS = get_physical_units()
#: k_B in meV/K (phonopy's value, so Bose factors agree with phonopy's).
BOLTZMANN = UNITS.KB * 1000.0
#: ħ²/(1 amu) in meV·Å² (phonopy's constants): U = ħ²/(2 m ħω) (2n + 1) e e†.
HBAR2_OVER_AMU = UNITS.Hbar**2 * UNITS.EV * 1000.0 / (UNITS.Angstrom**2 * UNITS.AMU)
#: (|Q| (m,) 1/Å, E (nE,) meV) → (m, nE) bool: which (Q, E) an experiment measures.
Reach = Callable[[np.ndarray, np.ndarray], np.ndarray]
#: Modes below this energy (meV) are masked: acoustic modes at Q → G diverge.
ACOUSTIC_CUTOFF = 0.5

#: Coherent neutron scattering lengths b_c (fm), isotope averaged: V. F. Sears, "Neutron
#: scattering lengths and cross sections", Neutron News 3(3), 26–37 (1992); as tabulated at
#: https://www.ncnr.nist.gov/resources/n-lengths/ and in Euphonic's data/sears-1992.json.
#: Real parts for the absorbing isotopes (Cd, In, Sm, Eu, Gd, Dy).
SCATTERING_LENGTHS_FM = {
    "H": -3.7390,
    "He": 3.26,
    "Li": -1.90,
    "Be": 7.79,
    "B": 5.30,
    "C": 6.6460,
    "N": 9.36,
    "O": 5.803,
    "F": 5.654,
    "Ne": 4.566,
    "Na": 3.63,
    "Mg": 5.375,
    "Al": 3.449,
    "Si": 4.1491,
    "P": 5.13,
    "S": 2.847,
    "Cl": 9.5770,
    "Ar": 1.909,
    "K": 3.67,
    "Ca": 4.70,
    "Sc": 12.29,
    "Ti": -3.438,
    "V": -0.3824,
    "Cr": 3.635,
    "Mn": -3.73,
    "Fe": 9.45,
    "Co": 2.49,
    "Ni": 10.3,
    "Cu": 7.718,
    "Zn": 5.680,
    "Ga": 7.288,
    "Ge": 8.185,
    "As": 6.58,
    "Se": 7.970,
    "Br": 6.795,
    "Kr": 7.81,
    "Rb": 7.09,
    "Sr": 7.02,
    "Y": 7.75,
    "Zr": 7.16,
    "Nb": 7.054,
    "Mo": 6.715,
    "Tc": 6.8,
    "Ru": 7.03,
    "Rh": 5.88,
    "Pd": 5.91,
    "Ag": 5.922,
    "Cd": 4.87,
    "In": 4.065,
    "Sn": 6.225,
    "Sb": 5.57,
    "Te": 5.80,
    "I": 5.28,
    "Xe": 4.92,
    "Cs": 5.42,
    "Ba": 5.07,
    "La": 8.24,
    "Ce": 4.84,
    "Pr": 4.58,
    "Nd": 7.69,
    "Pm": 12.6,
    "Sm": 0.80,
    "Eu": 7.22,
    "Gd": 6.5,
    "Tb": 7.38,
    "Dy": 16.9,
    "Ho": 8.01,
    "Er": 7.79,
    "Tm": 7.07,
    "Yb": 12.43,
    "Lu": 7.21,
    "Hf": 7.77,
    "Ta": 6.91,
    "W": 4.86,
    "Re": 9.2,
    "Os": 10.72,
    "Ir": 10.6,
    "Pt": 9.60,
    "Au": 7.63,
    "Hg": 12.692,
    "Tl": 8.776,
    "Pb": 9.405,
    "Bi": 8.532,
    "Ra": 10.0,
    "Th": 10.31,
    "Pa": 9.1,
    "U": 8.417,
    "Np": 10.55,
    "Am": 8.3,
}


def scattering_lengths(symbols: list[str]) -> np.ndarray:
    """b_c (fm) per atom."""
    missing = sorted({s for s in symbols if s not in SCATTERING_LENGTHS_FM})
    if missing:
        raise FcinvertError(f"no coherent scattering length tabulated for {', '.join(missing)}")
    return np.array([SCATTERING_LENGTHS_FM[s] for s in symbols])


def bose(energy: np.ndarray, temperature: float) -> np.ndarray:
    """Bose occupation of modes of energy ``energy`` (meV, > 0) at ``temperature`` K."""
    energy = np.asarray(energy, dtype=float)
    if temperature <= 0:
        return np.zeros_like(energy)
    with np.errstate(over="ignore"):
        return 1.0 / np.expm1(energy / (BOLTZMANN * temperature))


def gamma_mesh(divisions: int) -> np.ndarray:
    """Γ-centred divisions³ q mesh (reduced), Γ included."""
    grid = np.arange(divisions) / divisions
    return np.stack(np.meshgrid(grid, grid, grid, indexing="ij"), -1).reshape(-1, 3)


@dataclass
class StructureFactorModel:
    """Precomputed dynamics for S(Q, E) on the path of one material.

    path: DynamicsBasis on the path q-points; mesh: DynamicsBasis on the Debye–Waller mesh.
    """

    material: Material
    path: DynamicsBasis
    mesh: DynamicsBasis
    cutoff: float = ACOUSTIC_CUTOFF

    @classmethod
    def build(
        cls,
        material: Material,
        fcspace: FCSpace,
        qpoints: np.ndarray | None = None,
        mesh: int = 8,
    ) -> StructureFactorModel:
        """``qpoints`` (nq, 3) reduced, default the material's path; Debye–Waller on mesh³."""
        qpoints = material.path.qpoints if qpoints is None else np.asarray(qpoints, float)
        return cls(
            material, dynamics_basis(fcspace, qpoints), dynamics_basis(fcspace, gamma_mesh(mesh))
        )

    @property
    def qpoints(self) -> np.ndarray:
        return self.path.qpoints

    def thermal_displacements(self, theta: np.ndarray, temperature: float) -> np.ndarray:
        """U_κ (n_atoms, 3, 3) Å²: mean-square displacement matrices on the mesh at T."""
        return self.displacements_from_modes(*self.mesh.modes(theta), temperature)

    def displacements_from_modes(
        self, frequencies: np.ndarray, vectors: np.ndarray, temperature: float
    ) -> np.ndarray:
        """U_κ (n_atoms, 3, 3) Å² at T from the mesh modes: ħω (nm, nb) meV, e (nm, nb, nb).

        Solving the mesh once (at a reference θ) and calling this per temperature is how the
        realistic generator holds Debye–Waller at the reference."""
        masses = self.material.masses
        valid = frequencies > self.cutoff
        safe = np.where(valid, frequencies, 1.0)
        weight = np.where(valid, (2.0 * bose(safe, temperature) + 1.0) / safe, 0.0)
        atoms = vectors.reshape(len(frequencies), len(masses), 3, -1)  # (nm, κ, α, j)
        outer = np.einsum("qkaj,qkbj,qj->kab", atoms, atoms.conj(), weight).real
        return 0.5 * HBAR2_OVER_AMU * outer / (len(frequencies) * masses[:, None, None])

    def mode_intensities(
        self,
        theta: np.ndarray,
        temperature: float,
        path_index: np.ndarray,
        zones: np.ndarray,
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """S for creation and annihilation of every mode at Q = q[path_index] + G.

        path_index: (M,) indices into the path; zones: (M, 3) reduced integer G.
        Returns ħω (nq, nb) meV, S_create (M, nb), S_annihilate (M, nb) (masked modes 0).
        """
        frequencies, vectors = self.path.modes(theta)
        path_index = np.asarray(path_index, dtype=np.int64)
        zones = np.asarray(zones, dtype=float)
        atoms = self.material.atoms
        reciprocal = reciprocal_basis(atoms.cell[:], two_pi=True)
        q_cart = (self.qpoints[path_index] + zones) @ reciprocal  # (M, 3)
        lengths = scattering_lengths(atoms.get_chemical_symbols())
        masses = self.material.masses
        displacement = self.thermal_displacements(theta, temperature)  # (κ, 3, 3)
        exponent = 0.5 * np.einsum("ma,kab,mb->mk", q_cart, displacement, q_cart)
        phase = np.exp(2j * np.pi * zones @ atoms.get_scaled_positions().T)  # (M, κ)
        prefactor = lengths / np.sqrt(2.0 * masses) * np.exp(-exponent) * phase  # (M, κ)
        n_atoms = len(masses)
        out_create = np.zeros((len(path_index), 3 * n_atoms))
        out_annihilate = np.zeros_like(out_create)
        valid = frequencies > self.cutoff
        safe = np.where(valid, frequencies, 1.0)
        occupation = bose(safe, temperature)
        chunk = 200_000
        for start in range(0, len(path_index), chunk):
            part = slice(start, start + chunk)
            index = path_index[part]
            e = vectors[index].reshape(len(index), n_atoms, 3, -1)  # (m, κ, α, j)
            projected = np.einsum("ma,mkaj->mkj", q_cart[part], e.conj())
            amplitude = np.einsum("mk,mkj->mj", prefactor[part], projected)
            strength = np.where(valid[index], np.abs(amplitude) ** 2 / safe[index], 0.0)
            out_create[part] = strength * (occupation[index] + 1.0)
            out_annihilate[part] = strength * occupation[index]
        return frequencies, out_create, out_annihilate

    def pixel_spectra(
        self,
        theta: np.ndarray,
        temperature: float,
        path_index: np.ndarray,
        zones: np.ndarray,
        grid: EnergyGrid,
    ) -> np.ndarray:
        """S(Q, E) (M, nE) (per meV) with the material's resolution, at Q = q[path_index] + G."""
        frequencies, create, annihilate = self.mode_intensities(
            theta, temperature, path_index, zones
        )
        nq, nb = frequencies.shape
        profiles = render(frequencies.reshape(-1, 1), grid).reshape(nq, nb, -1)
        negative = render(-frequencies.reshape(-1, 1), grid).reshape(nq, nb, -1)
        out = np.empty((len(path_index), len(grid.centres)), dtype=np.float64)
        chunk = 50_000
        for start in range(0, len(path_index), chunk):
            part = slice(start, start + chunk)
            index = np.asarray(path_index)[part]
            out[part] = np.einsum("mj,mje->me", create[part], profiles[index])
            out[part] += np.einsum("mj,mje->me", annihilate[part], negative[index])
        return out


@dataclass
class FoldOperator:
    """The fold as a Hermitian quadratic form on the eigenvectors of each path q.

    The one-phonon amplitude at Q = q + G' is linear in the eigenvector of q, F_j = c(Q)ᵀ e*_j(q)
    with
    c_κα(Q) = b_κ/√(2 m_κ) · exp(−W_κ(Q)) · exp(2πi G'·r_κ) · Q_α, so the weighted sum of
    |F_j|² over the zones G' a fold collects is e_j† W(q) e_j with
    W(q) = Σ_G' w_G' c c† / Σ w (3N × 3N). W depends on θ only through Debye–Waller: build it
    once per zone set and temperature, then every θ costs one small product per q.

    zones: (nz, 3) int reduced G' of the pool; amplitudes: (nq, nz, 3N) complex c without
    Debye–Waller; q_cart: (nq, nz, 3) 1/Å (with 2π).
    """

    model: StructureFactorModel
    zones: np.ndarray
    amplitudes: np.ndarray
    q_cart: np.ndarray

    @classmethod
    def build(cls, model: StructureFactorModel, zones: np.ndarray) -> FoldOperator:
        """Precompute c(q + G') for every path q and every G' in ``zones`` (nz, 3) int."""
        zones = np.atleast_2d(np.asarray(zones, dtype=np.int64))
        atoms = model.material.atoms
        reciprocal = reciprocal_basis(atoms.cell[:], two_pi=True)
        q_cart = (model.qpoints[:, None, :] + zones[None]) @ reciprocal
        lengths = scattering_lengths(atoms.get_chemical_symbols())
        phase = np.exp(2j * np.pi * zones @ atoms.get_scaled_positions().T)  # (nz, κ)
        prefactor = lengths / np.sqrt(2.0 * model.material.masses) * phase  # (nz, κ)
        amplitudes = prefactor[None, :, :, None] * q_cart[:, :, None, :]  # (nq, nz, κ, α)
        return cls(model, zones, amplitudes.reshape(*q_cart.shape[:2], -1), q_cart)

    def matrices(
        self, index: np.ndarray, weights: np.ndarray, displacement: np.ndarray
    ) -> np.ndarray:
        """W(q) (nq, 3N, 3N) complex for pool zones ``index`` (n,) with ``weights`` (n,) and
        Debye–Waller displacement matrices ``displacement`` U_κ (κ, 3, 3) Å²."""
        index = np.asarray(index, dtype=np.int64)
        weights = np.asarray(weights, dtype=float) / np.sum(weights)
        q = self.q_cart[:, index]  # (nq, n, 3)
        exponent = 0.5 * np.einsum("qna,kab,qnb->qnk", q, displacement, q)
        damping = np.repeat(np.exp(-exponent), 3, axis=2)  # (nq, n, 3N): κ-major like c
        c = self.amplitudes[:, index] * damping
        return np.swapaxes(c * weights[None, :, None], 1, 2) @ c.conj()

    @property
    def zone_cart(self) -> np.ndarray:
        """G' (nz, 3) Cartesian 1/Å (with 2π) of the pool."""
        return self.zones @ reciprocal_basis(self.model.material.atoms.cell[:], two_pi=True)

    def pool_index(self, zones: np.ndarray) -> np.ndarray:
        """Positions of ``zones`` (n, 3) int in the pool (each must be there)."""
        lookup = {tuple(z): i for i, z in enumerate(self.zones.tolist())}
        try:
            return np.array([lookup[tuple(z)] for z in np.asarray(zones).tolist()], np.int64)
        except KeyError as error:
            raise FcinvertError(
                f"zone {error.args[0]} is not in the fold operator's pool"
            ) from None


def quadratic_strengths(vectors: np.ndarray, matrices: np.ndarray) -> np.ndarray:
    """e_j† W e_j (..., nq, nb) for eigenvector columns e (..., nq, 3N, nb) and
    W (..., nq, 3N, 3N)."""
    return np.einsum("...ij,...ij->...j", vectors.conj(), matrices @ vectors).real


def phonon_weights(
    frequencies: np.ndarray,
    strengths: np.ndarray,
    temperature: np.ndarray | float,
    cutoff: float = ACOUSTIC_CUTOFF,
) -> tuple[np.ndarray, np.ndarray]:
    """(creation, annihilation) weights (..., nq, nb): |F|²/ħω · (n + 1) and · n.

    frequencies, strengths: (B, nq, nb) or (nq, nb); temperature: scalar or (B,) K. Modes
    below ``cutoff`` meV get 0."""
    frequencies = np.asarray(frequencies, dtype=float)
    temperature = np.asarray(temperature, dtype=float)
    if temperature.ndim:
        temperature = temperature.reshape(-1, *([1] * (frequencies.ndim - 1)))
    valid = frequencies > cutoff
    safe = np.where(valid, frequencies, 1.0)
    with np.errstate(over="ignore", divide="ignore"):
        occupation = np.where(
            temperature > 0, 1.0 / np.expm1(safe / (BOLTZMANN * np.maximum(temperature, 1e-9))), 0.0
        )
    strength = np.where(valid, strengths / safe, 0.0)
    return strength * (occupation + 1.0), strength * occupation


def folded_spectrum_quadratic(
    model: StructureFactorModel,
    theta: np.ndarray,
    temperature: float,
    zones: np.ndarray,
    weights: np.ndarray | None = None,
    displacement: np.ndarray | None = None,
    operator: FoldOperator | None = None,
) -> np.ndarray:
    """``folded_spectrum`` without a reach, through the quadratic form: I(q, E) (nq, nE).

    Sums |F_j|² over the zones before broadening (the resolution depends on E only, so this
    is the same image). ``displacement`` U_κ (κ, 3, 3) Å² replaces θ's own Debye–Waller
    (e.g. the reference θ's); ``operator`` a prebuilt FoldOperator whose pool holds ``zones``.
    """
    from fcinvert.physics.spectra import render_weighted

    zones = np.atleast_2d(np.asarray(zones, dtype=np.int64))
    weights = np.full(len(zones), 1.0 / len(zones)) if weights is None else np.asarray(weights)
    operator = FoldOperator.build(model, zones) if operator is None else operator
    if displacement is None:
        displacement = model.thermal_displacements(theta, temperature)
    matrices = operator.matrices(operator.pool_index(zones), weights, displacement)
    frequencies, vectors = model.path.modes(theta)
    strengths = quadratic_strengths(vectors, matrices)
    create, annihilate = phonon_weights(frequencies, strengths, temperature, model.cutoff)
    peaks = np.concatenate([frequencies, -frequencies], axis=-1)[None]
    amounts = np.concatenate([create, annihilate], axis=-1)[None]
    return render_weighted(peaks, amounts, model.material.energy)[0].astype(float)


def zone_orbits(material: Material, zones: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Each reduced G in ``zones`` (nz, 3) expanded to its Laue orbit R⁻¹G, with weights.

    A measurement folded over zone G and every rotation R sees S(G + Rq) = S(R⁻¹G + q), so the
    folded spectrum is Σ_G' w_G' S(q + G'). Returns G' (n, 3) int and w (n,) summing to 1.
    """
    zones = np.atleast_2d(np.asarray(zones, dtype=float))
    reciprocal = reciprocal_basis(material.atoms.cell[:])
    rotations = laue_rotations(material)
    cart = zones @ reciprocal
    images = np.einsum("rji,zj->zri", rotations, cart) @ np.linalg.inv(reciprocal)
    images = np.round(images).astype(np.int64).reshape(-1, 3)
    weights = np.full(len(images), 1.0 / len(images))
    unique, inverse = np.unique(images, axis=0, return_inverse=True)
    return unique, np.bincount(inverse.ravel(), weights=weights)


def zones_within(material: Material, q_max: float) -> np.ndarray:
    """All reciprocal lattice vectors G (reduced, int) with |G| ≤ q_max (1/Å, with 2π)."""
    reciprocal = reciprocal_basis(material.atoms.cell[:], two_pi=True)
    reach = int(np.ceil(q_max / np.min(np.linalg.norm(reciprocal, axis=1)))) + 1
    grid = np.arange(-reach, reach + 1)
    points = np.stack(np.meshgrid(grid, grid, grid, indexing="ij"), -1).reshape(-1, 3)
    return points[np.linalg.norm(points @ reciprocal, axis=1) <= q_max]


def zones_from_hkl(material: Material, hkl: np.ndarray) -> np.ndarray:
    """Conventional hkl of zone centres (n, 3) → reduced G (n, 3) int; each must be a G."""
    hkl = np.atleast_2d(np.asarray(hkl, dtype=float))
    reduced = hkl_to_reduced(material, hkl)
    bad = np.any(np.abs(reduced - np.round(reduced)) > 1e-6, axis=1)
    if np.any(bad):
        first = ",".join(f"{x:g}" for x in hkl[np.argmax(bad)])
        raise FcinvertError(
            f"({first}) is not a reciprocal lattice vector of {material.name} (the zone centre "
            "must be an allowed Bragg peak of the conventional cell)"
        )
    return np.round(reduced).astype(np.int64)


def folded_spectrum(
    model: StructureFactorModel,
    theta: np.ndarray,
    temperature: float,
    zones: np.ndarray,
    weights: np.ndarray | None = None,
    reach: Reach | None = None,
    chunk: int = 64,
) -> np.ndarray:
    """The physical I(q, E) (nq, nE) on the path, folded over zones G' (n, 3) with weights.

    ``reach``, optional, tells which (|Q| (m,) 1/Å, E (nE,) meV) an experiment measures as an
    (m, nE) bool array; pixels no zone reaches are then NaN.
    """
    zones = np.atleast_2d(np.asarray(zones, dtype=np.int64))
    weights = np.full(len(zones), 1.0 / len(zones)) if weights is None else np.asarray(weights)
    grid = model.material.energy
    nq, n_energy = len(model.qpoints), len(grid.centres)
    reciprocal = reciprocal_basis(model.material.atoms.cell[:], two_pi=True)
    numerator = np.zeros((nq, n_energy))
    denominator = np.zeros((nq, n_energy))
    for start in range(0, len(zones), chunk):
        part = zones[start : start + chunk]
        weight = weights[start : start + chunk]
        path_index = np.repeat(np.arange(nq), len(part))
        rows = np.tile(part, (nq, 1))
        pixels = model.pixel_spectra(theta, temperature, path_index, rows, grid)
        pixels = pixels.reshape(nq, len(part), n_energy)
        if reach is None:
            numerator += np.einsum("z,qze->qe", weight, pixels)
            denominator += weight.sum()
            continue
        magnitude = np.linalg.norm((model.qpoints[path_index] + rows) @ reciprocal, axis=1)
        seen = reach(magnitude, grid.centres).reshape(nq, len(part), n_energy)
        numerator += np.einsum("z,qze->qe", weight, pixels * seen)
        denominator += np.einsum("z,qze->qe", weight, seen)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(denominator > 0, numerator / denominator, np.nan)


def resolve_zones(
    material: Material,
    text: str,
    reach_of: Callable[[], Reach] | None = None,
    q_max: float | None = None,
) -> tuple[np.ndarray, np.ndarray, Reach | None]:
    """Zones G' (n, 3), weights (n,) and an optional reach from a user's zone choice.

    ``text``: "auto" (every zone with |G| ≤ ``q_max`` 1/Å, each pixel kept only where the
    experiment ``reach_of()`` measures it), a number (every zone with |G| ≤ that many 1/Å) or
    conventional hkl zone centres "2,2,0;1,1,1" (each with its whole Laue orbit).
    """
    text = text.strip()
    if text == "auto":
        if reach_of is None or q_max is None:
            raise FcinvertError("zones 'auto' needs an instrument to tell which zones it reaches")
        zones = zones_within(material, q_max)
        return zones, np.full(len(zones), 1.0 / len(zones)), reach_of()
    try:
        radius = float(text)
    except ValueError:
        radius = None
    if radius is not None:
        if not radius > 0:
            raise FcinvertError(f"zones: the |Q| radius must be positive, got {text}")
        zones = zones_within(material, radius)
        return zones, np.full(len(zones), 1.0 / len(zones)), None
    try:
        hkl = np.array([[float(x) for x in item.split(",")] for item in text.split(";")])
    except ValueError:
        hkl = np.zeros((0, 0))
    if hkl.ndim != 2 or hkl.shape[1] != 3:
        raise FcinvertError(
            f"zones '{text}': expected 'auto', a |Q| radius in 1/Å, or hkl list like '2,2,0;1,1,1'"
        )
    zones, weights = zone_orbits(material, zones_from_hkl(material, hkl))
    return zones, weights, None


def scale_like_fast(intensity: np.ndarray, frequencies: np.ndarray, grid: EnergyGrid) -> float:
    """The factor that gives ``intensity`` the fast model's total over the finite pixels."""
    fast = render(frequencies, grid).astype(float)
    finite = np.isfinite(intensity)
    total = float(np.sum(intensity[finite]))
    if total <= 0:
        raise FcinvertError("the physical spectrum has no intensity inside the window")
    return float(np.sum(fast[finite])) / total


def physical_path_spectrum(
    material: Material,
    fcspace: FCSpace,
    theta: np.ndarray,
    temperature: float,
    zones: str = "auto",
    ei: float | None = None,
) -> np.ndarray:
    """The physical I(q, E) (nq, nE) of θ on the material's path, scaled like the fast model.

    ``zones`` as in ``resolve_zones``; "auto" keeps the zones and pixels an ARCS-like
    spectrometer of incident energy ``ei`` (meV; default 1.2 × the top of the energy window)
    reaches when the crystal is turned through every orientation.
    """
    from fcinvert.physics.instrument import Spectrometer, wavevector

    grid = material.energy
    top = float(grid.edges[-1])
    spectrometer = Spectrometer(ei=1.2 * top if ei is None else ei)
    q_max = 2.0 * float(wavevector(spectrometer.ei))
    chosen, weights, reach = resolve_zones(material, zones, lambda: spectrometer.reach, q_max)
    model = StructureFactorModel.build(material, fcspace)
    intensity = folded_spectrum(model, theta, temperature, chosen, weights, reach)
    return intensity * scale_like_fast(intensity, model.path.frequencies(theta), grid)
