"""θ → files that phonopy and Euphonic load unchanged."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from phonopy.file_IO import write_FORCE_CONSTANTS
from phonopy.harmonic.force_constants import full_fc_to_compact_fc

from fcinvert.iohelpers import atomic_path
from fcinvert.physics.fcspace import FCSpace, phonopy_for
from fcinvert.physics.material import Material, write_poscar


def write_phonopy_files(
    material: Material, fcspace: FCSpace, theta: np.ndarray, folder: str | Path
) -> dict[str, Path]:
    """Write POSCAR (standard primitive cell), FORCE_CONSTANTS (full), phonopy_disp.yaml and
    phonopy.yaml (the structure with compact force constants, eV/Å²). Returns the paths.

    Both of phonopy's forms reproduce fcinvert's frequencies: ``phonopy.load(folder /
    "phonopy_disp.yaml", force_constants_filename=folder / "FORCE_CONSTANTS")`` or
    ``phonopy.load(folder / "phonopy.yaml")``; Euphonic reads the second
    (``ForceConstants.from_phonopy(path=folder)``), since it needs the force-constant unit
    that only a file holding force constants declares.
    """
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    paths = {
        "poscar": folder / "POSCAR",
        "force_constants": folder / "FORCE_CONSTANTS",
        "phonopy_yaml": folder / "phonopy_disp.yaml",
        "phonopy_yaml_with_fc": folder / "phonopy.yaml",
    }
    write_poscar(material.atoms, paths["poscar"])
    full = fcspace.force_constants(theta)
    with atomic_path(paths["force_constants"]) as temporary:
        write_FORCE_CONSTANTS(full, filename=temporary)
    phonon = phonopy_for(material)
    with atomic_path(paths["phonopy_yaml"]) as temporary:
        phonon.save(temporary, settings={"force_constants": False})
    phonon.force_constants = full_fc_to_compact_fc(phonon.primitive, full)
    with atomic_path(paths["phonopy_yaml_with_fc"]) as temporary:
        phonon.save(temporary, settings={"force_constants": True})
    return paths
