"""Training speed at paper scale: seconds per epoch of a 10 000-spectrum Ge run, in one run.

For the β-VAE, its frozen-encoder regressor stage and ResNet-18 (default settings, the
paper's 200 × 100 pixel Ge spectra, batch 64): the real Lightning training step (input rule,
loss, backward, AdamW) runs through a Trainer on random spectra of that shape — speed does
not depend on the content — and each batch is timed after ``--warmup`` untimed ones. The
regressor trains on encoder outputs computed once per run (as ``train`` does without
augmentation): its epochs get random (μ, log σ²), and that one-off encoding of 10 000
spectra is printed beside them. Seconds per epoch = ⌈9 000 training spectra / batch⌉ ×
median batch time + 1 000 validation spectra × the forward time per spectrum. Printed with
the ResNet/VAE ratio of the two. One
CPU thread by default (the machine is shared); ``--threads`` to change it.

    .venv/bin/python benchmarks/training_speed.py [--batches 40] [--models vae regressor resnet]
"""

from __future__ import annotations

import argparse
import json
import math
import os
import statistics
import time

N_TRAIN, N_VALIDATION = 9_000, 1_000  # a 10 000-spectrum training split, 10 % validating


def measure(stage: str, batches: int, warmup: int, batch_size: int) -> dict:
    """Median seconds per training batch and per validation spectrum of one stage."""
    import lightning as L
    import numpy as np
    import torch
    from lightning.pytorch.callbacks import Callback
    from torch.utils.data import DataLoader, TensorDataset

    from fcinvert.models.bundle import BundleConfig, EnergyConfig, build_networks
    from fcinvert.models.datasource import ArraySpectra
    from fcinvert.models.preprocess import TargetScaler, prepare_input
    from fcinvert.models.training import TrainConfig, stage_module
    from fcinvert.physics.material import load_material

    material = load_material("ge")
    architecture = "resnet" if stage == "resnet" else "vae"
    config = TrainConfig(architecture=architecture, batch_size=batch_size)
    k = 8
    bundle_config = BundleConfig(
        architecture=architecture,
        material="ge",
        qpoints=[tuple(q) for q in material.path.qpoints.tolist()],
        energy=EnergyConfig.from_grid(material.energy),
        parameter_names=[f"p{i}" for i in range(k)],
        selected=[f"p{i}" for i in range(k)],
        reference=[0.0] * k,
        target_mean=[0.0] * k,
        target_std=[1.0] * k,
        mask_channel=False,
        vae=config.vae if architecture == "vae" else None,
        regressor=config.regressor if architecture == "vae" else None,
        resnet=config.resnet if architecture == "resnet" else None,
    )
    networks = build_networks(bundle_config)
    scaler = TargetScaler(np.zeros(k), np.ones(k))
    module = stage_module(stage, networks, config, scaler)
    module.network.train()
    trainable = [p for p in module.network.parameters() if p.requires_grad]
    module.configure_optimizers = lambda: torch.optim.AdamW(trainable, lr=1e-3)  # no plateau
    rng = np.random.default_rng(0)
    shape = (len(material.path.qpoints), len(material.energy.centres))
    count = batch_size * (batches + warmup)
    spectra = rng.random((count, *shape), dtype=np.float32) ** 8  # sparse-looking
    data = ArraySpectra(spectra, rng.normal(size=(count, k)))
    encode_once = 0.0
    if stage == "regressor":  # the spectra are encoded once per run, then only latents move
        vae = networks["vae"].eval()
        with torch.no_grad():
            start = time.perf_counter()
            mu, _ = vae.encode(prepare_input(data.spectra[:256], False))
            encode_once = (time.perf_counter() - start) / 256 * (N_TRAIN + N_VALIDATION)
        latent = (count, mu.shape[1])
        data = TensorDataset(torch.randn(latent), torch.randn(latent) - 3.0, data.targets)

    times: list[float] = []

    class BatchTimer(Callback):
        def on_train_batch_start(self, trainer, pl_module, batch, batch_idx) -> None:
            self.start = time.perf_counter()

        def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
            if batch_idx >= warmup:
                times.append(time.perf_counter() - self.start)

    trainer = L.Trainer(
        max_steps=batches + warmup,
        accelerator="cpu",
        devices=1,
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        limit_val_batches=0,
        callbacks=[BatchTimer()],
    )
    trainer.fit(module, DataLoader(data, batch_size=batch_size, shuffle=True))

    module.eval()
    validation = DataLoader(data, batch_size=256)
    batch = next(iter(validation))
    generator = torch.Generator().manual_seed(0)
    forward = []
    with torch.no_grad():
        for _ in range(3):
            start = time.perf_counter()
            module._losses(batch, generator, train=False)
            forward.append((time.perf_counter() - start) / len(batch[0]))
    per_batch = statistics.median(times)
    per_spectrum = statistics.median(forward)
    epoch = math.ceil(N_TRAIN / batch_size) * per_batch + N_VALIDATION * per_spectrum
    parameters = sum(p.numel() for p in module.network.parameters())
    return {
        "stage": stage,
        "parameters_M": round(parameters / 1e6, 3),
        "timed_batches": len(times),
        "s_per_batch": round(per_batch, 4),
        "s_per_batch_spread": round(statistics.pstdev(times), 4),
        "ms_validation_per_spectrum": round(1e3 * per_spectrum, 3),
        "s_per_epoch": round(epoch, 1),
        "s_encoding_once": round(encode_once, 1),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", nargs="+", default=["vae", "regressor", "resnet"])
    parser.add_argument("--batches", type=int, default=40, help="timed batches per model")
    parser.add_argument("--warmup", type=int, default=3)
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()
    os.environ.setdefault("OMP_NUM_THREADS", str(args.threads))
    import logging
    import warnings

    import lightning  # noqa: F401  (sets its own log level on import: override it after)
    import torch

    torch.set_num_threads(args.threads)
    logging.getLogger("lightning.pytorch").setLevel(logging.WARNING)
    warnings.filterwarnings("ignore")
    results = {}
    for stage in args.models:
        results[stage] = measure(stage, args.batches, args.warmup, args.batch_size)
        row = results[stage]
        print(
            f"{stage:9s} {row['parameters_M']:7.3f} M params  {row['s_per_batch']:.3f} "
            f"± {row['s_per_batch_spread']:.3f} s/batch ({row['timed_batches']} timed)  "
            f"{row['s_per_epoch']:8.1f} s/epoch of {N_TRAIN + N_VALIDATION} spectra"
            + (
                f" (+ {row['s_encoding_once']:.0f} s encoding once)" if stage == "regressor" else ""
            ),
            flush=True,
        )
    if "vae" in results and "resnet" in results:
        ratio = results["resnet"]["s_per_epoch"] / results["vae"]["s_per_epoch"]
        print(f"ResNet-18 / VAE seconds per epoch: {ratio:.2f}")
    print(json.dumps({"threads": args.threads, "batch_size": args.batch_size, **results}))


if __name__ == "__main__":
    main()
