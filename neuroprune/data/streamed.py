"""Your own data: an image folder, a ``"package.module:function"`` returning torch Datasets,
or Datasets and DataLoaders given to the Python API.

Every item is read through a torch ``DataLoader`` (``data.loader``: workers, pin_memory,
batch_size) exactly once, and the batches are gathered into the
:class:`~neuroprune.data.DataSplits` that the engine trains on. The whole population then
trains from that one copy: each item is read once per run, however many networks the
population holds (never once per network). In memory is the fast path for data that fits:
at most :data:`MAX_IN_MEMORY_BYTES` (``data.loader.max_bytes``) of float32 inputs. Past it
(``data.loader.cache``: ``auto``, the default, or ``disk`` from the start) the batches are
written as they stream into a float32 file mapped into memory (:mod:`neuroprune.data.mapped`)
and the engine reads each training batch from it when it needs it, once per step for the
whole population; with ``cache: memory`` larger data is refused with a one-line error before
anything is written.
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from typing import Annotated, Any

import numpy as np
import torch
from pydantic import Field

from ..errors import ConfigError, DataError, require
from ..preprocess import pixels
from .base import DataSplits, moments, record_moments, standardise
from .mapped import DiskFile, cache_folder, mapped_file, standardise_in_place

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


def _length(ds: Any) -> int | None:
    """Items in a Dataset or a DataLoader's dataset, when it knows."""
    try:
        return len(ds.dataset if isinstance(ds, torch.utils.data.DataLoader) else ds)
    except TypeError:
        return None


class Inputs:
    """Where the streamed inputs go, split by split: memory, or a mapped
    :class:`~neuroprune.data.mapped.DiskFile` (``data.loader.cache: disk``, or ``auto`` once
    they pass ``data.loader.max_bytes``; what memory held by then is written out first).
    ``rows``: the items expected (for the free-disk check), when known."""

    def __init__(self, cfg, rows: int | None = None, cache: str | None = None,
                 hint: str = "set data.loader.cache: disk (or auto)"):
        self.opt, self.rows, self.hint = cfg.loader, rows, hint
        self.cache = cache or self.opt.cache
        self.disk = DiskFile(cache_folder(self.opt.cache_dir), rows) \
            if self.cache == "disk" else None
        self.chunks: dict[str, list[torch.Tensor]] = {}
        self.counts: dict[str, int] = {}
        self.shape: tuple[int, ...] | None = None
        self.bytes = 0

    def add(self, split: str, x: torch.Tensor) -> None:
        x = x.float()
        if self.shape is None:
            self.shape = tuple(x.shape[1:])
        elif tuple(x.shape[1:]) != self.shape:
            if self.counts.get(split, 0) or split == next(iter(self.counts)):
                raise DataError(f"{split} dataset: inputs differ in shape; give every item the "
                                f"same shape (data.image_size resizes a folder's images)")
            raise DataError(f"{split} inputs have shape {tuple(x.shape[1:])}, training inputs "
                            f"{self.shape}; they must match")
        self.bytes += x.numel() * 4
        if self.disk is None and self.bytes > self.opt.max_bytes:
            self._spill(split)
        if self.disk is not None:
            self.disk.write(x)
        else:
            self.chunks.setdefault(split, []).append(x)
        self.counts[split] = self.counts.get(split, 0) + len(x)

    def _spill(self, split: str) -> None:
        if self.cache == "memory":
            raise DataError(f"{split} dataset: the splits exceed data.loader.max_bytes "
                            f"({self.opt.max_bytes:,} bytes of float32 inputs); {self.hint}, "
                            f"raise max_bytes or use smaller images (data.image_size)")
        self.disk = DiskFile(cache_folder(self.opt.cache_dir), self.rows)
        for chunks in self.chunks.values():
            for x in chunks:
                self.disk.write(x)
        self.chunks.clear()

    def finish(self) -> dict[str, torch.Tensor]:
        """Each split's inputs: in memory, or views on the mapped file."""
        if self.disk is None:
            return {split: torch.cat(xs) for split, xs in self.chunks.items()}
        whole, out, start = self.disk.finish(), {}, 0
        for split, n in self.counts.items():
            out[split], start = whole[start:start + n], start + n
        return out

    def discard(self) -> None:
        if self.disk is not None:
            self.disk.discard()


def _pair(batch: Any, split: str) -> tuple[torch.Tensor, torch.Tensor]:
    """A loader batch as checked ``(inputs, int64 labels)``."""
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
    return x, y.long()


