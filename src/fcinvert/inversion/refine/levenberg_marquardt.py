"""The refinement's optimiser: Levenberg–Marquardt on a ``SpectrumFit``, with its analytic
Jacobian or (``method="iterative"``, the paper's traditional iterative optimisation) forward
differences, one forward model per parameter per iteration."""

from __future__ import annotations

from typing import Literal

import numpy as np

from fcinvert.inversion.refine.spectrum_fit import Derivatives, Evaluation, SpectrumFit

Method = Literal["analytic", "iterative"]
METHODS = ("analytic", "iterative")


def levenberg_marquardt(
    fit: SpectrumFit, theta: np.ndarray, method: Method, max_iterations: int, tolerance: float
) -> tuple[Evaluation, int]:
    """Minimise ½‖r(θ)‖² from θ by Levenberg–Marquardt with Marquardt's diagonal scaling and
    Nielsen's damping update, on the P×P normal equations (cheap: P ≪ rows).

    Stops when an accepted step lowers the cost by less than ``tolerance`` (relative) or moves
    θ by less than ``tolerance`` (scaled), or after ``max_iterations`` trial steps. Returns the
    evaluation at the final θ, Jacobian included, and the number of trial steps.
    """
    analytic = method == "analytic"
    current = with_jacobian(fit, fit.evaluate(theta, jacobian=analytic), theta)
    cost = 0.5 * float(current.residual @ current.residual)
    damping, growth = 1e-3, 2.0
    scale = np.zeros(len(theta))
    iteration = 0
    for iteration in range(1, max_iterations + 1):
        gradient = current.derivatives.gradient
        curvature = current.derivatives.curvature
        scale = np.maximum(scale, np.diag(curvature))
        floor = 1e-12 * max(float(scale.max()), 1e-300)
        step = -np.linalg.solve(curvature + damping * np.diag(np.maximum(scale, floor)), gradient)
        predicted = -(gradient @ step + 0.5 * step @ curvature @ step)
        trial = fit.evaluate(theta + step, jacobian=analytic)
        trial_cost = 0.5 * float(trial.residual @ trial.residual)
        ratio = (cost - trial_cost) / predicted if predicted > 0 else -1.0
        if ratio > 0:
            theta = theta + step
            current = with_jacobian(fit, trial, theta)
            reduction = (cost - trial_cost) / max(cost, 1e-300)
            cost = trial_cost
            damping *= max(1.0 / 3.0, 1.0 - (2.0 * ratio - 1.0) ** 3)
            growth = 2.0
            moved = np.sqrt(scale) * np.abs(step)
            if (
                reduction < tolerance
                or moved.max() < tolerance * (np.sqrt(scale) * np.abs(theta)).max()
            ):
                return current, iteration
        else:
            damping *= growth
            growth *= 2.0
            if damping > 1e12:
                break
    return current, iteration


def with_jacobian(fit: SpectrumFit, evaluation: Evaluation, theta: np.ndarray) -> Evaluation:
    """``evaluation`` with its Jacobian: the analytic one if present, else forward differences
    (one forward model per parameter, steps √ε·max(1, |θ_k|), as scipy's '2-point')."""
    if evaluation.derivatives is not None:
        return evaluation
    jacobian = np.empty((len(evaluation.residual), len(theta)))
    for k in range(len(theta)):
        shifted = theta.copy()
        shifted[k] += np.sqrt(np.finfo(float).eps) * max(1.0, abs(theta[k]))
        step = shifted[k] - theta[k]
        shifted_residual = fit.evaluate(shifted, jacobian=False).residual
        jacobian[:, k] = (shifted_residual - evaluation.residual) / step
    evaluation.derivatives = Derivatives.of_rows(
        jacobian, evaluation.residual, *evaluation.frequencies.shape
    )
    return evaluation
