"""Do fcinvert's intervals mean what they say? Coverage on measurement-like spectra (issue 11).

Spectra are made by Euphonic (``measurement_like.py``: independent of fcinvert's forward
model) from truths spread over and beyond the training domain — the ensemble median moved by
Gaussian steps of 0.25–1 prior widths in every parameter (dynamically stable draws whose
highest mode is inside 0.5–1.1 × the window), and force-field members — with random
instruments: peak counts 25–1000 (log-uniform), background 2–10 %, temperature 5–300 K, and
gaps (none; 30 % of pixels; one ToF orientation). Each is inverted as ``fcinvert invert
--refine`` does (``infer``; with the shipped model unless ``--no-model``). Printed and written
to ``reports/calibration/``:

- for the parameters: the fraction of truths inside the reported 90 % interval, the median
  width, and a reliability diagram (nominal central level → observed fraction) — for the
  reported values and for the ML estimate alone;
- for the dispersion: the fraction of truth points inside the 5–95 % band, the median band
  width on full and gapped data;
- per spectrum: the dispersion RMS (meV) of the reported answer.

Target (issue 11): 85–95 % coverage of the 90 % intervals, parameters and dispersion points;
median band ≤ 2 meV wide on full data.

    .venv/bin/python benchmarks/calibration.py [--spectra 200] [--seed 0] [--no-model]
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

import numpy as np

LEVELS = np.array([0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 0.95, 0.99])
GAP_KINDS = ("none", "pixels", "tof")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--spectra", type=int, default=200)
    parser.add_argument("--materials", default="ge,nb")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--no-model", action="store_true", help="refine from the ensemble only")
    parser.add_argument("--out", type=Path, default=Path("reports/calibration"))
    parser.add_argument("--keep", type=Path, help="also write each spectrum and its truth θ here")
    args = parser.parse_args()
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    sys.path.insert(0, str(Path(__file__).parent))
    from measurement_like import Instrument, simulate, write_simulated
    from scipy.stats import norm

    from fcinvert.errors import FcinvertError
    from fcinvert.inversion.pipeline import infer
    from fcinvert.inversion.prior import load_prior_ensemble
    from fcinvert.models.bundle import load_bundle
    from fcinvert.physics.dynamics import StabilityCheck, dynamics_basis
    from fcinvert.physics.fcspace import build_fcspace
    from fcinvert.physics.material import load_material

    rng = np.random.default_rng(args.seed)
    materials = {}
    for name in args.materials.split(","):
        material = load_material(name)
        fcspace = build_fcspace(material)
        bundle = None
        if not args.no_model:
            try:
                bundle = load_bundle(name)
            except FcinvertError:
                bundle = None
        materials[name] = (
            material,
            fcspace,
            load_prior_ensemble(material, fcspace),
            StabilityCheck.build(fcspace, material.path.qpoints, divisions=4),
            dynamics_basis(fcspace, material.path.qpoints),
            bundle,
        )
    records = []
    started = time.perf_counter()
    names = list(materials)
    for index in range(args.spectra):
        name = names[index % len(names)]
        material, fcspace, ensemble, check, path_basis, bundle = materials[name]
        top = Instrument.for_material(name).energy_max_meV
        truth, kind = draw_truth(ensemble, check, path_basis, top, rng)
        gaps = GAP_KINDS[rng.choice(len(GAP_KINDS), p=[0.5, 0.25, 0.25])]
        instrument = Instrument.for_material(
            name,
            peak_counts=float(np.exp(rng.uniform(np.log(25), np.log(1000)))),
            background=float(rng.uniform(0.02, 0.10)),
            temperature_K=float(rng.choice([5.0, 5.0, 100.0, 300.0])),
            gaps=gap_settings(gaps, name, rng),
        )
        try:
            simulated = simulate(name, truth, instrument, seed=int(rng.integers(2**31)))
            if args.keep:
                args.keep.mkdir(parents=True, exist_ok=True)
                write_simulated(args.keep / f"{index:04d}-{name}.h5", simulated)
                np.save(args.keep / f"{index:04d}-{name}-truth.npy", truth)
            inference = infer(simulated.spectrum, material, fcspace, bundle, seed=index)
        except FcinvertError as error:
            print(f"{index:4d} {name} skipped: {error}", flush=True)
            continue
        basis = dynamics_basis(fcspace, simulated.spectrum.qpoints)
        frequencies = basis.frequencies(truth)
        record = measure(inference, truth, frequencies, kind, gaps, instrument, name)
        median = basis.frequencies(ensemble.reference) - frequencies
        record["median_rms_meV"] = float(np.sqrt(np.mean(median**2)))
        record["highest_mode_meV"] = float(frequencies.max())
        records.append(record)
        print(
            f"{index:4d} {name} {kind:8s} {gaps:6s} peak {instrument.peak_counts:6.0f} "
            f"T {instrument.temperature_K:4.0f} K top {record['highest_mode_meV']:4.1f} meV: "
            f"RMS {record['rms_meV']:.3f} meV (median {record['median_rms_meV']:.2f}), "
            f"in 90 %: θ {record['theta_inside_90']:.2f}, band {record['band_inside']:.2f} "
            f"({time.perf_counter() - started:.0f} s)",
            flush=True,
        )
    summary = summarise(records, norm)
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "results.json").write_text(
        json.dumps({"summary": summary, "spectra": records}, indent=1) + "\n"
    )
    figure(summary, args.out / "reliability.png")
    page(summary, args, args.out / "index.html")
    print(json.dumps(summary["headline"], indent=1))


def draw_truth(ensemble, check, path_basis, top, rng: np.random.Generator):
    """A stable truth: a member (1 in 5) or the median moved by 0.25–1 prior widths, whose
    highest mode lies between half and 1.1 × the window's top ``top`` (meV): an experimenter
    chooses Ei to see the phonons."""
    if rng.random() < 0.2:
        member = int(rng.integers(len(ensemble.members)))
        return ensemble.members[member].copy(), "member"
    for _ in range(500):
        step = rng.uniform(0.25, 1.0)
        noise = rng.normal(size=len(ensemble.reference))
        theta = ensemble.reference + step * ensemble.prior.width * noise
        if not check.is_stable(theta[None])[0]:
            continue
        if 0.5 * top <= path_basis.frequencies(theta).max() <= 1.1 * top:
            return theta, "draw"
    return ensemble.reference.copy(), "median"


def gap_settings(kind: str, material: str, rng: np.random.Generator):
    from measurement_like import Gaps

    if kind == "pixels":
        return Gaps(pixels=0.3)
    if kind == "tof":
        return Gaps(tof_ei=60.0 if material == "ge" else 50.0, tof_psi=float(rng.uniform(0, 90)))
    return Gaps()


def measure(inference, truth, frequencies, kind, gaps, instrument, name) -> dict:
    """Per-spectrum coverage numbers (z of every parameter, band hits, widths)."""
    from fcinvert.inversion.pipeline import fit_quality, ml_spread

    z = (inference.theta - truth) / inference.std
    inside_band = (frequencies >= inference.band_low) & (frequencies <= inference.band_high)
    ml_z = None
    if inference.ml is not None:
        ml = inference.ml
        selected = np.flatnonzero(ml.inferred)
        spread = ml_spread(ml)[selected]
        ml_z = ((ml.theta[selected] - truth[selected]) / spread).tolist()
    return {
        "material": name,
        "truth": kind,
        "gaps": gaps,
        "peak_counts": instrument.peak_counts,
        "background": instrument.background,
        "temperature_K": instrument.temperature_K,
        "rms_meV": float(np.sqrt(np.mean((inference.frequencies - frequencies) ** 2))),
        "z": z.tolist(),
        "determined": inference.determined.tolist(),
        "ml_z": ml_z,
        "theta_inside_90": float(np.mean(np.abs(z) <= 1.6448536)),
        "band_inside": float(np.mean(inside_band)),
        "band_width_median_meV": float(np.median(inference.band_high - inference.band_low)),
        "ambiguous": bool(inference.search.other_dispersions) if inference.search else None,
        "non_unique": bool(inference.search.same_dispersion) if inference.search else None,
        "fit_quality": fit_quality(inference.search) if inference.search else None,
        "refine_seconds": inference.search.seconds if inference.search else None,
    }


def summarise(records: list[dict], norm) -> dict:
    """Coverage per nominal level, for the reported θ and the ML θ; band coverage; widths."""
    z = np.concatenate([np.abs(r["z"]) for r in records]) if records else np.zeros(0)
    ml = [r["ml_z"] for r in records if r["ml_z"] is not None]
    ml_z = np.abs(np.concatenate(ml)) if ml else np.zeros(0)
    bounds = norm.ppf(0.5 + LEVELS / 2)
    full = [r for r in records if r["gaps"] == "none"]
    headline = {
        "spectra": len(records),
        "theta_coverage_90": float(np.mean(z <= bounds[8])) if z.size else None,
        "ml_theta_coverage_90": float(np.mean(ml_z <= bounds[8])) if ml_z.size else None,
        "band_coverage_90": float(np.mean([r["band_inside"] for r in records]))
        if records
        else None,
        "band_width_median_full_meV": float(np.median([r["band_width_median_meV"] for r in full]))
        if full
        else None,
        "rms_median_meV": float(np.median([r["rms_meV"] for r in records])) if records else None,
        "rms_median_full_meV": float(np.median([r["rms_meV"] for r in full])) if full else None,
    }
    by_material = {}
    for name in sorted({r["material"] for r in records}):
        mine = [r for r in records if r["material"] == name]
        mz = np.concatenate([np.abs(r["z"]) for r in mine])
        by_material[name] = {
            "spectra": len(mine),
            "theta_coverage_90": float(np.mean(mz <= bounds[8])),
            "band_coverage_90": float(np.mean([r["band_inside"] for r in mine])),
            "rms_median_meV": float(np.median([r["rms_meV"] for r in mine])),
        }
    return {
        "headline": headline,
        "by_material": by_material,
        "levels": LEVELS.tolist(),
        "theta_observed": [float(np.mean(z <= b)) for b in bounds] if z.size else [],
        "ml_observed": [float(np.mean(ml_z <= b)) for b in bounds] if ml_z.size else [],
    }


def figure(summary: dict, out: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    levels = np.array(summary["levels"])
    fig, axis = plt.subplots(figsize=(5, 5))
    axis.plot([0, 1], [0, 1], color="0.6", lw=1, label="perfect calibration")
    axis.fill_between([0, 1], [-0.05, 0.95], [0.05, 1.05], color="0.9", label="±5 %")
    if summary["theta_observed"]:
        axis.plot(levels, summary["theta_observed"], "o-", label="reported θ (refined)")
    if summary["ml_observed"]:
        axis.plot(levels, summary["ml_observed"], "s--", label="ML estimate alone")
    band = summary["headline"]["band_coverage_90"]
    if band is not None:
        axis.plot([0.9], [band], "D", color="tab:red", label="dispersion 5–95 % band")
    axis.set_xlabel("nominal central interval")
    axis.set_ylabel("fraction of truths inside")
    axis.set_xlim(0, 1)
    axis.set_ylim(0, 1.02)
    axis.set_title(f"Calibration on {summary['headline']['spectra']} Euphonic spectra")
    axis.legend(loc="upper left", fontsize=8)
    fig.tight_layout()
    fig.savefig(out, dpi=150)
    plt.close(fig)


def page(summary: dict, args, out: Path) -> None:
    rows = "".join(
        f"<tr><td>{key}</td><td>{value if not isinstance(value, float) else f'{value:.3f}'}"
        "</td></tr>"
        for key, value in summary["headline"].items()
    )
    materials = "".join(
        f"<tr><td>{name}</td><td>{v['spectra']}</td><td>{v['theta_coverage_90']:.3f}</td>"
        f"<td>{v['band_coverage_90']:.3f}</td><td>{v['rms_median_meV']:.3f}</td></tr>"
        for name, v in summary["by_material"].items()
    )
    out.write_text(
        "<!doctype html><meta charset='utf-8'><title>fcinvert calibration</title>"
        "<style>body{font-family:sans-serif;max-width:760px;margin:2em auto}"
        "td,th{padding:2px 10px;text-align:right}td:first-child{text-align:left}</style>"
        "<h1>Do the intervals mean what they say?</h1>"
        f"<p>{summary['headline']['spectra']} measurement-like spectra made by Euphonic "
        "(benchmarks/measurement_like.py), truths spread over and beyond the training domain, "
        "peak counts 25–1000, background 2–10 %, 5–300 K, gaps none / 30 % pixels / one ToF "
        f"orientation; inverted by <code>infer</code> (seed {args.seed}, "
        f"{'no model' if args.no_model else 'shipped model'}). Target: 85–95 % of truths "
        "inside the 90 % intervals.</p>"
        f"<table><tr><th>figure</th><th>value</th></tr>{rows}</table>"
        "<h2>Per material</h2><table><tr><th>material</th><th>spectra</th>"
        "<th>θ in 90 %</th><th>band coverage</th><th>median RMS (meV)</th></tr>"
        f"{materials}</table>"
        "<h2>Reliability</h2><img src='reliability.png' width='480' alt='reliability diagram'>"
    )


if __name__ == "__main__":
    main()
