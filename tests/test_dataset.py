"""Domain arithmetic, the stable sampler, dataset files (determinism, round trip, damage) and
the torch Datasets."""

from __future__ import annotations

import h5py
import numpy as np
import pytest
import torch
from conftest import reference_theta
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from fcinvert.data import lzf
from fcinvert.data.dataset import SpectrumGenerator, generate_dataset, read_dataset
from fcinvert.data.torch_datasets import HDF5Spectra, RenderedSpectra
from fcinvert.errors import FcinvertError
from fcinvert.labels.domain import (
    Domain,
    StableSampler,
    build_domain,
    irreducible_mesh,
    no_mode_below,
    stability_check,
)
from fcinvert.physics.dynamics import UNSTABLE_BELOW, StabilityCheck, dynamics_basis
from fcinvert.physics.spectra import render

NAMES = ["a", "b", "c", "d"]


def test_domain_arithmetic_is_exact():
    ensemble = np.array([[1.0, -4.0, 2.0, 0.0], [2.0, -2.0, 2.0, 0.0], [4.0, -1.0, 2.0, 0.0]])
    reference = np.array([2.0, -2.0, 2.0, 0.0])
    domain = build_domain("x", NAMES, ensemble, reference, np.array([0, 1, 2, 3]), toward="value")
    # range 3: [1 − 0.25·3, 4 + 1.5·3] and [−4 − 0.75, −1 + 4.5]
    assert domain.low[:2].tolist() == [0.25, -4.75] and domain.high[:2].tolist() == [8.5, 3.5]
    # no range: ± 0.1 × 2 around 2; ± 0.1 × (0.1 × max |reference| = 0.2) around 0
    assert domain.low[2:] == pytest.approx([1.8, -0.02], abs=1e-15)
    assert domain.high[2:] == pytest.approx([2.2, 0.02], abs=1e-15)
    assert domain.info["degenerate"] == ["c", "d"]
    magnitude = build_domain("x", NAMES, ensemble, reference, np.array([0, 1]))  # the default
    assert magnitude.low.tolist() == [0.25, -8.5] and magnitude.high.tolist() == [8.5, -0.25]
    custom = build_domain("x", NAMES, ensemble, reference, np.array([0]), 0.5, 0.5)
    assert custom.low.tolist() == [-0.5] and custom.high.tolist() == [5.5]
    with pytest.raises(FcinvertError):
        build_domain("x", NAMES, ensemble, reference, np.array([0]), -0.1)


@settings(max_examples=40, deadline=None)
@given(
    hnp.arrays(np.float64, (5, 3), elements=st.floats(-5, 5)),
    st.floats(0, 2),
    st.floats(0, 2),
)
def test_domain_contains_the_ensemble_and_has_the_stated_width(ensemble, below, above):
    domain = build_domain(
        "x", NAMES[:3], ensemble, ensemble[0], np.arange(3), below, above, toward="value"
    )
    smallest, largest = ensemble.min(axis=0), ensemble.max(axis=0)
    span = largest - smallest
    moving = span > 1e-9 * max(np.abs(ensemble).max(), 1.0)
    assert np.all(domain.low <= smallest) and np.all(domain.high >= largest)
    assert np.allclose((smallest - domain.low)[moving], below * span[moving])
    assert np.allclose((domain.high - largest)[moving], above * span[moving])
    samples = domain.sample(np.random.default_rng(0), 200)
    assert np.all(samples >= domain.low) and np.all(samples <= domain.high)


def test_domain_json_round_trip(tmp_path):
    ensemble = np.array([[1.0, 2.0, 3.0, 4.0], [2.0, 2.5, 3.0, 5.0]])
    domain = build_domain("x", NAMES, ensemble, ensemble[0], np.array([3, 0]))
    domain.save(tmp_path / "domain.json")
    again = Domain.load(tmp_path / "domain.json")
    assert again.names == NAMES and again.selected.tolist() == [3, 0]
    for field in ("reference", "low", "high"):
        assert np.array_equal(getattr(again, field), getattr(domain, field))
    assert again.info == domain.info
    (tmp_path / "bad.json").write_text('{"format": "fcinvert-domain", "names": []}')
    with pytest.raises(FcinvertError, match=r"bad\.json"):
        Domain.load(tmp_path / "bad.json")


