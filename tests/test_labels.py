"""Stage I labels with a real force field (ase's Tersoff for Ge), no force-field extras needed."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
from ase import Atoms
from ase.build import bulk
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from phonopy import Phonopy
from phonopy.file_IO import write_FORCE_CONSTANTS
from phonopy.interface.vasp import write_vasp
from phonopy.structure.atoms import PhonopyAtoms

from fcinvert.errors import FcinvertError
from fcinvert.labels import (
    BUILTIN,
    Labeller,
    factory_member,
    finite_displacement_fcs,
    label_force_constants,
    load_force_constants,
    run_members,
    summarise,
)
from fcinvert.labels.ensemble import THZ_TO_MEV
from fcinvert.labels.transfer import fit_source
from fcinvert.physics.dynamics import FREQUENCY_TO_MEV
from fcinvert.physics.material import load_material

TERSOFF = BUILTIN["tersoff-ge-1989"]
A_GE = 5.658
SMALL_STEP = 1e-3  # Å: anharmonic O(u²) terms, which depend on the direction, drop below 1e-5


@pytest.fixture(scope="module")
def labelled(tmp_path_factory: pytest.TempPathFactory):
    """A copy of Ge (no labels, no reference) labelled by Tersoff and by a broken member."""
    folder = tmp_path_factory.mktemp("materials") / "ge"
    folder.mkdir()
    for name in ("POSCAR", "material.json"):
        shutil.copy(Path(load_material("ge").folder) / name, folder / name)
    material = load_material(folder)
    labeller = Labeller(material)
    broken = factory_member("fcinvert_no_such_module:make", "broken")
    results = run_members(labeller, [broken, TERSOFF])
    failures = {r.name: r.message for r in results if r.status == "failed"}
    summary = summarise(labeller, failures)
    return labeller, {r.name: r for r in results}, summary


def gamma_optical_by_hand() -> float:
    """Γ-optical ħω (meV) of Tersoff Ge from central differences on the 2-atom cell itself:
    D(Γ) = Σ_R Φ(0, R) / m, with no supercell and no phonopy involved."""
    atoms = bulk("Ge", "diamond", a=A_GE)
    atoms.calc = TERSOFF.make()
    step, mass = 1e-3, 72.64
    matrix = np.zeros((6, 6))
    for column in range(6):
        forces = []
        for sign in (1, -1):
            moved = atoms.copy()
            moved.calc = atoms.calc
            moved.positions[column // 3, column % 3] += sign * step
            forces.append(moved.get_forces().ravel())
        matrix[:, column] = -(forces[0] - forces[1]) / (2 * step) / mass
    eigenvalues = np.linalg.eigvalsh(0.5 * (matrix + matrix.T))
    return float(np.sqrt(eigenvalues.max()) * FREQUENCY_TO_MEV)


def test_tersoff_label_end_to_end(labelled):
    labeller, results, summary = labelled
    tersoff = results[TERSOFF.name]
    assert tersoff.status == "stable"
    assert tersoff.residual < 1e-6  # Tersoff FCs reach the second shell: inside the cutoff
    # Γ-optical from θ agrees with the calculator's own Γ-point dynamical matrix
    assert tersoff.frequencies["gamma_optical"] == pytest.approx(gamma_optical_by_hand(), abs=0.02)
    assert tersoff.frequencies["gamma_optical"] == pytest.approx(40.9, abs=0.1)  # notes
    provenance = tersoff.provenance
    assert provenance["package"] == "ase" and provenance["displacement_A"] == 0.01
    assert provenance["a_A"] == pytest.approx(A_GE)
    assert provenance["supercell_matrix"] == labeller.material.supercell_matrix.tolist()
    # cached label, ensemble summary and the reference = the one stable member
    folder = labeller.material.folder
    stored = json.loads((folder / "labels" / "tersoff-ge-1989.json").read_text())
    assert list(stored["parameters"]) == labeller.fcspace.names
    reference = json.loads((folder / "reference.json").read_text())
    assert reference["members"] == [TERSOFF.name]
    np.testing.assert_allclose(list(reference["parameters"].values()), tersoff.theta)
    assert summary["stable"] == [TERSOFF.name]


def test_failing_member_is_reported_and_the_rest_go_on(labelled):
    labeller, results, summary = labelled
    broken = results["broken"]
    assert broken.status == "failed" and "fcinvert_no_such_module" in broken.message
    assert not (labeller.material.folder / "labels" / "broken.json").exists()
    assert "fcinvert_no_such_module" in summary["not_labelled"]["broken"]
    assert results[TERSOFF.name].status == "stable"


@pytest.fixture(scope="module")
def small_step(labelled) -> tuple[Phonopy, np.ndarray]:
    """Tersoff phonopy FCs on the material's own supercell at SMALL_STEP, and their θ."""
    labeller = labelled[0]
    material = labeller.material
    phonon, _ = finite_displacement_fcs(material, material.atoms, TERSOFF.make(), SMALL_STEP)
    return phonon, labeller.fcspace.project(phonon.force_constants)[0]


