"""Exact eigenvalues of D(q; θ) = Σ_k θ_k D_k(q) for many θ, using its θ-independent blocks.

At a q-point with symmetry the little group splits D(q) into the same blocks for every θ. The
eigenvectors U of one generic combination Σ_k r_k D_k(q) expose that structure: U† D_k U has the
same zero pattern for every k, and its connected components are blocks whose eigenvalues are
those of D. Blocks of size 1 are linear in θ (ω² is one matrix product), 2×2 Hermitian blocks
have a closed form, larger ones go to a batched eigen-solve. Batched LAPACK costs microseconds
per call whatever the size (../shared/notes/physics-tooling.md), so fewer and smaller calls is
where the speed is.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy.sparse.csgraph import connected_components

ZERO = 1e-12  # relative size below which a transformed entry is structurally zero


@dataclass
class BlockGroup:
    """All reduced blocks of one size s and multiplicity g across the q-points.

    q_index: (m,) q-point of each block; states: (m, s·g) eigenvalue slots the block fills;
    matrices: (n_params, m, s, s) complex128, U† D_k U restricted to the block. A block of a
    g-dimensional irrep that occurs s times is C ⊗ I_g in an aligned basis: only C is kept and
    each of its eigenvalues fills g slots.
    """

    q_index: np.ndarray
    states: np.ndarray
    matrices: np.ndarray
    multiplicity: int


class BlockedEigenvalues:
    """Sorted eigenvalues (eV/Å²/amu) of D(q; θ) for batches of θ, via the fixed block structure."""

    def __init__(self, matrices: np.ndarray, seed: int = 0) -> None:
        """``matrices``: (n_params, nq, n, n) complex128 per-parameter dynamical matrices."""
        n_params, nq, n, _ = matrices.shape
        self.shape = (nq, n)
        rng = np.random.default_rng(seed)
        first, second = rng.uniform(0.5, 1.5, (2, n_params))
        values, vectors = np.linalg.eigh(np.einsum("k,kqij->qij", first, matrices))
        rotated = np.einsum("qia,kqij,qjb->kqab", vectors.conj(), matrices, vectors)
        scale = np.abs(matrices).max()
        pattern = np.any(np.abs(rotated) > ZERO * scale, axis=0)  # (nq, n, n)
        found: dict[tuple[int, int], list[tuple[int, np.ndarray, np.ndarray]]] = {}  # (s, g)
        for q in range(nq):
            _, labels = connected_components(pattern[q], directed=False)
            for label in np.unique(labels):
                states = np.flatnonzero(labels == label)
                block = rotated[:, q][:, states[:, None], states]
                reduced, multiplicity, slots = _reduce(
                    block, values[q, states], np.einsum("k,kab->ab", second, block), scale
                )
                found.setdefault((len(reduced[0]), multiplicity), []).append(
                    (q, states[slots], reduced)
                )
        self.groups = [
            BlockGroup(
                np.array([q for q, _, _ in blocks]),
                np.array([s for _, s, _ in blocks]),
                np.stack([r for _, _, r in blocks], axis=1),
                multiplicity,
            )
            for (_, multiplicity), blocks in sorted(found.items())
        ]

    def __call__(self, theta: np.ndarray) -> np.ndarray:
        """Eigenvalues for θ (B, n_params): (B, nq, n) ascending."""
        theta = np.atleast_2d(np.asarray(theta, dtype=float))
        nq, n = self.shape
        out = np.empty((len(theta), nq, n))
        for group in self.groups:
            _, m, size, _ = group.matrices.shape
            flat = group.matrices.reshape(len(group.matrices), -1)
            real = (theta @ flat.real).reshape(len(theta), m, size, size)
            if size == 1:
                blocks = real[..., 0]
            else:
                imag = (theta @ flat.imag).reshape(len(theta), m, size, size)
                blocks = _SOLVERS.get(size, _lapack)(real, imag)
            out[:, group.q_index[:, None], group.states] = np.repeat(
                blocks, group.multiplicity, axis=-1
            )
        out.sort(axis=-1)
        return out


def _reduce(
    block: np.ndarray, values: np.ndarray, probe: np.ndarray, scale: float
) -> tuple[np.ndarray, int, np.ndarray]:
    """Split a block (n_params, s, s) that is C ⊗ I_g in a suitable basis down to C.

    ``values``: eigenvalues of the generic combination on the block's states; ``probe``: a second
    generic combination (s, s) used to align the copies. Returns (matrices, g, state order);
    g = 1 and the block unchanged when it does not have that structure.
    """
    size = len(values)
    unchanged = (block, 1, np.arange(size))
    tolerance = 1e-9 * max(np.abs(values).max(), 1e-300)
    clusters: list[list[int]] = []
    for i in np.argsort(values):
        if clusters and abs(values[i] - values[clusters[-1][-1]]) < tolerance:
            clusters[-1].append(int(i))
        else:
            clusters.append([int(i)])
    g = len(clusters[0])
    if g == 1 or any(len(c) != g for c in clusters):
        return unchanged
    basis = np.zeros((size, size), dtype=complex)  # columns: aligned (cluster, partner) vectors
    basis[clusters[0], :g] = np.eye(g)
    for c, cluster in enumerate(clusters[1:], start=1):
        coupling = probe[np.ix_(clusters[0], cluster)]  # ∝ a unitary when aligned copies exist
        strength = np.linalg.svd(coupling, compute_uv=False)
        if strength.min() < 1e-6 * scale or strength.max() > (1 + 1e-6) * strength.min():
            return unchanged
        basis[cluster, c * g : (c + 1) * g] = coupling.conj().T / strength[0]
    aligned = np.einsum("ia,kij,jb->kab", basis.conj(), block, basis)
    n_copies = size // g
    shaped = aligned.reshape(len(block), n_copies, g, n_copies, g)
    reduced = shaped[:, :, 0, :, 0]
    expected = np.einsum("kcd,ab->kcadb", reduced, np.eye(g))
    if np.abs(shaped - expected).max() > ZERO * 1e3 * scale:
        return unchanged
    slots = np.concatenate([np.array(c) for c in clusters])  # g slots per eigenvalue of C
    return reduced, g, slots


def _lapack(real: np.ndarray, imag: np.ndarray) -> np.ndarray:
    return np.linalg.eigvalsh(real + 1j * imag)


def _hermitian_2x2(real: np.ndarray, imag: np.ndarray) -> np.ndarray:
    """Eigenvalues (..., 2) of Hermitian 2×2 matrices given as real and imaginary parts."""
    a, d = real[..., 0, 0], real[..., 1, 1]
    off = real[..., 0, 1] ** 2 + imag[..., 0, 1] ** 2
    mean, half = 0.5 * (a + d), 0.5 * (a - d)
    root = np.sqrt(half * half + off)
    upper = mean + np.where(mean >= 0, root, -root)  # the larger-magnitude root, no cancellation
    with np.errstate(divide="ignore", invalid="ignore"):
        lower = np.where(upper != 0, (a * d - off) / upper, 0.0)
    return np.stack([np.minimum(upper, lower), np.maximum(upper, lower)], axis=-1)


def _hermitian_3x3(real: np.ndarray, imag: np.ndarray) -> np.ndarray:
    """Eigenvalues (..., 3) of Hermitian 3×3 matrices: trigonometric closed form, then two Newton
    steps on the characteristic polynomial to recover full double precision."""
    a11, a22, a33 = real[..., 0, 0], real[..., 1, 1], real[..., 2, 2]
    b12 = real[..., 0, 1] + 1j * imag[..., 0, 1]
    b13 = real[..., 0, 2] + 1j * imag[..., 0, 2]
    b23 = real[..., 1, 2] + 1j * imag[..., 1, 2]
    n12, n13, n23 = np.abs(b12) ** 2, np.abs(b13) ** 2, np.abs(b23) ** 2
    trace = a11 + a22 + a33
    minors = a11 * a22 + a11 * a33 + a22 * a33 - n12 - n13 - n23
    det = a11 * a22 * a33 + 2 * (b12 * b23 * np.conj(b13)).real - a11 * n23 - a22 * n13 - a33 * n12
    mean = trace / 3
    p2 = (a11 - mean) ** 2 + (a22 - mean) ** 2 + (a33 - mean) ** 2 + 2 * (n12 + n13 + n23)
    p = np.sqrt(p2 / 6)
    with np.errstate(divide="ignore", invalid="ignore"):
        # det((A − mean·I) / p) / 2, from the characteristic polynomial at λ = mean
        shifted = (det - mean * minors + mean**2 * trace - mean**3) / p**3
        r = np.where(p > 0, shifted / 2, 0.0)
    phi = np.arccos(np.clip(r, -1.0, 1.0)) / 3
    roots = np.stack(
        [
            mean + 2 * p * np.cos(phi + 2 * np.pi / 3),
            mean + 2 * p * np.cos(phi + 4 * np.pi / 3),
            mean + 2 * p * np.cos(phi),
        ],
        axis=-1,
    )
    t, m, d = trace[..., None], minors[..., None], det[..., None]
    for _ in range(2):
        value = ((roots - t) * roots + m) * roots - d  # λ³ − tλ² + mλ − det
        slope = (3 * roots - 2 * t) * roots + m
        with np.errstate(divide="ignore", invalid="ignore"):
            step = np.where(np.abs(slope) > 1e-12 * np.abs(t) ** 2, value / slope, 0.0)
        roots = roots - step
    return np.sort(roots, axis=-1)


_SOLVERS = {2: _hermitian_2x2, 3: _hermitian_3x3}