@pytest.fixture(scope="module")
def generator(ge) -> SpectrumGenerator:
    """Ge with four nearest and next-nearest neighbour parameters drawn within ±40 %: wide
    enough that some draws (about 7 %) are unstable."""
    material, fcspace = ge
    theta = reference_theta(material, fcspace)
    selected = np.array([0, 1, 2, 3])
    ensemble = np.array([theta * 0.6, theta * 1.4])
    domain = build_domain("ge", fcspace.names, ensemble, theta, selected, 0.0, 0.0)
    return SpectrumGenerator(
        StableSampler(domain, stability_check(material, fcspace)), material.energy, seed=11
    )


def test_irreducible_mesh_gives_the_full_mesh_answer(ge, generator):
    material, fcspace = ge
    full = StabilityCheck.build(fcspace, material.path.qpoints)
    assert len(irreducible_mesh(material)) < len(full.mesh.qpoints) / 8
    theta = generator.sampler.domain.sample(np.random.default_rng(2), 64)
    assert np.allclose(generator.sampler.check.lowest(theta), full.lowest(theta), atol=1e-9)


def test_cholesky_test_is_the_frequency_test(ge, generator):
    """no_mode_below decides exactly as the lowest frequency does, on path and mesh."""
    fcspace = ge[1]
    wide = build_domain(
        "ge",
        fcspace.names,
        np.array([generator.sampler.domain.reference]),
        generator.sampler.domain.reference,
        np.arange(6),
        half_width=0.8,
    )
    theta = wide.sample(np.random.default_rng(4), 300)
    for basis in (generator.sampler.check.path, generator.sampler.check.mesh):
        off_gamma = np.any(np.abs(basis.qpoints) > 1e-9, axis=1)
        lowest = basis.frequencies(theta)[:, off_gamma].min(axis=(1, 2))
        decided = no_mode_below(basis, theta)
        assert 30 < decided.sum() < 270  # both outcomes occur
        assert np.array_equal(decided, lowest > UNSTABLE_BELOW)


def test_sampler_keeps_the_first_stable_draws_and_counts_the_rest(ge, generator):
    material, fcspace = ge
    sampler = generator.sampler
    draw = sampler.draw(60, np.random.default_rng(5), batch=16)
    assert sampler.draw(60, np.random.default_rng(5), batch=500).theta.tolist() == (
        draw.theta.tolist()
    )
    # independent recount over the same stream with the full (unreduced) stability check
    stream = sampler.domain.sample(np.random.default_rng(5), draw.drawn + 200)
    stable = StabilityCheck.build(fcspace, material.path.qpoints).is_stable(stream)
    positions = np.flatnonzero(stable)[:60]
    assert np.array_equal(draw.theta, stream[positions])
    assert draw.drawn == positions[-1] + 1 and draw.rejected == draw.drawn - 60 > 0
    held = np.setdiff1d(np.arange(len(fcspace.names)), sampler.domain.selected)
    assert np.all(draw.theta[:, held] == sampler.domain.reference[held])
    omega = dynamics_basis(fcspace, material.path.qpoints).frequencies(draw.theta)
    assert np.allclose(draw.frequencies, omega, atol=1e-5)  # √ of round-off at Γ: ~1e-6


