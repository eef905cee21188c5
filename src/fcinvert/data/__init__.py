"""Data on disk and in flight: spectrum files, Stage I datasets (generation, HDF5 layout,
torch Datasets), readers of measured data and their folding onto a material's path."""
