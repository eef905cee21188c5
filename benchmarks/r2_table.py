"""Test R² per parameter of model bundles on one dataset's test split, clean and noisy (issue 16).

The light version of ``fcinvert evaluate``'s accuracy table, with at most one setting of its
noise grid: every bundle predicts the same test spectra (clean fast-model spectra of a dataset,
ideally drawn with another seed than the training one) and, with ``--noise B P``, the same
noisy copies of them (``analysis.noise_grid.counting_noise``: background B, P peak counts;
B = 0.1, P = 300 is the report's mild-noise case). R² = 1 − Σ(θ − θ̂)² / Σ(θ − mean θ)² is
printed per selected parameter, with each bundle's minimum over the parameters. The first
bundle is the reference measured in the same run (e.g. the shipped model a new one should beat).
Targets (issue 16): clean R² ≥ 0.99 on every parameter; a noise-augmented ResNet at B = 0.1,
P = 300 at least the VAE's on FC0–FC3, with clean R² ≥ 0.98.

    .venv/bin/python benchmarks/r2_table.py --data work/data/ge-seed1.h5 \\
        --models ge-paper-resnet work/training/ge-resnet-ft [--noise 0.1 300] [--limit 1500]
"""

from __future__ import annotations

import argparse
import json
import os
import time


def r2_scores(bundle, spectra, truth, samples: int) -> list[float]:
    """R² (K,) of the bundle's mean prediction for spectra (N, nq, nE) against truth (N, K)."""
    import numpy as np

    predicted = np.concatenate(
        [
            bundle.predict(spectra[start : start + 250], samples, 0).mean
            for start in range(0, len(spectra), 250)
        ]
    )
    residual = ((truth - predicted) ** 2).sum(axis=0)
    spread = ((truth - truth.mean(axis=0)) ** 2).sum(axis=0)
    return (1.0 - residual / spread).tolist()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", required=True, help="dataset file with a test split")
    parser.add_argument("--models", nargs="+", required=True, help="bundles (names or folders)")
    parser.add_argument("--limit", type=int, default=None, help="first N test spectra only")
    parser.add_argument("--samples", type=int, default=50, help="latent samples (VAE)")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument(
        "--noise", nargs=2, type=float, metavar=("B", "P"), help="also at background B, counts P"
    )
    parser.add_argument("--seed", type=int, default=0, help="seed of the noise")
    args = parser.parse_args()
    os.environ.setdefault("OMP_NUM_THREADS", str(args.threads))
    import numpy as np
    import torch

    from fcinvert.analysis.noise_grid import counting_noise
    from fcinvert.data.dataset import read_dataset
    from fcinvert.models.bundle import load_bundle
    from fcinvert.models.datasource import ArraySpectra

    torch.set_num_threads(args.threads)
    info = read_dataset(args.data)
    test = ArraySpectra.read(info, "test", args.limit)
    spectra, truth = test.spectra.numpy(), test.targets.numpy().astype(float)
    names = info.selected_names
    inputs = {"clean": spectra}
    if args.noise:
        background, counts = args.noise
        rng = np.random.default_rng(args.seed)
        inputs[f"B={background:g} P={counts:g}"] = counting_noise(spectra, background, counts, rng)
    results: dict[str, dict] = {}
    print(f"{len(truth)} test spectra of {args.data}; R² per parameter")
    print(f"{'model':48s} " + " ".join(f"FC{i:<5d}" for i in range(len(names))) + "  min")
    for model in args.models:
        bundle = load_bundle(model)
        if list(bundle.config.selected) != list(names):
            raise SystemExit(f"{model}: predicts other parameters than {args.data}")
        for setting, x in inputs.items():
            start = time.perf_counter()
            r2 = r2_scores(bundle, x, truth, args.samples)
            seconds = time.perf_counter() - start
            results.setdefault(model, {})[setting] = dict(zip(names, r2, strict=True))
            row = " ".join(f"{value:.4f}" for value in r2)
            label = f"{model} {setting}"
            print(f"{label:48.48s} {row}  {min(r2):.4f}  ({seconds:.0f} s)", flush=True)
    print(json.dumps({"data": args.data, "spectra": len(truth), "models": results}))


if __name__ == "__main__":
    main()