@pytest.fixture(scope="module")
def files(generator, ge, tmp_path_factory):
    """The same dataset written serially, by two local dask workers, and through a running
    scheduler's address (TCP: the generator and the chunks travel serialised)."""
    from distributed import LocalCluster

    folder = tmp_path_factory.mktemp("datasets")
    material, _ = ge
    options = {"seed": 11, "chunk_size": 16, "generator": generator}
    written = {
        workers: generate_dataset(
            material, folder / f"w{workers}.h5", 40, 20, workers=workers, **options
        )
        for workers in (0, 2)
    }
    with LocalCluster(n_workers=1, processes=False, dashboard_address=None) as cluster:
        written["tcp"] = generate_dataset(
            material, folder / "tcp.h5", 40, 20, scheduler=cluster.scheduler_address, **options
        )
    return written


def test_same_seed_same_file_whatever_the_workers(files):
    serial = files[0]
    assert files[2].workers == 2 and files["tcp"].workers == 1
    for other in (files[2], files["tcp"]):
        with h5py.File(serial.path) as one, h5py.File(other.path) as two:
            for split in ("train", "test"):
                for name in ("theta", "spectra"):
                    assert np.array_equal(one[split][name][()], two[split][name][()])
            assert one.attrs["n_rejected"] == two.attrs["n_rejected"] == serial.rejected > 0


def test_dataset_round_trip(files, generator, ge):
    material, fcspace = ge
    summary = files[0]
    stored = read_dataset(summary.path)
    assert stored.sizes == {"train": 40, "test": 20}
    assert stored.parameter_names == fcspace.names
    assert stored.selected.tolist() == [0, 1, 2, 3]
    assert np.array_equal(stored.low, generator.sampler.domain.low)
    assert np.array_equal(stored.qpoints, material.path.qpoints)
    assert np.array_equal(stored.energy.centres, material.energy.centres)
    assert stored.n_rejected == summary.rejected
    assert stored.rejection_rate == pytest.approx(summary.rejected / summary.drawn)
    theta, spectra = stored.theta("train"), stored.spectra("train")
    assert spectra.dtype == np.float32 and spectra.shape == (40, 200, 100)
    # chunk 1 of train is rows 16..31: its stream regenerated gives the same numbers
    again, images, _ = generator.spectra("train", 1, 16)
    assert np.array_equal(theta[16:32], again) and np.array_equal(spectra[16:32], images)
    # and the spectra are the physics: independent eigen-solve and render
    omega = dynamics_basis(fcspace, material.path.qpoints).frequencies(theta)
    assert np.allclose(spectra, render(omega, material.energy), atol=1e-5)
    assert StabilityCheck.build(fcspace, material.path.qpoints).is_stable(theta).all()
    with h5py.File(summary.path) as handle:
        assert handle.attrs["format"] == "fcinvert-dataset" and handle.attrs["version"] == 1
        assert handle["train/spectra"].compression == "lzf"
        assert handle["train/spectra"].chunks[0] == 16


