"""What a registry install (not an editable one) ships: every subpackage of the source tree is
listed in pyproject.toml, and the shipped configs install as ``neuroprune.configs``."""

import sys
from pathlib import Path

import pytest

from helpers import REPO

if sys.version_info < (3, 11):
    pytest.skip("tomllib is Python 3.11+", allow_module_level=True)
import tomllib  # noqa: E402


def _setuptools() -> dict:
    return tomllib.loads((REPO / "pyproject.toml").read_text())["tool"]["setuptools"]


def test_every_subpackage_is_listed_for_a_wheel():
    listed = set(_setuptools()["packages"])
    found = {".".join(p.parent.relative_to(REPO).parts)
             for p in (REPO / "neuroprune").rglob("__init__.py")}
    assert found - listed == set(), "add these to [tool.setuptools] packages in pyproject.toml"
    assert listed - found == {"neuroprune.configs"}


def test_the_shipped_configs_are_package_data():
    tool = _setuptools()
    assert tool["package-dir"]["neuroprune.configs"] == "configs"
    assert tool["package-data"]["neuroprune.configs"] == ["*.yaml"]
    assert any(Path(REPO / "configs").glob("*.yaml"))
