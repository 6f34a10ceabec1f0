"""Your own data: an image folder, a ``"package.module:function"`` returning torch Datasets,
or Datasets and DataLoaders given to the Python API.

Every item is read through a torch ``DataLoader`` (``data.loader``: workers, pin_memory,
batch_size) exactly once, and the batches are gathered into the in-memory
:class:`~neuroprune.data.DataSplits` that the engine trains on. The whole population then
trains from that one copy: each item is read once per run, however many networks the
population holds (never once per network). This is the fast path for data that fits: the
gathered splits may hold at most :data:`MAX_IN_MEMORY_BYTES` (``data.loader.max_bytes``) of
float32 inputs; larger data is refused with a one-line error before anything is written.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import numpy as np
import torch
from pydantic import Field

from ..errors import ConfigError, DataError, require
from .base import DataSplits, standardise

#: the most float32 input bytes the gathered splits may hold (4 GiB)
MAX_IN_MEMORY_BYTES = 4 << 30

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".gif", ".tif", ".tiff", ".webp", ".ppm")


class ImageFolder(torch.utils.data.Dataset):
    """Images in class subfolders (``root/CLASS/IMAGE``): labels are the sorted class names'
    positions; an item is ``(float tensor [C, H, W] in [0, 1], label)``. ``image_size``
    resizes every image to ``image_size x image_size`` (bilinear); ``mode`` is the PIL mode
    all images are converted to (``RGB``, ``L``; ``None``: the first image's)."""

    def __init__(self, root: str | Path, image_size: int | None = None,
                 classes: list[str] | None = None, mode: str | None = None):
        require(["PIL"], "data.dataset: folder")
        self.root = Path(root)
        if not self.root.is_dir():
            raise DataError(f"data.root: {self.root.name or root} is not a folder; give a "
                            f"folder with one subfolder of images per class")
        found = sorted(d.name for d in self.root.iterdir() if d.is_dir()
                       and not d.name.startswith("."))
        self.classes = list(classes) if classes is not None else found
        if len(self.classes) < 2:
            raise DataError(f"data.root: folder '{self.root.name}' has {len(found)} class "
                            f"folder(s); it needs one subfolder of images per class, at least "
                            f"two")
        self.samples: list[tuple[Path, int]] = []
        for label, name in enumerate(self.classes):
            folder = self.root / name
            files = sorted(f for f in folder.iterdir() if f.suffix.lower() in IMAGE_SUFFIXES) \
                if folder.is_dir() else []
            self.samples += [(f, label) for f in files]
        if not self.samples:
            raise DataError(f"data.root: the class folders of '{self.root.name}' hold no "
                            f"images ({', '.join(IMAGE_SUFFIXES)})")
        self.image_size = image_size
        self.mode = mode or self._open(self.samples[0][0]).mode
        if self.mode not in ("L", "RGB"):
            self.mode = "RGB"

    def _open(self, path: Path):
        from PIL import Image
        try:
            with Image.open(path) as im:
                im.load()
                return im
        except Exception as exc:
            raise DataError(f"cannot read image {path.parent.name}/{path.name} in "
                            f"data.root: {type(exc).__name__}; remove or replace the file") \
                from None

    def __len__(self) -> int:
        return len(self.samples)

    def __getitem__(self, i: int) -> tuple[torch.Tensor, int]:
        from PIL import Image
        path, label = self.samples[i]
        im = self._open(path).convert(self.mode)
        if self.image_size and im.size != (self.image_size, self.image_size):
            im = im.resize((self.image_size, self.image_size), Image.BILINEAR)
        a = np.asarray(im, dtype=np.float32) / 255.0
        x = torch.from_numpy(a[None] if a.ndim == 2 else np.ascontiguousarray(a.transpose(2, 0, 1)))
        return x, label


def _loader(ds: Any, cfg) -> torch.utils.data.DataLoader:
    if isinstance(ds, torch.utils.data.DataLoader):
        return ds
    opt = cfg.loader
    return torch.utils.data.DataLoader(ds, batch_size=opt.batch_size, shuffle=False,
                                       num_workers=opt.workers, pin_memory=opt.pin_memory)


def _gather(ds: Any, split: str, cfg, budget: list[int]) -> tuple[torch.Tensor, torch.Tensor]:
    """Every ``(input, label)`` of ``ds`` (a Dataset or DataLoader), read once, stacked."""
    xs, ys = [], []
    try:
        for batch in _loader(ds, cfg):
            if not isinstance(batch, (tuple, list)) or len(batch) != 2:
                raise DataError(f"{split} dataset: an item is a {type(batch).__name__}, not "
                                f"an (input, label) pair; make __getitem__ return (x, y)")
            x, y = batch
            if not isinstance(x, torch.Tensor):
                raise DataError(f"{split} dataset: inputs are {type(x).__name__}, not tensors; "
                                f"return (tensor, label) pairs")
            y = torch.as_tensor(y)
            if y.dim() != 1 or y.is_floating_point() or len(y) != len(x):
                raise DataError(f"{split} dataset: labels must be one integer class per item, "
                                f"got {tuple(y.shape)} {y.dtype} for {len(x)} inputs")
            budget[0] -= x.numel() * 4
            if budget[0] < 0:
                raise DataError(f"{split} dataset: the splits exceed data.loader.max_bytes "
                                f"({cfg.loader.max_bytes:,} bytes of float32 inputs); raise it "
                                f"or use smaller images (data.image_size)")
            xs.append(x.float())
            ys.append(y.long())
    except DataError:
        raise
    except ConfigError:
        raise
    except Exception as exc:
        msg = str(exc).splitlines()[0] if str(exc) else ""
        raise DataError(f"{split} dataset: reading it failed: {type(exc).__name__}: {msg}") \
            from None
    if not xs:
        raise DataError(f"{split} dataset is empty; it needs at least one (input, label) item")
    try:
        return torch.cat(xs), torch.cat(ys)
    except RuntimeError:
        raise DataError(f"{split} dataset: inputs differ in shape; give every item the same "
                        f"shape (data.image_size resizes a folder's images)") from None


def from_datasets(train: Any, val: Any, test: Any = None, cfg=None, *, name: str = "datasets",
                  num_classes: int | None = None, provenance: dict | None = None) -> DataSplits:
    """Torch Datasets (or DataLoaders) of ``(input, label)`` items as :class:`DataSplits`,
    each read once through ``cfg.loader``. Without ``test``, the validation set is also the
    test set (recorded in the provenance). Labels must lie in ``0..num_classes-1`` (default:
    the largest training label + 1). Inputs are standardised with the training split's mean
    and std as :func:`~neuroprune.data.arrays.from_arrays` does (one for images, one per
    feature for vectors), so the same data gives the same tensors either way."""
    from .config import DataConfig
    cfg = cfg or DataConfig()
    budget = [cfg.loader.max_bytes]
    xtr, ytr = _gather(train, "train", cfg, budget)
    xva, yva = _gather(val, "validation", cfg, budget)
    xte, yte = _gather(test, "test", cfg, budget) if test is not None else (xva, yva)
    for split, x in (("validation", xva), ("test", xte)):
        if x.shape[1:] != xtr.shape[1:]:
            raise DataError(f"{split} inputs have shape {tuple(x.shape[1:])}, training inputs "
                            f"{tuple(xtr.shape[1:])}; they must match")
    k = int(num_classes) if num_classes is not None else int(ytr.max()) + 1
    for split, y in (("train", ytr), ("validation", yva), ("test", yte)):
        if int(y.min()) < 0 or int(y.max()) >= k:
            raise DataError(f"{split} labels run from {int(y.min())} to {int(y.max())}, outside "
                            f"0..{k - 1}; labels must be class numbers 0..classes-1")
    tr, va, te, pre = standardise(xtr, xva, xte, per_feature=xtr.dim() == 2,
                                  enabled=cfg.standardise)
    prov = {"source": name, "protocol": "given splits" if test is not None
            else "validation split doubles as test", **(provenance or {})}
    return DataSplits(name=name, train_x=tr, train_y=ytr, val_x=va, val_y=yva, test_x=te,
                      test_y=yte, num_classes=k, preprocessing=pre, provenance=prov)


def load_folder(cfg, *, image_size: Annotated[int | None, Field(
        ge=4, description="resize every image to image_size x image_size (bilinear); "
        "none: as they are (they must agree)")] = None) -> DataSplits:
    """``data.dataset: folder``: ``data.root`` holds ``train/``, ``val/`` (and ``test/``)
    image folders, or one image folder split (stratified) by ``data.val_fraction``,
    ``data.test_fraction`` and ``data.split_seed``."""
    from .sklearn_sets import split
    if not cfg.root:
        raise ConfigError("data.dataset folder needs data.root: a folder with one subfolder "
                          "of images per class (or train/ val/ [test/] folders of them)")
    root = Path(cfg.root).expanduser()
    size = image_size
    if (root / "train").is_dir() and (root / "val").is_dir():
        train = ImageFolder(root / "train", size)
        val = ImageFolder(root / "val", size, train.classes, train.mode)
        test = ImageFolder(root / "test", size, train.classes, train.mode) \
            if (root / "test").is_dir() else None
        return from_datasets(train, val, test, cfg, name="folder",
                             num_classes=len(train.classes),
                             provenance={"classes": train.classes, "protocol": "folders"})
    full = ImageFolder(root, size)
    y = np.array([label for _, label in full.samples])
    idx = np.arange(len(y))
    itr, _, iva, _, ite, _ = split(idx, y, cfg)
    sub = torch.utils.data.Subset
    return from_datasets(sub(full, itr.tolist()), sub(full, iva.tolist()),
                         sub(full, ite.tolist()), cfg, name="folder",
                         num_classes=len(full.classes),
                         provenance={"classes": full.classes, "protocol": "split",
                                     "split_seed": cfg.split_seed})


def load_callable(cfg) -> DataSplits:
    """``data.dataset: "package.module:function"``: the function (called with no arguments,
    or with ``cfg`` when it takes a ``config`` parameter) returns ``(train, val)`` or
    ``(train, val, test)`` torch Datasets; imported as ``model.factory`` is."""
    import inspect

    from ..registry import import_target
    fn = import_target(cfg.dataset, "data.dataset")
    if not callable(fn):
        raise ConfigError(f"data.dataset: {cfg.dataset} is a {type(fn).__name__}, not a "
                          f"function returning (train, val[, test]) Datasets")
    try:
        takes_config = "config" in inspect.signature(fn).parameters
    except (TypeError, ValueError):
        takes_config = False
    try:
        got = fn(config=cfg) if takes_config else fn()
    except (ConfigError, DataError):
        raise
    except SystemExit as exc:
        raise ConfigError(f"data.dataset: calling {cfg.dataset} ended in sys.exit({exc.code!r})"
                          f"; it must return, not exit") from None
    except Exception as exc:
        raise ConfigError(f"data.dataset: calling {cfg.dataset} failed: {type(exc).__name__}: "
                          f"{str(exc).splitlines()[0] if str(exc) else ''}") from None
    if not isinstance(got, (tuple, list)) or len(got) not in (2, 3):
        raise ConfigError(f"data.dataset: {cfg.dataset} returned a {type(got).__name__}; it "
                          f"must return (train, val) or (train, val, test) Datasets")
    train, val, test = (*got, None)[:3]
    return from_datasets(train, val, test, cfg, name=cfg.dataset,
                         provenance={"function": cfg.dataset})
