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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("bundle")
    parser.add_argument("dataset")
    parser.add_argument("--n", type=int, default=None)
    parser.add_argument("--record", action="store_true")
    args = parser.parse_args()

    from fcinvert.analysis.held_out import held_out_scores
    from fcinvert.data.dataset import read_dataset
    from fcinvert.models.bundle import CONFIG_NAME, find_bundle, load_bundle

    bundle = load_bundle(args.bundle)
    result = held_out_scores(bundle, read_dataset(args.dataset), args.n)
    print(json.dumps(result, indent=1))
    if args.record:
        path = find_bundle(args.bundle) / CONFIG_NAME
        config = json.loads(path.read_text())
        config["training"]["realistic_test"] = result
        path.write_text(json.dumps(config, indent=1) + "\n")


if __name__ == "__main__":
    main()
