"""Which FC parameters move the dispersion: the ranking that picks the K sampled ones.

For each ensemble member m (the reference alone when there is one), the Jacobian
J_m(q, j, k) = ∂ħω_j(q)/∂θ_k (meV per eV/Å²) along the path comes from autograd through the
torch dynamics. Each parameter's spread s_k is that of a uniform draw over the
training domain it would get (``domain.build_domain`` with every parameter selected):
s_k = (high_k − low_k)/√12, i.e. 2.75/√12 × its ensemble range, or, with a single member, the
stated default half width (``DEGENERATE_HALF_WIDTH`` × scale) around its value. To first order
and for independently drawn parameters, the variance of the dispersion over the domain is then
exactly the sum of one term per parameter,

    V_k = s_k² · ⟨J_m(q, j, k)²⟩  (mean over members, path points and branches; meV²),

so V_k / Σ V is parameter k's share of the dispersion variance, the ranking orders the V_k, and
the cumulative share of the top K says how much variation sampling only K of them keeps.
Modes below MODE_FLOOR meV (acoustic branches at Γ, where ∂ω/∂θ is singular) are left out.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from fcinvert.errors import FcinvertError
from fcinvert.labels.domain import (
    DEFAULT_K,
    DEGENERATE_HALF_WIDTH,
    EXPAND_ABOVE,
    EXPAND_BELOW,
    Toward,
    build_domain,
    load_ensemble,
)
from fcinvert.physics.dynamics import TorchDynamics, dynamics_basis
from fcinvert.physics.fcspace import FCSpace
from fcinvert.physics.material import Material

MODE_FLOOR = 0.5


@dataclass(frozen=True)
class Sensitivity:
    """Per-parameter influence on the dispersion, in parameter order.

    names: (P,); spread: (P,) eV/Å², the s_k above; jacobian_rms: (P,) meV per eV/Å², RMS of
    ∂ω/∂θ_k over members, path points and branches; variance: (P,) meV², V_k; members: names
    of the ensemble members the Jacobian was averaged over.
    """

    material: str
    names: list[str]
    spread: np.ndarray
    jacobian_rms: np.ndarray
    variance: np.ndarray
    members: list[str]

    @property
    def order(self) -> np.ndarray:
        """(P,) parameter indices, most influential first (ties keep parameter order)."""
        return np.argsort(-self.variance, kind="stable")

    @property
    def share(self) -> np.ndarray:
        """(P,) each parameter's share of the total dispersion variance, parameter order."""
        total = self.variance.sum()
        return self.variance / total if total > 0 else np.zeros_like(self.variance)

    @property
    def cumulative(self) -> np.ndarray:
        """(P,) share kept by the top 1, 2, …, P parameters."""
        return np.cumsum(self.share[self.order])

    def select(self, k: int = DEFAULT_K) -> np.ndarray:
        """(K,) indices of the K most influential parameters, in rank order."""
        if not 1 <= k <= len(self.names):
            raise FcinvertError(f"k must lie between 1 and {len(self.names)}, not {k}")
        return self.order[:k].copy()


def jacobian(dynamics: TorchDynamics, theta: np.ndarray) -> np.ndarray:
    """∂ħω/∂θ for θ (M, P) eV/Å²: (M, nq, nb, P) meV per eV/Å², by autograd.

    One Jacobian-vector product per parameter, all members at once (torch's double-backward
    jvp, which needs none of forward mode's one-off set-up of several seconds).
    """
    theta = torch.as_tensor(np.atleast_2d(theta), dtype=torch.float64)
    columns = []
    for k in range(theta.shape[1]):
        tangent = torch.zeros_like(theta)
        tangent[:, k] = 1.0
        _, column = torch.autograd.functional.jvp(dynamics.frequencies, theta, tangent)
        columns.append(column)
    return torch.stack(columns, dim=-1).numpy()


def compute_sensitivity(
    material: Material,
    fcspace: FCSpace,
    expand_below: float = EXPAND_BELOW,
    expand_above: float = EXPAND_ABOVE,
    toward: Toward = "magnitude",
    half_width: float = DEGENERATE_HALF_WIDTH,
) -> Sensitivity:
    """The sensitivity of the material's dispersion along its path over its ensemble."""
    members, ensemble = load_ensemble(material, fcspace)
    reference = fcspace.reference_theta(material)
    everything = np.arange(fcspace.n_params)
    box = build_domain(
        material.name,
        fcspace.names,
        ensemble,
        reference,
        everything,
        expand_below,
        expand_above,
        toward,
        half_width,
    )
    spread = (box.high - box.low) / np.sqrt(12.0)
    dynamics = dynamics_basis(fcspace, material.path.qpoints).torch()
    with torch.no_grad():
        omega = dynamics.frequencies(torch.from_numpy(ensemble)).numpy()  # (M, nq, nb)
    derivative = jacobian(dynamics, ensemble)
    derivative[np.abs(omega) < MODE_FLOOR] = 0.0
    jacobian_rms = np.sqrt(np.mean(derivative**2, axis=(0, 1, 2)))
    variance = spread**2 * jacobian_rms**2
    return Sensitivity(material.name, fcspace.names, spread, jacobian_rms, variance, members)


def plot_sensitivity(result: Sensitivity, path: str | Path, k: int = DEFAULT_K) -> list[Path]:
    """Bar chart of each parameter's share (rank order) and the cumulative share versus K,
    K marked; written as PNG and SVG (``path`` with each suffix). Returns both paths."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from fcinvert.iohelpers import atomic_path

    order = result.order
    ranks = np.arange(1, len(order) + 1)
    figure, (bars, curve) = plt.subplots(
        1, 2, figsize=(11, 4.2), gridspec_kw={"width_ratios": [1.6, 1]}, layout="constrained"
    )
    shares = np.maximum(result.share[order], 1e-12)
    colours = ["tab:blue" if i < k else "tab:gray" for i in range(len(order))]
    bars.bar(ranks, shares, color=colours)
    bars.set_yscale("log")
    bars.set_xticks(ranks, [result.names[i] for i in order], rotation=90, fontsize=7)
    bars.set_ylabel("share of dispersion variance")
    bars.set_title(f"{result.material}: parameters by influence (top {k} sampled)")
    curve.plot(ranks, result.cumulative, "o-", ms=3)
    curve.axvline(k, color="tab:red", ls="--", lw=1)
    kept = result.cumulative[k - 1]
    curve.annotate(f"K={k}: {kept:.4f}", (k, kept), textcoords="offset points", xytext=(6, -14))
    curve.set_xlabel("K (most influential parameters)")
    curve.set_ylabel("cumulative share")
    curve.set_ylim(min(0.5, float(result.cumulative[0])) - 0.02, 1.01)
    curve.set_title(f"{len(result.members)} member(s), linearised")
    written = []
    for suffix in ("png", "svg"):
        target = Path(path).with_suffix(f".{suffix}")
        with atomic_path(target) as temporary:
            figure.savefig(temporary, format=suffix, dpi=150)
        written.append(target)
    plt.close(figure)
    return written
