"""Latency of one inversion with 100 latent samples (goal: ≤ 20 ms in-process on this CPU).

Uses the shipped Ge VAE when there is one, else an untrained bundle of the same architecture
on the Ge grid (latency does not depend on the weights). Timed in one run, medians of
``--repeats``: (1) predict: input rule, encoder, 100 latent samples through the regressor;
(2) resample + predict, from a spectrum on a finer grid than the model's (2 × q, 2 × E);
(3) ``invert_spectrum``: (2) plus the dispersion of the result at the input's q-points;
(4) the command line: ``fcinvert --help`` start-up, and ``fcinvert invert`` end to end
(JSON + phonopy files), each a fresh process. Printed as ratios to the 20 ms goal.

    .venv/bin/python benchmarks/invert_latency.py [--repeats 50] [--threads 1]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from evaluate_time import untrained_bundle  # a sibling script: benchmarks/ is on sys.path

GOAL_S = 0.020


def timed(function, repeats: int) -> float:
    """Median wall time (s) of ``function()`` over ``repeats`` calls after one warm-up."""
    function()
    samples = []
    for _ in range(repeats):
        start = time.perf_counter()
        function()
        samples.append(time.perf_counter() - start)
    return statistics.median(samples)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=50)
    parser.add_argument("--samples", type=int, default=100)
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()
    os.environ["OMP_NUM_THREADS"] = str(args.threads)
    import numpy as np
    import torch

    from fcinvert.data.spectrum_file import Spectrum, write_spectrum
    from fcinvert.errors import FcinvertError
    from fcinvert.inversion.invert import invert_spectrum, model_material
    from fcinvert.inversion.resample import resample
    from fcinvert.models.bundle import find_bundle, load_bundle
    from fcinvert.physics.dynamics import dynamics_basis
    from fcinvert.physics.material import EnergyGrid
    from fcinvert.physics.reciprocal import reciprocal_basis
    from fcinvert.physics.spectra import render

    torch.set_num_threads(args.threads)
    scratch = Path(tempfile.mkdtemp(prefix="fcinvert-latency-"))
    try:
        folder, which = find_bundle("ge"), "shipped Ge VAE"
    except FcinvertError:
        folder, which = untrained_bundle("vae", scratch / "bundle"), "untrained Ge-grid VAE"
    bundle = load_bundle(folder)
    material, fcspace = context = model_material(bundle)
    theta = np.array(bundle.config.reference)

    # the model grid, and a finer one (q halfway points added, E bins halved)
    qpoints = bundle.qpoints
    fine_q = np.empty((2 * len(qpoints) - 1, 3))
    fine_q[0::2], fine_q[1::2] = qpoints, 0.5 * (qpoints[1:] + qpoints[:-1])
    grid = bundle.energy
    n_fine = 2 * len(grid.centres)
    low = grid.centres[0] - 0.5 * grid.width
    fine_grid = EnergyGrid(
        low + 0.5 * grid.width * (np.arange(n_fine) + 0.5),
        0.5 * grid.width,
        grid.fwhm0,
        grid.slope,
    )
    on_grid = render(dynamics_basis(fcspace, qpoints).frequencies(theta), grid)
    fine = render(dynamics_basis(fcspace, fine_q).frequencies(theta), fine_grid)
    spectrum = Spectrum(fine, fine_grid.centres, fine_q, "ge")
    reciprocal = reciprocal_basis(material.atoms.cell[:])

    def resample_and_predict() -> None:
        image, _ = resample(fine, fine_q, fine_grid.centres, qpoints, grid, reciprocal)
        bundle.predict(image[None], n_samples=args.samples)

    results = {
        "model": which,
        "threads": args.threads,
        "latent_samples": args.samples,
        "predict_ms": timed(lambda: bundle.predict(on_grid[None], args.samples), args.repeats),
        "resample_predict_ms": timed(resample_and_predict, args.repeats),
        "invert_spectrum_ms": timed(
            lambda: invert_spectrum(spectrum, bundle, args.samples, context=context),
            max(3, args.repeats // 10),
        ),
    }
    for key in ("predict_ms", "resample_predict_ms", "invert_spectrum_ms"):
        results[key] = round(1e3 * results[key], 2)

    write_spectrum(scratch / "spectrum.h5", spectrum)
    env = {**os.environ, "OMP_NUM_THREADS": str(args.threads)}
    command = [sys.executable, "-c", "from fcinvert.cli import main; main()"]
    start = time.perf_counter()
    subprocess.run([*command, "--help"], env=env, check=True, capture_output=True)
    results["cli_help_s"] = round(time.perf_counter() - start, 2)
    start = time.perf_counter()
    invert = [
        "invert",
        str(scratch / "spectrum.h5"),
        "--model",
        str(folder),
        "--out",
        str(scratch / "result.json"),
    ]
    subprocess.run([*command, *invert], env=env, check=True, capture_output=True)
    results["cli_invert_s"] = round(time.perf_counter() - start, 2)

    for key in ("predict_ms", "resample_predict_ms", "invert_spectrum_ms"):
        print(f"{key:22s} {results[key]:9.2f} ms  = {results[key] / 1e3 / GOAL_S:6.2f} × the goal")
    print(f"{'cli --help':22s} {results['cli_help_s']:9.2f} s")
    print(f"{'cli invert':22s} {results['cli_invert_s']:9.2f} s")
    print(json.dumps(results))


if __name__ == "__main__":
    main()
