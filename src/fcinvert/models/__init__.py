"""Stage II: the inversion models and their training.

``vae`` (β-VAE on I(q, E)), ``regressor`` (frozen latent → θ), ``resnet`` (ResNet-18 → θ),
``preprocess`` (the one input rule and the target scaler), ``augment`` (noise and masking),
``datasource`` (dataset files → torch datasets), ``training`` (the Lightning loop:
``train_model``) and ``bundle`` (a trained model as a folder: ``load_bundle``, and its
``predict``). Nothing is imported here, so that using a bundle does not load Lightning.
"""
