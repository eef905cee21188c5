"""Exported force constants load in Euphonic and in phonopy's one-file form, unchanged."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import phonopy
import pytest
from conftest import reference_theta
from euphonic import ForceConstants

from fcinvert.physics.dynamics import FREQUENCY_TO_MEV, dynamics_basis
from fcinvert.physics.export import write_phonopy_files


@pytest.mark.parametrize("name", ["ge", "nb"])
def test_euphonic_reproduces_the_exported_frequencies(name, request, tmp_path: Path):
    material, fcspace = request.getfixturevalue(name)
    theta = reference_theta(material, fcspace) * 1.07  # away from the bundled values
    write_phonopy_files(material, fcspace, theta, tmp_path)
    force_constants = ForceConstants.from_phonopy(path=str(tmp_path))
    qpoints = material.path.qpoints[::7]
    modes = force_constants.calculate_qpoint_phonon_modes(qpoints, asr=None)
    theirs = np.sort(modes.frequencies.to("meV").magnitude, axis=1)
    ours = dynamics_basis(fcspace, qpoints).frequencies(theta)
    assert np.allclose(theirs, ours, rtol=1e-6, atol=1e-4)


def test_phonopy_loads_the_one_file_form(ge, tmp_path: Path):
    material, fcspace = ge
    theta = reference_theta(material, fcspace) * 0.95
    paths = write_phonopy_files(material, fcspace, theta, tmp_path)
    phonon = phonopy.load(paths["phonopy_yaml_with_fc"], produce_fc=False, symmetrize_fc=False)
    qpoints = material.path.qpoints[::9]
    phonon.run_qpoints(qpoints)
    theirs = phonon.qpoints.frequencies * FREQUENCY_TO_MEV / phonon.unit_conversion_factor
    assert np.allclose(theirs, dynamics_basis(fcspace, qpoints).frequencies(theta), atol=1e-5)
    assert paths["phonopy_yaml_with_fc"].stat().st_size < 200_000  # compact, not full, FCs
