"""The reference dispersions of ``any_crystal.py``: published Born–von Kármán fits to inelastic
neutron scattering measurements of four cubic metals, and spectrum files of their points.

No table of the measured frequencies themselves could be found among the public sources
reachable here; what was found is the published Born–von Kármán (BvK) force constants fitted to
those measurements, as compiled (from Landolt–Börnstein III/13a, Dederichs, Schober & Sellmyer
1981) in the DANSE project's ``vnf`` repository (github.com/danse-inelastic/vnf,
``content/data/bvkmodels/bvk_<element>_<T>.py``). The frequencies here are therefore
**computed from the published fits** at the wave vectors where such measurements are tabulated
(ζ = 0.1 steps along [00ζ] to X, [ζζ0] to K, [ζζζ] to L), not read from the measured tables;
each fit reproduces its measured points to within a few per cent (the papers' own statement).

Sources (force constants in N/m, the neighbour at (a/2)(h, k, l) named "hkl"):

- Cu 296 K: E. C. Svensson, B. N. Brockhouse, J. M. Rowe, Phys. Rev. 155, 619 (1967).
- Al 80 K: E. R. Cowley, Can. J. Phys. 52, 1714 (1974) (fit to elastic constants and
  phonons, including off-symmetry directions).
- Ni 296 K: R. J. Birgeneau, J. Cordes, G. Dolling, A. D. B. Woods, Phys. Rev. 136, A1359
  (1964) (axially symmetric fit).
- Pd 296 K: A. P. Miiller, B. N. Brockhouse, Can. J. Phys. 49, 704 (1971).

Left out, not repaired: Pb 80 K (Cowley 1974) as compiled is unstable everywhere (its
third-neighbour yy = −2.996 N/m is probably mis-transcribed), and the two compiled Ag fits
(Kamitakahara & Brockhouse 1969; Drexel 1972) disagree by 0.6 THz at X (transverse).

Lattice parameters: ase's reference states (``ase.data.reference_states``; Kittel's table).
BvK frequencies at reduced q do not depend on it.

    python benchmarks/any_crystal_data.py [--out benchmarks/data/any_crystal] [--counts 300]

writes ``<element>.h5`` (the spectrum contract: one constant-Q column per measured q, every
branch a Gaussian of FWHM 0.8 meV + 2 % E, bin-integrated, on 0.25 meV bins, as counts with
Poisson noise (300 at the strongest pixel, a 2 % flat background; ``error`` = √counts) unless
``--counts 0``; only measured q-points are stored, so no pixel is NaN;
``resolution_*``, ``temperature_K`` and ``lattice_parameter_A`` attributes), ``<element>.vasp``
(the structure) and ``reference.json`` (q, frequencies in THz and meV, sources).
"""

from __future__ import annotations

import argparse
import itertools
import json
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
THZ_TO_MEV = 4.135667696
AMU_KG = 1.66053906660e-27
REPOSITORY = "github.com/danse-inelastic/vnf content/data/bvkmodels"

