"""Datasets as in-memory tensors with fixed train / validation / test splits."""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Any

import torch

SPLITS = ("train", "val", "test")


@dataclass
class DataSplits:
    """Standardised float inputs ``[N, C, H, W]`` (or ``[N, F]``) and int64 labels per split.

    The test split is never used for selection: searches select on ``val``, and only the final
    network is scored on ``test``.

    ``preprocessing`` records what turned the user's raw inputs into these tensors (the
    training split's mean and std, any padding; see :mod:`neuroprune.preprocess`), so that an
    exported network takes raw inputs; ``provenance`` says which data ran (files found,
    protocol, split sizes).

    Inputs may be views on a mapped file (``data.loader.cache: disk``,
    :mod:`neuroprune.data.mapped`): :attr:`on_disk`; trainers then keep them on the host
    (:meth:`place`) and read each batch as they need it (:meth:`inputs`), and the splits
    pickle as the file's path, not as the data.
    """

    name: str
    train_x: torch.Tensor
    train_y: torch.Tensor
    val_x: torch.Tensor
    val_y: torch.Tensor
    test_x: torch.Tensor
    test_y: torch.Tensor
    num_classes: int
    preprocessing: dict[str, Any] | None = None
    provenance: dict[str, Any] = field(default_factory=dict)

    @property
    def input_shape(self) -> tuple[int, ...]:
        return tuple(self.train_x.shape[1:])

    def to(self, device: torch.device | str, dtype: torch.dtype | None = None) -> "DataSplits":
        """The splits on ``device``; inputs (not labels) in ``dtype`` when given."""
        moved = {k: getattr(self, k).to(device) for k in ("train_y", "val_y", "test_y")}
        for k in ("train_x", "val_x", "test_x"):
            v = getattr(self, k)
            moved[k] = v.to(device, dtype) if dtype is not None and v.is_floating_point() \
                else v.to(device)
        return replace(self, **moved)

    @property
    def on_disk(self) -> bool:
        """Whether any split's inputs are a view on a mapped file."""
        from .mapped import mapped_file
        return any(mapped_file(getattr(self, f"{s}_x")) for s in SPLITS)

    def place(self, device: torch.device | str, dtype: torch.dtype | None = None) -> "DataSplits":
        """The splits as a trainer holds them: :meth:`to` ``device``, except inputs mapped
        from a file, which stay where they are (read batch by batch by :meth:`inputs`,
        never copied whole to the device)."""
        if not self.on_disk:
            return self.to(device, dtype)
        return replace(self, **{f"{s}_y": getattr(self, f"{s}_y").to(device) for s in SPLITS})

    def inputs(self, split: str, rows: torch.Tensor | slice, device: torch.device | str,
               dtype: torch.dtype | None = None) -> torch.Tensor:
        """The inputs of ``split`` at ``rows`` (an index tensor or a slice) on ``device``, in
        ``dtype`` when given; from a mapped file only those rows are read."""
        x = getattr(self, f"{split}_x")
        if isinstance(rows, torch.Tensor):
            rows = rows.to(x.device)
        return x[rows].to(device, dtype if dtype is not None and x.is_floating_point()
                          else x.dtype)

    def __getstate__(self) -> dict[str, Any]:
        from .mapped import MappedRef
        state = dict(self.__dict__)
        for s in SPLITS:
            state[f"{s}_x"] = MappedRef.of(state[f"{s}_x"]) or state[f"{s}_x"]
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        from .mapped import MappedRef
        self.__dict__.update({k: v.open() if isinstance(v, MappedRef) else v
                              for k, v in state.items()})

    def record(self) -> dict[str, Any]:
        """Which data ran: the loader's provenance (files, protocol) with the split sizes."""
        return {"dataset": self.name, **self.provenance, "sizes": self.sizes()}

    def sizes(self) -> dict[str, int]:
        return {"train": len(self.train_y), "val": len(self.val_y), "test": len(self.test_y)}


