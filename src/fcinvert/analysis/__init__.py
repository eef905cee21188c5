"""How good is a trained inverter: accuracy, noise robustness and the VAE's latent space.

``metrics`` (R², MAE per parameter), ``noise_grid`` (the INS counting-noise model, its
signal-to-noise ratio and the (B, P) grid), ``latent`` (latent statistics, active dimensions,
UMAP, latent ray, cross-domain map) and ``evaluate`` (all of it for one material and a set of
models, written as a report).
"""
