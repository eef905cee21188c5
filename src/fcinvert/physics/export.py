"""θ → files that phonopy and Euphonic load unchanged."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from phonopy.file_IO import write_FORCE_CONSTANTS

from fcinvert.iohelpers import atomic_path
from fcinvert.physics.fcspace import FCSpace, phonopy_for
from fcinvert.physics.material import Material, write_poscar


def write_phonopy_files(
    material: Material, fcspace: FCSpace, theta: np.ndarray, folder: str | Path
) -> dict[str, Path]:
    """Write POSCAR (standard primitive cell), FORCE_CONSTANTS (full) and phonopy_disp.yaml.

    ``phonopy.load(folder / "phonopy_disp.yaml", force_constants_filename=...)`` then reproduces
    fcinvert's frequencies. Returns the paths written.
    """
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    paths = {
        "poscar": folder / "POSCAR",
        "force_constants": folder / "FORCE_CONSTANTS",
        "phonopy_yaml": folder / "phonopy_disp.yaml",
    }
    write_poscar(material.atoms, paths["poscar"])
    with atomic_path(paths["force_constants"]) as temporary:
        write_FORCE_CONSTANTS(fcspace.force_constants(theta), filename=temporary)
    phonon = phonopy_for(material)
    with atomic_path(paths["phonopy_yaml"]) as temporary:
        phonon.save(temporary, settings={"force_constants": False})
    return paths
