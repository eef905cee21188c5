"""A direct-geometry time-of-flight spectrometer: which (Q, E) a crystal orientation measures.

Lab frame as Mantid's: beam along +z, +y up, +x horizontal. Mantid's inelastic convention
Q = k_i − k_f (1/Å, with 2π), E = E_i − E_f (meV), k = √(E / 2.0721). The crystal is set with
``u`` (conventional hkl) along the beam and ``v`` in the horizontal plane at ψ = 0 (Mantid's
SetUB), and turned by ψ about +y (counter-clockwise seen from above): Q_lab = R_y(ψ) · 2π U B hkl.

The defaults are ARCS-like (SNS): detectors from −28° to 135° in the horizontal plane with a
gap of ±3° around the direct beam, −27° to +26° vertically, sampled on a 0.5° grid.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from fcinvert.errors import FcinvertError
from fcinvert.physics.reciprocal import reciprocal_basis

#: E (meV) = ENERGY_PER_K2 · k² (k in 1/Å): ħ²/(2 m_n).
ENERGY_PER_K2 = 2.0721246


def wavevector(energy: np.ndarray | float) -> np.ndarray:
    """Neutron wavevector k (1/Å) of kinetic energy ``energy`` (meV)."""
    return np.sqrt(np.asarray(energy, dtype=float) / ENERGY_PER_K2)


@dataclass(frozen=True)
class Spectrometer:
    """Incident energy (meV) and detector coverage (degrees; horizontal angle measured from the
    beam towards +x, vertical elevation towards +y)."""

    ei: float = 40.0
    horizontal: tuple[tuple[float, float], ...] = ((-28.0, -3.0), (3.0, 135.0))
    vertical: tuple[float, float] = (-27.0, 26.0)
    pixel: float = 0.5

    def __post_init__(self) -> None:
        if not self.ei > 0:
            raise FcinvertError(f"incident energy must be positive, got {self.ei} meV")
        if not self.pixel > 0:
            raise FcinvertError(f"detector pixel size must be positive, got {self.pixel}°")

    def pixels(self) -> tuple[np.ndarray, np.ndarray]:
        """Detector pixel centres: horizontal and vertical angles (n_pixels,) in degrees."""
        vertical = _centres(*self.vertical, self.pixel)
        horizontal = np.concatenate(
            [_centres(low, high, self.pixel) for low, high in self.horizontal]
        )
        h, v = np.meshgrid(horizontal, vertical, indexing="ij")
        return h.ravel(), v.ravel()

    def directions(self) -> tuple[np.ndarray, np.ndarray]:
        """Unit vectors of k_f (n_pixels, 3) and each pixel's solid-angle weight (cos elevation)."""
        h, v = np.radians(self.pixels())
        vectors = np.stack([np.sin(h) * np.cos(v), np.sin(v), np.cos(h) * np.cos(v)], axis=1)
        return vectors, np.cos(v)

    def scattering_angle_range(self) -> tuple[float, float]:
        """Smallest and largest 2θ (degrees) of any pixel."""
        vectors, _ = self.directions()
        two_theta = np.degrees(np.arccos(np.clip(vectors[:, 2], -1, 1)))
        return float(two_theta.min()), float(two_theta.max())

    def reach(self, magnitude: np.ndarray, energy: np.ndarray) -> np.ndarray:
        """(m, nE) bool: can some pixel see |Q| = ``magnitude`` (1/Å) at ``energy`` (meV) for some
        crystal orientation? (E < Ei and the 2θ it needs inside the detector coverage.)"""
        low, high = np.radians(self.scattering_angle_range())
        ki = wavevector(self.ei)
        energy = np.asarray(energy, dtype=float)
        kf = wavevector(np.clip(self.ei - energy, 0.0, None))
        q = np.asarray(magnitude, dtype=float)[:, None]
        with np.errstate(invalid="ignore", divide="ignore"):
            cosine = (ki**2 + kf**2 - q**2) / (2 * ki * kf)
        slack = 1e-9  # the outermost pixels themselves are inside
        return (
            (energy < self.ei)
            & (cosine <= math.cos(low) + slack)
            & (cosine >= math.cos(high) - slack)
        )


def _centres(low: float, high: float, step: float) -> np.ndarray:
    count = max(1, round((high - low) / step))
    return low + (np.arange(count) + 0.5) * (high - low) / count


