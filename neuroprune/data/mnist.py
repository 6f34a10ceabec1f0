"""The MNIST family (MNIST, FashionMNIST, KMNIST, USPS) from a root folder.

Files are read directly (IDX, optionally gzipped; KMNIST's original ``.npz`` release), from
``root``, ``root/raw`` or ``root/<Name>/raw`` (torchvision's layout). With ``download: true``
missing files are fetched through torchvision's downloaders first.

Two protocols:

* ``full``: the official 60k train / 10k test split; the last 5,000 train images validate.
* ``10k`` ("MNIST-10k"): only the 10k test images are needed. The first 8,000 train (of which
  the last 1,000 validate), the last 2,000 are the held-out test set.

``auto`` picks ``full`` when the training images are present and ``10k`` otherwise.
"""

from __future__ import annotations

import gzip
import zlib
from functools import partial
from pathlib import Path

import numpy as np
import torch

from ..errors import DataError, MissingDependencyError
from ..preprocess import pixels
from .base import DataSplits, standardise
from .config import DataConfig
from .options import Protocol

TORCHVISION_CLASS = {"mnist": "MNIST", "fashion_mnist": "FashionMNIST", "kmnist": "KMNIST",
                     "usps": "USPS"}
_IDX_NAMES = {
    ("train", "x"): "train-images-idx3-ubyte", ("train", "y"): "train-labels-idx1-ubyte",
    ("test", "x"): "t10k-images-idx3-ubyte", ("test", "y"): "t10k-labels-idx1-ubyte",
}
_NPZ_NAMES = {("train", "x"): "kmnist-train-imgs.npz", ("train", "y"): "kmnist-train-labels.npz",
              ("test", "x"): "kmnist-test-imgs.npz", ("test", "y"): "kmnist-test-labels.npz"}


# The first labels of each official split: the IDX files of MNIST, FashionMNIST and KMNIST
# share their names, so a folder of one passes for another unless the contents are looked at
# (ten labels in a row match by chance once in ten billion).
FIRST_LABELS = {
    "mnist": {"test": (7, 2, 1, 0, 4, 1, 4, 9, 5, 9), "train": (5, 0, 4, 1, 9, 2, 1, 3, 1, 4)},
    "fashion_mnist": {"test": (9, 2, 1, 1, 6, 1, 4, 6, 5, 7),
                      "train": (9, 0, 0, 3, 0, 2, 7, 2, 5, 5)},
    "kmnist": {"test": (2, 9, 3, 8, 3, 3, 8, 3, 2, 5), "train": (8, 7, 0, 1, 4, 2, 4, 8, 1, 1)},
}


def check_labels_belong(name: str, split: str, labels: np.ndarray, path: Path) -> None:
    """Refuse the official labels of another dataset of the family under ``name``'s."""
    first = tuple(int(v) for v in np.asarray(labels).reshape(-1)[:10])
    for other, known in FIRST_LABELS.items():
        if other != name and known.get(split) == first:
            raise DataError(f"data.dataset={name}, but {path} holds {other}'s {split} labels "
                            f"(its files share their names with {name}'s); set "
                            f"data.dataset={other}, or point data.root at {name}'s files")


def read_idx(path: Path) -> np.ndarray:
    """Read an IDX file (as used by MNIST), gzipped or not."""
    opener = gzip.open if path.suffix == ".gz" else open
    try:
        with opener(path, "rb") as f:
            data = f.read()
    except (OSError, EOFError, zlib.error) as exc:  # not gzip, truncated, corrupt
        raise DataError(f"cannot read {path} ({type(exc).__name__}: {exc}); the file is "
                        f"corrupt or truncated: fetch it again") from None
    if len(data) < 4 or data[0] != 0 or data[1] != 0 or data[2] != 0x08:
        raise DataError(f"{path} is not an unsigned-byte IDX file (corrupt or wrong file?)")
    ndim = data[3]
    shape = tuple(int.from_bytes(data[4 + 4 * i: 8 + 4 * i], "big") for i in range(ndim))
    start = 4 + 4 * ndim
    found = max(0, len(data) - start)
    if len(data) < start or found != int(np.prod(shape)) or found == 0:
        raise DataError(f"{path} is truncated or corrupt: expected {int(np.prod(shape))} "
                        f"values, found {found}")
    body = np.frombuffer(data, dtype=np.uint8, offset=start)
    return body.reshape(shape)


