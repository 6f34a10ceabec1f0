"""Shared helpers for the test suite."""

import os
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def run_cli(*args: str, cwd: Path | None = None, timeout: int = 600):
    """Run ``python -m neuroprune ARGS`` in a subprocess; returns CompletedProcess."""
    env = {**os.environ, "PYTHONUNBUFFERED": "1", "OMP_NUM_THREADS": "2"}
    return subprocess.run([sys.executable, "-m", "neuroprune", *args], cwd=cwd or REPO,
                          capture_output=True, text=True, timeout=timeout, env=env)


def run_without(module: str, *args: str):
    """``neuroprune ARGS`` in a subprocess where ``module`` cannot be imported (as if it were
    not installed); returns CompletedProcess."""
    code = (f"import sys; sys.modules[{module!r}] = None\n"
            "from neuroprune.cli import main\n"
            f"sys.exit(main({list(args)!r}))")
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=REPO)


def mask_search(cfg):
    """A MaskSearch on the workbench of ``cfg`` (a validated RunConfig)."""
    from neuroprune.searches.mask_search import MaskSearch
    from neuroprune.workbench import Workbench
    return MaskSearch(Workbench.from_config(cfg))
