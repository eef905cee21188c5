#!/usr/bin/env bash
# Reproduce the paper's clean-trained inverters of one material on this CPU (shipped as
# `<m>-paper` and `<m>-paper-resnet`): the Stage I dataset of fast-model spectra, the β-VAE,
# its regressor trained to convergence on the frozen encoder, and ResNet-18. The default models
# (`--model ge`, trained on measurement-like spectra): scripts/train_realistic_models.sh.
#
#   bash scripts/train_shipped_models.sh ge [resnet-epochs]      # then the same for nb
#
# Every step resumes when the script is re-run after a kill; a finished step is skipped, and a
# larger resnet-epochs trains the finished ResNet further. Bundles land in work/training/; the
# shipped folders materials/<m>/models/{paper,paper-resnet} hold their config.json,
# *.safetensors and logs/ (not checkpoints/).
set -euo pipefail
cd "$(dirname "$0")/.."
m=$1
resnet_epochs=${2:-3}
fcinvert=.venv/bin/fcinvert
data=work/data/$m.h5
runs=work/training
mkdir -p work/data "$runs"
[ -f "$data" ] || $fcinvert dataset "$m" --n 10000 --test 1500 --seed 0 --out "$data" --workers 0
# 1. the VAE (8 epochs: ~40 min on one thread); its first regressor is replaced in step 2
[ -f "$runs/$m-vae/config.json" ] || OMP_NUM_THREADS=1 $fcinvert train "$m" --model vae \
  --data "$data" --out "$runs/$m-vae" --epochs 8 --regressor-epochs 1 --threads 1 --seed 0 --quiet
# 2. the regressor on the frozen encoder until early stopping (latents encoded once: ~1 s/epoch)
[ -f "$runs/$m-vae-regressor/config.json" ] || OMP_NUM_THREADS=1 $fcinvert train "$m" \
  --model vae --encoder "$runs/$m-vae" --data "$data" --out "$runs/$m-vae-regressor" \
  --regressor-epochs 300 --patience 15 --threads 1 --seed 0 --quiet
# 3. ResNet-18 (~10 min per epoch on two idle threads); re-run with more epochs to continue
done_epochs=$(python3 -c "import json,sys; print(json.load(open(sys.argv[1]))['training']['stages']['resnet']['epochs'])" \
  "$runs/$m-resnet/config.json" 2>/dev/null || echo 0)
if [ "$done_epochs" -lt "$resnet_epochs" ]; then
  OMP_NUM_THREADS=2 $fcinvert train "$m" --model resnet --data "$data" --out "$runs/$m-resnet" \
    --epochs "$resnet_epochs" --checkpoint-every 25 --threads 2 --seed 0
fi
