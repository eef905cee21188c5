"""Where the ML alone fails: the force-field members themselves, on fcinvert's own spectra.

The Euphonic bench (``realistic_inversion.py``) mixes two questions: does the model generalise
to spectra another code made, and does it know the crystals the domain was built from? This
bench asks the second alone. For every stable member of the ensemble it draws ``--repeats``
measurement-like spectra from fcinvert's own realistic generator (``data.realistic``: random
zone sets, temperature, window, counts, background, gaps — the kind the default model was
trained on) of two truths: the member itself, and the member with only the model's selected
parameters (the others at the reference, exactly the training distribution). It prints the
dispersion RMS (meV, on the model's path, median over the repeats) of the ML alone (latent
mean), and as the reference measured in the same run the ensemble median's RMS to the member.
A model that knows the domain beats the median on every member; the second column separates
the error of the 8 selected parameters from that of the parameters the model does not infer.

    .venv/bin/python benchmarks/ml_on_members.py [--model ge] [--repeats 16] [--seed 1]
"""

from __future__ import annotations

import argparse
import os

os.environ.setdefault("OMP_NUM_THREADS", "1")

import numpy as np


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="ge")
    parser.add_argument("--repeats", type=int, default=16)
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args()

    from fcinvert.data.dataset import prepare_generator
    from fcinvert.data.realistic import prepare_realistic
    from fcinvert.inversion.invert import model_material
    from fcinvert.labels.domain import load_ensemble
    from fcinvert.models.bundle import load_bundle
    from fcinvert.physics.dynamics import dynamics_basis

    bundle = load_bundle(args.model)
    material, fcspace = model_material(bundle)
    generator = prepare_realistic(material, prepare_generator(material, 0))
    basis = dynamics_basis(fcspace, bundle.qpoints)
    selected = bundle.selected_indices
    reference = np.asarray(bundle.config.reference, dtype=float)
    names, members = load_ensemble(material, fcspace)

    def rms(theta: np.ndarray, truth: np.ndarray) -> np.ndarray:
        """Dispersion RMS (meV) of θ (B, P) against one truth (P,)."""
        gap = basis.frequencies(theta) - basis.frequencies(truth)[None]
        return np.sqrt(np.mean(gap**2, axis=(1, 2)))

    print(f"{args.model}: ML alone on {args.repeats} realistic spectra per truth (median RMS, meV)")
    print(f"{'member':22s} {'median θ':>9s} {'ML, member':>11s} {'ML, selected only':>18s}")
    rows = []
    for name, member in zip(names, members, strict=True):
        only_selected = reference.copy()
        only_selected[selected] = member[selected]
        row = [float(rms(reference[None], member)[0])]
        for truth in (member, only_selected):
            rng = np.random.default_rng([args.seed, len(rows)])
            spectra = generator.measure(np.repeat(truth[None], args.repeats, axis=0), rng)
            guess = np.repeat(reference[None], args.repeats, axis=0)  # what the ML alone reports
            guess[:, selected] = bundle.predict(spectra, n_samples=30, seed=args.seed).mean
            row.append(float(np.median(rms(guess, truth))))
        rows.append(row)
        print(f"{name:22s} {row[0]:9.2f} {row[1]:11.2f} {row[2]:18.2f}", flush=True)
    table = np.array(rows)
    beaten = int(np.sum(table[:, 1] < table[:, 0]))
    print(
        f"mean {table[:, 0].mean():.2f} (median θ) · {table[:, 1].mean():.2f} (ML, member) · "
        f"{table[:, 2].mean():.2f} (ML, selected only); the ML beats the median on {beaten} "
        f"of {len(rows)} members"
    )


if __name__ == "__main__":
    main()
