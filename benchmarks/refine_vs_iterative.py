"""Physics refinement against the paper's traditional iterative optimisation, in one run.

For Ge and Nb on the material's full path and energy grid (~20 000 pixels): a measured-like
spectrum of a truth θ (the reference with its six largest parameters moved by 10–20 %, the
others by up to ±50 %): the coherent one-phonon S(Q, E) (eigenvectors, Debye–Waller, Bose at
5 K) folded over the Laue orbits of three zones, Poisson counts on a constant background, 20 %
of the pixels missing. Three fits of all free parameters, same objective (free branch
intensities, coarse-to-fine continuation):

- refine: analytic (Hellmann–Feynman) Jacobian from a stand-in for the ML estimate (the truth
  with those six parameters moved again by ±8 %, the others at the reference);
- refine from the reference: the analytic Jacobian from the iterative baseline's start, to
  separate the start's share of the saving from the Jacobian's;
- iterative: the paper's traditional optimisation, finite-difference Jacobian from the
  force-field reference (``iterative_baseline``).

Prints forward evaluations (eigen-solves), seconds, misfit (residual variance, counts²) and the
dispersion RMS against the truth (meV) for each, and the ratios iterative / refine.
Single-threaded (OMP/MKL threads 1), as the goal (≤ 2 s per spectrum) is set for one core.

    .venv/bin/python benchmarks/refine_vs_iterative.py [--materials ge nb] [--peak 1000]
"""

from __future__ import annotations

import os

for variable in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS"):
    os.environ.setdefault(variable, "1")

import argparse  # noqa: E402

import numpy as np  # noqa: E402

from fcinvert.inversion.refine import iterative_baseline, refine  # noqa: E402
from fcinvert.physics.dynamics import StabilityCheck, dynamics_basis  # noqa: E402
from fcinvert.physics.fcspace import build_fcspace  # noqa: E402
from fcinvert.physics.material import load_material  # noqa: E402
from fcinvert.physics.structure_factor import (  # noqa: E402
    StructureFactorModel,
    folded_spectrum,
    gamma_mesh,
    zone_orbits,
    zones_from_hkl,
)

ZONES_HKL = {"ge": [[2, 2, 0], [1, 1, 1], [3, 1, 1]], "nb": [[1, 1, 0], [2, 0, 0], [2, 1, 1]]}
TOP = 6


def scenario(material, fcspace, basis, peak: float, rng: np.random.Generator):
    """Truth, ML stand-in start and Poisson counts (nq, nE) with NaN for missing pixels."""
    reference = fcspace.reference_theta(material)
    top = np.argsort(-np.abs(reference))[:TOP]
    rest = np.setdiff1d(np.arange(len(reference)), top)
    check = StabilityCheck.build(fcspace, material.path.qpoints, divisions=4)
    while True:
        truth = reference.copy()
        truth[top] *= 1 + rng.choice([-1, 1], TOP) * rng.uniform(0.10, 0.20, TOP)
        truth[rest] *= 1 + rng.uniform(-0.5, 0.5, len(rest))
        start = truth.copy()
        start[top] *= 1 + rng.choice([-0.08, 0.08], TOP)
        start[rest] = reference[rest]
        if check.is_stable(np.stack([truth, start])).all():
            break
    structure = StructureFactorModel(material, basis, dynamics_basis(fcspace, gamma_mesh(6)))
    zones, weights = zone_orbits(
        material, zones_from_hkl(material, np.array(ZONES_HKL[material.name]))
    )
    clean = folded_spectrum(structure, truth, 5.0, zones, weights)
    counts = rng.poisson(clean / clean.max() * peak + 3.0).astype(float)
    counts[rng.random(counts.shape) < 0.2] = np.nan
    return reference, truth, start, counts


def dispersion_rms(basis, theta: np.ndarray, truth: np.ndarray) -> float:
    """RMS (meV) of ħω(θ) − ħω(truth) over every q-point and branch of ``basis``."""
    difference = basis.frequencies(theta) - basis.frequencies(truth)
    return float(np.sqrt(np.mean(difference**2)))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--materials", nargs="+", default=["ge", "nb"])
    parser.add_argument("--peak", type=float, default=1000.0, help="counts at the brightest pixel")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    rng = np.random.default_rng(args.seed)
    header = f"{'fit':<28}{'start RMS':>10}{'forward':>9}{'seconds':>9}{'misfit':>9}{'RMS':>8}"
    for name in args.materials:
        material = load_material(name)
        fcspace = build_fcspace(material)
        qpoints = material.path.qpoints
        basis = dynamics_basis(fcspace, qpoints)
        reference, truth, start, counts = scenario(material, fcspace, basis, args.peak, rng)
        fits = {
            "refine (ML stand-in start)": refine(
                material, fcspace, counts, qpoints, start, basis=basis
            ),
            "refine (reference start)": refine(
                material, fcspace, counts, qpoints, reference, basis=basis
            ),
            "iterative (reference, FD)": iterative_baseline(
                material, fcspace, counts, qpoints, basis=basis
            ),
        }
        starts = [start, reference, reference]
        print(
            f"\n{name}: {fcspace.n_params} parameters, {counts.shape[0]} q × {counts.shape[1]} E, "
            f"{int(np.isfinite(counts).sum())} measured pixels, peak {args.peak:g} counts"
        )
        print(header)
        for (label, fit), theta0 in zip(fits.items(), starts, strict=True):
            before, after = (dispersion_rms(basis, t, truth) for t in (theta0, fit.theta))
            print(
                f"{label:<28}{before:>10.3f}{fit.n_forward:>9d}{fit.seconds:>9.2f}"
                f"{fit.misfit:>9.3f}{after:>8.3f}"
            )
        ours, same_start, baseline = fits.values()
        print(
            f"ratio iterative / refine: {baseline.n_forward / ours.n_forward:.1f}× forward "
            f"evaluations, {baseline.seconds / ours.seconds:.1f}× seconds "
            f"(same start: {baseline.n_forward / same_start.n_forward:.1f}× forward, "
            f"{baseline.seconds / same_start.seconds:.1f}× seconds); refine took "
            f"{ours.seconds:.2f} s"
        )


if __name__ == "__main__":
    main()
