"""Measurement-like I(q, E) made by Euphonic: test spectra our own forward model did not make.

The project's past failure was the inverse crime: models and refinement were checked only on
spectra from fcinvert's own forward model. Here the intensities come from independent code,
Euphonic (``ForceConstants.calculate_qpoint_phonon_modes`` →
``QpointPhononModes.calculate_structure_factor`` with a Debye–Waller factor from a Γ-centred
mesh), reading the truth's force constants from phonopy files. Only the bookkeeping (which
q-points, which zones, the Laue rotations, the coverage of a ToF orientation) uses fcinvert.

The pipeline, one stage per function:

1. A ``Truth``: force constants in phonopy files. ``truth_from_theta`` (θ in the material's FC
   space, exported by ``fcinvert.physics.export.write_phonopy_files``) or
   ``truth_from_force_constants`` (any full phonopy FC array on an n×n×n supercell of the
   standard primitive cell). Ready-made truths: ``force_field_truth`` (an ensemble member),
   ``domain_edge_truth`` (θ near the bounds of the training domain), ``scaled_truth`` (the
   ensemble median made stiffer, e.g. to Ge's measured Γ-optical 37.5 meV) and
   ``long_range_truth`` (extra neighbour shells beyond the model's, built with fcinvert's own
   ``fcspace`` machinery on a bigger supercell, so the model's truncation floor is nonzero).
2. ``simulate``: for every q of the path (sampled at ``Instrument.path_points``), every zone
   centre G of ``Instrument.zones`` inequivalent zones and every Laue rotation R, Euphonic's
   one-phonon S(G + Rq) (the star of q folded into each zone, as a symmetrised measurement
   folds it), times the Bose factor n + 1 at T; each mode a Gaussian (FWHM = fwhm0 + slope·E,
   integrated over each bin) on the grid 0 … ``energy_max_meV`` in ``energy_step_meV`` bins
   (nothing above: the grid just stops). The noiseless map is scaled so that its "peak" (the
   99.5th percentile of the window's pixels, i.e. the strongest phonon ridges, not the few
   pixels next to Bragg points where 1/ω diverges) is ``peak_counts``; a flat background of
   ``background`` × peak is added; counts are Poisson draws; ``Gaps`` set pixels to NaN
   (whole q columns, cut rectangles, random pixels up to a total missing fraction, or the
   coverage of one ToF orientation from ``fcinvert.data.measurement.simulate_scans``).
3. ``measurement_like``: the same, returned as an ``fcinvert.data.spectrum_file.Spectrum``
   (intensity = counts, error = √max(counts, 1)) and written with the project's writer.

Units and conventions: meV, eV/Å², amu, Å; q reduced in the standard primitive reciprocal
basis. Euphonic converts eV/Å²/amu to meV with CODATA constants, phonopy (and so fcinvert)
with its own factor: Euphonic's frequencies are 2.1e-7 relative higher. ``truth_frequencies``
removes that constant factor (``EUPHONIC_TO_FCINVERT``), so a truth in θ space has a
truncation floor of 0 to ~1e-7 meV. Everything random is seeded (numpy Generator).

Free of the fcinvert CLI: importable from tests and from other benchmarks.
"""

from __future__ import annotations

import json
import tempfile
import warnings
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path

import numpy as np
from scipy.optimize import least_squares
from scipy.special import ndtr

from fcinvert.data.spectrum_file import Spectrum, write_spectrum
from fcinvert.errors import FcinvertError
from fcinvert.physics.dynamics import FREQUENCY_TO_MEV, DynamicsBasis, dynamics_basis
from fcinvert.physics.export import write_phonopy_files
from fcinvert.physics.fcspace import FCSpace, build_fcspace, phonopy_for
from fcinvert.physics.material import (
    FWHM_TO_SIGMA,
    EnergySettings,
    Material,
    load_material,
    sample_path,
)
from fcinvert.physics.reciprocal import laue_rotations, reciprocal_basis

# Euphonic warns once per call when torch's OpenMP is loaded too; it then runs serially,
# which is what a benchmark on a shared CPU wants anyway.
warnings.filterwarnings("ignore", message="More than one OpenMP library")

#: Per-material window (meV) of an experiment-like grid: Ge like the measured one (Ei ~ 40).
WINDOW_MEV = {"ge": 40.0, "nb": 35.0}
#: k_B (meV/K), CODATA 2018 (scipy's value; not phonopy's, to stay independent of it).
BOLTZMANN_MEV = 0.08617333262
#: Modes below this energy (meV) are left out: acoustic modes at Q → G diverge through 1/ω.
LOWEST_MODE_MEV = 0.5
#: The map's "peak" level: this percentile of the noiseless window pixels.
PEAK_PERCENTILE = 99.5


