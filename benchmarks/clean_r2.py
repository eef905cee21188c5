"""Clean test R² per parameter of model bundles on one dataset's test split (issue 16).

The light version of ``fcinvert evaluate``'s accuracy table, without its noise grid: every
bundle predicts the same test spectra (clean fast-model spectra of a dataset, ideally drawn
with another seed than the training one), and R² = 1 − Σ(θ − θ̂)² / Σ(θ − mean θ)² is printed
per selected parameter, with each bundle's minimum over the parameters. The first bundle is
the reference measured in the same run (e.g. the shipped model a new one should beat).
Target (issue 16): R² ≥ 0.99 on every parameter.

    .venv/bin/python benchmarks/clean_r2.py --data work/data/ge-seed1.h5 \\
        --models ge-paper-resnet work/training/ge-resnet-ft [--limit 1500] [--threads 1]
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
    args = parser.parse_args()
    os.environ.setdefault("OMP_NUM_THREADS", str(args.threads))
    import torch

    from fcinvert.data.dataset import read_dataset
    from fcinvert.models.bundle import load_bundle
    from fcinvert.models.datasource import ArraySpectra

    torch.set_num_threads(args.threads)
    info = read_dataset(args.data)
    test = ArraySpectra.read(info, "test", args.limit)
    spectra, truth = test.spectra.numpy(), test.targets.numpy().astype(float)
    names = info.selected_names
    results = {}
    print(f"{len(truth)} test spectra of {args.data}; R² per parameter")
    print(f"{'model':40s} " + " ".join(f"FC{i:<5d}" for i in range(len(names))) + "  min")
    for model in args.models:
        bundle = load_bundle(model)
        if list(bundle.config.selected) != list(names):
            raise SystemExit(f"{model}: predicts other parameters than {args.data}")
        start = time.perf_counter()
        r2 = r2_scores(bundle, spectra, truth, args.samples)
        seconds = time.perf_counter() - start
        results[model] = {"r2": dict(zip(names, r2, strict=True)), "seconds": round(seconds, 1)}
        row = " ".join(f"{value:.4f}" for value in r2)
        print(f"{model:40.40s} {row}  {min(r2):.4f}  ({seconds:.0f} s)", flush=True)
    print(json.dumps({"data": args.data, "spectra": len(truth), "models": results}))


if __name__ == "__main__":
    main()
