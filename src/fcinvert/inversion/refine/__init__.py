"""Physics refinement: fit every free FC parameter θ to a measured I(q, E).

The model of one q column is Σ_j a_j G(E − ħω_j(q; θ)) + b: bin-integrated Gaussians at the
branch energies with the material's resolution (``peaks``). The linear unknowns (branch
intensities a ≥ 0, background b) are solved exactly inside the residual for every trial θ
(variable projection), so the optimiser only moves θ. Three intensity models, behind one
interface (``intensities``): ``free`` (NNLS per branch and column, ``nnls``), ``fast`` (the
paper's equal weights, one scale) and ``physical`` (the coherent one-phonon cross-section of
``fcinvert.physics.structure_factor``, one scale).

θ is fitted by Levenberg–Marquardt (``levenberg_marquardt``) through coarse-to-fine
continuation (``driver``): the model is broadened by an extra FWHM (default 2 → 1 → 0 meV) and
the data smoothed by the same Gaussian (``measured``), each stage starting where the last
stopped. The Jacobian is analytic (``spectrum_fit``): the Hellmann–Feynman theorem gives
dω²_j/dθ_k = e_j† D_k e_j from the one eigen-solve of the forward model, and the Golub–Pereyra
formula differentiates through the eliminated linear unknowns. ``method="iterative"`` is the
paper's traditional iterative optimisation: the same fit with a finite-difference Jacobian (one
forward model per parameter per iteration). Runaway θ is kept out by penalties on branches
above the energy window or imaginary.

A Gaussian prior N(centre, width²) on every θ_k (``Prior``; the force-field ensemble's, see
``fcinvert.inversion.multistart``) pins the directions the data do not constrain. It enters as
rows σ_n (θ − centre)/width beside the data rows, σ_n being the noise of one normalised data
pixel (``noise_level``: robust, from second differences along E), so that the objective is the
posterior's −log up to a factor: the data dominate wherever they determine θ, and the prior
wherever they do not, whatever the counting level. The same prior centre for every start makes
the objectives of different starts comparable (multi-start). σ(θ) is the posterior's
(``uncertainty``).
"""

from fcinvert.inversion.refine.driver import (
    CONTINUATION,
    RefineResult,
    StageLog,
    iterative_baseline,
    refine,
    refine_spectrum,
)
from fcinvert.inversion.refine.intensities import INTENSITY_MODELS, Intensities, branch_weights
from fcinvert.inversion.refine.levenberg_marquardt import METHODS, Method
from fcinvert.inversion.refine.measured import (
    bin_runs,
    merged_bins,
    noise_level,
    pixel_errors,
    spectrum_grid,
)
from fcinvert.inversion.refine.nnls import batched_nnls
from fcinvert.inversion.refine.spectrum_fit import (
    MISFIT_CHUNK,
    Derivatives,
    Evaluation,
    SpectrumFit,
    column_misfit,
)
from fcinvert.inversion.refine.uncertainty import CLUSTERS

__all__ = [
    "CLUSTERS",
    "CONTINUATION",
    "INTENSITY_MODELS",
    "METHODS",
    "MISFIT_CHUNK",
    "Derivatives",
    "Evaluation",
    "Intensities",
    "Method",
    "RefineResult",
    "SpectrumFit",
    "StageLog",
    "batched_nnls",
    "bin_runs",
    "branch_weights",
    "column_misfit",
    "iterative_baseline",
    "merged_bins",
    "noise_level",
    "pixel_errors",
    "refine",
    "refine_spectrum",
    "spectrum_grid",
]
