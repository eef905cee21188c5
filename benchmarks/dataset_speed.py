"""Stage I dataset generation: wall time and peak memory for Ge spectra to HDF5, in one run.

Every configuration runs in a fresh subprocess (so its peak resident memory is its own):
``fcinvert.data.dataset.generate_dataset`` writing n train spectra (200 × 100 pixels each,
lzf) with local dask workers (threads), after the one-off setup (sensitivity, domain, stability
bases), which is timed separately. Scaling with n at two workers and with the number of
workers at the largest n; each is printed as a ratio to references measured in the same run:
the serial run (no dask) of the same n, and phonopy's ``run_band_structure`` on the same path
for a few of the same θ, extrapolated per set (frequencies only, no spectra, no file).

    .venv/bin/python benchmarks/dataset_speed.py [--n 10000] [--workers 0 1 2]
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

MATERIAL = "ge"


def one(n: int, workers: int, out: Path, phonopy_sets: int) -> dict:
    """Generate one dataset in this process; returns timings (s) and peak RSS (GB)."""
    import h5py
    import numpy as np

    from fcinvert.data.dataset import generate_dataset, prepare_generator
    from fcinvert.physics.fcspace import build_fcspace, phonopy_for
    from fcinvert.physics.material import load_material

    start = time.perf_counter()
    material = load_material(MATERIAL)
    generator = prepare_generator(material, seed=0)
    setup = time.perf_counter() - start
    before = resource.getrusage(resource.RUSAGE_SELF)
    summary = generate_dataset(material, out, n, 0, seed=0, workers=workers, generator=generator)
    after = resource.getrusage(resource.RUSAGE_SELF)
    result = {
        "cpu_s": after.ru_utime + after.ru_stime - before.ru_utime - before.ru_stime,
        "n": n,
        "workers": workers,
        "setup_s": setup,
        "generate_s": summary.wall_s,
        "rejection_rate": summary.rejection_rate,
        "file_MB": out.stat().st_size / 1e6,
        "peak_rss_GB": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1e6,
    }
    if phonopy_sets:
        with h5py.File(out) as handle:
            thetas = np.asarray(handle["train/theta"][:phonopy_sets])
        fcspace = build_fcspace(material)
        phonon = phonopy_for(material)
        path = material.path
        starts = [0, *path.breaks, len(path.qpoints)]
        bands = [path.qpoints[a:b] for a, b in itertools.pairwise(starts)]
        begin = time.perf_counter()
        for theta in thetas:
            phonon.force_constants = fcspace.force_constants(theta)
            phonon.run_band_structure(bands)
        result["phonopy_per_set_s"] = (time.perf_counter() - begin) / len(thetas)
    out.unlink()
    return result


def spawn(n: int, workers: int, folder: Path, phonopy_sets: int = 0) -> dict:
    command = [
        sys.executable,
        __file__,
        "--one",
        str(n),
        str(workers),
        str(phonopy_sets),
        str(folder / f"ds-{n}-{workers}.h5"),
    ]
    environment = {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}
    done = subprocess.run(command, capture_output=True, text=True, env=environment, check=True)
    return json.loads(done.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=10_000, help="largest dataset size")
    parser.add_argument("--workers", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--phonopy-sets", type=int, default=20)
    parser.add_argument("--one", nargs=4, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.one:
        n, workers, phonopy_sets, out = args.one
        print(json.dumps(one(int(n), int(workers), Path(out), int(phonopy_sets))))
        return
    cpus = len(os.sched_getaffinity(0))
    print(f"{MATERIAL}: {cpus} CPU cores, load average {os.getloadavg()[0]:.1f} at start")
    with tempfile.TemporaryDirectory() as folder:
        sizes = sorted({max(args.n // 10, 16), max(args.n // 3, 16), args.n})
        serial = spawn(args.n, 0, Path(folder), args.phonopy_sets)
        phonopy = serial["phonopy_per_set_s"] * args.n
        rows = [serial]
        rows += [spawn(args.n, w, Path(folder)) for w in args.workers if w != 0]
        rows += [spawn(n, 2, Path(folder)) for n in sizes if n != args.n]
        for row in sorted(rows, key=lambda r: (r["n"], r["workers"])):
            per_k = row["generate_s"] / row["n"] * 1000
            print(
                f"n={row['n']:6d} workers={row['workers']}  generate {row['generate_s']:6.2f} s "
                f"({per_k:.2f} s per 1000; CPU {row['cpu_s']:.2f} s)  "
                f"setup {row['setup_s']:.2f} s  peak RSS {row['peak_rss_GB']:.2f} GB  "
                f"file {row['file_MB']:.0f} MB  rejected {row['rejection_rate']:.1%}"
            )
        best = min((r for r in rows if r["n"] == args.n), key=lambda r: r["generate_s"])
        print(
            f"n={args.n}: best {best['generate_s']:.2f} s with {best['workers']} worker(s) = "
            f"{serial['generate_s'] / best['generate_s']:.2f}× the serial run "
            f"({serial['generate_s']:.2f} s); phonopy frequencies alone "
            f"({args.phonopy_sets} sets, extrapolated) {phonopy:.0f} s = "
            f"{phonopy / best['generate_s']:.0f}× slower than this whole dataset"
        )
    print(f"load average {os.getloadavg()[0]:.1f} at the end (other processes share the cores)")


if __name__ == "__main__":
    main()
