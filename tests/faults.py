"""What the fault tests share: a tiny finished run and an interrupted copy of it (fixtures);
starting ``neuroprune`` as a process, waiting for a file it writes, stopping it (SIGINT,
SIGTERM) or killing it (SIGKILL) at a random moment."""

import os
import signal
import subprocess
import sys
import shutil
import time

import pytest

from neuroprune.cli import main

from helpers import REPO

ENV = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONUNBUFFERED": "1"}
QUICK = str(REPO / "configs" / "quickstart.yaml")
TINY = ["--set", "method.population=4", "--set", "method.generations=3",
        "--set", "method.search_epochs=1", "--set", "training.epochs=1",
        "--set", "model.widths=[16]", "--no-progress", "--device", "cpu"]


@pytest.fixture(scope="module")
def finished(tmp_path_factory):
    """A finished tiny run (three generations)."""
    out = tmp_path_factory.mktemp("finished") / "run"
    assert main(["run", QUICK, "--out", str(out), *TINY]) == 0
    return out


@pytest.fixture
def unfinished(finished, tmp_path):
    """A copy of the finished run as an interrupted one leaves it: no summary yet."""
    out = tmp_path / "int"
    shutil.copytree(finished, out)
    (out / "summary.json").unlink()
    return out


# SIGTERM (`ray job stop`, a preempted node, Kubernetes) stops as Ctrl-C does, with its own code
STOPS = pytest.mark.parametrize("stop,code", [(signal.SIGINT, 130), (signal.SIGTERM, 143)],
                                ids=["sigint", "sigterm"])


def start(args, out_file):
    return subprocess.Popen([sys.executable, "-m", "neuroprune", *args], env=ENV, cwd=REPO,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)


def wait_for(path, proc, timeout=120):
    deadline = time.time() + timeout
    while not path.exists() and proc.poll() is None and time.time() < deadline:
        time.sleep(0.02)
    assert proc.poll() is None, proc.communicate()[1]


def killed_at_random(args, rng, low, high, after=None):
    """Run ``neuroprune ARGS`` and SIGKILL it after a random delay (from when ``after``
    exists, if given); True if it was killed (False: it ended first, and must have
    succeeded)."""
    proc = start(args, None)
    if after is not None:
        wait_for(after, proc)
    try:
        proc.wait(timeout=rng.uniform(low, high))
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()
        return True
    assert proc.returncode == 0, proc.stderr.read()
    return False
