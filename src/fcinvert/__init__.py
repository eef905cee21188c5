"""fcinvert: interatomic force constants from single-crystal inelastic neutron scattering."""

__version__ = "0.1.0"
