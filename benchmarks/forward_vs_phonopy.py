"""fcinvert's forward model (frequencies + fast spectra) against phonopy, in one run.

For Ge and Nb: random FC sets near the reference (kept only if stable); phonopy's
``run_band_structure`` per set on the same path q-points (timed on a subset and scaled up) against
fcinvert's batched frequencies + rendering for all sets. Prints the speed-up ratio and the peak
memory of rendering 10 000 Ge spectra in dataset-sized chunks.

    .venv/bin/python benchmarks/forward_vs_phonopy.py [--sets 1000] [--phonopy-sets 100]
"""

from __future__ import annotations

import argparse
import itertools
import time
import tracemalloc

import numpy as np

from fcinvert.physics.dynamics import StabilityCheck, dynamics_basis
from fcinvert.physics.fcspace import build_fcspace, phonopy_for
from fcinvert.physics.material import load_material
from fcinvert.physics.spectra import render


def stable_sets(material, fcspace, n, rng):
    reference = fcspace.reference_theta(material)
    check = StabilityCheck.build(fcspace, material.path.qpoints, divisions=4)
    kept = []
    while sum(len(k) for k in kept) < n:
        theta = reference * rng.uniform(0.85, 1.15, (n, fcspace.n_params))
        kept.append(theta[check.is_stable(theta)])
    return np.concatenate(kept)[:n]


def phonopy_seconds(material, fcspace, thetas):
    phonon = phonopy_for(material)
    path = material.path
    starts = [0, *path.breaks, len(path.qpoints)]
    bands = [path.qpoints[a:b] for a, b in itertools.pairwise(starts)]
    start = time.perf_counter()
    for theta in thetas:
        phonon.force_constants = fcspace.force_constants(theta)
        phonon.run_band_structure(bands)
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sets", type=int, default=1000)
    parser.add_argument("--phonopy-sets", type=int, default=100)
    parser.add_argument("--materials", nargs="+", default=["ge", "nb"])
    args = parser.parse_args()
    rng = np.random.default_rng(0)
    for name in args.materials:
        material = load_material(name)
        fcspace = build_fcspace(material)
        thetas = stable_sets(material, fcspace, args.sets, rng)
        reference = phonopy_seconds(material, fcspace, thetas[: args.phonopy_sets])
        reference *= args.sets / args.phonopy_sets
        start = time.perf_counter()
        basis = dynamics_basis(fcspace, material.path.qpoints)
        setup = time.perf_counter() - start
        render(basis.frequencies(thetas[:2]), material.energy)  # numba compiles on first use
        start = time.perf_counter()
        frequencies = basis.frequencies(thetas)
        solve = time.perf_counter() - start
        start = time.perf_counter()
        render(frequencies, material.energy)
        drawing = time.perf_counter() - start
        ours = solve + drawing
        print(
            f"{name}: {args.sets} sets × {len(material.path.qpoints)} q  phonopy "
            f"{reference:.2f} s (from {args.phonopy_sets} sets)  fcinvert {ours:.3f} s "
            f"(frequencies {solve:.3f} + spectra {drawing:.3f}; one-off setup {setup:.2f} s)  "
            f"ratio {reference / ours:.1f}×  (frequencies alone {reference / solve:.1f}×)"
        )

    material = load_material("ge")
    fcspace = build_fcspace(material)
    basis = dynamics_basis(fcspace, material.path.qpoints)
    thetas = stable_sets(material, fcspace, 1000, rng)
    tracemalloc.start()
    start = time.perf_counter()
    chunks = [render(basis.frequencies(thetas), material.energy) for _ in range(10)]
    seconds = time.perf_counter() - start
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    held = sum(c.nbytes for c in chunks)
    print(
        f"ge: 10 000 spectra in chunks of 1 000: {seconds:.2f} s, peak traced memory "
        f"{peak / 1e9:.2f} GB (of which the 10 000 spectra themselves {held / 1e9:.2f} GB)"
    )


if __name__ == "__main__":
    main()
