"""A two-atom crystal through ``fcinvert build``, then its model on measurement-like spectra.

The build itself is one command, run as a new user runs it (default configuration, no
measurement) and timed by its own report (``<material>/build/report.json``, ``stages``):

    OMP_NUM_THREADS=1 /tmp/heavy.sh python -m fcinvert build benchmarks/data/si.vasp --name si

This script then scores the built material. For each truth it makes a measurement-like spectrum
with Euphonic (``measurement_like.simulate``: every mode a Gaussian of the material's resolution
on the material's own energy grid, 12 zones, Bose factor, 300 counts at the peak, 5 % flat
background, Poisson noise) and inverts it three ways, each a fresh ``fcinvert invert`` process:
the model alone (``--model``), the model then refinement (``--model --refine``) and refinement
from the force-field ensemble alone (``--material --refine``). Printed and written: the RMS
(meV, all branches at the spectrum's q-points) of the ensemble median and of each inversion
against the truth's Euphonic dispersion, and each command's seconds. Truths:

- ``member:<name>``: a force-field member's labels (inside the ensemble the model was trained
  on; not the median);
- ``scaled:<meV>``: the ensemble median with every force constant scaled so that its highest Γ
  mode is at the given energy (e.g. Si's measured Raman line, 520.7 cm⁻¹ = 64.56 meV: the
  force fields are softer than the crystal, as for Ge).

    /tmp/heavy.sh python benchmarks/two_atom_build.py --material si \
        --truths member:chgnet-0.3.0,scaled:64.56 [--out reports/any_crystal/invert-si.json]

Needs the material built first (user library, or ``FCINVERT_HOME``) and Euphonic
(``pip install -e ".[test]"``).
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import measurement_like as ml  # a sibling module: benchmarks/ is on sys.path
import numpy as np

from fcinvert.physics.material import load_material

ROOT = Path(__file__).resolve().parent.parent
PEAK_COUNTS = 300.0
BACKGROUND = 0.05
#: (key, arguments of ``fcinvert invert`` after the spectrum file; NAME: the material)
INVERSIONS = (
    ("model", ("--model", "NAME")),
    ("model_refine", ("--model", "NAME", "--refine")),
    ("ensemble_refine", ("--material", "NAME", "--refine")),
)


def make_truth(material: str, spec: str, folder: Path) -> ml.Truth:
    """The truth named by ``spec`` ('member:<name>' or 'scaled:<Γ-optical meV>')."""
    kind, _, value = spec.partition(":")
    if kind == "member":
        return ml.force_field_truth(material, value, folder)
    if kind == "scaled":
        truth, _ = ml.scaled_truth(material, float(value), folder)
        return truth
    raise SystemExit(f"unknown truth {spec!r}: member:<name> or scaled:<meV>")


def invert(spectrum: Path, material: str, arguments: tuple[str, ...], out: Path) -> dict:
    """One ``fcinvert invert`` run: its result JSON and seconds (or the error's last lines)."""
    arguments = tuple(material if a == "NAME" else a for a in arguments)
    command = [sys.executable, "-m", "fcinvert", "invert", str(spectrum), *arguments]
    start = time.perf_counter()
    done = subprocess.run([*command, "--out", str(out)], capture_output=True, text=True)
    seconds = round(time.perf_counter() - start, 1)
    if done.returncode != 0 or not out.is_file():
        return {"error": (done.stdout + done.stderr)[-800:], "seconds": seconds}
    return {"result": json.loads(out.read_text()), "seconds": seconds}


def score(material: str, spec: str, work: Path, seed: int) -> dict:
    """Simulate the truth ``spec`` on the material's grid, invert it, and score the dispersions
    (meV RMS against the truth at the spectrum's q-points)."""
    loaded = load_material(material)
    energy = loaded.settings.energy
    instrument = ml.Instrument.for_material(
        material,
        energy_max_meV=energy.max_meV,
        energy_step_meV=(energy.max_meV - energy.min_meV) / energy.bins,
        peak_counts=PEAK_COUNTS,
        background=BACKGROUND,
    )
    truth = make_truth(material, spec, work / "truth")
    simulated = ml.simulate(material, truth, instrument, seed)
    spectrum = work / f"{material}.h5"
    ml.write_simulated(spectrum, simulated)
    _, fcspace = ml.model_space(material)
    median = ml.truth_from_theta(
        loaded, ml.reference_theta(loaded, fcspace), "median", work / "median"
    )
    median_rms = ml.dispersion_rms(
        ml.truth_frequencies(median, simulated.spectrum.qpoints), simulated.frequencies
    )
    entry = {
        "truth": truth.description,
        "highest_mode_meV": round(float(simulated.frequencies.max()), 2),
        "instrument": instrument.as_dict(),
        "seed": seed,
        "ensemble_median_rms_meV": round(median_rms, 3),
    }
    for key, arguments in INVERSIONS:
        run = invert(spectrum, material, arguments, work / f"{key}.json")
        if "error" in run:
            entry[key] = run
            continue
        frequencies = np.sort(np.asarray(run["result"]["dispersion"]["frequencies_meV"]), axis=1)
        entry[key] = {
            "rms_meV": round(ml.dispersion_rms(frequencies, simulated.frequencies), 4),
            "seconds": run["seconds"],
            "notes": run["result"]["notes"],
        }
    return entry


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--material", default="si")
    parser.add_argument("--truths", default="member:chgnet-0.3.0,scaled:64.56")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path, default=ROOT / "reports/any_crystal/invert-si.json")
    args = parser.parse_args()
    results = {}
    with tempfile.TemporaryDirectory(prefix="two-atom-") as folder:
        for spec in args.truths.split(","):
            work = Path(folder) / spec.replace(":", "-")
            work.mkdir()
            results[spec] = score(args.material, spec, work, args.seed)
            entry = results[spec]
            line = ", ".join(
                f"{key} {entry[key].get('rms_meV', 'failed')} meV ({entry[key]['seconds']} s)"
                for key, _ in INVERSIONS
            )
            print(f"{spec}: median {entry['ensemble_median_rms_meV']} meV; {line}", flush=True)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps({"material": args.material, "truths": results}, indent=1))
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
