"""Accuracy of a model bundle on held-out spectra: the test split of a Stage I dataset.

The ML alone (latent-sample mean, no refinement): R² and MAE (eV/Å²) per selected parameter,
and the dispersion RMS (meV, over the dataset's q-points and branches) between the predicted θ
(unselected parameters at the dataset's values) and the truth, as median, mean and 90th
percentile over the spectra.
"""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np

from fcinvert.data.dataset import StoredDataset
from fcinvert.models.bundle import ModelBundle
from fcinvert.physics.dynamics import dynamics_basis
from fcinvert.physics.fcspace import build_fcspace
from fcinvert.physics.material import load_material


def held_out_scores(
    bundle: ModelBundle,
    stored: StoredDataset,
    n: int | None = None,
    n_samples: int = 100,
    seed: int = 0,
) -> dict:
    """The scores (module docstring) on the first ``n`` test spectra (all when None) as one
    JSON-ready dict; ``n_samples`` latent samples per spectrum."""
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
