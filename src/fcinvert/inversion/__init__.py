"""Stage III: from a measured spectrum to force constants.

``resample`` (any grid → the model's grid, with coverage counts), ``invert`` (ML estimate with
uncertainty, dispersion, phonopy export), ``plot`` (the inversion figure) and ``refine``
(physics fit of every parameter).
"""
