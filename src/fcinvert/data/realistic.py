"""Measurement-like training spectra: what an instrument records of a drawn θ, fast.

The fast model (``physics.spectra.render``) gives every branch unit weight; a measurement does
not. For each stable θ of the domain (the same draws as the clean dataset with the same seed)
this generator makes the coherent one-phonon spectrum a single-crystal experiment records:

1. **Physics** (``physics.structure_factor``): eigenvectors, |Q·e|², 1/ω, Bose factor and
   Debye–Waller, summed over a randomly drawn zone set at a random temperature. A zone set is
   either 1–``orbit_centres_max`` zone centres (each with its Laue orbit, random weights) among
   those with |G| ≤ ``orbit_radius``, or every zone within a random radius (equal weights).
   The sum over zones is the quadratic form e† W(q) e of ``FoldOperator``: W is built once per
   *setup* (zone set and temperature; ``share`` spectra use each setup) with Debye–Waller
   held at the reference θ's, so each θ costs one eigen-solve and a 3N × 3N product per q.
2. **Resolution**: the material's FWHM(E) times a log-uniform factor per spectrum.
3. **Energy window**: bins above a random top (``window_top`` × the θ's highest mode, as an
   incident energy would cut) are NaN; sometimes the elastic line is cut below a few meV.
4. **Counts**: the spectrum is scaled to its typical peak (the median over q of each column's
   highest measured pixel), a flat background
   (``background`` × peak) added, and Poisson counts drawn at a log-uniform peak count; the
   background is sometimes subtracted again (negative pixels, as reduced data have), and an
   overall log-uniform intensity scale applied.
5. **Coverage**: some spectra lose random whole q columns, a contiguous cut segment of the path,
   the columns a coarser input path leaves empty after resampling, scattered single pixels, or
   everything one (or several consecutive) ToF orientations of the ARCS-like simulator
   (``data.measurement.simulate_scans``, at two incident energies) did not measure.

Every random choice comes from a stream seeded by (seed, split, chunk, 1): same seed, same
spectra, whatever the workers.

Measured (``benchmarks/realistic_dataset.py``, Ge, one thread on the shared 2-core CPU): 10 000
spectra in 53-73 s plus a 15-24 s set-up, 16-17× the fast model's time in the same run (the
exact per-Q ``folded_spectrum`` over the same 387 zones costs 70-95× a realistic spectrum).
With the scattered-pixel and coarse-path gaps and anti-Stokes tails: 53 s + 15 s. Debye–Waller
held at the reference instead of each θ's own, over the domain: the image differs by 6 % (5 K)
and 46 % (300 K) of its maximum, almost all of it an overall scale; as the network sees it
(``sqrt-column`` input) by 0.2 % (5 K) and 1.7 % (300 K) of a column's maximum, below the
counting noise.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field

import numpy as np

from fcinvert.data.dataset import SPLITS, SpectrumGenerator
from fcinvert.physics.dynamics import FREQUENCY_TO_MEV as _FREQUENCY_TO_MEV
from fcinvert.physics.material import Material
from fcinvert.physics.spectra import render_weighted
from fcinvert.physics.structure_factor import (
    FoldOperator,
    StructureFactorModel,
    phonon_weights,
    quadratic_strengths,
    zones_within,
)

#: a spectrum keeps its coverage masks only if at least this fraction of pixels stays measured
MIN_MEASURED = 0.05


@dataclass(frozen=True)
class MeasurementRanges:
    """How measurement-like spectra vary (each range is drawn per spectrum or per setup).

    Log-uniform: temperature_K, resolution_scale, peak_counts, intensity_scale. Uniform:
    window_top (× highest mode), background (× peak), zone_radius (1/Å). Probabilities p_*.
    """

    temperature_K: tuple[float, float] = (5.0, 300.0)
    resolution_scale: tuple[float, float] = (0.75, 1.5)
    window_top: tuple[float, float] = (0.6, 1.3)
    peak_counts: tuple[float, float] = (10.0, 3000.0)
    background: tuple[float, float] = (0.0, 0.3)
    intensity_scale: tuple[float, float] = (1e-2, 1e3)
    zone_radius: tuple[float, float] = (2.5, 8.0)
    orbit_radius: float = 7.0
    orbit_centres_max: int = 4
    p_sphere: float = 0.4
    p_subtract: float = 0.25
    p_elastic_cut: float = 0.5
    elastic_max_meV: float = 3.0
    p_columns: float = 0.3
    columns_max: float = 0.3
    p_segment: float = 0.3
    segment: tuple[float, float] = (0.05, 0.35)
    p_tof_single: float = 0.15
    p_tof_multi: float = 0.25
    p_pixels: float = 0.3
    pixels_max: float = 0.4
    p_thin: float = 0.2
    thin: tuple[float, float] = (0.5, 0.95)
    share: int = 16

    def as_dict(self) -> dict:
        return asdict(self)


@dataclass
class TofMasks:
    """Coverage of the path grid by single ToF orientations: masks (n, nq, nE) bool, and for
    each its group (n,) (one incident energy; consecutive members are neighbouring ψ)."""

    masks: np.ndarray
    group: np.ndarray
    info: dict = field(default_factory=dict)


@dataclass
class RealisticGenerator(SpectrumGenerator):
    """A ``SpectrumGenerator`` whose spectra look measured (see the module docstring).

    model: the physical model on the path; operator: the fold over the zone pool;
    mesh_modes: (ħω, e) on the Debye–Waller mesh at the reference θ; orbits: (n_orbits,) lists
    of pool indices, one Laue orbit each (zone-centre choices); tof: coverage masks or None.
    """

    model: StructureFactorModel = None  # type: ignore[assignment]
    operator: FoldOperator = None  # type: ignore[assignment]
    mesh_modes: tuple[np.ndarray, np.ndarray] = None  # type: ignore[assignment]
    orbits: list[np.ndarray] = field(default_factory=list)
    tof: TofMasks | None = None
    ranges: MeasurementRanges = field(default_factory=MeasurementRanges)

    def spectra(self, split: str, index: int, size: int) -> tuple[np.ndarray, np.ndarray, int]:
        """Chunk ``index`` of ``split``: the clean generator's θ (size, P), their
        measurement-like spectra (size, nq, nE) float32 with NaN, candidates drawn."""
        rng = np.random.default_rng([self.seed, SPLITS.index(split), index])
        draw = self.sampler.draw(size, rng)
        noise = np.random.default_rng([self.seed, SPLITS.index(split), index, 1])
        return draw.theta, self.measure(draw.theta, noise), draw.drawn

    def header_attrs(self) -> dict:
        """What the dataset file records about these spectra."""
        import json

        info = {
            "kind": "realistic",
            "ranges": self.ranges.as_dict(),
            "zone_pool": len(self.operator.zones),
            "orbits": len(self.orbits),
            "tof": None if self.tof is None else self.tof.info,
        }
        return {"spectra_kind": "realistic", "realistic": json.dumps(info)}

    def measure(self, theta: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        """Measurement-like spectra (B, nq, nE) float32 (NaN = unmeasured) of θ (B, P)."""
        clean, highest = self.physical(theta, rng)
        return self.record(clean, highest, rng)

    def physical(
        self, theta: np.ndarray, rng: np.random.Generator
    ) -> tuple[np.ndarray, np.ndarray]:
        """Noise-free folded one-phonon spectra (B, nq, nE) float32 with drawn setups and
        resolutions, and each θ's highest mode (B,) meV."""
        ranges = self.ranges
        theta = np.atleast_2d(theta)
        batch = len(theta)
        values, vectors = np.linalg.eigh(self.model.path.dynamical_matrices(theta))
        frequencies = np.sign(values) * np.sqrt(np.abs(values)) * _FREQUENCY_TO_MEV
        n_setups = -(-batch // ranges.share)
        temperature = _log_uniform(rng, ranges.temperature_K, n_setups)
        matrices = np.stack([self._setup(t, rng) for t in temperature])
        setup = np.repeat(np.arange(n_setups), ranges.share)[:batch]
        strengths = quadratic_strengths(vectors, matrices[setup])
        create, annihilate = phonon_weights(
            frequencies, strengths, temperature[setup], self.model.cutoff
        )
        # anti-Stokes peaks at −ħω too: their resolution tails reach the first bins above 0
        peaks = np.concatenate([frequencies, -frequencies], axis=-1)
        amounts = np.concatenate([create, annihilate], axis=-1)
        resolution = _log_uniform(rng, ranges.resolution_scale, batch)
        clean = render_weighted(peaks, amounts, self.grid, resolution)
        return clean, frequencies.max(axis=(1, 2))

    def _setup(self, temperature: float, rng: np.random.Generator) -> np.ndarray:
        """W(q) (nq, 3N, 3N) of one drawn zone set at ``temperature``."""
        ranges = self.ranges
        if rng.random() < ranges.p_sphere or not self.orbits:
            radius = rng.uniform(*ranges.zone_radius)
            index = np.flatnonzero(np.linalg.norm(self.operator.zone_cart, axis=1) <= radius)
            weights = np.ones(len(index))
        else:
            count = int(rng.integers(1, ranges.orbit_centres_max + 1))
            chosen = rng.choice(len(self.orbits), size=min(count, len(self.orbits)), replace=False)
            index = np.concatenate([self.orbits[i] for i in chosen])
            weights = np.concatenate(
                [
                    np.full(len(self.orbits[i]), rng.uniform(0.2, 1.0) / len(self.orbits[i]))
                    for i in chosen
                ]
            )
        displacement = self.model.displacements_from_modes(*self.mesh_modes, float(temperature))
        return self.operator.matrices(index, weights, displacement)

    def record(
        self, clean: np.ndarray, highest: np.ndarray, rng: np.random.Generator
    ) -> np.ndarray:
        """Window, counts on a background, scale and coverage gaps applied to clean spectra
        (B, nq, nE); ``highest`` (B,) meV sets each window's top. Returns float32 with NaN."""
        ranges = self.ranges
        batch, nq, n_energy = clean.shape
        centres = self.grid.centres
        top = rng.uniform(*ranges.window_top, batch) * highest
        window = centres[None, :] <= top[:, None]  # (B, nE)
        elastic = np.where(
            rng.random(batch) < ranges.p_elastic_cut,
            rng.uniform(0.0, ranges.elastic_max_meV, batch),
            -np.inf,
        )
        window &= centres[None, :] >= elastic[:, None]
        seen = np.broadcast_to(window[:, None, :], clean.shape)
        # the typical peak: the median over q of each column's highest measured pixel (the
        # acoustic modes at the zone centres, far above, would otherwise set the counts)
        columns = np.where(seen, clean, 0.0).max(axis=2)
        # at least 1 % of the highest pixel: a zone set that leaves most columns nearly empty
        # must not blow the counts up
        peak = np.maximum(np.median(columns, axis=1), 0.01 * columns.max(axis=1))
        peak = np.where(peak > 0, peak, 1.0)
        background = rng.uniform(*ranges.background, batch)
        counts = _log_uniform(rng, ranges.peak_counts, batch)
        rate = counts[:, None, None] * (clean / peak[:, None, None] + background[:, None, None])
        drawn = rng.poisson(np.clip(np.where(seen, rate, 0.0), 0.0, 1e12)).astype(np.float32)
        out = drawn / counts[:, None, None].astype(np.float32)
        subtract = rng.random(batch) < ranges.p_subtract
        out -= np.where(subtract, background, 0.0).astype(np.float32)[:, None, None]
        out *= _log_uniform(rng, ranges.intensity_scale, batch).astype(np.float32)[:, None, None]
        covered = self._coverage(batch, nq, n_energy, rng) & seen
        enough = covered.reshape(batch, -1).mean(axis=1) >= MIN_MEASURED
        measured = np.where(enough[:, None, None], covered, seen)
        return np.where(measured, out, np.float32(np.nan)).astype(np.float32)

    def _coverage(self, batch: int, nq: int, n_energy: int, rng: np.random.Generator) -> np.ndarray:
        """(B, nq, nE) bool: pixels left by the drawn gaps (columns, segments, ToF masks)."""
        ranges = self.ranges
        keep = np.ones((batch, nq, n_energy), bool)
        columns = rng.random(batch) < ranges.p_columns
        fraction = rng.uniform(0.0, ranges.columns_max, batch)
        lose = rng.random((batch, nq)) < fraction[:, None]
        keep &= ~(columns[:, None] & lose)[:, :, None]
        segment = rng.random(batch) < ranges.p_segment
        length = np.ceil(rng.uniform(*ranges.segment, batch) * nq).astype(int)
        start = (rng.random(batch) * (nq - length + 1)).astype(int)
        q = np.arange(nq)
        cut = (q[None] >= start[:, None]) & (q[None] < (start + length)[:, None])
        keep &= ~(segment[:, None] & cut)[:, :, None]
        # a coarser input path: n·r evenly spaced input points, each given to its nearest model
        # column (as the resampler does), leave the other columns empty
        thin = rng.random(batch) < ranges.p_thin
        ratio = rng.uniform(*ranges.thin, batch)
        for b in np.flatnonzero(thin):
            inputs = max(2, round(float(ratio[b]) * nq))
            fed = np.zeros(nq, bool)
            fed[np.round(np.linspace(0, nq - 1, inputs)).astype(int)] = True
            keep[b] &= fed[:, None]
        pixels = rng.random(batch) < ranges.p_pixels
        fraction = rng.uniform(0.0, ranges.pixels_max, batch)
        scattered = rng.random((batch, nq, n_energy)) < fraction[:, None, None]
        keep &= ~(pixels[:, None, None] & scattered)
        if self.tof is not None and len(self.tof.masks):
            choice = rng.random(batch)
            pick = rng.integers(0, len(self.tof.masks), batch)
            span = rng.integers(2, 13, batch)
            for b in range(batch):
                if choice[b] < ranges.p_tof_single:
                    keep[b] &= self.tof.masks[pick[b]]
                elif choice[b] < ranges.p_tof_single + ranges.p_tof_multi:
                    members = np.flatnonzero(self.tof.group == self.tof.group[pick[b]])
                    first = int(np.searchsorted(members, pick[b]))
                    ring = members[(first + np.arange(min(span[b], len(members)))) % len(members)]
                    keep[b] &= self.tof.masks[ring].any(axis=0)
        return keep


def _log_uniform(rng: np.random.Generator, bounds: tuple[float, float], n: int) -> np.ndarray:
    low, high = math.log(bounds[0]), math.log(bounds[1])
    return np.exp(rng.uniform(low, high, n))


def laue_orbits(material: Material, zones: np.ndarray, radius: float) -> list[np.ndarray]:
    """The Laue orbits among ``zones`` (n, 3) int with |G| ≤ ``radius`` (1/Å), Γ excluded, as
    lists of row indices; each orbit's members are all in ``zones``."""
    from fcinvert.physics.reciprocal import laue_rotations, reciprocal_basis

    reciprocal = reciprocal_basis(material.atoms.cell[:])
    cart = zones @ reciprocal
    rotations = laue_rotations(material)
    images = np.einsum("rji,zj->zri", rotations, cart) @ np.linalg.inv(reciprocal)
    images = np.round(images).astype(np.int64)  # (n, r, 3)
    lookup = {tuple(z): i for i, z in enumerate(zones.tolist())}
    magnitude = 2.0 * np.pi * np.linalg.norm(cart, axis=1)
    seen: set[int] = set()
    orbits = []
    for i in np.argsort(magnitude, kind="stable"):
        if i in seen or magnitude[i] < 1e-9 or magnitude[i] > radius:
            continue
        members = sorted({lookup.get(tuple(z), -1) for z in images[i].tolist()})
        if -1 in members:
            continue
        seen.update(members)
        orbits.append(np.array(members, np.int64))
    return orbits


def tof_masks(
    material: Material,
    model: StructureFactorModel,
    theta: np.ndarray,
    ei_values: list[float],
    psi: np.ndarray,
    q_step: float = 0.1,
) -> TofMasks:
    """Which path pixels single ToF orientations ψ (degrees) measure, at each incident energy
    (the ARCS-like default spectrometer, u = [1,1,0] along the beam, v = [0,0,1])."""
    from fcinvert.data.measurement import simulate_scans
    from fcinvert.physics.instrument import Orientation, Spectrometer
    from fcinvert.physics.reciprocal import conventional_lattice

    orientation = Orientation.from_vectors(
        conventional_lattice(material), np.array([1.0, 1.0, 0.0]), np.array([0.0, 0.0, 1.0])
    )
    masks, group = [], []
    for g, ei in enumerate(ei_values):
        scans = simulate_scans(
            material,
            model,
            theta,
            Spectrometer(ei=float(ei)),
            orientation,
            psi,
            1e5,
            q_step=q_step,
        )
        masks += [np.isfinite(s.intensity) for s in scans.single]
        group += [g] * len(scans.single)
    info = {
        "ei_meV": [float(e) for e in ei_values],
        "psi_deg": [float(p) for p in psi],
        "u": [1, 1, 0],
        "v": [0, 0, 1],
        "q_step_rlu": q_step,
    }
    return TofMasks(np.array(masks), np.array(group), info)


def prepare_realistic(
    material: Material,
    base: SpectrumGenerator,
    ranges: MeasurementRanges | None = None,
    tof: bool = True,
) -> RealisticGenerator:
    """The measurement-like twin of a clean generator (same domain, grid, seed and θ draws).

    Builds the physical model on the generator's path, the zone pool (|G| ≤ the largest zone
    radius or orbit radius), the reference θ's Debye–Waller mesh modes, and (``tof``) the ToF
    coverage masks at incident energies 1.5× and 2.5× the reference's highest mode, ψ every 15°
    over 180° (~15 s).
    """
    from fcinvert.physics.fcspace import build_fcspace

    ranges = MeasurementRanges() if ranges is None else ranges
    fcspace = build_fcspace(material)
    qpoints = base.sampler.check.path.qpoints
    model = StructureFactorModel.build(material, fcspace, qpoints)
    pool = zones_within(material, max(ranges.zone_radius[1], ranges.orbit_radius))
    operator = FoldOperator.build(model, pool)
    reference = np.asarray(base.sampler.domain.reference, dtype=float)
    mesh_modes = model.mesh.modes(reference)
    orbits = laue_orbits(material, pool, ranges.orbit_radius)
    masks = None
    if tof:
        top = float(model.path.frequencies(reference).max())
        masks = tof_masks(
            material, model, reference, [1.5 * top, 2.5 * top], np.arange(0, 180, 15.0)
        )
    return RealisticGenerator(
        base.sampler, base.grid, base.seed, model, operator, mesh_modes, orbits, masks, ranges
    )