def _candidate_dirs(root: Path, name: str) -> list[Path]:
    cls = TORCHVISION_CLASS[name]
    return [root, root / "raw", root / cls / "raw", root / cls]


def _find(root: Path, name: str, split: str, part: str) -> Path | None:
    for d in _candidate_dirs(root, name):
        base = _IDX_NAMES[(split, part)]
        for cand in (d / f"{base}.gz", d / base):
            if cand.is_file():
                return cand
        if name == "kmnist" and (d / _NPZ_NAMES[(split, part)]).is_file():
            return d / _NPZ_NAMES[(split, part)]
    return None


def _read(path: Path) -> np.ndarray:
    if path.suffix == ".npz":
        try:
            with np.load(path) as z:
                return z["arr_0"]
        except KeyError:
            raise DataError(f"{path} holds no array 'arr_0' (KMNIST's .npz files do); it is "
                            f"not a KMNIST file") from None
        except Exception as exc:  # not a zip, truncated, bad pickle
            raise DataError(f"cannot read {path} ({type(exc).__name__}); the file is corrupt "
                            f"or truncated: fetch it again") from None
    return read_idx(path)


def _download(name: str, root: Path) -> None:
    """Fetch the official files with torchvision (needs internet)."""
    try:
        import torchvision.datasets as tvd
    except Exception as exc:  # not installed, or a build that does not match torch
        raise MissingDependencyError("torchvision", "vision", f"downloading {name}") from exc
    cls = getattr(tvd, TORCHVISION_CLASS[name])
    try:
        for train in (True, False):
            cls(str(root), train=train, download=True)
    except Exception as exc:
        raise DataError(
            f"could not download {name} into {root} ({type(exc).__name__}: {exc}); without "
            f"internet, put the files in data.root and set data.download=false"
        ) from exc


def _load_usps(root: Path, download: bool):
    try:
        import torchvision.datasets as tvd
    except Exception as exc:
        raise MissingDependencyError("torchvision", "vision", "the USPS dataset") from exc
    try:
        tr = tvd.USPS(str(root), train=True, download=download)
        te = tvd.USPS(str(root), train=False, download=download)
    except Exception as exc:
        raise DataError(f"USPS not found under {root} ({exc}); set data.download=true where "
                        f"there is internet") from exc
    return (np.asarray(tr.data), np.asarray(tr.targets), np.asarray(te.data),
            np.asarray(te.targets))


