"""The code base is clean for the rules ``pyproject.toml`` selects for ruff."""

import shutil
import subprocess
import sys

import pytest

from helpers import REPO


def test_ruff_finds_nothing():
    try:
        import ruff  # noqa: F401
    except ImportError:
        if shutil.which("ruff") is None:
            pytest.skip("ruff is not installed (it comes with the dev extra)")
    done = subprocess.run([sys.executable, "-m", "ruff", "check", "neuroprune", "tests",
                           "benchmarks", "searches", "--output-format", "concise"],
                          cwd=REPO, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-1000:]
