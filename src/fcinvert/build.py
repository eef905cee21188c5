"""A structure file (and a measurement) → a material with a trained inverter, in resumable stages.

``build_material`` runs, for a material of the user library, in order:

1. **material**: ``material.json`` (``material init``: shells chosen by the rule of
   ``fcinvert.labels.shells``; energy bins, resolution and temperature from the measurement);
2. **labels**: every installed offline force field (the others skipped), the shell rule, then
   ``ensemble.json`` with a reference;
3. **sensitivity**: ``build/sensitivity.json``, the parameters ranked by dispersion variance;
4. **dataset**: ``build/dataset.h5``, measurement-like spectra (``dataset --realistic``);
5. **model**: ``models/vae/`` (VAE + regressor, ``train --model vae``), which ``invert --model
   NAME`` finds;
6. **report**: ``build/report.json``, the model's held-out accuracy and, with a measurement,
   that measurement inverted with and without the model.

A stage whose output exists and is complete is skipped (each output is written atomically, so
a killed run leaves a complete file or none; training resumes from its own checkpoints), so
re-running the same command after a kill finishes the job. Everything a stage needs is checked
before anything is written: a structure that is not a crystal, a measurement that does not fit
the crystal (another material, non-uniform energy bins, a lattice parameter that differs, or
q-points off the material's path) fails in one line with no folder left behind.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

from fcinvert.data.spectrum_file import MeasurementGrid, Spectrum, measurement_grid, read_spectrum
from fcinvert.errors import FcinvertError
from fcinvert.iohelpers import atomic_write_text
from fcinvert.labels.ensemble import (
    ENSEMBLE_NAME,
    Labeller,
    LabelResult,
    run_members,
    summarise,
)
from fcinvert.labels.members import Member, select_members
from fcinvert.labels.shells import settle_shells
from fcinvert.physics.material import (
    CONFIG_NAME,
    Material,
    cubic_lattice_parameter,
    init_material,
    load_material,
    read_structure,
    sample_path,
    standard_primitive,
    user_library,
)
from fcinvert.physics.reciprocal import reciprocal_basis

BUILD_DIR = "build"
SENSITIVITY_NAME = "sensitivity.json"
DATASET_NAME = "dataset.h5"
REPORT_NAME = "report.json"
MODEL_DIR = Path("models") / "vae"
STAGES = ("material", "labels", "sensitivity", "dataset", "model", "report")
#: a measurement's lattice parameter may differ from the structure's by this fraction
LATTICE_TOLERANCE = 0.02
#: at least this share of a measurement's measured pixels must lie on the material's path
ON_PATH_SHARE = 0.5


@dataclass(frozen=True)
class BuildSettings:
    """How large the build is. ``fast()``: a small configuration for tests and trials."""

    members: str = "all-offline"
    shells: int | None = None
    path_points: int = 200
    n_train: int = 8_000
    n_test: int = 500
    k: int = 8
    vae_channels: tuple[int, ...] = (8, 16, 32, 64)
    epochs: int = 5
    regressor_epochs: int = 300
    patience: int = 15
    seed: int = 0
    threads: int = 1

    @classmethod
    def fast(cls, **changes) -> BuildSettings:
        """Minutes instead of half an hour: 60 q-points, 600 spectra, a tiny VAE, 2 epochs."""
        small = dict(
            path_points=60,
            n_train=600,
            n_test=60,
            vae_channels=(4, 8, 16, 32),
            epochs=2,
            regressor_epochs=20,
            patience=5,
        )
        return cls(**{**small, **changes})


@dataclass
class StageLog:
    """What each stage did: 'done' (ran now) or 'skipped' (its output was complete), seconds."""

    stages: dict[str, dict] = field(default_factory=dict)

    def record(self, stage: str, status: str, seconds: float, **facts) -> None:
        self.stages[stage] = {"status": status, "seconds": round(seconds, 1), **facts}


#: callbacks of a build: a line of text; (member) a label starts; (result) it finished;
#: (count) dataset spectra written
Say = Callable[[str], None]


@dataclass
class Progress:
    say: Say = print
    label_start: Callable[[Member], None] | None = None
    label_done: Callable[[LabelResult], None] | None = None
    spectra: Callable[[int], None] | None = None
    training_bars: bool = True


def material_folder(name: str, out: Path | None = None) -> Path:
    """Where the material ``name`` is built: ``out`` or the user library."""
    return Path(out) if out is not None else user_library() / name


def preflight(structure: Path, name: str, data: Path | None, path_points: int) -> Spectrum | None:
    """Check the structure and the measurement against each other before anything is written:
    a 3-D crystal; the measurement (when given) of this material, on uniform energy bins, of
    the same lattice parameter (when the file states one), most of its pixels on the path."""
    standard, _ = standard_primitive(read_structure(structure))
    if data is None:
        return None
    spectrum = read_spectrum(data)
    if spectrum.material and spectrum.material != name:
        raise FcinvertError(
            f"--data {data}: a spectrum of '{spectrum.material}', not of '{name}' (name the "
            "material as the file does, or change the file's 'material' attribute)"
        )
    measurement_grid(spectrum, f"--data {data}")
    ours = cubic_lattice_parameter(standard)
    if spectrum.lattice_parameter_A is not None and ours is not None:
        theirs = spectrum.lattice_parameter_A
        if abs(theirs - ours) > LATTICE_TOLERANCE * ours:
            raise FcinvertError(
                f"--data {data}: measured on a lattice parameter of {theirs:.4f} Å, but "
                f"{structure} has {ours:.4f} Å (more than {LATTICE_TOLERANCE:.0%} apart)"
            )
    share = on_path_share(spectrum, standard, path_points)
    if share < ON_PATH_SHARE:
        raise FcinvertError(
            f"--data {data}: only {share:.0%} of its measured pixels lie on the material's "
            "q-path (reduced coordinates of the standard primitive cell); fold the data onto "
            "the path, or invert it with 'fcinvert invert --material' instead"
        )
    return spectrum


def on_path_share(spectrum: Spectrum, standard, path_points: int) -> float:
    """Share of the spectrum's measured pixels whose q lies on the path of ``path_points``
    points for the standard primitive cell ``standard`` (within half a path step)."""
    from fcinvert.inversion.resample import default_tolerance

    path = sample_path(standard, path_points)
    reciprocal = reciprocal_basis(standard.cell[:])
    tolerance = default_tolerance(path.qpoints, reciprocal)
    cartesian = np.asarray(spectrum.qpoints) @ reciprocal
    model = path.qpoints @ reciprocal
    gap = np.min(np.linalg.norm(cartesian[:, None, :] - model[None, :, :], axis=-1), axis=1)
    measured = np.isfinite(spectrum.intensity).sum(axis=1)
    return float(measured[gap <= tolerance].sum() / max(measured.sum(), 1))


def build_material(
    structure: Path,
    name: str,
    data: Path | None,
    settings: BuildSettings,
    out: Path | None = None,
    progress: Progress | None = None,
) -> tuple[Path, StageLog]:
    """Run the stages (module docstring) for material ``name``; returns its folder and what
    each stage did. ``data``: a measurement (spectrum file) or None."""
    progress = progress or Progress()
    folder = material_folder(name, out)
    exists = (folder / CONFIG_NAME).is_file()
    spectrum = preflight(structure, name, data, settings.path_points)
    members(settings.members, set(read_structure(structure).get_chemical_symbols()))
    log = StageLog()
    say = progress.say

    start = time.perf_counter()
    if exists:
        log.record("material", "skipped", 0.0)
        say(f"[1/6] material: {folder} exists, kept")
    else:
        grid = measurement_grid(spectrum, f"--data {data}") if spectrum is not None else None
        _init(structure, name, folder, settings, grid)
        log.record("material", "done", time.perf_counter() - start)
        say(f"[1/6] material: wrote {folder}")
    material = load_material(folder)

    _stage_labels(material, settings, progress, log)
    material = load_material(folder)
    _stage_sensitivity(material, settings, say, log)
    dataset = _stage_dataset(material, settings, progress, log)
    _stage_model(material, dataset, settings, progress, log)
    _stage_report(material, dataset, data, spectrum, settings, say, log)
    return folder, log


def _init(
    structure: Path,
    name: str,
    folder: Path,
    settings: BuildSettings,
    grid: MeasurementGrid | None,
) -> None:
    init_material(
        structure,
        name,
        out=folder,
        shells=settings.shells,
        path_points=settings.path_points,
        energy=grid.energy if grid else None,
        resolution=grid.resolution if grid else None,
        temperature=grid.temperature_K if grid and grid.temperature_K is not None else 5.0,
    )


def members(spec: str, elements: set[str]) -> tuple[list[Member], list[Member]]:
    """(members to run, members skipped as not installed) for the crystal's ``elements``; none
    to run is an error (checked before anything is written)."""
    chosen, skipped = select_members(spec, elements)
    unfit = [m for m in chosen if m.elements is not None and not elements <= m.elements]
    if unfit:
        limits = "; ".join(f"{m.name}: only {'/'.join(sorted(m.elements))}" for m in unfit)
        raise FcinvertError(
            f"--members: no installed force field can label {'/'.join(sorted(elements))} with "
            f"these ({limits})"
        )
    if not chosen:
        raise FcinvertError(
            f"--members {spec}: no installed force field can label {'/'.join(sorted(elements))} "
            "(pip install 'fcinvert[forcefields]', or give --members)"
        )
    return chosen, skipped


def labels_complete(material: Material) -> bool:
    """Whether the material has an ensemble summary with a reference and settled shells."""
    try:
        summary = json.loads((material.folder / ENSEMBLE_NAME).read_text())
    except (OSError, ValueError):
        return False
    return (
        "reference" in summary
        and material.reference is not None
        and not material.settings.choose_shells
        and material.settings.energy is not None
    )


def _stage_labels(
    material: Material, settings: BuildSettings, progress: Progress, log: StageLog
) -> None:
    say = progress.say
    start = time.perf_counter()
    if labels_complete(material):
        log.record("labels", "skipped", 0.0)
        say("[2/6] labels: ensemble.json complete, kept")
        return
    chosen, skipped = members(settings.members, set(material.atoms.get_chemical_symbols()))
    for member in skipped:
        say(f"  skipped {member.name}: package '{member.package}' not installed")
    say(
        f"[2/6] labels: {len(chosen)} force field(s) on a {material.settings.shells}-shell FC space"
    )
    labeller = Labeller(material)
    results = run_members(
        labeller, chosen, on_start=progress.label_start, on_done=progress.label_done
    )
    failures = {r.name: r.message for r in results if r.status == "failed"}
    labeller, choice = settle_shells(labeller)
    if choice is not None:
        changes = " ".join(f"{x:.2f}" for x in choice.ensemble)
        say(
            f"  shells: {choice.chosen} (ensemble change per added shell {changes} meV; kept "
            f"while above {choice.threshold_meV} meV)"
        )
    summary = summarise(labeller, failures)
    if "reference" not in summary:
        raise FcinvertError(
            f"{material.folder}: no force field gave a stable label ("
            + "; ".join(f"{r.name}: {r.status} {r.message}".strip() for r in results)
            + ")"
        )
    stable = summary["reference"]["members"]
    log.record(
        "labels",
        "done",
        time.perf_counter() - start,
        stable=stable,
        skipped=[m.name for m in skipped],
        shells=choice.to_json() if choice is not None else None,
    )
    say(f"  reference: median over {len(stable)} stable member(s): {', '.join(stable)}")


def _stage_sensitivity(
    material: Material, settings: BuildSettings, say: Say, log: StageLog
) -> None:
    from fcinvert.labels.sensitivity import compute_sensitivity
    from fcinvert.physics.fcspace import build_fcspace

    target = material.folder / BUILD_DIR / SENSITIVITY_NAME
    if target.is_file():
        log.record("sensitivity", "skipped", 0.0)
        say("[3/6] sensitivity: kept")
        return
    start = time.perf_counter()
    result = compute_sensitivity(material, build_fcspace(material))
    k = min(settings.k, len(result.names))
    selected = result.select(k)
    content = {
        "k": k,
        "selected": [result.names[i] for i in selected],
        "kept_variance_share": float(result.cumulative[k - 1]),
        "ranking": [
            {"parameter": result.names[i], "share": float(result.share[i])} for i in result.order
        ],
        "members": list(result.members),
    }
    atomic_write_text(target, json.dumps(content, indent=2) + "\n")
    log.record("sensitivity", "done", time.perf_counter() - start, k=k)
    say(
        f"[3/6] sensitivity: top {k} of {len(result.names)} parameters keep "
        f"{content['kept_variance_share']:.1%} of the dispersion variance"
    )


def _selected_k(material: Material) -> int:
    content = json.loads((material.folder / BUILD_DIR / SENSITIVITY_NAME).read_text())
    return int(content["k"])


def _stage_dataset(
    material: Material, settings: BuildSettings, progress: Progress, log: StageLog
) -> Path:
    from fcinvert.data.dataset import generate_dataset, prepare_generator, read_dataset
    from fcinvert.data.realistic import prepare_realistic

    target = material.folder / BUILD_DIR / DATASET_NAME
    if target.is_file():
        try:
            stored = read_dataset(target)
            complete = stored.sizes == {"train": settings.n_train, "test": settings.n_test}
        except FcinvertError:
            complete = False
        if complete:
            log.record("dataset", "skipped", 0.0)
            progress.say("[4/6] dataset: kept")
            return target
    start = time.perf_counter()
    k = _selected_k(material)
    progress.say(
        f"[4/6] dataset: {settings.n_train} + {settings.n_test} measurement-like spectra "
        f"(top {k} parameters sampled)"
    )
    generator = prepare_realistic(material, prepare_generator(material, settings.seed, k))
    summary = generate_dataset(
        material,
        target,
        settings.n_train,
        settings.n_test,
        settings.seed,
        k,
        workers=0,
        progress=progress.spectra,
        generator=generator,
    )
    log.record(
        "dataset", "done", time.perf_counter() - start, rejection_rate=summary.rejection_rate
    )
    return target


def _stage_model(
    material: Material,
    dataset: Path,
    settings: BuildSettings,
    progress: Progress,
    log: StageLog,
) -> None:
    import torch

    from fcinvert.models.bundle import CONFIG_NAME as BUNDLE_CONFIG
    from fcinvert.models.training import TrainConfig, train_model
    from fcinvert.models.vae import VAEConfig

    out = material.folder / MODEL_DIR
    if (out / BUNDLE_CONFIG).is_file():
        log.record("model", "skipped", 0.0)
        progress.say(f"[5/6] model: {out} complete, kept")
        return
    start = time.perf_counter()
    progress.say(
        f"[5/6] model: VAE (channels {'-'.join(map(str, settings.vae_channels))}, "
        f"{settings.epochs} epochs) then the regressor (resumes from its checkpoints)"
    )
    torch.set_num_threads(settings.threads)
    config = TrainConfig(
        architecture="vae",
        epochs=settings.epochs,
        regressor_epochs=settings.regressor_epochs,
        patience=settings.patience,
        seed=settings.seed,
        checkpoint_every=100,
        vae=VAEConfig(channels=list(settings.vae_channels)),
    )
    result = train_model(dataset, out, config, material.name, progress=progress.training_bars)
    stages = {k: {"epochs": v["epochs"], "wall_s": v["wall_s"]} for k, v in result.stages.items()}
    log.record("model", "done", time.perf_counter() - start, stages=stages)


def _stage_report(
    material: Material,
    dataset: Path,
    data: Path | None,
    spectrum: Spectrum | None,
    settings: BuildSettings,
    say: Say,
    log: StageLog,
) -> None:
    from fcinvert.analysis.held_out import held_out_scores
    from fcinvert.data.dataset import read_dataset
    from fcinvert.models.bundle import load_bundle

    target = material.folder / BUILD_DIR / REPORT_NAME
    if target.is_file():
        log.record("report", "skipped", 0.0)
        say(f"[6/6] report: {target} kept")
        return
    start = time.perf_counter()
    bundle = load_bundle(material.folder / MODEL_DIR)
    scores = held_out_scores(bundle, read_dataset(dataset), seed=settings.seed)
    report = {
        "material": material.name,
        "settings": asdict(settings),
        "held_out": scores,
        "measurement": None,
    }
    if spectrum is not None:
        report["measurement"] = {"file": str(data), **measurement_inversions(material, spectrum)}
    log.record("report", "done", time.perf_counter() - start)
    report["stages"] = log.stages
    atomic_write_text(target, json.dumps(report, indent=2) + "\n")
    rms = scores["dispersion_rms_meV"]
    say(
        f"[6/6] report: held-out dispersion RMS of the ML alone {rms['median']:.2f} meV "
        f"(median), {rms['p90']:.2f} (90 %); wrote {target}"
    )


def measurement_inversions(material: Material, spectrum: Spectrum) -> dict:
    """The measurement inverted without a model and with the material's model (both refined):
    the fit quality of each and the RMS (meV) between their dispersions."""
    from fcinvert.inversion.pipeline import fit_quality, infer
    from fcinvert.models.bundle import load_bundle
    from fcinvert.physics.fcspace import build_fcspace

    fcspace = build_fcspace(material)
    bundle = load_bundle(material.folder / MODEL_DIR)
    alone = infer(spectrum, material, fcspace, None, refine=True)
    with_model = infer(spectrum, material, fcspace, bundle, refine=True)
    difference = np.sqrt(np.mean((alone.frequencies - with_model.frequencies) ** 2))
    return {
        "fit_quality_without_model": float(fit_quality(alone.search)),
        "fit_quality_with_model": float(fit_quality(with_model.search)),
        "dispersion_rms_between_meV": float(difference),
        "notes_with_model": with_model.notes,
    }
