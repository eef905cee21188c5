"""Wall time of the whole evaluation for one material and both models, at paper scale, in one run.

Goal: ``fcinvert evaluate`` for Ge with a VAE and a ResNet-18 (default, paper-sized
architectures), 1 500 test spectra of 200 × 100 pixels, the 25 noise settings and UMAP, in under
30 minutes on this CPU. Uses the shipped Ge models when both exist, else untrained bundles of
the same architectures on the Ge grid (the time does not depend on the weights). The test
spectra are rendered by the fast model from θ drawn ±20 % around the Ge reference for the first
eight parameters. Prints the wall and process CPU time of each part (load, clean predictions,
noise grid, latent space, figures) and which dominates (on a shared machine the CPU time, with
one thread, is what an idle core would take); with ``--test N`` below 1 500 it also projects
the paper scale (the clean predictions and the noise grid grow linearly with N, the rest is
taken as measured).

    .venv/bin/python benchmarks/evaluate_time.py [--test 1500] [--samples 50] [--threads 2]
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from pathlib import Path

GOAL_S = 30 * 60
PAPER_TEST = 1_500


def write_test_set(path: Path, n_test: int, seed: int = 0) -> Path:
    """A Ge dataset file with ``n_test`` test spectra on the material's grid (and one train)."""
    import h5py
    import numpy as np

    from fcinvert.physics.dynamics import dynamics_basis
    from fcinvert.physics.fcspace import build_fcspace
    from fcinvert.physics.material import load_material
    from fcinvert.physics.spectra import render

    material = load_material("ge")
    fcspace = build_fcspace(material)
    reference = fcspace.reference_theta(material)
    selected = np.arange(8)
    basis = dynamics_basis(fcspace, material.path.qpoints)
    rng = np.random.default_rng(seed)
    with h5py.File(path, "w") as handle:
        handle.attrs.update(format="fcinvert-dataset", version=1, material="ge", seed=seed)
        handle.attrs.update(n_rejected=0, rejection_rate=0.0)
        handle["parameter_names"] = np.array(fcspace.names, dtype=h5py.string_dtype())
        handle["selected"] = selected
        handle["reference"] = reference
        bounds = np.sort(np.stack([0.8 * reference[selected], 1.2 * reference[selected]]), 0)
        handle["domain/low"], handle["domain/high"] = bounds
        handle["qpoints"] = material.path.qpoints
        grid = material.energy
        energy = handle.create_dataset("energy", data=grid.centres)
        energy.attrs.update(width=grid.width, fwhm0=grid.fwhm0, slope=grid.slope)
        for split, n in (("train", 1), ("test", n_test)):
            theta = np.tile(reference, (n, 1))
            theta[:, selected] *= rng.uniform(0.8, 1.2, size=(n, len(selected)))
            handle[f"{split}/theta"] = theta
            spectra = [
                render(basis.frequencies(theta[i : i + 500]), grid) for i in range(0, n, 500)
            ]
            handle[f"{split}/spectra"] = np.concatenate(spectra)
    return path


def untrained_bundle(architecture: str, folder: Path) -> Path:
    """A default-architecture bundle on the Ge grid with untrained weights."""
    from fcinvert.models.bundle import (
        BundleConfig,
        EnergyConfig,
        ModelBundle,
        build_networks,
        save_bundle,
    )
    from fcinvert.models.regressor import RegressorConfig
    from fcinvert.models.resnet import ResNetConfig
    from fcinvert.models.vae import VAEConfig
    from fcinvert.physics.fcspace import build_fcspace
    from fcinvert.physics.material import load_material

    material = load_material("ge")
    fcspace = build_fcspace(material)
    reference = fcspace.reference_theta(material)
    selected = fcspace.names[:8]
    vae = architecture == "vae"
    config = BundleConfig(
        architecture=architecture,
        material="ge",
        qpoints=[tuple(q) for q in material.path.qpoints.tolist()],
        energy=EnergyConfig.from_grid(material.energy),
        parameter_names=fcspace.names,
        selected=selected,
        reference=reference.tolist(),
        target_mean=[reference[i] for i in range(8)],
        target_std=[0.1 * abs(reference[i]) + 1e-3 for i in range(8)],
        mask_channel=False,
        vae=VAEConfig() if vae else None,
        regressor=RegressorConfig() if vae else None,
        resnet=None if vae else ResNetConfig(),
    )
    return save_bundle(ModelBundle(config, build_networks(config)), folder)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--test", type=int, default=PAPER_TEST, help="test spectra")
    parser.add_argument("--samples", type=int, default=50, help="latent samples (VAE)")
    parser.add_argument("--threads", type=int, default=os.cpu_count() or 1)
    parser.add_argument("--out", type=Path, default=None, help="report folder (default: temp)")
    args = parser.parse_args()
    os.environ["OMP_NUM_THREADS"] = str(args.threads)
    import torch

    from fcinvert.analysis.evaluate import EvaluationSettings
    from fcinvert.errors import FcinvertError
    from fcinvert.models.bundle import find_bundle
    from fcinvert.report.evaluation import write_evaluation

    torch.set_num_threads(args.threads)
    scratch = Path(tempfile.mkdtemp(prefix="fcinvert-evaluate-"))
    start = time.perf_counter()
    data = write_test_set(scratch / "ge.h5", args.test)
    print(f"rendered {args.test} Ge test spectra in {time.perf_counter() - start:.1f} s")
    try:
        models, which = [find_bundle("ge-paper"), find_bundle("ge-paper-resnet")], "shipped"
    except FcinvertError:
        models = [untrained_bundle(a, scratch / f"ge-{a}") for a in ("vae", "resnet")]
        which = "untrained, default architectures"
    settings = EvaluationSettings(samples=args.samples)
    start = time.perf_counter()
    metrics = write_evaluation(
        "ge", models, data, args.out or scratch / "report", settings=settings
    )
    total = time.perf_counter() - start
    parts = metrics["timing_s"]
    print(
        f"models: {which}; {args.test} test spectra; {args.threads} threads; "
        f"{args.samples} latent samples; load average {os.getloadavg()[0]:.1f}"
    )
    print(f"  {'part':<18} {'wall':>8}   {'share':>6}  {'CPU':>8}")
    for name, seconds in parts.items():
        cpu = metrics["cpu_s"][name]
        print(f"  {name:<18} {seconds:8.1f} s {seconds / total:6.1%}  {cpu:8.1f} s")
    print(
        f"  {'total':<18} {total:8.1f} s = {total / 60:.1f} min; dominant: "
        f"{max(parts, key=parts.get)}"
    )
    if args.test != PAPER_TEST:
        scale = PAPER_TEST / args.test
        growing = parts["clean predictions"] + parts["noise grid"]
        projected = total + (scale - 1.0) * growing
        print(f"projected for {PAPER_TEST} test spectra: {projected / 60:.1f} min")
        total = projected
    print(f"time / goal (30 min): {total / GOAL_S:.2f}")


if __name__ == "__main__":
    main()
