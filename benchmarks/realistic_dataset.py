"""Measurement-like training spectra (``fcinvert.data.realistic``): speed and the cost of holding
Debye–Waller at the reference θ, in one run.

1. Speed: n spectra (default 10 000) of the material's domain made in this process, in chunks
   of 512 as ``fcinvert dataset`` makes them (no file): the paper's fast model, then the
   realistic generator on the same θ. Printed: the one-off set-up of each, spectra per second,
   and the ratio of realistic to fast time; for scale, the exact ``folded_spectrum`` of one θ
   over the same zones (the per-Q path the quadratic form replaces).
2. Debye–Waller: for θ drawn from the domain at 5 K and 300 K, over every zone within 8/Å, the
   quadratic-form spectrum with Debye–Waller of the reference θ against the one with each θ's
   own (which equals ``folded_spectrum``; see tests/test_realistic.py): the largest pixel
   difference relative to the spectrum's maximum, and the RMS over pixels relative to the RMS
   intensity.

    .venv/bin/python benchmarks/realistic_dataset.py [--material ge] [--n 10000]
"""

from __future__ import annotations

import argparse
import time

import numpy as np


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--material", default="ge")
    parser.add_argument("--n", type=int, default=10_000)
    parser.add_argument("--dw-samples", type=int, default=12)
    args = parser.parse_args()

    from fcinvert.data.dataset import CHUNK_SIZE, prepare_generator
    from fcinvert.data.realistic import prepare_realistic
    from fcinvert.physics.material import load_material
    from fcinvert.physics.structure_factor import (
        folded_spectrum,
        folded_spectrum_quadratic,
        zones_within,
    )

    start = time.perf_counter()
    material = load_material(args.material)
    base = prepare_generator(material, seed=0)
    base_setup = time.perf_counter() - start
    start = time.perf_counter()
    realistic = prepare_realistic(material, base)
    real_setup = time.perf_counter() - start
    base.spectra("train", 10_000, 16)  # compile the renderers before timing
    realistic.spectra("train", 10_000, 16)

    chunks = [
        (i, min(CHUNK_SIZE, args.n - i * CHUNK_SIZE)) for i in range(-(-args.n // CHUNK_SIZE))
    ] or [(0, 16)]  # --n 0: only a token batch, for the Debye–Waller comparison
    args.n = sum(size for _, size in chunks)
    start = time.perf_counter()
    for index, size in chunks:
        base.spectra("train", index, size)
    fast_s = time.perf_counter() - start
    start = time.perf_counter()
    for index, size in chunks:
        realistic.spectra("train", index, size)
    real_s = time.perf_counter() - start
    print(f"{material.name}: {args.n} spectra, chunks of {CHUNK_SIZE}, this process")
    print(
        f"  fast model      {fast_s:7.1f} s ({args.n / fast_s:7.0f}/s), set-up {base_setup:.1f} s"
    )
    print(
        f"  realistic       {real_s:7.1f} s ({args.n / real_s:7.0f}/s), set-up {real_setup:.1f} s "
        f"(incl. ToF masks)"
    )
    print(
        f"  realistic / fast: {real_s / fast_s:.1f}x; total with set-up {real_s + real_setup:.0f} s"
    )

    model = realistic.model
    reference = np.asarray(base.sampler.domain.reference, float)
    zones = zones_within(material, 8.0)
    rng = np.random.default_rng(1)
    theta = base.sampler.draw(args.dw_samples, rng).theta
    start = time.perf_counter()
    folded_spectrum(model, theta[0], 5.0, zones)
    exact_one = time.perf_counter() - start
    print(
        f"  exact folded_spectrum, one θ, {len(zones)} zones: {exact_one:.2f} s = "
        f"{exact_one / (real_s / args.n):.0f}x a realistic spectrum"
    )
    print("Debye–Waller held at the reference θ vs each θ's own (zones within 8/Å):")
    for temperature in (5.0, 300.0):
        held = model.displacements_from_modes(*model.mesh.modes(reference), temperature)
        worst, rms, shape = [], [], []
        for t in theta:
            own = folded_spectrum_quadratic(
                model, t, temperature, zones, operator=realistic.operator
            )
            ref = folded_spectrum_quadratic(
                model, t, temperature, zones, displacement=held, operator=realistic.operator
            )
            worst.append(np.abs(ref - own).max() / np.abs(own).max())
            rms.append(np.sqrt(np.mean((ref - own) ** 2) / np.mean(own**2)))
            seen = [  # as the network sees them: sqrt, each q column over its maximum
                np.sqrt(x) / np.maximum(np.sqrt(x).max(axis=1, keepdims=True), 1e-300)
                for x in (own, ref)
            ]
            shape.append(np.abs(seen[0] - seen[1]).max())
        print(
            f"  {temperature:5.0f} K: max pixel difference {np.median(worst):.2e} of the maximum "
            f"(median over {len(theta)} θ; worst {np.max(worst):.2e}), RMS {np.median(rms):.2e} "
            f"of RMS; sqrt-column input {np.median(shape):.2e} (worst {np.max(shape):.2e})"
        )


if __name__ == "__main__":
    main()
