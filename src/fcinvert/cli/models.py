"""``fcinvert train`` (VAE + regressor, or ResNet-18) and ``fcinvert invert`` (spectrum → FCs).

torch and Lightning are imported inside the commands, so other commands start fast.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Literal

import typer
from rich.console import Console
from rich.table import Table

from fcinvert import validate
from fcinvert.cli.map_options import CmapOption, NormOption, VmaxOption, VminOption, map_scale

console = Console(stderr=True)
#: what ``train --accelerator`` accepts (Lightning's names for one device)
ACCELERATORS = ("auto", "cpu", "gpu", "cuda", "mps")
#: the ``train`` option behind each settings field whose name differs
TRAIN_OPTIONS = {"learning_rate": "--lr", "width": "--resnet-width", "channels": "--vae-channels"}


def train(
    material: Annotated[str, typer.Argument(help="material name (must match the dataset's)")],
    data: Annotated[Path, typer.Option(help="dataset file (HDF5) from Stage I")],
    out: Annotated[Path, typer.Option(help="bundle folder to write (re-run to resume)")],
    model: Annotated[Literal["vae", "resnet"], typer.Option(help="architecture")] = "vae",
    epochs: Annotated[int, typer.Option(help="VAE / ResNet epochs (at most)")] = 100,
    regressor_epochs: Annotated[int, typer.Option(help="regressor epochs (at most)")] = 200,
    batch_size: Annotated[int, typer.Option(help="spectra per batch")] = 64,
    lr: Annotated[float, typer.Option(help="initial (plateau) or peak (cosine) AdamW rate")] = 1e-3,
    schedule: Annotated[
        Literal["plateau", "cosine"],
        typer.Option(
            help="learning rate: halved on validation plateaus, or warm-up then cosine to zero "
            "at the last epoch"
        ),
    ] = "plateau",
    warmup_epochs: Annotated[float, typer.Option(help="cosine: linear warm-up epochs")] = 0.0,
    beta: Annotated[float, typer.Option(help="weight of the VAE's KL term")] = 0.1,
    latent: Annotated[int, typer.Option(help="VAE latent dimensions")] = 20,
    vae_channels: Annotated[str, typer.Option(help="VAE conv channels per stage")] = "16,32,64,128",
    resnet_width: Annotated[
        int, typer.Option(help="ResNet first-stage channels (64 standard)")
    ] = 64,
    pretrained: Annotated[
        Path | None, typer.Option(help="torchvision resnet18 weights (.safetensors or .pth)")
    ] = None,
    init_from: Annotated[
        str | None,
        typer.Option(
            help="ResNet bundle (folder or shipped name, e.g. ge-paper-resnet) whose weights and "
            "target scaling start the ResNet: fine-tuning"
        ),
    ] = None,
    encoder: Annotated[
        str | None,
        typer.Option(
            help="VAE bundle (folder or shipped name) whose frozen encoder to reuse: only the "
            "regressor trains; the VAE settings are the bundle's"
        ),
    ] = None,
    val_fraction: Annotated[float, typer.Option(help="share of training spectra validating")] = 0.1,
    patience: Annotated[int, typer.Option(help="early-stopping patience (epochs)")] = 10,
    seed: Annotated[int, typer.Option(help="seed of every random choice")] = 0,
    limit: Annotated[int | None, typer.Option(help="use only the first N training spectra")] = None,
    render: Annotated[
        bool, typer.Option(help="fit on fresh θ from the dataset's domain, rendered on the fly")
    ] = False,
    noise: Annotated[bool, typer.Option(help="augment: background + Poisson counts")] = False,
    clean_share: Annotated[
        float, typer.Option(help="with --noise: share of spectra left clean (0 to <1)")
    ] = 0.0,
    mask: Annotated[bool, typer.Option(help="augment: hide random pixels and regions")] = False,
    mask_channel: Annotated[
        bool, typer.Option(help="give the network a measured-mask channel")
    ] = False,
    checkpoint_every: Annotated[
        int | None, typer.Option(help="also checkpoint every N steps")
    ] = None,
    accelerator: Annotated[str, typer.Option(help="auto (GPU if present), cpu or gpu")] = "auto",
    threads: Annotated[int, typer.Option(help="CPU threads for torch (0: torch's default)")] = 0,
    quiet: Annotated[bool, typer.Option(help="no progress bar")] = False,
) -> None:
    """Train an inverter on a Stage I dataset and write a model bundle."""
    import torch

    from fcinvert.models.augment import AugmentConfig
    from fcinvert.models.regressor import RegressorConfig
    from fcinvert.models.resnet import ResNetConfig
    from fcinvert.models.training import TrainConfig, train_model
    from fcinvert.models.vae import VAEConfig

    validate.output_folder(out, "--out")
    validate.input_file(data, "--data")
    validate.input_file(pretrained, "--pretrained")
    validate.choice(accelerator, "--accelerator", ACCELERATORS)
    if threads > 0:
        torch.set_num_threads(threads)
    try:
        channels = validate.positive_integers(vae_channels, "--vae-channels")
        config = TrainConfig(
            architecture=model,
            epochs=epochs,
            regressor_epochs=regressor_epochs,
            batch_size=batch_size,
            learning_rate=lr,
            schedule=schedule,
            warmup_epochs=warmup_epochs,
            init_from=init_from,
            val_fraction=val_fraction,
            patience=patience,
            seed=seed,
            mask_channel=mask_channel,
            render=render,
            limit=limit,
            checkpoint_every=checkpoint_every,
            accelerator=accelerator,
            encoder=encoder,
            vae=VAEConfig(latent=latent, channels=channels, beta=beta),
            regressor=RegressorConfig(),
            resnet=ResNetConfig(width=resnet_width),
            augment=AugmentConfig(noise=noise, clean_share=clean_share, mask=mask),
        )
    except ValueError as error:
        raise validate.settings_error(error, TRAIN_OPTIONS) from None
    result = train_model(data, out, config, material, pretrained, progress=not quiet)
    console.print(f"wrote {result.folder}")
    for stage, summary in result.stages.items():
        console.print(
            f"{stage}: {summary['epochs']} epochs, best validation loss "
            f"{summary['best_val_loss']:.4g} (epoch {summary['best_epoch']}), "
            f"{summary['wall_s']:.0f} s on {summary['device']}"
        )
    test = result.bundle.config.training.get("test")
    if test:
        table = Table(title=f"test set ({test['spectra']} spectra)")
        table.add_column("parameter", overflow="fold")
        table.add_column("R²", justify="right")
        table.add_column("MAE (eV/Å²)", justify="right")
        for name, r2 in test["r2"].items():
            table.add_row(name, f"{r2:.3f}", f"{test['mae_eV_A2'][name]:.4f}")
        console.print(table)


def invert(
    spectrum: Annotated[Path, typer.Argument(help="spectrum file (HDF5 contract)")],
    out: Annotated[Path, typer.Option(help="result JSON to write")],
    model: Annotated[
        str | None,
        typer.Option(
            help="bundle folder or shipped name (ge, ge-resnet, …); default: the spectrum's "
            "material's shipped VAE, unless --material is given"
        ),
    ] = None,
    material: Annotated[
        str | None,
        typer.Option(
            help="material name or folder: without --model, refine from its force-field "
            "ensemble alone (no trained model needed)"
        ),
    ] = None,
    refine: Annotated[
        bool,
        typer.Option(
            "--refine",
            help="fit every FC parameter to the spectrum from many starts (ML estimate and its "
            "draws, every force-field member, the ensemble median); implied by --material",
        ),
    ] = False,
    plot: Annotated[Path | None, typer.Option(help="figure (PNG or SVG)")] = None,
    samples: Annotated[int, typer.Option(help="latent samples (VAE)")] = 100,
    seed: Annotated[int, typer.Option(help="seed of every random draw")] = 0,
    fc_out: Annotated[
        Path | None, typer.Option(help="folder for phonopy files (default: <out>_phonopy)")
    ] = None,
    q_tolerance: Annotated[
        float | None, typer.Option(help="max distance (1/Å) of an input q from the model path")
    ] = None,
    intensities: Annotated[
        Literal["free", "fast"],
        typer.Option(help="refinement's branch intensities: free per branch, or equal (paper)"),
    ] = "free",
    as_json: Annotated[
        bool, typer.Option("--json", help="print the result JSON on stdout instead of the table")
    ] = False,
    norm: NormOption = "power",
    vmin: VminOption = None,
    vmax: VmaxOption = None,
    cmap: CmapOption = "viridis",
) -> None:
    """Infer force constants, with intervals, from a spectrum."""
    from fcinvert.data.spectrum_file import read_spectrum
    from fcinvert.inversion.invert import inversion_setup
    from fcinvert.inversion.pipeline import infer
    from fcinvert.inversion.result_file import write_inference
    from fcinvert.report.inversion_figure import inversion_figure

    validate.output_file(out, "--out")
    validate.figure_file(plot)
    validate.output_folder(fc_out or out.with_name(f"{out.stem}_phonopy"), "--fc-out")
    validate.distinct({"--out": out, "--plot": plot, "--fc-out": fc_out})
    validate.integer(samples, "--samples", minimum=1)
    if q_tolerance is not None:
        validate.finite(q_tolerance, "--q-tolerance", above=0.0)
    scale = map_scale(norm, vmin, vmax, cmap) if plot else None
    measured = read_spectrum(spectrum)
    setup = inversion_setup(measured, str(spectrum), model, material, refine)
    bundle = setup.bundle
    inference = infer(
        measured,
        setup.material,
        setup.fcspace,
        bundle,
        refine=setup.refine,
        intensities=intensities,
        n_samples=samples,
        seed=seed,
        tolerance=q_tolerance,
        source=str(spectrum),
    )
    content = write_inference(inference, out, fc_out, source=str(spectrum), model=setup.model_path)
    if as_json:
        print(json.dumps(content, ensure_ascii=False))
    if inference.ml is not None:
        coverage = inference.ml.coverage
        console.print(
            f"{coverage.input_pixels} measured pixels: {coverage.off_path_pixels} off the "
            f"model's path, {coverage.off_energy_pixels} outside its energy window; "
            f"{coverage.unmeasured_model_pixels}/{coverage.model_pixels} model pixels unmeasured"
        )
    if not as_json:
        _print_parameters(content, inference.material.name)
    for note in inference.notes:
        console.print(f"note: {note}")
    if plot:
        how = "refined" if inference.search is not None else f"{bundle.architecture} estimate"
        inversion_figure(
            inference,
            measured.intensity,
            measured.energy,
            plot,
            title=f"{spectrum.name}: {inference.material.name}, {how}",
            scale=scale,
            truth=measured.frequencies,
        )
        console.print(f"wrote {plot}")
    console.print(f"wrote {out} and {content['force_constants']['force_constants']}")


def short_name(name: str) -> str:
    """A parameter's name without its bond vector: ``shell1_(0.25,0.25,0.25)_xy`` → ``shell1
    xy`` (species kept: ``shell1_Ga-As_(…)_xx`` → ``shell1 Ga-As xx``); unique, since each
    shell names one pair."""
    parts = name.split("_")
    species = [p for p in parts[1:-1] if not p.startswith("(")]
    return " ".join([parts[0], *species, parts[-1]])


def _print_parameters(content: dict, material: str) -> None:
    """The parameter table in 80 columns: FC index, short name, value ± σ, determined, source
    (the full names and intervals are in the result JSON)."""
    table = Table(title=f"{material}: force constants (eV/Å²)", caption="± σ; full names in --out")
    table.add_column("FC", justify="right", no_wrap=True)
    table.add_column("parameter", no_wrap=True)
    table.add_column("value ± σ", justify="right", no_wrap=True)
    table.add_column("determined", no_wrap=True)
    table.add_column("from", no_wrap=True)
    for index, row in enumerate(content["parameters"]):
        sigma = "" if row["std"] is None else f" ± {row['std']:.4f}"
        table.add_row(
            str(index),
            short_name(row["name"]),
            f"{row['value']:+.4f}{sigma}",
            "yes" if row["determined"] else "no (prior)",
            "refined" if row["source"] == "refined" else "ML",
        )
    console.print(table)


def register(app: typer.Typer) -> None:
    app.command("train")(train)
    app.command("invert")(invert)
