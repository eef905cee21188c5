"""fcinvert plan: orientations ranked by the information they add; a new branch beats a repeat."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
from conftest import reference_theta
from small_dataset import run_cli
from test_watch import scans  # noqa: F401 - the module fixture

from fcinvert.analysis.plan import Candidates, Measured, rank_candidates
from fcinvert.inversion.prior import load_prior_ensemble
from fcinvert.physics.dynamics import dynamics_basis
from fcinvert.physics.spectra import render


def test_unmeasured_branch_beats_repeated_pixels(ge) -> None:
    """Measured: the first half of the path. A candidate repeating exactly those pixels gains
    less than one reaching the other half (branches not yet seen) with the same counts."""
    material, fcspace = ge
    theta = reference_theta(material, fcspace)
    basis = dynamics_basis(fcspace, material.path.qpoints)
    image = render(basis.frequencies(theta), material.energy).astype(float) + 0.01
    half = np.zeros(image.shape, bool)
    half[: len(image) // 2] = True
    counts = 30.0 * image / image.mean()  # ~30 counts per pixel on average
    measured = Measured(np.where(half, image, np.nan), np.where(half, counts, 0.0), [0.0])
    share = counts / counts.sum()
    candidates = Candidates(
        np.array([0.0, 90.0]),
        np.array([np.where(half, share, 0.0), np.where(~half, share, 0.0)]),
        np.array([np.where(half, image, np.nan), np.where(~half, image, np.nan)]),
    )
    prior = load_prior_ensemble(material, fcspace).prior
    for objective in ("theta", "band"):
        ranking = rank_candidates(
            candidates, counts.sum(), theta, prior, basis, material, measured, 0.05, objective
        )
        best, other = ranking.rows
        assert best["psi"] == 90.0 and best["new_pixels"] == int((~half).sum())
        assert other["psi"] == 0.0 and other["new_pixels"] == 0 and other["measured"]
        assert best["gain"] > 2 * other["gain"] > 0
        assert best["dispersion_std_meV"] < other["dispersion_std_meV"] < ranking.dispersion_std_now


def test_plan_command_writes_a_ranking(ge, scans, tmp_path: Path, monkeypatch, capsys) -> None:  # noqa: F811
    folder, _ = scans
    incoming = tmp_path / "incoming"
    incoming.mkdir()
    shutil.copy(folder / "scan_000.h5", incoming / "scan_000.h5")  # ψ = 0 measured
    out, figure = tmp_path / "plan.json", tmp_path / "plan.png"
    args = ["plan", str(incoming), "--material", "ge", "--ei", "40", "--candidates", "0,45"]
    code, err = run_cli([*args, "--out", str(out), "--plot", str(figure)], monkeypatch, capsys)
    assert code == 0, err
    content = json.loads(out.read_text())
    ranking = content["ranking"]
    assert [row["psi"] for row in ranking] == [45.0, 0.0]
    assert ranking[0]["gain"] >= ranking[1]["gain"]
    assert ranking[1]["measured"] and ranking[1]["new_pixels"] == 0
    assert ranking[0]["new_pixels"] > 0
    assert content["measured_psi_deg"] == [0.0]
    assert figure.stat().st_size > 0