#: element → (temperature K, citation, {"hkl": {component: N/m}}), as published
FITS: dict[str, tuple[float, str, dict[str, dict[str, float]]]] = {
    "Cu": (
        296.0,
        "E. C. Svensson, B. N. Brockhouse, J. M. Rowe, Phys. Rev. 155, 619 (1967)",
        {
            "110": {"xx": 13.102, "zz": -1.417, "xy": 14.820},
            "200": {"xx": 0.361, "yy": -0.238},
            "211": {"xx": 0.642, "yy": 0.315, "yz": 0.190, "xz": 0.385},
            "220": {"xx": 0.104, "zz": -0.284, "xy": 0.396},
            "310": {"xx": -0.137, "yy": 0.009, "zz": -0.016, "xy": -0.055},
            "222": {"xx": -0.138, "yz": -0.232},
        },
    ),
    "Al": (
        80.0,
        "E. R. Cowley, Can. J. Phys. 52, 1714 (1974)",
        {
            "110": {"xx": 10.4578, "zz": -2.6322, "xy": 10.3657},
            "200": {"xx": 2.4314, "yy": -0.1351},
            "211": {"xx": 0.0986, "yy": -0.2366, "yz": -0.2862, "xz": -0.1819},
            "220": {"xx": 0.1363, "zz": 0.1854, "xy": 0.3753},
            "310": {"xx": -0.3003, "yy": 0.1842, "zz": 0.2603, "xy": -0.3239},
            "222": {"xx": -0.1412, "xy": 0.1990},
            "321": {
                "xx": 0.1828,
                "yy": -0.2207,
                "zz": -0.0173,
                "yz": -0.0214,
                "xz": -0.0747,
                "xy": 0.0397,
            },
            "400": {"xx": -0.0681, "yy": -0.0202},
        },
    ),
    "Ni": (
        296.0,
        "R. J. Birgeneau, J. Cordes, G. Dolling, A. D. B. Woods, Phys. Rev. 136, A1359 (1964)",
        {
            "110": {"xx": 17.720, "zz": -1.015, "xy": 18.735},
            "200": {"xx": 1.148, "yy": -0.998},
            "211": {"xx": 0.940, "yy": 0.182, "yz": 0.505, "xz": 0.253},
            "220": {"xx": 0.459, "zz": -0.153, "xy": 0.612},
            "310": {"xx": -0.363, "yy": 0.100, "zz": 0.158, "xy": -0.174},
        },
    ),
    "Pd": (
        296.0,
        "A. P. Miiller, B. N. Brockhouse, Can. J. Phys. 49, 704 (1971)",
        {
            "110": {"xx": 19.337, "zz": -2.832, "xy": 22.423},
            "200": {"xx": 1.424, "yy": 0.210},
            "211": {"xx": 0.744, "yy": 0.249, "yz": 0.163, "xz": 0.708},
            "220": {"xx": -1.142, "zz": -0.223, "xy": -1.370},
            "310": {"xx": -0.006, "yy": -0.207, "zz": -0.232, "xy": 0.076},
            "222": {"xx": 0.154, "yz": 0.330},
            "321": {
                "xx": 0.070,
                "yy": 0.067,
                "zz": -0.020,
                "yz": -0.022,
                "xz": -0.032,
                "xy": -0.065,
            },
            "400": {"xx": 0.072, "yy": 0.006},
        },
    ),
}
#: the measured directions: (label on the path, its Cartesian end in 2π/a, ζ values)
DIRECTIONS = (
    ("X", (1.0, 0.0, 0.0), np.round(np.arange(1, 11) * 0.1, 3)),
    ("K", (0.75, 0.75, 0.0), np.round(np.arange(1, 8) * 0.1, 3)),
    ("L", (0.5, 0.5, 0.5), np.round(np.arange(1, 6) * 0.1, 3)),
)
BIN_MEV = 0.25
#: flat background, as a fraction of the strongest pixel
BACKGROUND = 0.02
FWHM0_MEV, SLOPE = 0.8, 0.02
PAIRS = {"xx": (0, 0), "yy": (1, 1), "zz": (2, 2), "xy": (0, 1), "yz": (1, 2), "xz": (0, 2)}


def canonical_tensor(hkl: str, values: dict[str, float]) -> np.ndarray:
    """The 3×3 BvK tensor (N/m) of the neighbour (h, k, l): the published components, the
    others filled by the symmetry of the bond (entries the bond's site group maps onto a
    published one take its value, with the map's sign); an entry no operation reaches is 0."""
    bond = np.array([int(c) for c in hkl], dtype=float)
    tensor = np.zeros((3, 3))
    known = np.zeros((3, 3), dtype=bool)
    for name, value in values.items():
        i, j = PAIRS[name]
        tensor[i, j] = tensor[j, i] = value
        known[i, j] = known[j, i] = True
    for rotation in cubic_operations():
        if not np.allclose(rotation @ bond, bond):
            continue
        mapped = rotation @ tensor @ rotation.T
        reached = (np.abs(rotation).astype(bool) @ known @ np.abs(rotation.T).astype(bool)) > 0
        fill = reached & ~known
        tensor[fill] = mapped[fill]
        known |= fill
    return tensor


