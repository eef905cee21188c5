"""One Lightning loop trains both inverters: β-VAE then frozen-encoder regressor, or ResNet-18.

``train_model(data, out, config)`` runs the stages of an architecture (``vae`` → ``regressor``,
or ``resnet``) with the same ``Trainer`` set-up: a seeded validation split of the training
spectra, AdamW with learning-rate halving on plateaus (or, with ``schedule="cosine"``, a linear
warm-up then cosine decay to zero over the run's steps), early stopping on the validation loss,
a checkpoint after every epoch (and every ``checkpoint_every`` steps), and a per-epoch CSV log
(``out/logs/<stage>.csv``). Randomness comes only from the seed: the epoch order from
(seed, epoch), latent and augmentation noise from (seed, stage, global step), so a run killed
and resumed from its checkpoint gives the same weights as an uninterrupted one. Re-running the
same command resumes; finished stages are skipped. CPU by default, a GPU when there is one.
``config.encoder`` names a trained VAE bundle whose frozen encoder is reused: only a regressor
trains (for more epochs, or for another selection of parameters). ``config.init_from`` names a
trained ResNet bundle whose weights (and target scaling) start a ResNet run: fine-tuning with a
fresh schedule, recorded as the bundle's ``resnet.pretrained``.

When the stages are done the best weights (lowest validation loss) go into a model bundle in
``out`` (see ``bundle``), evaluated on the dataset's test split (R² and MAE per parameter). The
last checkpoint of each stage stays in ``out/checkpoints``: re-running with more epochs trains a
finished bundle further (a continued VAE retrains its regressor from scratch), exactly as one
longer run would have; deleting the folder frees the space and ends that option.

One module per concept: ``config`` (``TrainConfig``), ``stages`` (the Lightning modules),
``callbacks`` (best weights, logs, whole checkpoints), ``resume`` (the resume and continuation
rules), ``sources`` (bundles a run starts from), ``summary`` (what the bundle records, test
scores) and ``run`` (``train_model``).
"""

from fcinvert.models.training.config import STAGES, TrainConfig, resolve_input_rule
from fcinvert.models.training.run import TrainingResult, train_model
from fcinvert.models.training.stages import cosine_factor, stage_module
from fcinvert.models.training.summary import evaluate

__all__ = [
    "STAGES",
    "TrainConfig",
    "TrainingResult",
    "cosine_factor",
    "evaluate",
    "resolve_input_rule",
    "stage_module",
    "train_model",
]
