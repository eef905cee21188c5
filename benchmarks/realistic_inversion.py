"""Independent bench: `fcinvert invert` on measurement-like spectra that Euphonic made.

No inverse crime: the spectra come from Euphonic's one-phonon structure factor
(``measurement_like.py`` beside this file: 12 inequivalent zones, each with the star of q
folded in, Debye–Waller from a mesh, Bose at T, Gaussian resolution 1 meV + 2 % E, an
experiment-like grid that just stops at the top of the window, a flat background, Poisson
counts, gaps), from truths that are not the domain centre: Tersoff Ge, one other force-field
member per material, θ near the corners of the training domain, and truths with force constants
beyond the model's shells (Ge stiff like the measured crystal, Γ-optical ~37 meV).

Per case the product runs as a user runs it, one fresh process each:
``fcinvert invert case.h5 --model <m> --out ml.json`` (ML alone) and the same with
``--refine`` (ML + refinement). Printed per case: the dispersion RMS (meV, all branches, on the
case's own q-points, against the truth's Euphonic dispersion) of (a) the force-field ensemble
median (the reference θ), (b) ML alone, (c) ML + refinement and (d) the truth's truncation floor
(best least-squares fit of the truth's dispersion with the model's shells; 0 when the truth lies
in the model's θ space); the fraction of parameters within 3σ of the truth (θ-space truths;
a parameter without σ counts as σ = 0) and the seconds of each command.

    .venv/bin/python benchmarks/realistic_inversion.py [--quick] [--seed 0] [--cases a,b]
        [--model ge=models/candidate] [--ml-only]

``--model MATERIAL=BUNDLE`` (repeatable) inverts that material's cases with another bundle (a
folder or shipped name) instead of the default ``--model <material>``; ``--ml-only`` skips the
refinement (comparing models: the ML alone on the same cases, same noise).

Writes ``results.json`` and ``summary.md`` to ``--out`` (default reports/realistic_inversion,
or <work>/report with --quick) and one spectrum image (``--figure-case``). The first full run
on a machine also builds two extended FC spaces (~1 min each, then cached).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
os.environ.setdefault("OMP_NUM_THREADS", "1")
os.environ.setdefault("MKL_NUM_THREADS", "1")

import measurement_like as ml  # noqa: E402  (a sibling module: benchmarks/ is on sys.path)
import numpy as np  # noqa: E402

from fcinvert.physics.dynamics import dynamics_basis  # noqa: E402
from fcinvert.physics.material import load_material  # noqa: E402

#: Ge's measured Γ-optical phonon (meV): the stiff "real-like" Ge truth is scaled to it.
GE_MEASURED_GAMMA_OPTICAL = 37.5
#: The force-field member used as a truth per material, besides Tersoff for Ge. Every stable
#: member is in the ensemble whose range spans the training domain, so none is truly held out
#: of training; the model never saw these θ themselves (its non-sampled parameters are at the
#: median during training, at the member's values here).
MEMBER = {"ge": "7net-0_22may2024", "nb": "uf3-nb"}
#: Central springs (eV/Å²) on shells beyond the model's, per material: (shells, supercell of
#: the extended FC space, {shell: k}). Chosen so the floor is ~0.2 (Ge) and ~0.3 meV (Nb), like
#: the DFT-Ge and 6-shell-Nb floors in shared/notes/refinement.md.
LONG_RANGE = {
    "ge": (10, 5, {9: 0.075, 10: -0.05, 11: 0.0375}),
    "nb": (9, 6, {7: 0.06, 8: -0.04, 9: 0.03}),
}


@dataclass(frozen=True)
class Case:
    name: str
    material: str
    truth: str  # key into the truths built by build_truths
    settings: dict = field(default_factory=dict)  # Instrument fields
    note: str = ""


MISSING_30 = {"columns": 0.05, "segments": 3, "pixels": 0.30}
CASES = [
    Case("ge-tersoff", "ge", "tersoff", {"peak_counts": 1000, "background": 0.02}),
    Case(
        "ge-member",
        "ge",
        "member",
        {"peak_counts": 300, "background": 0.05, "path_points": 160, "temperature_K": 80},
    ),
    Case("ge-edge", "ge", "edge", {"peak_counts": 100, "background": 0.05, "path_points": 240}),
    Case("ge-real", "ge", "real", {"peak_counts": 300, "background": 0.05}),
    Case("ge-real-25", "ge", "real", {"peak_counts": 25, "background": 0.10}),
    Case(
        "ge-real-gaps30", "ge", "real", {"peak_counts": 100, "background": 0.05, "gaps": MISSING_30}
    ),
    Case(
        "ge-real-tof",
        "ge",
        "real",
        {"peak_counts": 300, "background": 0.05, "gaps": {"tof_ei": 40.0, "tof_psi": 30.0}},
        "coverage of one orientation (ψ = 30°, u = 110, v = 001) at Ei = 40 meV",
    ),
    Case("nb-member", "nb", "member", {"peak_counts": 1000, "background": 0.02}),
    Case(
        "nb-edge",
        "nb",
        "edge",
        {"peak_counts": 100, "background": 0.05, "path_points": 250, "temperature_K": 100},
    ),
    Case("nb-real", "nb", "real", {"peak_counts": 300, "background": 0.05}),
    Case(
        "nb-real-gaps30", "nb", "real", {"peak_counts": 50, "background": 0.10, "gaps": MISSING_30}
    ),
]
QUICK = ["ge-tersoff", "nb-member"]


@dataclass
class TruthSet:
    """The truths of one material: Truth by key, and the model-space θ to start floors from."""

    truths: dict[str, ml.Truth]
    starts: dict[str, list[np.ndarray]]


def build_truths(material: str, keys: set[str], work: Path, seed: int) -> TruthSet:
    """Only the truths ``keys`` asks for (the extended FC spaces are slow the first time)."""
    loaded, fcspace = ml.model_space(material)
    median = ml.reference_theta(loaded, fcspace)
    truths: dict[str, ml.Truth] = {}
    starts: dict[str, list[np.ndarray]] = {}
    folder = work / "truths" / material
    if "tersoff" in keys:
        truths["tersoff"] = ml.force_field_truth(material, "tersoff-ge-1989", folder / "tersoff")
    if "member" in keys:
        truths["member"] = ml.force_field_truth(material, MEMBER[material], folder / "member")
    if "edge" in keys:
        top = ml.WINDOW_MEV[material] - 1.0
        truths["edge"] = ml.domain_edge_truth(
            material, seed, folder / "edge", highest_below_meV=top
        )
    if "real" in keys:
        if material == "ge":
            base, _ = ml.scaled_truth("ge", GE_MEASURED_GAMMA_OPTICAL, folder / "real-base")
        else:
            base = ml.force_field_truth("nb", "chgnet-r2scan", folder / "real-base")
        shells, supercell, springs = LONG_RANGE[material]
        truths["real"] = ml.long_range_truth(
            material, base.theta, springs, shells, supercell, "real", folder / "real"
        )
        truths["real"].description = (
            f"{base.description}, plus central springs beyond the model's shells "
            f"({', '.join(f'shell {s}: {k:+g} eV/Å²' for s, k in springs.items())}; "
            f"{shells} shells on {supercell}³)"
        )
        starts["real"] = [base.theta]
    for key, truth in truths.items():
        starts.setdefault(key, [])
        if truth.theta is not None:
            starts[key].insert(0, truth.theta)
        starts[key].append(median)
    return TruthSet(truths, starts)


def invert(case_file: Path, model: str, out: Path, refine: bool) -> tuple[dict | None, float, str]:
    """Run ``fcinvert invert --model model`` as a user would; the result JSON (None on failure),
    seconds and the last lines of its output."""
    command = [sys.executable, "-m", "fcinvert", "invert", str(case_file), "--model", model]
    command += ["--out", str(out)] + (["--refine"] if refine else [])
    started = time.perf_counter()
    done = subprocess.run(command, capture_output=True, text=True, cwd=ROOT)
    seconds = time.perf_counter() - started
    tail = "\n".join((done.stdout + done.stderr).strip().splitlines()[-6:])
    if done.returncode != 0 or not out.is_file():
        return None, seconds, tail
    return json.loads(out.read_text()), seconds, tail


def within_3_sigma(result: dict, truth: ml.Truth, names: list[str]) -> float | None:
    """Fraction of parameters with |value − truth| ≤ 3σ (σ None → 0)."""
    if truth.theta is None:
        return None
    true = dict(zip(names, truth.theta, strict=True))
    hits = [
        abs(p["value"] - true[p["name"]]) <= 3.0 * (p["std"] or 0.0) for p in result["parameters"]
    ]
    return float(np.mean(hits))


def result_rms(result: dict | None, simulated: ml.Simulated) -> float | None:
    if result is None:
        return None
    frequencies = np.asarray(result["dispersion"]["frequencies_meV"], dtype=float)
    qpoints = np.asarray(result["dispersion"]["qpoints"], dtype=float)
    if qpoints.shape != simulated.spectrum.qpoints.shape or not np.allclose(
        qpoints, simulated.spectrum.qpoints, atol=1e-9
    ):
        raise RuntimeError("the result's dispersion is not on the input's q-points")
    return ml.dispersion_rms(np.sort(frequencies, axis=1), simulated.frequencies)


def run_case(
    case: Case,
    truths: TruthSet,
    work: Path,
    seed: int,
    figure: Path | None,
    model: str,
    modes: tuple[bool, ...],
) -> dict:
    """One case: simulate, then ``invert --model model`` without (False) and with (True)
    refinement for each of ``modes``."""
    loaded, fcspace = ml.model_space(case.material)
    truth = truths.truths[case.truth]
    instrument = ml.Instrument.for_material(case.material, **dict(case.settings))
    folder = work / case.name
    folder.mkdir(parents=True, exist_ok=True)
    simulated = ml.simulate(case.material, truth, instrument, seed)
    case_file = folder / "case.h5"
    ml.write_simulated(case_file, simulated)
    if figure is not None:
        ml.plot_spectrum(simulated, figure, f"{case.name}: {truth.name} (Euphonic, counts)")
    qpoints = simulated.spectrum.qpoints
    median = ml.reference_theta(loaded, fcspace)
    median_rms = ml.dispersion_rms(
        dynamics_basis(fcspace, qpoints).frequencies(median), simulated.frequencies
    )
    floor = ml.truncation_floor(loaded, qpoints, simulated.frequencies, truths.starts[case.truth])
    row = {
        "case": case.name,
        "material": case.material,
        "truth": truth.name,
        "truth_description": truth.description,
        "truth_in_theta_space": truth.theta is not None,
        "note": case.note,
        "seed": seed,
        "peak_counts": instrument.peak_counts,
        "background_fraction": instrument.background,
        "temperature_K": instrument.temperature_K,
        "qpoints": len(qpoints),
        "energy_bins": len(simulated.spectrum.energy),
        "window_meV": instrument.energy_max_meV,
        "missing_fraction": simulated.info["missing_fraction"],
        "truth_highest_meV": float(simulated.frequencies.max()),
        "simulate_s": simulated.info["seconds"],
        "rms_median_meV": median_rms,
        "rms_floor_meV": floor.rms,
        "model": model,
    }
    for label in ("ml", "refine"):  # a mode not run stays None
        row |= {f"rms_{label}_meV": None, f"within_3sigma_{label}": None, f"{label}_s": None}
    for refine in modes:
        label = "refine" if refine else "ml"
        result, seconds, tail = invert(case_file, model, folder / f"{label}.json", refine)
        row[f"rms_{label}_meV"] = result_rms(result, simulated)
        row[f"within_3sigma_{label}"] = (
            within_3_sigma(result, truth, fcspace.names) if result else None
        )
        row[f"{label}_s"] = seconds
        if result is None:
            row[f"{label}_error"] = tail
        else:
            row[f"{label}_coverage"] = result.get("coverage")
            row[f"{label}_notes"] = result.get("notes", [])
    return row


def _number(value: float | None, digits: int = 2) -> str:
    return "—" if value is None else f"{value:.{digits}f}"


def table(rows: list[dict]) -> list[str]:
    """Markdown table lines of the rows."""
    lines = [
        "| case | P | B | missing | median | ML | ML+refine | floor | 3σ ML | 3σ refine "
        "| s ML | s refine |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        lines.append(
            f"| {r['case']} | {r['peak_counts']:g} | {100 * r['background_fraction']:.0f} % "
            f"| {100 * r['missing_fraction']:.0f} % | {_number(r['rms_median_meV'])} "
            f"| {_number(r['rms_ml_meV'])} | {_number(r['rms_refine_meV'])} "
            f"| {_number(r['rms_floor_meV'])} | {_number(r['within_3sigma_ml'])} "
            f"| {_number(r['within_3sigma_refine'])} | {_number(r['ml_s'], 0)} "
            f"| {_number(r['refine_s'], 0)} |"
        )
    return lines


def summary(rows: list[dict], checks: dict, info: dict) -> str:
    truths = {}
    for r in rows:
        truths.setdefault(f"{r['material']}/{r['truth']}", r["truth_description"])
    out = [
        "# Realistic inversion bench (Euphonic spectra, no inverse crime)",
        "",
        f"Made by `benchmarks/realistic_inversion.py` (seed {info['seed']}, fcinvert commit "
        f"{info['commit']}, {info['wall_s']:.0f} s wall). Dispersion RMS in meV over all "
        "branches on each case's q-points against the truth's Euphonic dispersion: ensemble "
        "median, `invert` (ML alone), `invert --refine`, and the truncation floor of the "
        "model's shells. 3σ: fraction of parameters within 3σ of the truth (θ-space truths). "
        "P: counts at the peak level; B: flat background, fraction of P.",
        "",
        *table(rows),
        "",
        "Truths:",
        "",
        *[f"- `{key}`: {text}" for key, text in truths.items()],
        "",
        "Sanity check, Euphonic against `dynamics_basis(...).frequencies` on the path (meV, "
        "largest difference; Euphonic's frequencies put in phonopy's unit factor, Γ's zero "
        "modes left out):",
        "",
        *[
            f"- {name}: {c['same_unit_meV']:.1e} (raw {c['raw_meV']:.1e}; unit factors differ "
            f"by {c['unit_ratio_minus_1']:.2e})"
            for name, c in checks.items()
        ],
        "",
    ]
    failed = [r["case"] for r in rows if r.get("ml_error") or r.get("refine_error")]
    if failed:
        out += [f"Failed commands: {', '.join(failed)} (see results.json).", ""]
    return "\n".join(out)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help=f"only {', '.join(QUICK)}")
    parser.add_argument("--seed", type=int, default=0, help="seed of noise, gaps and edge truths")
    parser.add_argument("--cases", help="comma-separated case names (default: all)")
    parser.add_argument("--work", type=Path, help="folder for case files (default: a temp dir)")
    parser.add_argument("--out", type=Path, help="report folder")
    parser.add_argument("--figure-case", default="ge-real-gaps30", help="case to draw")
    parser.add_argument(
        "--model", action="append", default=[], help="MATERIAL=BUNDLE: another model to invert with"
    )
    parser.add_argument("--ml-only", action="store_true", help="skip the refinement")
    args = parser.parse_args()
    models = {"ge": "ge", "nb": "nb"}
    for item in args.model:
        material, _, bundle = item.partition("=")
        if material not in models or not bundle:
            parser.error(f"--model {item}: expected ge=BUNDLE or nb=BUNDLE")
        models[material] = bundle
    modes = (False,) if args.ml_only else (False, True)
    started = time.perf_counter()
    names = QUICK if args.quick else [c.name for c in CASES]
    if args.cases:
        names = args.cases.split(",")
    unknown = set(names) - {c.name for c in CASES}
    if unknown:
        parser.error(f"unknown cases: {', '.join(sorted(unknown))}")
    cases = [c for c in CASES if c.name in names]
    work = args.work or Path(tempfile.mkdtemp(prefix="realistic-inversion-"))
    out = args.out or (
        work / "report" if args.quick or args.cases else ROOT / "reports" / "realistic_inversion"
    )
    out.mkdir(parents=True, exist_ok=True)
    print(f"work folder {work}; report to {out}", flush=True)

    truth_sets: dict[str, TruthSet] = {}
    checks: dict[str, dict] = {}
    for material in sorted({c.material for c in cases}):
        keys = {c.truth for c in cases if c.material == material}
        truth_sets[material] = build_truths(material, keys, work, args.seed)
        path = load_material(material).path.qpoints
        for truth in truth_sets[material].truths.values():
            if truth.theta is not None:
                checks[f"{material}/{truth.name}"] = ml.euphonic_agreement(truth, path)
    for name, check in checks.items():
        print(f"Euphonic vs fcinvert frequencies, {name}: {check['same_unit_meV']:.1e} meV")

    rows = []
    for i, case in enumerate(cases):
        figure = out / f"{case.name}.png" if case.name == args.figure_case else None
        model = models[case.material]
        row = run_case(case, truth_sets[case.material], work, args.seed + i, figure, model, modes)
        rows.append(row)
        print(
            f"{case.name:16s} median {_number(row['rms_median_meV'])}  ML "
            f"{_number(row['rms_ml_meV'])}  ML+refine {_number(row['rms_refine_meV'])}  floor "
            f"{_number(row['rms_floor_meV'])}  3σ {_number(row['within_3sigma_refine'])}  "
            f"({_number(row['ml_s'], 0)} + {_number(row['refine_s'], 0)} s)",
            flush=True,
        )
    info = {
        "seed": args.seed,
        "quick": args.quick,
        "commit": _commit(),
        "wall_s": time.perf_counter() - started,
        "work": str(work),
        "threads": os.environ.get("OMP_NUM_THREADS"),
    }
    content = {"format": "fcinvert-realistic-inversion", "version": 1, **info}
    content |= {"euphonic_checks": checks, "cases": rows}
    (out / "results.json").write_text(json.dumps(content, indent=1, ensure_ascii=False) + "\n")
    (out / "summary.md").write_text(summary(rows, checks, info))
    print()
    print("\n".join(table(rows)))
    print(f"\nwrote {out / 'results.json'} and {out / 'summary.md'} ({info['wall_s']:.0f} s)")


def _commit() -> str:
    done = subprocess.run(
        ["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True, cwd=ROOT
    )
    return done.stdout.strip() or "unknown"


if __name__ == "__main__":
    main()