def cubic_operations() -> list[np.ndarray]:
    """The 48 signed permutation matrices of the cubic point group O_h."""
    operations = []
    for permutation in itertools.permutations(range(3)):
        for signs in itertools.product((1, -1), repeat=3):
            matrix = np.zeros((3, 3))
            for row, (column, sign) in enumerate(zip(permutation, signs, strict=True)):
                matrix[row, column] = sign
            operations.append(matrix)
    return operations


def neighbours(fit: dict[str, dict[str, float]]) -> list[tuple[np.ndarray, np.ndarray]]:
    """Every neighbour (vector in units of a/2, tensor N/m) of the fit, by cubic symmetry."""
    result = {}
    for hkl, values in fit.items():
        bond = np.array([int(c) for c in hkl], dtype=float)
        tensor = canonical_tensor(hkl, values)
        for rotation in cubic_operations():
            key = tuple(np.round(rotation @ bond).astype(int))
            result.setdefault(key, (rotation @ bond, rotation @ tensor @ rotation.T))
    return list(result.values())


def bvk_frequencies(element: str, q_cartesian: np.ndarray) -> np.ndarray:
    """Frequencies (nq, 3) THz of the published fit at q (nq, 3) in units of 2π/a, ascending:
    D(q) = Σ_l Φ_l (1 − cos(q·r_l)) / M."""
    from ase.data import atomic_masses, atomic_numbers

    mass = atomic_masses[atomic_numbers[element]] * AMU_KG
    pairs = neighbours(FITS[element][2])
    matrices = np.zeros((len(q_cartesian), 3, 3))
    for vector, tensor in pairs:
        phase = np.pi * q_cartesian @ vector  # (2π/a) q · (a/2) r
        matrices += (1.0 - np.cos(phase))[:, None, None] * tensor
    eigenvalues = np.linalg.eigvalsh(matrices / mass)
    return np.sign(eigenvalues) * np.sqrt(np.abs(eigenvalues)) / (2.0 * np.pi) / 1e12


def measured_qpoints(atoms) -> tuple[np.ndarray, np.ndarray, list[str]]:
    """(reduced q (nq, 3) in the standard primitive reciprocal basis, Cartesian q (nq, 3) in
    2π/a, labels) of the measured points, on the segments Γ-X, Γ-K and Γ-L of the path."""
    import seekpath

    from fcinvert.physics.material import cubic_lattice_parameter

    a = cubic_lattice_parameter(atoms)
    cell = (atoms.cell[:], atoms.get_scaled_positions(), atoms.numbers)
    points = seekpath.get_path(cell, with_time_reversal=True)["point_coords"]
    reciprocal = np.linalg.inv(atoms.cell[:]).T  # rows b_i, 1/Å without 2π
    reduced, cartesian, labels = [], [], []
    for label, end, zetas in DIRECTIONS:
        end_reduced = np.asarray(points[label], dtype=float)
        length = np.linalg.norm(end_reduced @ reciprocal) * a  # in 2π/a
        if not np.isclose(length, np.linalg.norm(end), atol=1e-6):
            raise RuntimeError(f"{label}: the path's point is not at {end} (2π/a)")
        for zeta in zetas:
            fraction = zeta / max(end)
            q = fraction * end_reduced
            reduced.append(q)
            cartesian.append(q @ reciprocal * a)  # in 2π/a, along the path's direction
            labels.append(f"Γ-{label} ζ={zeta:g}")
    return np.array(reduced), np.array(cartesian), labels


