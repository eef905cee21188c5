"""Stage III: a measured spectrum → force constants with uncertainties, in one call.

``invert_spectrum`` resamples the spectrum onto the model's grid, predicts the selected θ
(VAE: mean, standard deviation and 5–95 % interval over latent samples; ResNet: one value),
holds the other parameters at the training reference, and computes the dispersion of the
result at the input's own q-points. ``fcinvert.inversion.pipeline`` refines it.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from fcinvert.data.spectrum_file import Spectrum
from fcinvert.errors import FcinvertError
from fcinvert.inversion.resample import Coverage, resample
from fcinvert.models.bundle import ModelBundle
from fcinvert.physics.dynamics import UNSTABLE_BELOW, DynamicsBasis, dynamics_basis
from fcinvert.physics.fcspace import FCSpace, build_fcspace
from fcinvert.physics.material import Material, load_material
from fcinvert.physics.reciprocal import reciprocal_basis


@dataclass
class InversionResult:
    """Inferred force constants of one spectrum.

    theta, std, low, high: (P,) eV/Å² for every parameter (``inferred`` (P,) bool marks the
    model's outputs; the rest hold the reference, with std 0 and a zero-width interval; for
    the deterministic ResNet std is NaN and the interval is the value itself).
    image: (nq_m, nE_m) the input resampled onto the model grid (NaN unmeasured);
    reconstruction: (nq_m, nE_m) VAE reconstruction of it (input-rule units) or None;
    frequencies: (nq, nb) meV, dispersion of θ at the input's q-points (nq, 3).
    """

    material: Material
    fcspace: FCSpace
    bundle: ModelBundle
    theta: np.ndarray
    std: np.ndarray
    low: np.ndarray
    high: np.ndarray
    inferred: np.ndarray
    coverage: Coverage
    image: np.ndarray
    reconstruction: np.ndarray | None
    qpoints: np.ndarray
    frequencies: np.ndarray
    n_samples: int
    seed: int
    notes: list[str]


def model_material(bundle: ModelBundle) -> tuple[Material, FCSpace]:
    """The bundle's material and FC space, checked against the bundle's parameter names."""
    material = load_material(bundle.config.material)
    fcspace = build_fcspace(material)
    if fcspace.names != bundle.config.parameter_names:
        raise FcinvertError(
            f"model for '{bundle.config.material}' was trained on other FC parameters than the "
            "material now defines (its shells or cell changed); retrain the model"
        )
    return material, fcspace


@dataclass(frozen=True)
class InversionSetup:
    """What a spectrum is inverted with: the material and FC space, the model (None: refine
    from the force-field ensemble alone), the model as the user named it (a shipped name such
    as ``ge``, or the bundle folder as given; "" without one: a shipped model's folder lies
    inside the installation, which the result file must not record) and whether the physics
    refinement runs."""

    material: Material
    fcspace: FCSpace
    bundle: ModelBundle | None
    model_path: str
    refine: bool


def inversion_setup(
    spectrum: Spectrum, source: str, model: str | None, material: str | None, refine: bool
) -> InversionSetup:
    """Choose the model and material for ``spectrum`` (read from ``source``).

    ``model`` (a bundle folder or shipped name) wins; without it and without ``material`` the
    spectrum's own material's shipped model is used; ``material`` alone means no model, the
    refinement from the ensemble (``refine`` is then implied). Both given must agree, and a
    spectrum that names its material must name this one.
    """
    from fcinvert.models.bundle import load_bundle

    if model is not None or material is None:
        name = model or spectrum.material
        if not name:
            raise FcinvertError(
                f"{source}: names no material; choose --model, or --material to refine"
            )
        bundle = load_bundle(name)
        chosen, fcspace = model_material(bundle)
        if material is not None and load_material(material).name != chosen.name:
            raise FcinvertError(
                f"--material {material} and --model {model} (for '{chosen.name}') disagree"
            )
        return InversionSetup(chosen, fcspace, bundle, str(name), refine)
    chosen = load_material(material)
    if spectrum.material and spectrum.material != chosen.name:
        raise FcinvertError(
            f"{source}: a spectrum of '{spectrum.material}', but --material is '{chosen.name}'"
        )
    return InversionSetup(chosen, build_fcspace(chosen), None, "", True)


def instability_note(frequencies: np.ndarray, qpoints: np.ndarray) -> str | None:
    """A warning when the dispersion (nq, nb) meV at ``qpoints`` (nq, 3) has imaginary modes
    (negative, below UNSTABLE_BELOW): the inferred FCs cannot describe a stable crystal."""
    q, branch = np.unravel_index(np.argmin(frequencies), frequencies.shape)
    lowest = frequencies[q, branch]
    if lowest >= UNSTABLE_BELOW:
        return None
    where = ", ".join(f"{c:.3g}" for c in qpoints[q])
    return (
        f"the inferred force constants are dynamically unstable: an imaginary mode at "
        f"{lowest:.2f} meV at q = ({where}); the spectrum may lie outside the model's training "
        "domain (--refine fits the physics to it)"
    )


def invert_spectrum(
    spectrum: Spectrum,
    bundle: ModelBundle,
    n_samples: int = 100,
    seed: int = 0,
    tolerance: float | None = None,
    source: str = "spectrum",
    context: tuple[Material, FCSpace] | None = None,
    basis: DynamicsBasis | None = None,
) -> InversionResult:
    """Infer θ from ``spectrum`` with ``bundle`` (see the module docstring).

    ``tolerance`` (1/Å) bounds how far an input q-point may lie from the model's path;
    ``source`` names the input in error messages; ``context`` is ``model_material(bundle)``
    when inverting many spectra (it takes seconds to build); ``basis``: D_k at the spectrum's
    q-points when the caller has it (built otherwise).
    """
    notes: list[str] = []
    expected = bundle.config.material
    if not spectrum.material:
        notes.append(f"the spectrum names no material; assumed the model's ('{expected}')")
    elif spectrum.material != expected:
        raise FcinvertError(
            f"{source}: a spectrum of '{spectrum.material}', but the model is for '{expected}'"
        )
    material, fcspace = context or model_material(bundle)
    image, coverage = resample(
        spectrum.intensity,
        spectrum.qpoints,
        spectrum.energy,
        bundle.qpoints,
        bundle.energy,
        reciprocal_basis(material.atoms.cell[:]),
        tolerance,
    )
    if coverage.unmeasured_model_pixels == coverage.model_pixels:
        raise FcinvertError(
            f"{source}: no measured pixel falls on the model's grid ({coverage.off_path_pixels} "
            f"off its q-path, {coverage.off_energy_pixels} outside its energy window)"
        )
    prediction = bundle.predict(image[None], n_samples=n_samples, seed=seed)

    reference = np.array(bundle.config.reference, dtype=float)
    selected = bundle.selected_indices
    theta = reference.copy()
    theta[selected] = prediction.mean[0]
    std = np.zeros_like(theta)
    low, high = theta.copy(), theta.copy()
    if prediction.sampled:
        std[selected] = prediction.std[0]
        low[selected], high[selected] = prediction.low[0], prediction.high[0]
    else:
        std[selected] = np.nan
        notes.append("ResNet-18 is deterministic: no uncertainty is given")
    inferred = np.zeros(len(theta), dtype=bool)
    inferred[selected] = True

    basis = dynamics_basis(fcspace, spectrum.qpoints) if basis is None else basis
    frequencies = basis.frequencies(theta)
    warning = instability_note(frequencies, spectrum.qpoints)
    if warning:
        notes.append(warning)
    reconstruction = bundle.reconstruct(image[None])[0] if bundle.architecture == "vae" else None
    return InversionResult(
        material,
        fcspace,
        bundle,
        theta,
        std,
        low,
        high,
        inferred,
        coverage,
        image,
        reconstruction,
        np.asarray(spectrum.qpoints, dtype=float),
        frequencies,
        n_samples,
        seed,
        notes,
    )