def test_projection_reproduces_the_members_own_dispersion(labelled, small_step):
    labeller, results, _ = labelled
    phonon, theta = small_step
    qpoints = labeller.material.path.qpoints
    phonon.run_qpoints(qpoints)
    own = phonon.qpoints.frequencies * THZ_TO_MEV
    ours = labeller.check.path.frequencies(theta)
    rms = float(np.sqrt(np.mean((ours - own) ** 2)))
    print(f"Tersoff Ge: θ vs phonopy dispersion RMS {rms:.2e} meV over {own.size} energies")
    assert rms < 1e-3
    assert results[TERSOFF.name].dispersion_rms < 1e-3  # the same check inside the label path


@pytest.fixture(scope="module")
def conventional_source(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Tersoff FORCE_CONSTANTS of a 2×2×2 supercell of the 8-atom conventional Ge cell, written
    by phonopy with its SPOSCAR beside it."""
    folder = tmp_path_factory.mktemp("dft-like")
    conventional = bulk("Ge", "diamond", a=A_GE, cubic=True)
    unitcell = PhonopyAtoms(
        symbols=conventional.get_chemical_symbols(),
        cell=conventional.cell[:],
        scaled_positions=conventional.get_scaled_positions(),
    )
    phonon = Phonopy(unitcell, supercell_matrix=np.eye(3, dtype=int) * 2)
    phonon.generate_displacements(distance=SMALL_STEP, is_plusminus=True)
    calculator = TERSOFF.make()
    forces = []
    for supercell in phonon.supercells_with_displacements:
        atoms = Atoms(
            symbols=supercell.symbols,
            cell=supercell.cell,
            scaled_positions=supercell.scaled_positions,
            pbc=True,
        )
        atoms.calc = calculator
        forces.append(atoms.get_forces())
    phonon.forces = np.array(forces)
    phonon.produce_force_constants(show_drift=False)
    write_FORCE_CONSTANTS(phonon.force_constants, folder / "FORCE_CONSTANTS")
    write_vasp(folder / "SPOSCAR", phonon.supercell)
    write_vasp(folder / "POSCAR", phonon.unitcell)
    return folder


def test_force_constants_of_another_supercell_give_the_same_theta(
    labelled, conventional_source, small_step
):
    labeller = labelled[0]
    expected = small_step[1]
    scale = np.abs(expected).max()
    for phonon in (
        load_force_constants(conventional_source / "FORCE_CONSTANTS"),  # SPOSCAR beside it
        load_force_constants(
            conventional_source / "FORCE_CONSTANTS", conventional_source / "POSCAR", [2, 2, 2]
        ),
    ):
        assert len(phonon.supercell) == 64
        result = label_force_constants(labeller, phonon, "dft", "test")
        np.testing.assert_allclose(result.theta, expected, atol=1e-5 * scale)
        assert result.status == "stable"
        assert result.dispersion_rms < 0.05  # phonopy's own 64-atom interpolation vs θ
        assert result.provenance["a_A"] == pytest.approx(A_GE)


@pytest.fixture(scope="module")
def source_phonon(conventional_source: Path) -> Phonopy:
    return load_force_constants(conventional_source / "FORCE_CONSTANTS")


@settings(
    max_examples=4, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(shift=st.tuples(*[st.floats(-0.5, 0.5)] * 3), stretch=st.floats(0.97, 1.03))
def test_source_origin_and_scale_do_not_matter(labelled, source_phonon, small_step, shift, stretch):
    labeller, source = labelled[0], source_phonon
    cell = source.supercell
    moved = PhonopyAtoms(
        symbols=cell.symbols,
        cell=np.asarray(cell.cell) * stretch,
        scaled_positions=(cell.scaled_positions + shift) % 1.0,
    )
    phonon = Phonopy(moved, supercell_matrix=np.eye(3, dtype=int), is_symmetry=False)
    phonon.force_constants = source.force_constants
    theta, _, info = fit_source(labeller.material, labeller.fcspace, phonon)
    expected = small_step[1]
    np.testing.assert_allclose(theta, expected, atol=1e-5 * np.abs(expected).max())
    assert info["a_A"] == pytest.approx(A_GE * stretch)


def test_foreign_source_is_refused(labelled, tmp_path):
    labeller, _, _ = labelled
    silicon = bulk("Si", "diamond", a=5.43, cubic=True)
    unitcell = PhonopyAtoms(
        symbols=silicon.get_chemical_symbols(),
        cell=silicon.cell[:],
        scaled_positions=silicon.get_scaled_positions(),
    )
    phonon = Phonopy(unitcell, supercell_matrix=np.eye(3, dtype=int), is_symmetry=False)
    phonon.force_constants = np.zeros((8, 8, 3, 3))
    with pytest.raises(FcinvertError, match="does not match"):
        fit_source(labeller.material, labeller.fcspace, phonon)
    (tmp_path / "FORCE_CONSTANTS").write_text("8 8\n")
    with pytest.raises(FcinvertError, match="no structure"):
        load_force_constants(tmp_path / "FORCE_CONSTANTS")