def write_case(element: str, out: Path, counts: float, seed: int) -> dict:
    """The structure, the spectrum file and the reference entry of one element; ``counts``:
    the peak of the strongest pixel in neutron counts (Poisson noise on a flat background of
    BACKGROUND × counts; 0: noise-free)."""
    from ase.build import bulk

    from fcinvert.data.spectrum_file import Spectrum, write_spectrum
    from fcinvert.physics.material import cubic_lattice_parameter, standard_primitive

    temperature, citation, _ = FITS[element]
    atoms, _ = standard_primitive(bulk(element, "fcc"))
    structure = out / f"{element.lower()}.vasp"
    atoms.write(structure, format="vasp", direct=True)
    reduced, cartesian, labels = measured_qpoints(atoms)
    thz = bvk_frequencies(element, cartesian)
    if np.any(thz < 0):
        raise RuntimeError(f"{element}: the published fit is unstable at {labels}")
    mev = thz * THZ_TO_MEV
    top = BIN_MEV * np.ceil(1.25 * mev.max() / BIN_MEV)
    edges = np.arange(0.0, top + BIN_MEV / 2, BIN_MEV)
    centres = 0.5 * (edges[1:] + edges[:-1])
    sigma = (FWHM0_MEV + SLOPE * mev) / (2.0 * np.sqrt(2.0 * np.log(2.0)))
    from scipy.special import erf

    upper = (edges[None, None, 1:] - mev[:, :, None]) / (np.sqrt(2) * sigma[:, :, None])
    lower = (edges[None, None, :-1] - mev[:, :, None]) / (np.sqrt(2) * sigma[:, :, None])
    intensity = 0.5 * (erf(upper) - erf(lower)).sum(axis=1) / BIN_MEV
    error = None
    if counts > 0:
        rng = np.random.default_rng([seed, sum(map(ord, element))])
        expected = counts * (intensity / intensity.max() + BACKGROUND)
        measured = rng.poisson(expected).astype(float)
        intensity, error = measured, np.sqrt(np.maximum(measured, 1.0))
    spectrum = Spectrum(
        intensity,
        centres,
        reduced,
        element.lower(),
        temperature,
        error=error,
        resolution=(FWHM0_MEV, SLOPE),
        lattice_parameter_A=cubic_lattice_parameter(atoms),
    )
    spectrum.frequencies = mev
    attrs = {
        "source": f"frequencies computed from the published Born-von Karman fit of {citation} "
        f"(compiled in {REPOSITORY}); not the measured table",
    }
    write_spectrum(out / f"{element.lower()}.h5", spectrum, attrs)
    return {
        "temperature_K": temperature,
        "lattice_parameter_A": cubic_lattice_parameter(atoms),
        "source": citation,
        "kind": "frequencies computed from the published Born-von Karman fit to the "
        "inelastic neutron scattering measurements",
        "compiled_in": REPOSITORY,
        "force_constants_N_per_m": FITS[element][2],
        "points": [
            {
                "where": label,
                "q_reduced": np.round(q, 6).tolist(),
                "q_cartesian_2pi_over_a": np.round(c, 6).tolist(),
                "frequencies_THz": np.round(f, 4).tolist(),
            }
            for label, q, c, f in zip(labels, reduced, cartesian, thz, strict=True)
        ],
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=ROOT / "benchmarks/data/any_crystal")
    parser.add_argument("--counts", type=float, default=300.0, help="peak counts; 0: no noise")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    reference = {element: write_case(element, args.out, args.counts, args.seed) for element in FITS}
    (args.out / "reference.json").write_text(json.dumps(reference, indent=1) + "\n")
    for element, entry in reference.items():
        top = max(max(p["frequencies_THz"]) for p in entry["points"])
        print(f"{element}: {len(entry['points'])} q-points, highest {top:.2f} THz")


if __name__ == "__main__":
    main()
