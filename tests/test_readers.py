"""Readers: Mantid SaveMD layout (written by hand and by our writer), NXSPE, text tables, and
one-line errors for malformed files."""

from __future__ import annotations

import math
import sys
from pathlib import Path

import h5py
import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from fcinvert.data.readers import (
    Volume,
    dimension_name,
    lattice_from_ub,
    read_measurement,
    read_nxspe,
    read_savemd,
    read_table,
    read_volume,
    write_savemd,
)
from fcinvert.errors import FcinvertError
from fcinvert.physics.instrument import wavevector

A_GE = 5.658


def random_volume(rng: np.random.Generator, shape=(4, 3, 5, 6), projection=None) -> Volume:
    projection = np.eye(3) if projection is None else np.asarray(projection, float)
    signal = rng.random(shape)
    signal[rng.random(shape) < 0.2] = np.nan
    mask = rng.random(shape) < 0.1
    edges = [np.cumsum(np.r_[rng.uniform(-2, 0), rng.uniform(0.05, 0.2, n)]) for n in shape[:3]]
    edges.append(np.linspace(-5.0, 40.0, shape[3] + 1))
    names = [dimension_name(projection[:, i], "HKL"[i]) for i in range(3)] + ["DeltaE"]
    return Volume(
        signal=signal,
        edges=edges,
        projection=projection,
        names=names,
        variance=rng.random(shape),
        mask=mask,
        ub=np.eye(3) / A_GE,
    )


