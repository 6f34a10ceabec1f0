"""What the fault tests share: starting ``neuroprune`` as a process, waiting for a file it
writes, stopping it (SIGINT, SIGTERM) or killing it (SIGKILL) at a random moment."""

import os
import signal
import subprocess
import sys
import time

import pytest

from helpers import REPO

ENV = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONUNBUFFERED": "1"}


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
