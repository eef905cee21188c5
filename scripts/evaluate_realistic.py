"""Accuracy of a model bundle on held-out measurement-like spectra (a dataset's test split).

    .venv/bin/python scripts/evaluate_realistic.py BUNDLE DATASET [--n 1000] [--record]

Prints, for the ML alone (latent-sample mean, no refinement): R² and MAE (eV/Å²) per selected
force constant, and the dispersion RMS (meV, over the path's q-points and branches) between the
predicted θ (unselected parameters at the dataset's values) and the truth: median, mean and
90th percentile over the spectra. ``--record`` stores the numbers in the bundle's config.json
as training["realistic_test"].
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np


def evaluate_bundle(bundle, stored, n: int | None = None, n_samples: int = 100, seed: int = 0):
    from fcinvert.physics.dynamics import dynamics_basis
    from fcinvert.physics.fcspace import build_fcspace
    from fcinvert.physics.material import load_material

    count = stored.sizes["test"] if n is None else min(n, stored.sizes["test"])
    spectra = stored.spectra("test", slice(0, count))
    theta = stored.theta("test")[:count]
    selected = bundle.selected_indices
    start = time.perf_counter()
    predicted = bundle.predict(spectra, n_samples, seed).mean
    seconds = time.perf_counter() - start
    truth = theta[:, selected]
    residual = ((truth - predicted) ** 2).sum(axis=0)
    spread = ((truth - truth.mean(axis=0)) ** 2).sum(axis=0)
    r2 = 1.0 - residual / np.where(spread > 0, spread, np.nan)
    mae = np.abs(truth - predicted).mean(axis=0)
    material = load_material(stored.material)
    basis = dynamics_basis(build_fcspace(material), stored.qpoints)
    guess = theta.copy()
    guess[:, selected] = predicted
    rms = np.sqrt(((basis.frequencies(guess) - basis.frequencies(theta)) ** 2).mean(axis=(1, 2)))
    names = bundle.config.selected
    return {
        "dataset": str(Path(stored.path).name),
        "spectra_kind": stored.kind,
        "spectra": int(count),
        "latent_samples": n_samples,
        "r2": dict(zip(names, np.round(r2, 4).tolist(), strict=True)),
        "mae_eV_A2": dict(zip(names, np.round(mae, 5).tolist(), strict=True)),
        "dispersion_rms_meV": {
            "median": round(float(np.median(rms)), 3),
            "mean": round(float(np.mean(rms)), 3),
            "p90": round(float(np.quantile(rms, 0.9)), 3),
        },
        "predict_s_per_spectrum": round(seconds / count, 5),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("bundle")
    parser.add_argument("dataset")
    parser.add_argument("--n", type=int, default=None)
    parser.add_argument("--record", action="store_true")
    args = parser.parse_args()

    from fcinvert.data.dataset import read_dataset
    from fcinvert.models.bundle import CONFIG_NAME, find_bundle, load_bundle

    bundle = load_bundle(args.bundle)
    result = evaluate_bundle(bundle, read_dataset(args.dataset), args.n)
    print(json.dumps(result, indent=1))
    if args.record:
        path = find_bundle(args.bundle) / CONFIG_NAME
        config = json.loads(path.read_text())
        config["training"]["realistic_test"] = result
        path.write_text(json.dumps(config, indent=1) + "\n")


if __name__ == "__main__":
    main()
