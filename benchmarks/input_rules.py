"""Which network input rule reads measurement-like spectra best: a small training run per rule.

The same realistic dataset, split, seed and small VAE (channels 8-16-32-64, latent 20) for each
rule in ``fcinvert.models.preprocess.INPUT_RULES`` (each with the mask channel), a few VAE epochs
and a regressor to early stopping; then the ML-alone accuracy on the dataset's held-out test
spectra (``fcinvert.analysis.held_out``): R² per selected FC and dispersion RMS. Rules are
ranked against each other in the same run (small runs: compare, don't quote as final accuracy).

    .venv/bin/python benchmarks/input_rules.py work/data/ge-realistic.h5 [--limit 3000]
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("dataset")
    parser.add_argument("--limit", type=int, default=3000)
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--test", type=int, default=500)
    parser.add_argument("--rules", default="minmax,sqrt,sqrt-column")
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()

    import numpy as np
    import torch

    from fcinvert.analysis.held_out import held_out_scores
    from fcinvert.data.dataset import read_dataset
    from fcinvert.models.training import TrainConfig, train_model
    from fcinvert.models.vae import VAEConfig

    torch.set_num_threads(args.threads)
    stored = read_dataset(args.dataset)
    rows = {}
    with tempfile.TemporaryDirectory() as work:
        for rule in args.rules.split(","):
            config = TrainConfig(
                architecture="vae",
                epochs=args.epochs,
                regressor_epochs=80,
                patience=8,
                limit=args.limit,
                seed=0,
                mask_channel=True,
                input_rule=rule,
                vae=VAEConfig(channels=(8, 16, 32, 64)),
                test_samples=20,
            )
            start = time.perf_counter()
            result = train_model(args.dataset, Path(work) / rule, config, progress=False)
            wall = time.perf_counter() - start
            scores = held_out_scores(result.bundle, stored, args.test, n_samples=50)
            rows[rule] = {"train_s": round(wall, 1), **scores}
            r2 = np.array(list(scores["r2"].values()))
            print(
                f"{rule:12s} train {wall:6.0f} s  R² mean {r2.mean():.3f} "
                f"[{' '.join(f'{v:.2f}' for v in r2)}]  dispersion RMS median "
                f"{scores['dispersion_rms_meV']['median']:.2f} meV, mean "
                f"{scores['dispersion_rms_meV']['mean']:.2f}",
                flush=True,
            )
    print(json.dumps(rows, indent=1))


if __name__ == "__main__":
    main()
