"""Ray Tune on a dataset too large to ship inside a trial: a generated CIFAR-shaped set.

    python benchmarks/tune_large_data.py                       # 68,000 images: 200 MiB of files
    python benchmarks/tune_large_data.py --images 10200 --trials 2
    python benchmarks/tune_large_data.py --address HEAD:6379   # on a cluster

Writes ``--images`` random 3x32x32 images as CIFAR-10's python-pickle batches (uint8: 3 KiB
an image on disk, 12 KiB as float32 tensors), then tunes the learning rate of a small K-starts
search on them with ``neuroprune tune --backend ray``. The trials reach the data through the
object store (``tune.with_parameters``), once per node; Ray refuses a trial function above
95 MiB, which is what carrying the data in the trial's closure used to hit. Prints the sizes,
the trials completed and the wall-clock time.
"""

from __future__ import annotations

import argparse
import pickle
import tempfile
import time
from pathlib import Path

import numpy as np


def write_cifar_shaped(root: Path, images: int, seed: int = 0) -> int:
    """``images`` random 3x32x32 images (and labels) as CIFAR-10's five training batches and
    test batch under ``root``; returns the bytes written."""
    rng = np.random.default_rng(seed)
    folder = Path(root) / "cifar-10-batches-py"
    folder.mkdir(parents=True)
    written = 0
    for name in [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]:
        blob = {b"data": rng.integers(0, 256, (images // 6, 3072), dtype=np.uint8),
                b"labels": list(rng.integers(0, 10, images // 6))}
        written += (folder / name).write_bytes(pickle.dumps(blob, protocol=4))
    return written


def tune_config(root: Path, trials: int = 1):
    """A tuning of a tiny K-starts search on the CIFAR-shaped set at ``root``, on Ray."""
    from neuroprune.config import load_config
    return load_config(tree={
        "name": "big", "data": {"dataset": "cifar10", "root": str(root)},
        "model": {"name": "mlp", "widths": [4]}, "sparsity": {"target": 0.9},
        "training": {"epochs": 1, "batch_size": 512},
        "method": {"name": "kstarts", "population": 2, "generations": 1, "search_epochs": 1},
        "backend": "ray", "ray": {"max_concurrent_trials": 1},
        "tune": {"n_trials": trials, "objectives": ["val_accuracy"], "pruner": "none",
                 "params": {"training.lr": {"type": "float", "low": 0.01, "high": 0.1}}}})


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--images", type=int, default=68000)
    ap.add_argument("--trials", type=int, default=1)
    ap.add_argument("--address", help="a Ray cluster (default: as neuroprune finds one)")
    args = ap.parse_args()
    from neuroprune.backends.ray_session import RaySession
    from neuroprune.tuning.ray_tune import RayTuner

    with tempfile.TemporaryDirectory() as tmp:
        files = write_cifar_shaped(Path(tmp) / "cifar", args.images)
        cfg = tune_config(Path(tmp) / "cifar", args.trials)
        tuner = RayTuner(cfg, Path(tmp) / "tune")
        d = tuner.bench.data
        held = sum(t.numel() * t.element_size() for t in (d.train_x, d.val_x, d.test_x))
        t0 = time.time()
        with RaySession(True, args.address):
            done = tuner.run(progress=False)["trials"]["complete"]
        print(f"{args.images:,} CIFAR-shaped images: {files / 2**20:.0f} MiB of files, "
              f"{held / 2**20:.0f} MiB as tensors; {done} of {args.trials} trials complete "
              f"in {time.time() - t0:.0f} s")


if __name__ == "__main__":
    main()
