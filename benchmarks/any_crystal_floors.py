"""Truncation floors of the any-crystal references: how well N neighbour shells can do.

For each crystal of ``benchmarks/data/any_crystal/`` and N = 1 … 8, the force constants of the
first N distance shells (general tensors, the material's FC space) are fitted by least squares
to the reference frequencies at the 22 measured q-points (warm-started from the N − 1 fit);
the RMS (meV) left is the best any N-shell model can do there, whatever the inversion. It
checks the shell rule of ``fcinvert.labels.shells`` against data the rule never sees.

    python benchmarks/any_crystal_floors.py [--crystals cu,al,ni,pd] [--work DIR]
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
DATA = ROOT / "benchmarks" / "data" / "any_crystal"
THZ_TO_MEV = 4.135667696
SHELLS = 8


def floors(name: str, work: Path) -> list[float]:
    """RMS (meV) of the best fit with 1 … SHELLS shells for crystal ``name``."""
    from scipy.optimize import least_squares

    from fcinvert.labels.shells import distance_shells
    from fcinvert.physics.dynamics import dynamics_basis
    from fcinvert.physics.fcspace import build_fcspace
    from fcinvert.physics.material import init_material, load_material

    folder = work / name
    if not (folder / "material.json").is_file():
        init_material(DATA / f"{name}.vasp", name, out=folder, shells=SHELLS)
    material = load_material(folder)
    fcspace = build_fcspace(material)
    reference = json.loads((DATA / "reference.json").read_text())
    entry = next(v for k, v in reference.items() if k.lower() == name)
    qpoints = np.array([p["q_reduced"] for p in entry["points"]])
    truth = np.array([p["frequencies_THz"] for p in entry["points"]]) * THZ_TO_MEV
    basis = dynamics_basis(fcspace, qpoints)
    shells = distance_shells(fcspace, material.atoms)
    theta = np.zeros(fcspace.n_params)
    result = []
    for n in range(1, SHELLS + 1):
        free = shells <= n

        def residual(x: np.ndarray, free: np.ndarray = free) -> np.ndarray:
            full = np.zeros(fcspace.n_params)
            full[free] = x
            return (basis.frequencies(full) - truth).ravel()

        start = theta[free].copy()
        if not start.any():
            start[:] = -0.5  # a stiff first guess for the nearest neighbours (eV/Å²)
        fit = least_squares(residual, start)
        theta = np.zeros(fcspace.n_params)
        theta[free] = fit.x
        result.append(float(np.sqrt(np.mean(fit.fun**2))))
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--crystals", default="cu,al,ni,pd")
    parser.add_argument("--work", type=Path, default=None, help="material folders (reused)")
    args = parser.parse_args()
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    work = args.work or Path(tempfile.mkdtemp(prefix="any-crystal-floors-"))
    os.environ.setdefault("FCINVERT_HOME", str(work / "home"))
    print("crystal | " + " | ".join(f"{n} shells" for n in range(1, SHELLS + 1)))
    for name in args.crystals.split(","):
        values = floors(name, work)
        print(f"{name} | " + " | ".join(f"{v:.4f}" for v in values), flush=True)


if __name__ == "__main__":
    main()
