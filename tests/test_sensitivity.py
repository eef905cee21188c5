"""Sensitivity: autograd Jacobian against Hellmann–Feynman, the linearised variance against
Monte Carlo, ensemble spreads, ranking and the figure."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest
from conftest import reference_theta

from fcinvert.errors import FcinvertError
from fcinvert.labels.domain import load_ensemble
from fcinvert.labels.sensitivity import (
    MODE_FLOOR,
    compute_sensitivity,
    jacobian,
    plot_sensitivity,
)
from fcinvert.physics.dynamics import FREQUENCY_TO_MEV, dynamics_basis
from fcinvert.physics.fcspace import build_fcspace
from fcinvert.physics.material import BUNDLED, load_material

HALF_WIDTH = 0.02


def material_copy(tmp_path, name="ge", ensemble=None):
    """The bundled material in a folder of its own, with ``ensemble`` as ensemble.json."""
    folder = tmp_path / name
    folder.mkdir(parents=True)
    for file in ("POSCAR", "material.json", "reference.json"):
        shutil.copy(BUNDLED / name / file, folder / file)
    if ensemble is not None:
        (folder / "ensemble.json").write_text(json.dumps(ensemble))
    return load_material(folder)


@pytest.fixture(scope="module")
def single(tmp_path_factory):
    """Ge with its reference as the only member, ±2 % around it (small enough for the
    dispersion to be linear in θ): (material, FC space, sensitivity)."""
    material = material_copy(tmp_path_factory.mktemp("single"))
    fcspace = build_fcspace(material)
    return material, fcspace, compute_sensitivity(material, fcspace, half_width=HALF_WIDTH)


def test_autograd_jacobian_is_hellmann_feynman(ge):
    """dω²/dθ_k = e† D_k e for every non-degenerate mode (Hellmann–Feynman)."""
    material, fcspace = ge
    rng = np.random.default_rng(3)
    theta = reference_theta(material, fcspace)
    theta = theta * (1 + 0.05 * rng.standard_normal(theta.shape))
    qpoints = material.path.qpoints[::7]
    basis = dynamics_basis(fcspace, qpoints)
    omega, vectors = basis.modes(theta)  # (nq, nb), (nq, nb, nb) columns
    exact = np.einsum("qaj,pqab,qbj->qjp", vectors.conj(), basis.matrices, vectors).real
    ours = jacobian(basis.torch(), theta[None])[0]  # (nq, nb, P) meV per eV/Å²
    gaps = np.diff(omega, axis=1)
    isolated = np.ones_like(omega, dtype=bool)
    isolated[:, 1:] &= gaps > 1e-3
    isolated[:, :-1] &= gaps > 1e-3
    isolated &= omega > MODE_FLOOR
    assert isolated.sum() > 100
    # ω = F √λ, so dω²/dθ = 2ω dω/dθ = F² dλ/dθ
    from_autograd = 2.0 * omega[..., None] * ours / FREQUENCY_TO_MEV**2
    scale = np.abs(exact[isolated]).max()
    assert np.abs(from_autograd[isolated] - exact[isolated]).max() < 1e-9 * scale


def test_linearised_variance_matches_monte_carlo(single):
    """V_k = s_k² ⟨J²⟩ is the dispersion variance when θ_k alone is drawn with spread s_k."""
    material, fcspace, result = single
    theta = reference_theta(material, fcspace)
    basis = dynamics_basis(fcspace, material.path.qpoints)
    rng = np.random.default_rng(0)
    for k in result.order[:3]:
        draws = np.tile(theta, (4000, 1))
        half = np.sqrt(3.0) * result.spread[k]  # uniform with standard deviation s_k
        draws[:, k] += rng.uniform(-half, half, len(draws))
        omega = basis.frequencies(draws)
        moving = np.abs(basis.frequencies(theta)) >= MODE_FLOOR
        variance = omega.var(axis=0)[moving].sum() / omega[0].size
        assert variance == pytest.approx(result.variance[k], rel=0.08)


def test_single_member_uses_the_stated_default_spread(single):
    material, fcspace, result = single
    theta = reference_theta(material, fcspace)
    scale = np.maximum(np.abs(theta), 0.1 * np.abs(theta).max())
    assert np.allclose(result.spread, 2 * HALF_WIDTH * scale / np.sqrt(12))
    assert len(result.members) == 1
    assert result.share.sum() == pytest.approx(1.0)
    assert np.all(np.diff(result.cumulative) >= 0) and result.cumulative[-1] == pytest.approx(1)
    assert np.allclose(result.variance, result.spread**2 * result.jacobian_rms**2)
    top = result.select(8)
    assert len(set(top)) == 8
    assert result.variance[top].min() >= np.delete(result.variance, top).max()
    with pytest.raises(FcinvertError):
        result.select(0)


def test_ensemble_spread_and_members(tmp_path):
    """The spread is the domain's: 2.75 × the ensemble range / √12; unstable members and
    members without θ are left out; both file shapes are read."""
    base = build_fcspace(load_material("ge"))
    reference = load_material("ge").reference
    stiff = {name: 1.2 * value for name, value in reference.items()}
    members = {
        "a": {"status": "stable", "parameters": reference},
        "b": {"status": "stable", "parameters": stiff},
        "c": {"status": "unstable", "parameters": {n: 9.0 for n in reference}},
        "d": {"status": "failed", "parameters": None},
    }
    material = material_copy(tmp_path, ensemble={"members": members})
    names, theta = load_ensemble(material, base)
    assert names == ["a", "b"]
    result = compute_sensitivity(material, base)
    span = np.abs(theta[1] - theta[0])
    moving = span > 1e-9 * np.abs(theta).max()
    assert np.allclose(result.spread[moving], 2.75 * span[moving] / np.sqrt(12))
    as_list = [{"name": "x", "parameters": reference}, {"name": "y", "parameters": stiff}]
    listed = material_copy(tmp_path / "list", ensemble={"members": as_list})
    assert load_ensemble(listed, base)[0] == ["x", "y"]
    broken = material_copy(tmp_path / "broken", ensemble={"members": [{"name": "z"}, 3]})
    with pytest.raises(FcinvertError, match="ensemble"):
        load_ensemble(broken, base)


def test_figure_is_written_as_png_and_svg(single, tmp_path):
    result = single[2]
    written = plot_sensitivity(result, tmp_path / "sens.png", k=5)
    assert [p.suffix for p in written] == [".png", ".svg"]
    assert written[0].read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert b"<svg" in written[1].read_bytes()[:2000]
