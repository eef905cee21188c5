"""Stage II: the inversion models and their training.

``vae`` (β-VAE on I(q, E)), ``regressor`` (frozen latent → θ), ``resnet`` (ResNet-18 → θ),
``preprocess`` (the one input rule and the target scaler), ``augment`` (noise and masking),
``datasource`` (dataset files → torch datasets), ``training`` (the Lightning loop) and
``bundle`` (a trained model as a folder, and its ``predict``).
"""

from fcinvert.models.bundle import ModelBundle, Prediction, load_bundle, save_bundle
from fcinvert.models.training import TrainConfig, train_model

__all__ = ["ModelBundle", "Prediction", "TrainConfig", "load_bundle", "save_bundle", "train_model"]