def load_mnist_family(name: str, cfg: DataConfig, *, protocol: Protocol = "auto") -> DataSplits:
    """Load ``name`` (mnist, fashion_mnist, kmnist, usps) from ``data.root``."""
    root, download = cfg.root, cfg.download
    if root is None:
        raise DataError(f"dataset {name} needs data.root: a folder with its files (set "
                        f"data.download=true to fetch them there through torchvision)")
    rootp = Path(root).expanduser()
    if rootp.exists() and not rootp.is_dir():
        raise DataError(f"data.root {rootp} is a file, not a folder")
    provenance: dict = {"source": "files", "protocol_requested": protocol}
    if name == "usps":
        xtr, ytr, xte, yte = _load_usps(rootp, download)
        has_train = True
        provenance["files"] = ["torchvision USPS"]
    else:
        provenance["download"] = _fetch_missing(name, rootp, protocol) if download \
            else "not requested"
        paths = {k: _find(rootp, name, *k) for k in _IDX_NAMES}
        provenance["files"] = sorted(str(v.relative_to(rootp)) for v in paths.values() if v)
        if paths[("test", "x")] is None or paths[("test", "y")] is None:
            raise DataError(
                f"{name} files not found under {rootp} (looked for "
                f"{_IDX_NAMES[('test', 'x')]}[.gz] in {rootp}, raw/, "
                f"{TORCHVISION_CLASS[name]}/raw/); set data.download=true where there is internet"
            )
        has_train = paths[("train", "x")] is not None and paths[("train", "y")] is not None
        if protocol == "full" and not has_train:
            raise DataError(f"data.protocol=full needs the {name} training images under {rootp}; "
                            f"use data.protocol=10k to work from the test split alone")
        xte, yte = _read(paths[("test", "x")]), _read(paths[("test", "y")])
        check_labels_belong(name, "test", yte, paths[("test", "y")])
        if has_train and protocol != "10k":
            xtr, ytr = _read(paths[("train", "x")]), _read(paths[("train", "y")])
            check_labels_belong(name, "train", ytr, paths[("train", "y")])
    if len(xte) != len(yte):
        raise DataError(f"{name}: {len(xte)} test images but {len(yte)} labels under {rootp}")

    if has_train and protocol != "10k":
        n_val = 5000 if len(xtr) >= 50000 else max(1, len(xtr) // 12)
        train_x, train_y = xtr[:-n_val], ytr[:-n_val]
        val_x, val_y = xtr[-n_val:], ytr[-n_val:]
        test_x, test_y = xte, yte
    else:  # MNIST-10k protocol
        n = len(xte)
        n_train, n_val = n * 8 // 10, n // 10
        train_x, train_y = xte[: n_train - n_val], yte[: n_train - n_val]
        val_x, val_y = xte[n_train - n_val: n_train], yte[n_train - n_val: n_train]
        test_x, test_y = xte[n_train:], yte[n_train:]

    provenance["protocol"] = "full" if has_train and protocol != "10k" else "10k"

    pixels_255 = float(np.max(train_x)) > 1.5  # 0..255 pixels, as every file of the family

    def as_tensor(a: np.ndarray) -> torch.Tensor:
        t = torch.from_numpy(np.array(a, dtype=np.float32))
        if pixels_255:
            t = t / 255.0
        return t.reshape(len(t), 1, *t.shape[-2:])

    trx, vax, tex, pre = standardise(as_tensor(train_x), as_tensor(val_x), as_tensor(test_x),
                                     enabled=cfg.standardise)
    if pixels_255:
        pre = pixels(pre)
    lab = lambda a: torch.from_numpy(np.asarray(a, dtype=np.int64))  # noqa: E731
    return DataSplits(name=name, train_x=trx, train_y=lab(train_y), val_x=vax, val_y=lab(val_y),
                      test_x=tex, test_y=lab(test_y), num_classes=10, preprocessing=pre,
                      provenance=provenance)


def _fetch_missing(name: str, root: Path, protocol: str) -> str:
    """``data.download``: fetch what is missing. Without the test split, or without the
    training split under ``protocol: full``, a failed download is an error; when only the
    training split cannot be fetched, ``auto`` runs MNIST-10k and says so in one line."""
    need_train = protocol != "10k" and _find(root, name, "train", "x") is None
    if _find(root, name, "test", "x") is not None and not need_train:
        return "not needed: the files are there"
    try:
        _download(name, root)
    except (DataError, MissingDependencyError) as exc:
        if _find(root, name, "test", "x") is None or protocol == "full":
            raise
        import warnings
        reason = str(exc).split(";")[0]
        warnings.warn(f"data.download=true could not fetch the {name} training images "
                      f"({reason}); running the MNIST-10k protocol on the test split alone "
                      f"(set data.protocol=10k to ask for it)", stacklevel=2)
        return f"failed: {reason}"
    return "downloaded"


load_mnist = partial(load_mnist_family, "mnist")
load_fashion_mnist = partial(load_mnist_family, "fashion_mnist")
load_kmnist = partial(load_mnist_family, "kmnist")
load_usps = partial(load_mnist_family, "usps")
