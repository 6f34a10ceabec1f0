"""CIFAR-10 and CIFAR-100 from the official python-pickle batches.

``data.root`` holds ``cifar-10-batches-py/`` (``data_batch_1`` .. ``data_batch_5``,
``test_batch``) or ``cifar-100-python/`` (``train``, ``test``), or those files directly; this is
what torchvision's downloaders write, and ``data.download: true`` calls them. The last 5,000
training images validate (45k / 5k / 10k); every channel is standardised with the training
split's mean and std.

The batches are pickles. They are read with an unpickler that accepts numpy arrays and plain
containers only, so a tampered file cannot run code.
"""

from __future__ import annotations

import pickle
from functools import partial
from pathlib import Path

import numpy as np
import torch

from ..errors import DataError, MissingDependencyError
from ..preprocess import pixels
from .base import DataSplits, standardise
from .config import DataConfig

LAYOUT = {
    "cifar10": ("cifar-10-batches-py", [f"data_batch_{i}" for i in range(1, 6)], ["test_batch"],
                b"labels", 10, "CIFAR10"),
    "cifar100": ("cifar-100-python", ["train"], ["test"], b"fine_labels", 100, "CIFAR100"),
}
_ALLOWED = {("numpy.core.multiarray", "_reconstruct"), ("numpy._core.multiarray", "_reconstruct"),
            ("numpy", "ndarray"), ("numpy", "dtype"), ("numpy.core.multiarray", "scalar"),
            ("numpy._core.multiarray", "scalar"), ("_codecs", "encode")}


class _ArraysOnly(pickle.Unpickler):
    def find_class(self, module: str, name: str):
        if (module, name) in _ALLOWED:
            return super().find_class(module, name)
        raise pickle.UnpicklingError(f"refusing to load {module}.{name}")


def read_batch(path: Path, label_key: bytes) -> tuple[np.ndarray, np.ndarray]:
    """Images ``[N, 3, 32, 32]`` uint8 and labels ``[N]`` of one pickled batch file."""
    try:
        with open(path, "rb") as f:
            blob = _ArraysOnly(f, encoding="bytes").load()
        data = np.asarray(blob[b"data"], dtype=np.uint8)
        labels = np.asarray(blob[label_key], dtype=np.int64)
    except (OSError, EOFError, KeyError, TypeError, ValueError, pickle.UnpicklingError) as exc:
        raise DataError(f"{path} is not a CIFAR batch file (corrupt or wrong file?): "
                        f"{type(exc).__name__}: {exc}") from None
    if data.ndim != 2 or data.shape[1] != 3 * 32 * 32 or len(labels) != len(data):
        raise DataError(f"{path}: expected [N, 3072] images with N labels, got {data.shape} "
                        f"and {len(labels)} labels")
    return data.reshape(-1, 3, 32, 32), labels


def _folder(root: Path, sub: str, first: str) -> Path | None:
    for d in (root / sub, root):
        if (d / first).is_file():
            return d
    return None


def _download(name: str, root: Path) -> None:
    try:
        import torchvision.datasets as tvd
    except Exception as exc:
        raise MissingDependencyError("torchvision", "vision", f"downloading {name}") from exc
    cls = getattr(tvd, LAYOUT[name][5])
    try:
        for train in (True, False):
            cls(str(root), train=train, download=True)
    except Exception as exc:
        raise DataError(f"could not download {name} into {root} ({type(exc).__name__}: {exc}); "
                        f"without internet, put the batches in data.root and set "
                        f"data.download=false") from exc


def load_cifar(name: str, cfg: DataConfig) -> DataSplits:
    sub, train_files, test_files, label_key, classes, _ = LAYOUT[name]
    if cfg.root is None:
        raise DataError(f"dataset {name} needs data.root: a folder with the python-pickle "
                        f"batches (or set data.download=true to fetch them there)")
    root = Path(cfg.root).expanduser()
    if root.exists() and not root.is_dir():
        raise DataError(f"data.root {root} is a file, not a folder")
    folder = _folder(root, sub, test_files[0])
    downloaded = folder is None and cfg.download
    if downloaded:
        _download(name, root)
        folder = _folder(root, sub, test_files[0])
    if folder is None:
        raise DataError(f"{name} batches not found under {root} (looked for {sub}/"
                        f"{test_files[0]}); set data.download=true where there is internet")
    missing = [f for f in train_files if not (folder / f).is_file()]
    if missing:
        raise DataError(f"{name}: training batches {missing} missing in {folder}")
    parts = [read_batch(folder / f, label_key) for f in train_files]
    xtr = np.concatenate([p[0] for p in parts])
    ytr = np.concatenate([p[1] for p in parts])
    xte, yte = read_batch(folder / test_files[0], label_key)
    for split, y in (("training", ytr), ("test", yte)):
        if len(y) and (y.min() < 0 or y.max() >= classes):
            raise DataError(f"{name}: {split} labels outside 0..{classes - 1} in {folder}")
    n_val = 5000 if len(xtr) >= 50000 else max(1, len(xtr) // 10)
    x = torch.from_numpy(xtr).float() / 255.0
    train_x, val_x, test_x, pre = standardise(x[:-n_val], x[-n_val:],
                                              torch.from_numpy(xte).float() / 255.0,
                                              dims=(0, 2, 3), enabled=cfg.standardise)
    y = torch.from_numpy(ytr)
    files = [str((folder / f).relative_to(root)) for f in [*train_files, *test_files]]
    return DataSplits(name=name, train_x=train_x.contiguous(), train_y=y[:-n_val],
                      val_x=val_x.contiguous(), val_y=y[-n_val:], test_x=test_x,
                      test_y=torch.from_numpy(yte), num_classes=classes,
                      preprocessing=pixels(pre),
                      provenance={"source": "files", "files": files, "protocol": "full",
                                  "downloaded": downloaded})


load_cifar10 = partial(load_cifar, "cifar10")
load_cifar100 = partial(load_cifar, "cifar100")