def _euphonic_factor() -> float:
    """meV per √(eV/Å²/amu) in Euphonic's units (CODATA, through pint)."""
    from euphonic import ureg

    return float((ureg("eV/angstrom**2/amu") ** 0.5 * ureg.hbar).to("meV").magnitude)


#: Multiply Euphonic's frequencies by this to express them with phonopy's/fcinvert's constant.
EUPHONIC_TO_FCINVERT = FREQUENCY_TO_MEV / _euphonic_factor()


# --------------------------------------------------------------------------------------------
# Truths
# --------------------------------------------------------------------------------------------


@dataclass
class Truth:
    """Force constants to make spectra from.

    folder: holds phonopy.yaml with the force constants (what Euphonic reads); theta: (P,)
    eV/Å², the truth in the material's model FC space when it lies there, else None;
    description: how it was made (for reports).
    """

    name: str
    material: str
    folder: Path
    theta: np.ndarray | None = None
    description: str = ""

    def force_constants(self):
        """euphonic.ForceConstants of this truth."""
        from euphonic import ForceConstants

        return ForceConstants.from_phonopy(path=str(self.folder))


def _folder(folder: str | Path | None, name: str) -> Path:
    if folder is None:
        folder = Path(tempfile.mkdtemp(prefix=f"truth-{name}-"))
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    return folder


def model_space(material: str | Material) -> tuple[Material, FCSpace]:
    """The material and its model FC space (the shells the shipped models use)."""
    loaded = material if isinstance(material, Material) else load_material(material)
    return loaded, build_fcspace(loaded)


def reference_theta(material: Material, fcspace: FCSpace) -> np.ndarray:
    """The ensemble median θ (P,) eV/Å² (the material's reference)."""
    return fcspace.reference_theta(material)


def truth_from_theta(
    material: str | Material,
    theta: np.ndarray,
    name: str,
    folder: str | Path | None = None,
    description: str = "",
) -> Truth:
    """A truth θ (P,) eV/Å² in the material's model FC space, exported to phonopy files."""
    loaded, fcspace = model_space(material)
    theta = np.asarray(theta, dtype=float)
    if theta.shape != (fcspace.n_params,):
        raise FcinvertError(f"θ of shape {theta.shape}; {loaded.name} has {fcspace.n_params}")
    folder = _folder(folder, name)
    write_phonopy_files(loaded, fcspace, theta, folder)
    return Truth(name, loaded.name, folder, theta.copy(), description)


def truth_from_force_constants(
    material: str | Material,
    force_constants: np.ndarray,
    name: str,
    folder: str | Path | None = None,
    description: str = "",
    theta: np.ndarray | None = None,
) -> Truth:
    """A truth from any full phonopy FC array (N, N, 3, 3) eV/Å² on an n×n×n supercell of the
    material's standard primitive cell (n follows from N); ``theta`` if it lies in θ space."""
    from phonopy.harmonic.force_constants import full_fc_to_compact_fc

    loaded = material if isinstance(material, Material) else load_material(material)
    force_constants = np.asarray(force_constants, dtype=float)
    n_atoms = len(loaded.atoms)
    size = round((force_constants.shape[0] / n_atoms) ** (1 / 3))
    if force_constants.shape != (n_atoms * size**3, n_atoms * size**3, 3, 3):
        raise FcinvertError(
            f"force constants of shape {force_constants.shape} are not a full phonopy array on "
            f"an n×n×n supercell of {loaded.name}'s {n_atoms}-atom primitive cell"
        )
    bigger = replace(loaded, settings=loaded.settings.model_copy(update={"supercell": size}))
    phonon = phonopy_for(bigger)
    phonon.force_constants = full_fc_to_compact_fc(phonon.primitive, force_constants)
    folder = _folder(folder, name)
    phonon.save(str(folder / "phonopy.yaml"), settings={"force_constants": True})
    return Truth(name, loaded.name, folder, theta, description)


def force_field_truth(material: str, member: str, folder: str | Path | None = None) -> Truth:
    """An ensemble member's θ (``materials/<m>/labels/<member>.json``) as a truth."""
    loaded, fcspace = model_space(material)
    path = loaded.folder / "labels" / f"{member}.json"
    try:
        content = json.loads(path.read_text())
        values = {str(k): float(v) for k, v in content["parameters"].items()}
    except (OSError, ValueError, KeyError, TypeError) as error:
        raise FcinvertError(f"{path}: not a label file ({error})") from None
    theta = fcspace.theta_from_dict(values, reference_theta(loaded, fcspace))
    status = content.get("status", "?")
    return truth_from_theta(
        loaded, theta, member, folder, f"force-field member {member} ({status}), 'labels' θ"
    )


