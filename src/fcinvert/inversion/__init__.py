"""Stage III: from a measured spectrum to force constants.

``resample`` (any grid → the model's grid, with coverage counts), ``invert`` (ML estimate with
uncertainty, dispersion), ``prior`` (the force-field ensemble's prior and starts), ``refine``
(physics fit of every parameter: a package of intensity models, solvers, the continuation driver
and the posterior), ``multistart`` (many starts → distinct minima), ``pipeline`` (ML →
refinement → intervals), ``result_file`` (the result JSON and phonopy files) and ``live``
(warm-started re-inversion during a measurement).
"""