def test_savemd_round_trip_is_exact(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    volume = random_volume(rng, projection=[[1, 1, 0], [1, -1, 0], [0, 0, 1]])
    write_savemd(tmp_path / "v.nxs", volume)
    back = read_savemd(tmp_path / "v.nxs")
    np.testing.assert_array_equal(back.signal, volume.signal)  # NaN in the same places
    np.testing.assert_array_equal(back.variance, volume.variance)
    np.testing.assert_array_equal(back.mask, volume.mask)
    for ours, theirs in zip(back.edges, volume.edges, strict=True):
        np.testing.assert_array_equal(ours, theirs)
    np.testing.assert_allclose(back.projection, volume.projection, atol=1e-12)
    np.testing.assert_array_equal(back.ub, volume.ub)
    assert back.names == ["[H,H,0]", "[K,-K,0]", "[0,0,L]", "DeltaE"]


def test_written_layout_is_mantids(tmp_path: Path) -> None:
    """What LoadMD checks: version 2, reversed axis order, float64 arrays, int8 mask, edges."""
    volume = random_volume(np.random.default_rng(1))
    write_savemd(tmp_path / "v.nxs", volume)
    with h5py.File(tmp_path / "v.nxs", "r") as handle:
        entry = handle["MDHistoWorkspace"]
        assert int(entry.attrs["SaveMDVersion"]) == 2
        data = entry["data"]
        assert data["signal"].shape == (6, 5, 3, 4)
        assert data["signal"].attrs["axes"].decode() == "DeltaE:[0,0,L]:[0,K,0]:[H,0,0]"
        for key in ("signal", "errors_squared", "num_events"):
            assert data[key].dtype == np.float64
        assert data["mask"].dtype == np.int8
        assert data["[H,0,0]"].shape == (5,)
        # D0 varies fastest: signal[e, l, k, h]
        np.testing.assert_array_equal(data["signal"][2, 1, 0, 3], volume.signal[3, 0, 1, 2])
        ub = entry["experiment0/sample/oriented_lattice/orientation_matrix"][()]
        np.testing.assert_array_equal(ub, np.eye(3) / A_GE)


@settings(
    max_examples=15, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    shape=st.tuples(*[st.integers(1, 4)] * 3, st.integers(2, 5)),
    seed=st.integers(0, 2**31),
    swap=st.booleans(),
)
def test_round_trip_any_shape(tmp_path: Path, shape, seed, swap) -> None:
    rng = np.random.default_rng(seed)
    projection = np.eye(3)[[1, 0, 2]] if swap else 0.5 * np.eye(3)
    volume = random_volume(rng, shape, projection)
    path = tmp_path / f"v{seed}.nxs"
    write_savemd(path, volume)
    back = read_savemd(path)
    np.testing.assert_array_equal(back.signal, volume.signal)
    np.testing.assert_allclose(back.projection, projection, atol=1e-12)


def write_by_hand(
    path: Path,
    dims: list[tuple[str, str, str, np.ndarray]],
    signal: np.ndarray,
    ub: np.ndarray | None = None,
) -> None:
    """A SaveMD-layout file written without our writer: dims (id, units, frame, edges) D0..D3."""
    with h5py.File(path, "w") as handle:
        entry = handle.create_group("MDHistoWorkspace")
        entry.attrs["SaveMDVersion"] = np.int32(2)
        data = entry.create_group("data")
        for dim, units, frame, edges in dims:
            dataset = data.create_dataset(dim, data=edges)
            dataset.attrs["units"] = np.bytes_(units)
            dataset.attrs["frame"] = np.bytes_(frame)
            dataset.attrs["long_name"] = np.bytes_(dim)
        stored = data.create_dataset("signal", data=signal)
        stored.attrs["axes"] = np.bytes_(":".join(d[0] for d in dims[::-1]))
        data.create_dataset("errors_squared", data=np.ones_like(signal))
        data.create_dataset("mask", data=np.zeros(signal.shape, np.int8))
        if ub is not None:
            entry.create_dataset("experiment0/sample/oriented_lattice/orientation_matrix", data=ub)


def test_energy_first_and_ids_from_axes(tmp_path: Path) -> None:
    """Energy as D0, Q axes named [0.5H,H,0] etc.: ids come from @axes, E goes last."""
    e, h, k, l_ = (
        np.linspace(0, 10, 3),
        np.linspace(0, 1, 5),
        np.linspace(0, 1, 4),
        np.linspace(-1, 1, 2),
    )
    dims = [
        ("DeltaE", "DeltaE", "General Frame", e),
        ("[0.5H,H,0]", "r.l.u.", "HKL", h),
        ("[-K,0,K]", "r.l.u.", "HKL", k),
        ("[0,0,L]", "r.l.u.", "HKL", l_),
    ]
    signal = np.arange(1 * 3 * 4 * 2, dtype=float).reshape(1, 3, 4, 2)  # (L, K, H, E)
    write_by_hand(tmp_path / "e.nxs", dims, signal)
    volume = read_savemd(tmp_path / "e.nxs")
    assert volume.shape == (4, 3, 1, 2)
    np.testing.assert_allclose(volume.projection, [[0.5, -1, 0], [1, 0, 0], [0, 1, 1]])
    assert volume.signal[3, 2, 0, 1] == signal[0, 2, 3, 1]
    np.testing.assert_array_equal(volume.edges[3], e)


def test_q_sample_axes_use_ub_without_two_pi(tmp_path: Path) -> None:
    edges = [np.linspace(-1, 1, 3)] * 3 + [np.linspace(0, 10, 3)]
    dims = [(f"Q_sample_{x}", "Angstrom^-1", "QSample", edges[i]) for i, x in enumerate("xyz")]
    dims.append(("DeltaE", "DeltaE", "General Frame", edges[3]))
    ub = np.array([[0.1, 0.02, 0], [0, 0.15, 0], [0, 0, 0.2]])
    write_by_hand(tmp_path / "q.nxs", dims, np.ones((2, 2, 2, 2)), ub=ub)
    volume = read_savemd(tmp_path / "q.nxs")
    hkl = np.array([1.0, -2.0, 0.5])
    q_sample = 2 * math.pi * ub @ hkl
    np.testing.assert_allclose(volume.projection @ q_sample, hkl, atol=1e-12)


def test_mdnorm_pair(tmp_path: Path) -> None:
    rng = np.random.default_rng(2)
    volume = random_volume(rng)
    volume.signal = np.nan_to_num(volume.signal)
    volume.mask = None
    volume.normalisation = rng.random(volume.shape) * (rng.random(volume.shape) > 0.3)
    write_savemd(tmp_path / "d.nxs", volume)
    write_savemd(tmp_path / "n.nxs", volume, normalisation=True)
    back = read_volume(tmp_path / "d.nxs", tmp_path / "n.nxs")
    np.testing.assert_array_equal(back.normalisation, volume.normalisation)
    np.testing.assert_array_equal(back.measured, volume.normalisation > 0)


def test_lattice_from_ub() -> None:
    a, b, c, alpha, beta, gamma = lattice_from_ub(np.eye(3) / A_GE)
    assert (a, b, c) == pytest.approx((A_GE,) * 3)
    assert (alpha, beta, gamma) == pytest.approx((90.0,) * 3)


def malformed(tmp_path: Path) -> dict[str, Path]:
    rng = np.random.default_rng(3)
    good = random_volume(rng)
    write_savemd(tmp_path / "good.nxs", good)
    files = {}
    three = tmp_path / "three.nxs"
    dims = [(f"D{i}", "r.l.u.", "HKL", np.linspace(0, 1, 3)) for i in range(3)]
    write_by_hand(three, dims, np.ones((2, 2, 2)))
    files["dimensions"] = three
    missing = tmp_path / "missing.nxs"
    write_savemd(missing, good)
    with h5py.File(missing, "a") as handle:
        del handle["MDHistoWorkspace/data/signal"]
    files["missing signal"] = missing
    no_edges = tmp_path / "edges.nxs"
    write_savemd(no_edges, good)
    with h5py.File(no_edges, "a") as handle:
        del handle["MDHistoWorkspace/data/[0,K,0]"]
    files["missing edges"] = no_edges
    truncated = tmp_path / "truncated.nxs"
    content = (tmp_path / "good.nxs").read_bytes()
    truncated.write_bytes(content[: len(content) // 2])
    files["truncated"] = truncated
    nan = tmp_path / "nan.nxs"
    good.signal[:] = np.nan
    write_savemd(nan, good)
    files["all NaN"] = nan
    text = tmp_path / "plain.nxs"
    text.write_text("not hdf5 at all\n")
    files["not HDF5"] = text
    return files


@pytest.mark.parametrize(
    "case", ["dimensions", "missing signal", "missing edges", "truncated", "all NaN", "not HDF5"]
)
def test_malformed_files_give_one_line(tmp_path: Path, case: str) -> None:
    path = malformed(tmp_path)[case]
    with pytest.raises(FcinvertError) as error:
        read_volume(path)
    message = str(error.value)
    assert "\n" not in message and str(path) in message


def test_cli_malformed_file_exit_code_2(tmp_path: Path, monkeypatch, capsys) -> None:
    from fcinvert.cli import main

    path = malformed(tmp_path)["truncated"]
    arguments = ["fold", str(path), "--material", "ge", "--out", str(tmp_path / "out.h5")]
    monkeypatch.setattr(sys, "argv", ["fcinvert", *arguments])
    with pytest.raises(SystemExit) as stop:
        main()
    assert stop.value.code == 2
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == 1 and "truncated" in lines[0]
    assert not (tmp_path / "out.h5").exists()


def write_nxspe(path: Path, polar, azimuthal, data, energy_edges, ei=40.0, psi=0.0) -> None:
    """NXSPE as Mantid's SaveNXSPE writes it."""
    with h5py.File(path, "w") as handle:
        entry = handle.create_group("ws")
        entry.attrs["NX_class"] = np.bytes_("NXentry")
        entry["definition"] = np.bytes_("NXSPE")
        info = entry.create_group("NXSPE_info")
        info["fixed_energy"] = np.array([ei])
        info["psi"] = np.array([psi])
        info["ki_over_kf_scaling"] = np.array([1], np.int32)
        group = entry.create_group("data")
        group["data"] = data
        group["error"] = np.sqrt(np.abs(np.nan_to_num(data)))
        group["energy"] = energy_edges
        group["polar"] = polar
        group["azimuthal"] = azimuthal
        group["polar_width"] = np.full(len(polar), 0.5)
        group["azimuthal_width"] = np.full(len(polar), 0.5)


def test_nxspe_geometry_by_hand(tmp_path: Path) -> None:
    """Elastic scattering to 2θ in the horizontal plane, u = (1,0,0) along the beam and v = (0,1,0)
    towards +x: Q = ki (−sin 2θ, 0, 1 − cos 2θ) → hkl = a/2π (Q_z, Q_x, Q_y)."""
    two_theta = np.array([30.0, 60.0, 90.0])
    data = np.ones((3, 2))
    data[1] = np.nan  # a masked detector
    write_nxspe(tmp_path / "r.nxspe", two_theta, np.zeros(3), data, np.array([-0.5, 0.5, 1.5]))
    points = read_nxspe(tmp_path / "r.nxspe", A_GE * np.eye(3), [1, 0, 0], [0, 1, 0])
    ki = float(wavevector(40.0))
    rows = np.radians(two_theta)
    expected = (
        A_GE / (2 * math.pi) * ki * np.stack([1 - np.cos(rows), -np.sin(rows), np.zeros(3)], axis=1)
    )
    np.testing.assert_allclose(points.hkl.reshape(3, 2, 3)[:, 0], expected, atol=1e-12)
    assert not np.any(points.measured.reshape(3, 2)[1])
    assert np.all(points.measured.reshape(3, 2)[[0, 2]])


def test_nxspe_needs_orientation(tmp_path: Path) -> None:
    write_nxspe(
        tmp_path / "r.nxspe",
        np.array([30.0]),
        np.zeros(1),
        np.ones((1, 2)),
        np.array([0.0, 1.0, 2.0]),
    )
    with pytest.raises(FcinvertError, match="--u and --v"):
        read_measurement(tmp_path / "r.nxspe", lattice=A_GE * np.eye(3))


def test_text_table(tmp_path: Path) -> None:
    path = tmp_path / "t.csv"
    path.write_text("q_h,q_k,q_l,E,I,err\n1,0,0,5,2.0,0.1\n1.1,0,0,6,nan,0.1\n")
    points = read_table(path)
    np.testing.assert_array_equal(points.hkl, [[1, 0, 0], [1.1, 0, 0]])
    np.testing.assert_array_equal(points.measured, [True, False])
    np.testing.assert_allclose(points.variance, [0.01, 0.01])
    bad = tmp_path / "bad.csv"
    bad.write_text("h,k,E,I\n1,0,5,2\n")
    with pytest.raises(FcinvertError, match="no 'l' column"):
        read_table(bad)
    short = tmp_path / "short.txt"
    short.write_text("# h k l E I\n1 0 0 5\n")
    with pytest.raises(FcinvertError, match="line 2 has 4 fields"):
        read_table(short)