def test_damaged_or_foreign_files_give_one_line_errors(files, tmp_path):
    data = files[0].path.read_bytes()
    (tmp_path / "cut.h5").write_bytes(data[: len(data) // 2])
    (tmp_path / "text.h5").write_text("not hdf5\n")
    with h5py.File(tmp_path / "foreign.h5", "w") as handle:
        handle["x"] = np.arange(3)
    with h5py.File(tmp_path / "empty_layout.h5", "w") as handle:
        handle.attrs.update(format="fcinvert-dataset", version=1)
    with h5py.File(files[0].path) as source, h5py.File(tmp_path / "holes.h5", "w") as handle:
        for name in source:
            source.copy(name, handle)
        handle.attrs.update(source.attrs)
        del handle["train/spectra"]
        handle["train"].create_dataset(
            "spectra",
            shape=(40, 200, 100),
            dtype=np.float32,
            chunks=(16, 200, 100),
            compression="lzf",
        )
    for name, fragment in (
        ("cut.h5", "not a readable HDF5"),
        ("text.h5", "not a readable HDF5"),
        ("foreign.h5", "not an fcinvert dataset"),
        ("empty_layout.h5", "damaged or incomplete"),
        ("holes.h5", "holds 0 of 3 chunks"),
        ("missing.h5", "no such dataset file"),
    ):
        with pytest.raises(FcinvertError, match=fragment) as error:
            read_dataset(tmp_path / name)
        assert "\n" not in str(error.value)


@settings(max_examples=40, deadline=None)
@given(
    hnp.arrays(
        np.float32,
        st.integers(1, 3000),
        elements=st.sampled_from([0.0, 0.0, 0.0, 1.5, -2.25, 3.1e-7, np.float32(1e30)]),
    )
)
def test_zero_run_lzf_stream_decodes_with_the_standard_filter(tmp_path_factory, values):
    path = tmp_path_factory.mktemp("lzf") / "x.h5"
    with h5py.File(path, "w") as handle:
        target = handle.create_dataset(
            "v", shape=values.shape, dtype=np.float32, chunks=values.shape, compression="lzf"
        )
        packed = lzf.compress(values)
        if packed is None:
            target.id.write_direct_chunk((0,), values.tobytes(), filter_mask=1)
        else:
            target.id.write_direct_chunk((0,), packed)
    with h5py.File(path) as handle:
        assert np.array_equal(handle["v"][()].view(np.uint32), values.view(np.uint32))


def test_torch_datasets(files, generator):
    path = files[0].path
    stored = read_dataset(path)
    train = HDF5Spectra(path, "train")
    assert len(train) == 40
    spectrum, target = train[7]
    assert spectrum.dtype == torch.float32 and spectrum.shape == (200, 100)
    assert np.array_equal(spectrum.numpy(), stored.spectra("train", slice(7, 8))[0])
    assert np.array_equal(target.numpy(), stored.theta("train")[7, :4].astype(np.float32))
    loader = torch.utils.data.DataLoader(
        train, batch_size=8, shuffle=True, generator=torch.Generator().manual_seed(0)
    )
    batch, targets = next(iter(loader))
    assert batch.shape == (8, 200, 100) and targets.shape == (8, 4)
    rows = [int(np.flatnonzero((train.targets == t).all(1))[0]) for t in targets]
    assert np.array_equal(batch.numpy(), stored.spectra("train")[rows])
    train.close()

    rendered = RenderedSpectra(generator, length=30)
    together = rendered.__getitems__([3, 4, 5])
    alone = rendered[4]
    assert torch.equal(together[1][1], alone[1])
    assert np.allclose(together[1][0].numpy(), alone[0].numpy(), atol=1e-6)
    theta, _ = rendered.theta([3, 4, 5])
    sampler = generator.sampler
    assert sampler.check.is_stable(theta).all()
    assert np.all(theta[:, sampler.domain.selected] >= sampler.domain.low)


def test_command_line_sensitivity_and_dataset(ge, tmp_path, monkeypatch, capsys):
    """Both commands end to end (in this process) on the bundled Ge, its committed ensemble
    and reference; a bad argument is one line on stderr and exit code 2."""
    from fcinvert.cli import main

    def run(*args):
        monkeypatch.setattr("sys.argv", ["fcinvert", *args])
        try:
            main()
            code = 0
        except SystemExit as stop:
            code = stop.code
        return code, *capsys.readouterr()

    code, out, err = run("sensitivity", "ge", "--k", "6")
    assert code == 0, err
    assert "K = 6" in out and "shell1_(0.25,0.25,0.25)_xx" in out
    target = tmp_path / "ge.h5"
    code, out, err = run(
        "dataset", "ge", "--n", "24", "--test", "8", "--out", str(target), "--workers", "0"
    )
    assert code == 0, err
    stored = read_dataset(target)
    assert stored.sizes == {"train": 24, "test": 8} and len(stored.selected) == 8
    assert "rejected as unstable" in out
    code, out, err = run("dataset", "ge", "--n", "0", "--out", str(tmp_path / "none.h5"))
    assert code == 2 and len(err.strip().splitlines()) == 1
    assert not (tmp_path / "none.h5").exists()
