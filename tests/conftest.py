"""Shared fixtures: an isolated user library and the bundled materials' FC spaces."""

from __future__ import annotations

import os

import numpy as np
import pytest

from fcinvert.physics.fcspace import FCSpace, build_fcspace
from fcinvert.physics.material import Material, load_material


@pytest.fixture(scope="session", autouse=True)
def user_home(tmp_path_factory: pytest.TempPathFactory) -> None:
    """Keep the user library and basis cache of the tests away from the real one."""
    os.environ["FCINVERT_HOME"] = str(tmp_path_factory.mktemp("fcinvert-home"))


@pytest.fixture(scope="session")
def ge() -> tuple[Material, FCSpace]:
    material = load_material("ge")
    return material, build_fcspace(material)


@pytest.fixture(scope="session")
def nb() -> tuple[Material, FCSpace]:
    material = load_material("nb")
    return material, build_fcspace(material)


def reference_theta(material: Material, fcspace: FCSpace) -> np.ndarray:
    return fcspace.theta_from_dict(material.require_reference(), np.zeros(fcspace.n_params))