def check_splits(data: DataSplits) -> DataSplits:
    """Refuse data that cannot train a meaningful classifier: an empty split, inputs that
    are not finite (NaN, inf, or too large for float32 arithmetic), labels outside
    ``[0, num_classes)``, fewer than two classes in the training split."""
    from ..errors import DataError
    from .mapped import all_finite

    for split in SPLITS:
        x, y = getattr(data, f"{split}_x"), getattr(data, f"{split}_y")
        if len(y) == 0 or len(x) != len(y):
            raise DataError(f"dataset {data.name}: the {split} split has {len(x)} inputs and "
                            f"{len(y)} labels; it needs at least one of each, as many labels "
                            f"as inputs")
        if not all_finite(x):
            raise DataError(f"dataset {data.name}: the {split} inputs hold NaN or infinite "
                            f"values (or values too large for float32); clean or scale the "
                            f"data first")
        if len(y) and (int(y.min()) < 0 or int(y.max()) >= data.num_classes):
            raise DataError(f"dataset {data.name}: {split} labels run from {int(y.min())} to "
                            f"{int(y.max())}, outside 0..{data.num_classes - 1}; the files are "
                            f"corrupt or belong to another dataset")
    if len(torch.unique(data.train_y)) < 2:
        raise DataError(f"dataset {data.name}: the training split has a single class; a "
                        f"classifier needs at least two")
    return data


def pad_images(data: DataSplits, pad: int) -> DataSplits:
    """Every image with ``pad`` pixels of background around it: each channel's darkest value
    in the training split (black, or the background of the MNIST family), so a padded image
    looks as if it had been photographed wider. Images only."""
    from ..errors import ConfigError

    if data.on_disk:
        raise ConfigError(f"data.pad: {data.name}'s inputs are cached on disk "
                          f"(data.loader.cache); padding would copy them into memory: drop "
                          f"data.pad, or resize with data.image_size")
    if data.train_x.dim() != 4:
        raise ConfigError(f"data.pad: {data.name} gives feature vectors "
                          f"{tuple(data.input_shape)}, not images; drop data.pad")
    fill = data.train_x.amin(dim=(0, 2, 3)).view(1, -1, 1, 1)

    def padded(x: torch.Tensor) -> torch.Tensor:
        out = fill.expand(len(x), -1, x.shape[2] + 2 * pad, x.shape[3] + 2 * pad).clone()
        out[:, :, pad:pad + x.shape[2], pad:pad + x.shape[3]] = x
        return out

    pre = dict(data.preprocessing) if data.preprocessing is not None else None
    if pre is not None:
        pre.update(pad=int(pad), fill=fill.flatten().tolist())
    return replace(data, train_x=padded(data.train_x), val_x=padded(data.val_x),
                   test_x=padded(data.test_x), preprocessing=pre)


def standardise(train: torch.Tensor, *others: torch.Tensor, per_feature: bool = False,
                dims: tuple[int, ...] | None = None, enabled: bool = True):
    """Scale every split with the training split's mean and std (no leakage from val/test):
    one mean and std, one per feature (``per_feature``: over dimension 0), or over ``dims``
    (``(0, 2, 3)``: one per image channel). Returns the scaled splits, then the record of
    the scaling (:func:`neuroprune.preprocess.standardisation`) that turns raw inputs into
    them. ``enabled=False`` (``data.standardise: false``): the splits as they are, and the
    record of the identity."""
    from ..preprocess import standardisation

    if not enabled:
        return (train, *others, standardisation(torch.tensor(0.0), torch.tensor(1.0)))
    mean, std = moments(train, per_feature, dims)
    return (*((t - mean) / std for t in (train, *others)), record_moments(mean, std))


def moments(train: torch.Tensor, per_feature: bool = False,
            dims: tuple[int, ...] | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """The training split's mean and std as :func:`standardise` takes them (broadcastable
    to a batch); reductions only, so a mapped split is read, not copied."""
    if per_feature:
        dims = (0,)
    if dims is None:
        return train.mean(), train.std().clamp_min(1e-6)
    return train.mean(dims, keepdim=True), train.std(dims, keepdim=True).clamp_min(1e-6)


def record_moments(mean: torch.Tensor, std: torch.Tensor) -> dict[str, Any]:
    """The preprocessing record of scaling by ``mean`` and ``std``."""
    from ..preprocess import standardisation

    def stat(t: torch.Tensor) -> torch.Tensor:  # without the batch dimension
        return t.reshape(t.shape[1:]) if t.dim() else t
    return standardisation(stat(mean), stat(std))
