"""Cost of one inversion with multi-start refinement (goal: ≤ 5 s in-process on this CPU).

The README's main job, in-process: the physical Ge spectrum of the reference θ (5 K, the zones
an ARCS-like spectrometer reaches), inverted without a model (``infer`` from the ensemble) and
with the shipped Ge model. Timed in the same run, as the reference: one refinement from the
ensemble median (what a single start costs). Prints medians of ``--repeats`` runs, the ratio of
each to the single start and to the 5 s goal, and the forward models each ran.

    .venv/bin/python benchmarks/multistart_latency.py [--repeats 3] [--threads 1]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import time

GOAL_S = 5.0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()
    os.environ["OMP_NUM_THREADS"] = str(args.threads)
    import numpy as np
    import torch

    from fcinvert.data.spectrum_file import Spectrum
    from fcinvert.inversion.pipeline import infer
    from fcinvert.inversion.prior import load_prior_ensemble
    from fcinvert.inversion.refine import refine_spectrum
    from fcinvert.models.bundle import load_bundle
    from fcinvert.physics.dynamics import dynamics_basis
    from fcinvert.physics.fcspace import build_fcspace
    from fcinvert.physics.material import load_material
    from fcinvert.physics.structure_factor import physical_path_spectrum

    torch.set_num_threads(args.threads)
    material = load_material("ge")
    fcspace = build_fcspace(material)
    ensemble = load_prior_ensemble(material, fcspace)
    truth = ensemble.reference
    intensity = physical_path_spectrum(material, fcspace, truth, 5.0)
    spectrum = Spectrum(intensity, material.energy.centres, material.path.qpoints, "ge", 5.0)
    basis = dynamics_basis(fcspace, spectrum.qpoints)
    bundle = load_bundle("ge")

    def timed(function) -> tuple[float, object]:
        samples, result = [], None
        for _ in range(args.repeats):
            start = time.perf_counter()
            result = function()
            samples.append(time.perf_counter() - start)
        return statistics.median(samples), result

    single_s, single = timed(
        lambda: refine_spectrum(
            material, fcspace, spectrum, ensemble.reference, basis=basis, prior=ensemble.prior
        )
    )
    alone_s, alone = timed(lambda: infer(spectrum, material, fcspace))
    with_ml_s, with_ml = timed(lambda: infer(spectrum, material, fcspace, bundle))
    truth_frequencies = basis.frequencies(truth)

    def rms(frequencies: np.ndarray) -> float:
        return round(float(np.sqrt(np.mean((frequencies - truth_frequencies) ** 2))), 4)

    rows = {
        "single refinement from the median (reference)": (single_s, single.n_forward, None),
        "multi-start, no model (--material ge)": (
            alone_s,
            alone.search.n_forward,
            rms(alone.frequencies),
        ),
        "ML + multi-start (--model ge --refine)": (
            with_ml_s,
            with_ml.search.n_forward,
            rms(with_ml.frequencies),
        ),
    }
    print(
        f"{'':48s} {'seconds':>8s} {'× single':>9s} {'× goal':>7s} {'forward':>8s} {'RMS meV':>8s}"
    )
    for name, (seconds, forward, error) in rows.items():
        print(
            f"{name:48s} {seconds:8.2f} {seconds / single_s:9.1f} {seconds / GOAL_S:7.2f} "
            f"{forward:8d} {'' if error is None else error:>8}"
        )
    print(json.dumps({name: round(value[0], 3) for name, value in rows.items()}))


if __name__ == "__main__":
    main()