@dataclass(frozen=True)
class Orientation:
    """The crystal's setting: Mantid's UB (1/Å, without 2π; Q_sample = 2π UB hkl)."""

    ub: np.ndarray

    @classmethod
    def from_vectors(cls, lattice: np.ndarray, u: np.ndarray, v: np.ndarray) -> Orientation:
        """UB for conventional ``lattice`` (3, 3) rows in Å, with hkl ``u`` along the beam and
        ``v`` in the horizontal plane (towards +x) at ψ = 0."""
        b_matrix = reciprocal_basis(lattice)  # rows a*, b*, c* (no 2π)
        u_cart = np.asarray(u, float) @ b_matrix
        v_cart = np.asarray(v, float) @ b_matrix
        if np.linalg.norm(np.cross(u_cart, v_cart)) < 1e-9 * np.linalg.norm(
            u_cart
        ) * np.linalg.norm(v_cart):
            raise FcinvertError(f"u = {list(u)} and v = {list(v)} must not be parallel")
        e1 = u_cart / np.linalg.norm(u_cart)
        e2 = v_cart - (v_cart @ e1) * e1
        e2 /= np.linalg.norm(e2)
        e3 = np.cross(e1, e2)
        crystal = np.stack([e1, e2, e3], axis=1)  # columns: crystal-frame unit vectors
        lab = np.array([[0.0, 1.0, 0.0], [0.0, 0.0, 1.0], [1.0, 0.0, 0.0]])  # columns z, x, y
        rotation = lab @ crystal.T  # crystal frame → sample frame: e1 → z, e2 → x, e3 → y
        return cls(rotation @ b_matrix.T)

    def lab_from_hkl(self, hkl: np.ndarray, psi: float) -> np.ndarray:
        """Q_lab (M, 3) 1/Å with 2π for conventional hkl (M, 3) at rotation ψ (degrees)."""
        return (2 * math.pi) * np.asarray(hkl, float) @ (rotation_y(psi) @ self.ub).T

    def hkl_from_lab(self, q_lab: np.ndarray, psi: float) -> np.ndarray:
        """Conventional hkl (M, 3) of Q_lab (M, 3) (1/Å with 2π) at rotation ψ (degrees)."""
        inverse = np.linalg.inv(2 * math.pi * rotation_y(psi) @ self.ub)
        return np.asarray(q_lab, float) @ inverse.T


def rotation_y(psi: float) -> np.ndarray:
    """Rotation by ψ degrees about +y (Mantid's goniometer axis (0, 1, 0), sense +1)."""
    c, s = math.cos(math.radians(psi)), math.sin(math.radians(psi))
    return np.array([[c, 0.0, s], [0.0, 1.0, 0.0], [-s, 0.0, c]])


def momentum_transfer_lab(
    ei: float, polar: np.ndarray, azimuthal: np.ndarray, energy: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Q_lab = k_i − k_f (n_det, nE, 3) (1/Å) for detectors at ``polar`` 2θ and ``azimuthal`` φ
    (degrees, Mantid's spherical convention) and energy transfers ``energy`` (nE,) meV; and
    (n_det, nE) bool where E < Ei (k_f real)."""
    theta, phi = np.radians(np.asarray(polar, float)), np.radians(np.asarray(azimuthal, float))
    direction = np.stack(
        [np.sin(theta) * np.cos(phi), np.sin(theta) * np.sin(phi), np.cos(theta)], axis=1
    )
    return transfer(ei, direction, np.asarray(energy, float))


def transfer(ei: float, direction: np.ndarray, energy: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Q_lab = k_i − k_f (n_dir, nE, 3) for unit k_f ``direction`` (n_dir, 3) and energy
    transfers ``energy`` (nE,) meV; (n_dir, nE) bool where E < Ei."""
    valid = np.broadcast_to(energy < ei, (len(direction), len(energy)))
    kf = wavevector(np.clip(ei - energy, 0.0, None))
    ki = np.array([0.0, 0.0, float(wavevector(ei))])
    q = ki[None, None, :] - direction[:, None, :] * kf[None, :, None]
    return q, valid


def measured_points(
    spectrometer: Spectrometer, orientation: Orientation, psi: float, energy: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """What one orientation measures at energy transfers ``energy`` (nE,) meV.

    Returns hkl (n_pixels, nE, 3) conventional, valid (n_pixels, nE) bool (E < Ei) and each
    pixel's solid-angle weight (n_pixels,).
    """
    direction, weight = spectrometer.directions()
    q_lab, valid = transfer(spectrometer.ei, direction, np.asarray(energy, float))
    hkl = orientation.hkl_from_lab(q_lab.reshape(-1, 3), psi).reshape(q_lab.shape)
    return hkl, valid, weight
