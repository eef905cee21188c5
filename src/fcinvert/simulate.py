"""One θ → its dispersion and fast-model spectrum on the material's path, as a Spectrum."""

from __future__ import annotations

import numpy as np

from fcinvert.data.spectrum_file import Spectrum
from fcinvert.errors import FcinvertError
from fcinvert.physics.dynamics import UNSTABLE_BELOW, dynamics_basis
from fcinvert.physics.fcspace import FCSpace
from fcinvert.physics.material import Material
from fcinvert.physics.spectra import render


def simulate_spectrum(
    material: Material, fcspace: FCSpace, theta: np.ndarray, qpoints: np.ndarray | None = None
) -> Spectrum:
    """The fast-model I(q, E) of θ (n_params,) on ``qpoints`` (default: the material's path)."""
    theta = np.asarray(theta, dtype=float)
    if not np.all(np.isfinite(theta)):
        raise FcinvertError("force-constant parameters must be finite numbers")
    qpoints = material.path.qpoints if qpoints is None else qpoints
    frequencies = dynamics_basis(fcspace, qpoints).frequencies(theta)
    intensity = render(frequencies, material.energy)
    return Spectrum(
        intensity=intensity,
        energy=material.energy.centres,
        qpoints=qpoints,
        material=material.name,
        temperature_K=material.settings.temperature_K,
        frequencies=frequencies,
    )


def imaginary_modes(spectrum: Spectrum) -> int:
    """Number of (q, branch) modes below the instability threshold, Γ excluded."""
    off_gamma = np.any(np.abs(spectrum.qpoints) > 1e-9, axis=1)
    return int(np.sum(spectrum.frequencies[off_gamma] < UNSTABLE_BELOW))
