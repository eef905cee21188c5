"""Non-negative least squares for many small problems at once: the free branch intensities of
every q column of a spectrum, with a ridge."""

from __future__ import annotations

import numpy as np
from scipy.optimize import nnls


def restricted(gram: np.ndarray, free: np.ndarray) -> np.ndarray:
    """Gram matrices (nq, m, m) restricted to the free set (nq, m): other rows and columns
    replaced by the identity, so that solving gives zero there."""
    out = np.where(free[:, :, None] & free[:, None, :], gram, 0.0)
    index = np.arange(gram.shape[-1])
    out[:, index, index] = np.where(free, out[:, index, index], 1.0)
    return out


def batched_nnls(
    gram: np.ndarray, rhs: np.ndarray, design: np.ndarray, target: np.ndarray, mu: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """min ‖design a − target‖² + μ‖a‖² over a ≥ 0 for every column at once.

    gram: (nq, m, m) = design designᵀ + μI; rhs: (nq, m) = design target; design (nq, m, nE)
    (rows are the m basis vectors), target (nq, nE), mu (nq,). Drops negative components until
    none remain, checks the KKT conditions, and hands the few columns that fail them to scipy's
    exact NNLS. Returns a (nq, m) and the free set (nq, m) bool (a > 0).
    """
    nq, m = rhs.shape
    free = np.ones((nq, m), dtype=bool)
    solution = np.linalg.solve(gram, rhs[..., None])[..., 0]
    active = np.flatnonzero(np.any(solution <= 0.0, axis=1))  # columns still to correct
    for _ in range(m):
        if active.size == 0:
            break
        free[active] &= solution[active] > 0.0
        subset = free[active]
        solution[active] = np.linalg.solve(
            restricted(gram[active], subset), (rhs[active] * subset)[..., None]
        )[..., 0]
        active = active[np.any(free[active] & (solution[active] <= 0.0), axis=1)]
    solution = np.where(free, solution, 0.0)
    gradient = rhs - np.einsum("qij,qj->qi", gram, solution)
    tolerance = 1e-10 * (np.abs(rhs).max(axis=1, keepdims=True) + 1e-300)
    failed = np.any(free & (solution <= 0.0), axis=1) | np.any(
        ~free & (gradient > tolerance), axis=1
    )
    if failed.any():
        for q in np.flatnonzero(failed):
            matrix = np.vstack([design[q].T, np.sqrt(mu[q]) * np.eye(m)])
            values, _ = nnls(matrix, np.concatenate([target[q], np.zeros(m)]), maxiter=50 * m)
            solution[q] = values
            free[q] = values > 0.0
    return solution, free
