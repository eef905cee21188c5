"""Any crystal: members that are not installed, the grid taken from a measurement, the shell
rule and the resumable ``build``."""

from __future__ import annotations

import subprocess
import sys

import pytest
from ase.build import bulk

from fcinvert.labels.members import BUILTIN, members_help, select_members


def run(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "fcinvert", *args], capture_output=True, text=True, check=False
    )


def test_all_offline_skips_members_not_installed():
    chosen, skipped = select_members("all-offline", {"Cu"})
    assert chosen or skipped
    assert all(m.installed for m in chosen) and not any(m.installed for m in skipped)
    assert all(m.version() is None for m in skipped)
    assert not any(m.elements == frozenset({"Ge"}) for m in chosen + skipped)
    named, none = select_members("chgnet-0.3.0,tersoff-ge-1989", {"Ge"})
    assert [m.name for m in named] == ["chgnet-0.3.0", "tersoff-ge-1989"] and none == []


def test_label_help_lists_every_member_and_whether_installed():
    text = members_help()
    for member in BUILTIN.values():
        line = next(x for x in text.splitlines() if x.startswith(f"{member.name}:"))
        assert ("; installed" in line) == member.installed
    result = run("label", "--help")
    assert result.returncode == 0 and "tersoff-ge-1989" in result.stdout


def test_label_all_offline_without_packages_is_not_a_failure(tmp_path):
    _, skipped = select_members("all-offline", {"Cu"})
    if not skipped:
        pytest.skip("every offline force field is installed here")
    bulk("Cu", "fcc", a=3.615).write(tmp_path / "cu.vasp", format="vasp")
    folder = tmp_path / "cu"
    assert (
        run(
            "material",
            "init",
            str(tmp_path / "cu.vasp"),
            "--name",
            "cu",
            "--out",
            str(folder),
            "--shells",
            "2",
        ).returncode
        == 0
    )
    result = run("label", str(folder), "--members", "all-offline")
    assert result.returncode == 0, result.stderr
    for member in skipped:
        assert f"skipped {member.name}: package '{member.package}' not installed" in result.stdout
