import os
import sys
import tempfile
from pathlib import Path

import pytest
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
# OMP_NUM_THREADS (CI sets 2) wins: on a busy machine one thread per process is faster
torch.set_num_threads(int(os.environ.get("OMP_NUM_THREADS") or min(2, os.cpu_count() or 1)))
# engine.trainer: auto remembers its measured choices in a file: the suite (and the processes
# it starts, which inherit this) keeps its own, away from the user's cache
os.environ.setdefault("NEUROPRUNE_CACHE_DIR", tempfile.mkdtemp(prefix="neuroprune-cache-"))


@pytest.fixture(scope="session")
def digits():
    from neuroprune.data import load_dataset
    return load_dataset("digits")


@pytest.fixture(scope="session")
def blobs():
    from neuroprune.data import load_dataset
    return load_dataset("blobs", samples=400, features=12, classes=4)