def scaled_truth(
    material: str,
    gamma_optical_meV: float,
    folder: str | Path | None = None,
    name: str | None = None,
) -> tuple[Truth, float]:
    """The ensemble median with every FC scaled by s so that its highest Γ mode is
    ``gamma_optical_meV`` (all frequencies scale by √s). Returns the truth and s."""
    loaded, fcspace = model_space(material)
    theta = reference_theta(loaded, fcspace)
    highest = float(dynamics_basis(fcspace, np.zeros((1, 3))).frequencies(theta).max())
    scale = (gamma_optical_meV / highest) ** 2
    name = name or f"median-x{scale:.3f}"
    description = (
        f"ensemble median × {scale:.3f} (Γ-optical {highest:.2f} → {gamma_optical_meV} meV)"
    )
    return truth_from_theta(loaded, scale * theta, name, folder, description), scale


def domain_bounds(
    material: Material, fcspace: FCSpace
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Selected parameter indices (K,) and their training-domain bounds low, high (K,) eV/Å².

    The selected parameters are the shipped VAE's (its config.json) when there is one, else
    the K most sensitive ones; the bounds are ``labels.domain.build_domain``'s defaults over
    the material's ensemble (what ``fcinvert dataset`` draws from).
    """
    from fcinvert.labels.domain import build_domain, load_ensemble

    names = None
    config = material.folder / "models" / "vae" / "config.json"
    if config.is_file():
        names = json.loads(config.read_text()).get("selected")
    if names:
        selected = np.array([fcspace.names.index(n) for n in names])
    else:
        from fcinvert.labels.sensitivity import compute_sensitivity

        selected = compute_sensitivity(material, fcspace).select()
    _, ensemble = load_ensemble(material, fcspace)
    reference = reference_theta(material, fcspace)
    domain = build_domain(material.name, fcspace.names, ensemble, reference, selected)
    return domain.selected, domain.low, domain.high


def domain_edge_truth(
    material: str,
    seed: int,
    folder: str | Path | None = None,
    inset: float = 0.1,
    highest_below_meV: float | None = None,
    tries: int = 2000,
) -> Truth:
    """θ near the corners of the training domain: each selected parameter at ``inset`` of the
    box width inside its lower or upper bound (side drawn at random), the others at the
    reference. The first draw that is dynamically stable (path and 6³ mesh) and, when
    ``highest_below_meV`` is given, whose highest path mode lies below it (a measurement whose
    window shows every branch) is kept."""
    from fcinvert.labels.domain import stability_check

    loaded, fcspace = model_space(material)
    selected, low, high = domain_bounds(loaded, fcspace)
    check = stability_check(loaded, fcspace)
    rng = np.random.default_rng(seed)
    base = reference_theta(loaded, fcspace)
    width = high - low
    for attempt in range(tries):
        upper = rng.random(len(selected)) < 0.5
        theta = base.copy()
        theta[selected] = np.where(upper, high - inset * width, low + inset * width)
        if not check.is_stable(theta[None])[0]:
            continue
        highest = float(check.path.frequencies(theta).max())
        if highest_below_meV is not None and highest >= highest_below_meV:
            continue
        sides = "".join("+" if u else "-" for u in upper)
        description = (
            f"training-domain corner {sides} (+: upper, −: lower bound in signed value; each of "
            f"the {len(selected)} sampled parameters "
            f"{inset:.0%} of the box inside a bound; draw {attempt + 1}, seed {seed}); "
            f"highest mode {highest:.1f} meV"
        )
        return truth_from_theta(loaded, theta, f"edge-{seed}", folder, description)
    raise FcinvertError(f"{material}: no stable domain-edge θ in {tries} draws")


def extended_space(material: str, shells: int, supercell: int) -> tuple[Material, FCSpace]:
    """The material with more neighbour shells on a bigger supercell, and its FC space (built
    with fcinvert's own hiphive machinery; cached on disk after the first build, which takes
    ~1 min for Ge with 10 shells on 5×5×5)."""
    loaded = load_material(material)
    update = {"shells": shells, "supercell": supercell}
    bigger = replace(loaded, settings=loaded.settings.model_copy(update=update))
    return bigger, build_fcspace(bigger)


def _key(name: str) -> str:
    """A parameter's identity without its shell rank ('shell7_(1.25,…)_xx' → '(1.25,…)_xx'):
    shells at equal distance swap ranks between FC spaces."""
    return name.split("_", 1)[1]


def long_range_truth(
    material: str,
    base_theta: np.ndarray,
    springs: dict[int, float],
    shells: int,
    supercell: int,
    name: str,
    folder: str | Path | None = None,
    description: str = "",
) -> Truth:
    """``base_theta`` (model space, (P,)) plus central springs on shells beyond the model's.

    springs: {shell rank in the extended space: k (eV/Å²)}; each adds the bond-stretching block
    Φ_ij = −k r̂r̂ to every pair of that orbit (k > 0 stiffens). The extended FC space has
    ``shells`` shells on a ``supercell``³ supercell (``extended_space``).
    """
    _, fcspace = model_space(material)
    bigger, extended = extended_space(material, shells, supercell)
    model_keys = {_key(n): i for i, n in enumerate(fcspace.names)}
    theta = np.zeros(extended.n_params)
    for k, parameter in enumerate(extended.parameters):
        if _key(parameter.name) in model_keys:
            theta[k] = base_theta[model_keys[_key(parameter.name)]]
            continue
        stiffness = springs.get(parameter.shell, 0.0)
        unit = np.asarray(parameter.vector) / np.linalg.norm(parameter.vector)
        a, b = ("xyz".index(c) for c in parameter.component)
        theta[k] = -stiffness * unit[a] * unit[b]
    force_constants = extended.force_constants(theta)
    _check_central(extended, theta, springs)
    extra = ", ".join(f"shell {s}: k = {k:+.4f}" for s, k in sorted(springs.items()))
    text = description or f"model-space θ plus central springs beyond the model's shells ({extra})"
    return truth_from_force_constants(bigger, force_constants, name, folder, text)


def _check_central(extended: FCSpace, theta: np.ndarray, springs: dict[int, float]) -> None:
    """The springs must lie in the symmetric FC space: the named pair's block is −k r̂r̂."""
    phonon = extended.phonopy
    full = extended.force_constants(theta)
    p2s = phonon.primitive.p2s_map
    for parameter in extended.parameters:
        if parameter.shell not in springs:
            continue
        a = p2s[parameter.atoms[0]]
        unit = np.asarray(parameter.vector) / np.linalg.norm(parameter.vector)
        expected = -springs[parameter.shell] * np.outer(unit, unit)
        blocks = full[a]  # (N, 3, 3): find the partner with this block among the supercell
        if not np.any(np.all(np.abs(blocks - expected) < 1e-9, axis=(1, 2))):
            raise FcinvertError(
                f"the central spring on shell {parameter.shell} is not in the FC space"
            )


# --------------------------------------------------------------------------------------------
# Frequencies and the truncation floor
# --------------------------------------------------------------------------------------------


def truth_frequencies(truth: Truth, qpoints: np.ndarray) -> np.ndarray:
    """Euphonic's ħω (nq, 3n) meV, ascending, at reduced ``qpoints`` (nq, 3), expressed with
    phonopy's unit factor (``EUPHONIC_TO_FCINVERT``)."""
    modes = truth.force_constants().calculate_qpoint_phonon_modes(
        np.atleast_2d(np.asarray(qpoints, dtype=float)), asr=None, reduce_qpts=False, n_threads=1
    )
    return np.sort(modes.frequencies.to("meV").magnitude, axis=1) * EUPHONIC_TO_FCINVERT


@dataclass
class Floor:
    """Best least-squares fit of a dispersion with the model's shells.

    rms: meV over all q-points and branches; theta: (P,) eV/Å² of the best fit; starts: RMS
    (meV) reached from each start, in order.
    """

    rms: float
    theta: np.ndarray
    starts: list[float]


def truncation_floor(
    material: str | Material,
    qpoints: np.ndarray,
    frequencies: np.ndarray,
    starts: list[np.ndarray] | None = None,
) -> Floor:
    """Fit θ of the model space to ``frequencies`` (nq, 3n) meV at ``qpoints`` (nq, 3).

    Least squares on the sorted frequencies with the exact (Hellmann–Feynman) Jacobian
    dω/dθ_k = F² e†D_k e / (2ω); started from each of ``starts`` (default: the reference) and
    the best kept. 0 (to ~1e-7 meV) when the truth lies in the model's θ space.
    """
    loaded, fcspace = model_space(material)
    basis = dynamics_basis(fcspace, qpoints)
    target = np.asarray(frequencies, dtype=float)
    starts = starts if starts else [reference_theta(loaded, fcspace)]
    results = [_fit_dispersion(basis, target, np.asarray(s, float)) for s in starts]
    rms = [float(np.sqrt(np.mean(r.fun**2))) for r in results]
    best = int(np.argmin(rms))
    return Floor(rms[best], results[best].x, rms)


def _fit_dispersion(basis: DynamicsBasis, target: np.ndarray, start: np.ndarray):
    def residual(theta: np.ndarray) -> np.ndarray:
        return (basis.frequencies(theta) - target).ravel()

    def jacobian(theta: np.ndarray) -> np.ndarray:
        values, vectors = np.linalg.eigh(basis.dynamical_matrices(theta)[0])
        omega = np.sign(values) * np.sqrt(np.abs(values)) * FREQUENCY_TO_MEV
        # e_j† D_k e_j for every k, q, j: (P, nq, nb)
        projected = np.einsum("qaj,kqab,qbj->kqj", vectors.conj(), basis.matrices, vectors).real
        safe = np.where(np.abs(omega) > 1e-3, omega, np.inf)
        derivative = FREQUENCY_TO_MEV**2 * projected / (2.0 * safe)
        return derivative.reshape(len(theta), -1).T

    scale = np.maximum(np.abs(start), 1e-3 * np.abs(start).max())
    return least_squares(
        residual, start, jac=jacobian, x_scale=scale, method="trf", xtol=1e-12, ftol=1e-12
    )


# --------------------------------------------------------------------------------------------
# The measurement
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Gaps:
    """Unmeasured pixels (NaN).

    columns: fraction of q columns missing entirely; segments: number of cut rectangles (each
    5–20 % of the q-points × 10–40 % of the energy bins); pixels: total missing fraction to
    reach with random single pixels after the above (0: none added); tof_ei: when set, the
    coverage of ONE orientation of an ARCS-like ToF spectrometer at this Ei (meV) with hkl
    ``tof_u`` along the beam, ``tof_v`` horizontal, turned by ``tof_psi`` degrees.
    """

    columns: float = 0.0
    segments: int = 0
    pixels: float = 0.0
    tof_ei: float | None = None
    tof_psi: float = 0.0
    tof_u: tuple[float, float, float] = (1.0, 1.0, 0.0)
    tof_v: tuple[float, float, float] = (0.0, 0.0, 1.0)


@dataclass(frozen=True)
class Instrument:
    """Settings of one simulated measurement.

    energy grid 0 … energy_max_meV in energy_step_meV bins (centres at (i + ½)·step);
    resolution FWHM(E) = fwhm0_meV + slope·E; temperature_K (Bose and Debye–Waller);
    peak_counts: counts at the map's peak level; background: flat, as a fraction of the peak;
    zones: number of inequivalent zones G folded (the shortest first); dw_mesh: Debye–Waller
    mesh divisions; path_points: q-points on the material's path (not the model's 200 unless
    asked); gaps: see ``Gaps``.
    """

    energy_max_meV: float = 40.0
    energy_step_meV: float = 0.5
    fwhm0_meV: float = 1.0
    slope: float = 0.02
    temperature_K: float = 5.0
    peak_counts: float = 100.0
    background: float = 0.05
    zones: int = 12
    dw_mesh: int = 10
    path_points: int = 200
    gaps: Gaps = field(default_factory=Gaps)

    @classmethod
    def for_material(cls, material: str, **settings) -> Instrument:
        """Defaults for ``material`` (its experiment-like window and resolution) with
        ``settings`` overriding any field; ``gaps`` may be a dict."""
        loaded = load_material(material)
        defaults = {
            "energy_max_meV": WINDOW_MEV.get(loaded.name, 40.0),
            "fwhm0_meV": loaded.settings.resolution.fwhm0_meV,
            "slope": loaded.settings.resolution.slope,
            "temperature_K": loaded.settings.temperature_K,
        }
        gaps = settings.pop("gaps", None)
        if isinstance(gaps, dict):
            gaps = Gaps(**gaps)
        return cls(**{**defaults, **settings}, gaps=gaps or Gaps())

    @property
    def energy_centres(self) -> np.ndarray:
        """(nE,) meV bin centres."""
        bins = round(self.energy_max_meV / self.energy_step_meV)
        return (np.arange(bins) + 0.5) * self.energy_step_meV

    def as_dict(self) -> dict:
        return asdict(self)


@dataclass
class Simulated:
    """One measurement-like spectrum and what made it.

    spectrum: counts (nq, nE), NaN where unmeasured, error √max(counts, 1); expected: (nq, nE)
    noiseless expected counts (signal + background, no gaps); frequencies: (nq, 3n) meV, the
    truth's dispersion (Euphonic) at spectrum.qpoints; labels: (index, label) of the path's
    high-symmetry points; info: settings, timings and counts.
    """

    spectrum: Spectrum
    expected: np.ndarray
    frequencies: np.ndarray
    labels: list[tuple[int, str]]
    info: dict


def zone_centres(material: Material, count: int) -> np.ndarray:
    """One reduced G (int) from each of the ``count`` Laue orbits of shortest |G| (G ≠ 0):
    (count, 3). S(G + Rq) summed over the rotations R is the same for every G of an orbit."""
    reciprocal = reciprocal_basis(material.atoms.cell[:])
    reach = 8
    grid = np.arange(-reach, reach + 1)
    points = np.stack(np.meshgrid(grid, grid, grid, indexing="ij"), -1).reshape(-1, 3)
    points = points[np.any(points != 0, axis=1)]
    cartesian = points @ reciprocal
    order = np.lexsort(
        (
            -points[:, 2],
            -points[:, 1],
            -points[:, 0],
            np.round(np.linalg.norm(cartesian, axis=1), 8),
        )
    )
    rotations = laue_rotations(material)
    chosen, seen = [], set()
    for i in order:
        images = np.round(np.einsum("rij,j->ri", rotations, cartesian[i]), 6)
        key = tuple(sorted(map(tuple, images.tolist())))
        if key in seen:
            continue
        seen.add(key)
        chosen.append(points[i])
        if len(chosen) == count:
            break
    return np.array(chosen, dtype=np.int64)


def folded_qpoints(material: Material, qpoints: np.ndarray, zones: np.ndarray) -> np.ndarray:
    """Q = G + R q (reduced) for every q (nq, 3), zone G (nz, 3) and Laue rotation R:
    (nq, nz · n_rotations, 3)."""
    reciprocal = reciprocal_basis(material.atoms.cell[:])
    rotations = laue_rotations(material)
    rotated = np.einsum("rij,qj->qri", rotations, qpoints @ reciprocal) @ np.linalg.inv(reciprocal)
    folded = zones[None, :, None, :] + rotated[:, None, :, :]
    return folded.reshape(len(qpoints), -1, 3)


def simulate(
    material: str,
    truth: Truth | np.ndarray,
    instrument: Instrument | None = None,
    seed: int = 0,
) -> Simulated:
    """A measurement-like spectrum of ``truth`` (a Truth, a θ vector of the material's model FC
    space, or a full phonopy FC array) as ``instrument`` measures it; see the module doc."""
    import time

    from euphonic import __version__ as euphonic_version
    from euphonic import ureg

    started = time.perf_counter()
    loaded = load_material(material)
    instrument = instrument or Instrument.for_material(loaded.name)
    truth = _as_truth(loaded, truth)
    path = sample_path(loaded.atoms, instrument.path_points)
    qpoints = path.qpoints
    centres = instrument.energy_centres
    force_constants = truth.force_constants()
    temperature = instrument.temperature_K * ureg("K")

    mesh = np.arange(instrument.dw_mesh) / instrument.dw_mesh
    mesh = np.stack(np.meshgrid(mesh, mesh, mesh, indexing="ij"), -1).reshape(-1, 3)[1:]
    # Γ left out: Euphonic's 1/(ω tanh) is NaN (0·∞) where an acoustic ω comes out exactly 0
    mesh_modes = force_constants.calculate_qpoint_phonon_modes(mesh, asr=None, n_threads=1)
    debye_waller = mesh_modes.calculate_debye_waller(temperature)

    zones = zone_centres(loaded, instrument.zones)
    folded = folded_qpoints(loaded, qpoints, zones)  # (nq, m, 3)
    nq, per_q = folded.shape[:2]
    modes = force_constants.calculate_qpoint_phonon_modes(
        folded.reshape(-1, 3), asr=None, reduce_qpts=False, n_threads=1
    )
    factor = modes.calculate_structure_factor(dw=debye_waller)
    omega = factor.frequencies.to("meV").magnitude.reshape(nq, per_q, -1)
    strength = factor.structure_factors.to("mbarn").magnitude.reshape(nq, per_q, -1)
    valid = omega > LOWEST_MODE_MEV
    safe = np.where(valid, omega, 1.0)
    occupation = _bose(safe, instrument.temperature_K)
    weight = np.where(valid, strength * (occupation + 1.0), 0.0) / per_q
    signal = _bin(omega, weight, centres, instrument)
    euphonic_seconds = time.perf_counter() - started

    finite = signal[np.isfinite(signal)]
    peak = float(np.percentile(finite, PEAK_PERCENTILE))
    if not peak > 0:
        raise FcinvertError(f"{truth.name}: no one-phonon intensity inside the window")
    expected = instrument.peak_counts * (signal / peak + instrument.background)
    noise_rng, gap_rng = (np.random.default_rng(s) for s in np.random.SeedSequence(seed).spawn(2))
    counts = noise_rng.poisson(expected).astype(float)
    missing = gap_mask(loaded, path, centres, instrument, gap_rng)
    counts[missing] = np.nan
    error = np.where(missing, np.nan, np.sqrt(np.maximum(counts, 1.0)))
    spectrum = Spectrum(
        intensity=counts,
        energy=centres.copy(),
        qpoints=qpoints.copy(),
        material=loaded.name,
        temperature_K=instrument.temperature_K,
        error=error,
    )
    frequencies = truth_frequencies(truth, qpoints)  # at q itself, not at a folded G + Rq
    info = {
        "source": f"euphonic {euphonic_version} (benchmarks/measurement_like.py)",
        "truth": truth.name,
        "truth_description": truth.description,
        "seed": seed,
        "instrument": instrument.as_dict(),
        "zone_centres_reduced": zones.tolist(),
        "q_per_column": per_q,
        "peak_level": peak,
        "missing_fraction": float(missing.mean()),
        "highest_mode_meV": float(frequencies.max()),
        "seconds": time.perf_counter() - started,
        "euphonic_seconds": euphonic_seconds,
    }
    return Simulated(spectrum, expected, frequencies, list(path.labels), info)


def measurement_like(
    material: str,
    truth: Truth | np.ndarray,
    instrument: Instrument | None = None,
    seed: int = 0,
    out: str | Path | None = None,
) -> Spectrum:
    """``simulate(...).spectrum``, also written to ``out`` (HDF5, the project's writer) with
    the provenance (source, truth name, settings, seed) as file attributes."""
    simulated = simulate(material, truth, instrument, seed)
    if out is not None:
        write_simulated(out, simulated)
    return simulated.spectrum


def write_simulated(out: str | Path, simulated: Simulated) -> None:
    """Write the spectrum (no truth θ or frequencies in the file: it is what a user has)."""
    info = simulated.info
    attrs = {
        "source": info["source"],
        "truth": info["truth"],
        "seed": int(info["seed"]),
        "instrument": json.dumps(info["instrument"]),
    }
    write_spectrum(out, simulated.spectrum, attrs=attrs)


def _as_truth(material: Material, truth: Truth | np.ndarray) -> Truth:
    if isinstance(truth, Truth):
        if truth.material != material.name:
            raise FcinvertError(f"truth {truth.name} is for {truth.material}, not {material.name}")
        return truth
    array = np.asarray(truth, dtype=float)
    if array.ndim == 1:
        return truth_from_theta(material, array, "theta")
    return truth_from_force_constants(material, array, "force-constants")


def _bose(energy: np.ndarray, temperature: float) -> np.ndarray:
    if temperature <= 0:
        return np.zeros_like(energy)
    with np.errstate(over="ignore"):
        return 1.0 / np.expm1(energy / (BOLTZMANN_MEV * temperature))


def _bin(
    omega: np.ndarray, weight: np.ndarray, centres: np.ndarray, instrument: Instrument
) -> np.ndarray:
    """Σ weight · Gaussian(E − ω; σ(ω)) integrated over each bin / bin width: (nq, nE)."""
    step = instrument.energy_step_meV
    edges = np.append(centres - 0.5 * step, centres[-1] + 0.5 * step)
    sigma = (instrument.fwhm0_meV + instrument.slope * np.abs(omega)) * FWHM_TO_SIGMA
    out = np.empty((len(omega), len(centres)))
    for i in range(len(omega)):
        keep = weight[i] > 0
        z = (edges[None, :] - omega[i][keep][:, None]) / sigma[i][keep][:, None]
        out[i] = weight[i][keep] @ np.diff(ndtr(z), axis=1) / step
    return out


def gap_mask(
    material: Material,
    path,
    centres: np.ndarray,
    instrument: Instrument,
    rng: np.random.Generator,
) -> np.ndarray:
    """(nq, nE) bool, True where unmeasured, as ``instrument.gaps`` asks."""
    gaps = instrument.gaps
    nq, n_energy = len(path.qpoints), len(centres)
    missing = np.zeros((nq, n_energy), bool)
    if gaps.tof_ei is not None:
        missing |= ~tof_coverage(material, path, centres, instrument)
    if gaps.columns > 0:
        columns = rng.choice(nq, size=round(gaps.columns * nq), replace=False)
        missing[columns] = True
    for _ in range(gaps.segments):
        width_q = max(1, int(rng.uniform(0.05, 0.20) * nq))
        width_e = max(1, int(rng.uniform(0.10, 0.40) * n_energy))
        q0 = int(rng.integers(0, nq - width_q + 1))
        e0 = int(rng.integers(0, n_energy - width_e + 1))
        missing[q0 : q0 + width_q, e0 : e0 + width_e] = True
    extra = round(gaps.pixels * missing.size) - int(missing.sum())
    if extra > 0:
        measured = np.flatnonzero(~missing)
        missing.flat[rng.choice(measured, size=extra, replace=False)] = True
    return missing


def tof_coverage(material: Material, path, centres: np.ndarray, instrument: Instrument):
    """(nq, nE) bool: the path pixels ONE orientation of an ARCS-like spectrometer measures
    (``fcinvert.data.measurement.simulate_scans`` with a single ψ; only its coverage is used,
    not its intensities)."""
    from fcinvert.data.measurement import simulate_scans
    from fcinvert.physics.instrument import Orientation, Spectrometer
    from fcinvert.physics.reciprocal import conventional_lattice
    from fcinvert.physics.structure_factor import StructureFactorModel

    gaps = instrument.gaps
    step = instrument.energy_step_meV
    energy = EnergySettings(min_meV=0.0, max_meV=len(centres) * step, bins=len(centres))
    settings = material.settings.model_copy(
        update={"energy": energy, "path_points": instrument.path_points}
    )
    on_grid = replace(material, settings=settings, path=path)
    fcspace = build_fcspace(material)
    model = StructureFactorModel.build(on_grid, fcspace)
    orientation = Orientation.from_vectors(
        conventional_lattice(material), np.array(gaps.tof_u), np.array(gaps.tof_v)
    )
    scans = simulate_scans(
        on_grid,
        model,
        reference_theta(material, fcspace),
        Spectrometer(ei=gaps.tof_ei),
        orientation,
        np.array([gaps.tof_psi]),
        counts=1e6,
        seed=0,
    )
    return np.isfinite(scans.single[0].intensity)


def dispersion_rms(frequencies: np.ndarray, truth: np.ndarray) -> float:
    """RMS (meV) over all q-points and branches of two (nq, nb) dispersions."""
    return float(np.sqrt(np.mean((np.asarray(frequencies) - np.asarray(truth)) ** 2)))


def euphonic_agreement(truth: Truth, qpoints: np.ndarray) -> dict[str, float]:
    """Largest |ω_Euphonic − ω_fcinvert| (meV) at ``qpoints`` for a truth in θ space.

    raw_meV: as each code reports them; same_unit_meV: Euphonic's frequencies in phonopy's unit
    factor, over every mode but the zero modes at Γ (|ω| < 1e-3 meV in both codes, where √ of
    a ~1e-16 eigenvalue is ~1e-6 meV of rounding noise either way); zero_modes_meV: the largest
    |ω| of those zero modes in either code; unit_ratio_minus_1: Euphonic's factor over phonopy's
    − 1."""
    if truth.theta is None:
        raise FcinvertError(f"{truth.name} does not lie in the model's θ space")
    _, fcspace = model_space(truth.material)
    ours = dynamics_basis(fcspace, qpoints).frequencies(truth.theta)
    converted = truth_frequencies(truth, qpoints)
    raw = converted / EUPHONIC_TO_FCINVERT
    zero = (np.abs(ours) < 1e-3) & (np.abs(converted) < 1e-3)
    return {
        "raw_meV": float(np.abs(raw - ours).max()),
        "same_unit_meV": float(np.abs(converted - ours)[~zero].max()),
        "zero_modes_meV": float(max(np.abs(ours[zero]).max(), np.abs(converted[zero]).max()))
        if zero.any()
        else 0.0,
        "unit_ratio_minus_1": float(1.0 / EUPHONIC_TO_FCINVERT - 1.0),
    }


def plot_spectrum(simulated: Simulated, out: str | Path, title: str = "") -> Path:
    """PNG of the counts: log colour scale with a colour bar, NaN grey, truth dispersion
    dotted, high-symmetry labels on the q axis."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.colors import LogNorm

    spectrum = simulated.spectrum
    image = np.ma.masked_invalid(spectrum.intensity.T)
    colours = plt.get_cmap("viridis").copy()
    colours.set_bad("0.6")
    figure, axes = plt.subplots(figsize=(9, 4.8), constrained_layout=True)
    step = spectrum.energy[1] - spectrum.energy[0]
    extent = (
        -0.5,
        len(spectrum.qpoints) - 0.5,
        spectrum.energy[0] - step / 2,
        spectrum.energy[-1] + step / 2,
    )
    positive = spectrum.intensity[np.isfinite(spectrum.intensity) & (spectrum.intensity > 0)]
    norm = LogNorm(vmin=max(1.0, float(positive.min())), vmax=float(positive.max()))
    shown = axes.imshow(
        image,
        origin="lower",
        aspect="auto",
        extent=extent,
        cmap=colours,
        norm=norm,
        interpolation="nearest",
    )
    for branch in simulated.frequencies.T:
        axes.plot(np.arange(len(branch)), branch, ":", color="white", lw=0.6, alpha=0.7)
    positions, names = zip(*simulated.labels, strict=True) if simulated.labels else ((), ())
    axes.set_xticks(positions, names)
    axes.set_ylim(extent[2], extent[3])
    axes.set_ylabel("E (meV)")
    axes.set_title(title or f"{spectrum.material}: {simulated.info['truth']}")
    figure.colorbar(shown, ax=axes, label="counts (NaN grey)")
    out = Path(out)
    figure.savefig(out, dpi=110)
    plt.close(figure)
    return out


__all__ = [
    "EUPHONIC_TO_FCINVERT",
    "WINDOW_MEV",
    "Floor",
    "Gaps",
    "Instrument",
    "Simulated",
    "Truth",
    "dispersion_rms",
    "domain_bounds",
    "domain_edge_truth",
    "euphonic_agreement",
    "extended_space",
    "folded_qpoints",
    "force_field_truth",
    "gap_mask",
    "long_range_truth",
    "measurement_like",
    "model_space",
    "plot_spectrum",
    "reference_theta",
    "scaled_truth",
    "simulate",
    "tof_coverage",
    "truncation_floor",
    "truth_frequencies",
    "truth_from_force_constants",
    "truth_from_theta",
    "write_simulated",
    "zone_centres",
]