def _read(ds: Any, split: str, cfg, inputs: Inputs) -> torch.Tensor:
    """Every ``(input, label)`` of ``ds`` (a Dataset or DataLoader), read once: the inputs
    go to ``inputs``, the labels are returned."""
    ys = []
    try:
        for batch in _loader(ds, cfg):
            x, y = _pair(batch, split)
            inputs.add(split, x)
            ys.append(y)
    except (DataError, ConfigError):
        raise
    except Exception as exc:
        msg = str(exc).splitlines()[0] if str(exc) else ""
        raise DataError(f"{split} dataset: reading it failed: {type(exc).__name__}: {msg}") \
            from None
    if not ys:
        raise DataError(f"{split} dataset is empty; it needs at least one (input, label) item")
    return torch.cat(ys)


def gather(ds: Any, split: str, cfg) -> tuple[torch.Tensor, torch.Tensor]:
    """Every ``(input, label)`` of one Dataset or DataLoader, read once into memory (at
    most ``data.loader.max_bytes``)."""
    inputs = Inputs(cfg, cache="memory", hint="give (train, val[, test]) Datasets to cache "
                    "larger data on disk (data.loader.cache)")
    y = _read(ds, split, cfg, inputs)
    return inputs.finish()[split], y


def _standardised(xs: list[torch.Tensor], enabled: bool):
    """:func:`~neuroprune.data.base.standardise` of the splits; mapped splits in place,
    chunk by chunk, with the same values."""
    per_feature = xs[0].dim() == 2
    if not mapped_file(xs[0]) or not enabled:
        return standardise(*xs, per_feature=per_feature, enabled=enabled)
    mean, std = moments(xs[0], per_feature)
    for x in {id(x): x for x in xs}.values():  # without test, validation doubles as it
        standardise_in_place(x, mean, std)
    return (*xs, record_moments(mean, std))


def from_datasets(train: Any, val: Any, test: Any = None, cfg=None, *, name: str = "datasets",
                  num_classes: int | None = None, provenance: dict | None = None) -> DataSplits:
    """Torch Datasets (or DataLoaders) of ``(input, label)`` items as :class:`DataSplits`,
    each read once through ``cfg.loader``, kept in memory or in a mapped file on disk
    (``cfg.loader.cache``). Without ``test``, the validation set is also the test set
    (recorded in the provenance). Labels must lie in ``0..num_classes-1`` (default: the
    largest training label + 1). Inputs are standardised with the training split's mean and
    std as :func:`~neuroprune.data.arrays.from_arrays` does (one for images, one per feature
    for vectors), so the same data gives the same tensors either way."""
    from .config import DataConfig
    cfg = cfg or DataConfig()
    sets = {"train": train, "validation": val, **({"test": test} if test is not None else {})}
    lengths = [_length(ds) for ds in sets.values()]
    inputs = Inputs(cfg, None if None in lengths else sum(lengths))
    try:
        ys = {split: _read(ds, split, cfg, inputs) for split, ds in sets.items()}
        xs = inputs.finish()
        k = int(num_classes) if num_classes is not None else int(ys["train"].max()) + 1
        for split, y in ys.items():
            if int(y.min()) < 0 or int(y.max()) >= k:
                raise DataError(f"{split} labels run from {int(y.min())} to {int(y.max())}, "
                                f"outside 0..{k - 1}; labels must be class numbers "
                                f"0..classes-1")
        tr, va, te, pre = _standardised([xs["train"], xs["validation"],
                                         xs.get("test", xs["validation"])], cfg.standardise)
    except BaseException:
        inputs.discard()
        raise
    prov = {"source": name, "protocol": "given splits" if test is not None
            else "validation split doubles as test", **(provenance or {})}
    return DataSplits(name=name, train_x=tr, train_y=ys["train"], val_x=va,
                      val_y=ys["validation"], test_x=te, test_y=ys.get("test", ys["validation"]),
                      num_classes=k, preprocessing=pre, provenance=prov)


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
        data = from_datasets(train, val, test, cfg, name="folder",
                             num_classes=len(train.classes),
                             provenance={"classes": train.classes, "protocol": "folders"})
        return replace(data, preprocessing=pixels(data.preprocessing, size))
    full = ImageFolder(root, size)
    y = np.array([label for _, label in full.samples])
    idx = np.arange(len(y))
    itr, _, iva, _, ite, _ = split(idx, y, cfg)
    sub = torch.utils.data.Subset
    data = from_datasets(sub(full, itr.tolist()), sub(full, iva.tolist()),
                         sub(full, ite.tolist()), cfg, name="folder",
                         num_classes=len(full.classes),
                         provenance={"classes": full.classes, "protocol": "split",
                                     "split_seed": cfg.split_seed})
    return replace(data, preprocessing=pixels(data.preprocessing, size))


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
