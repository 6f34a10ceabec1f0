"""Datasets as in-memory tensors with fixed train / validation / test splits."""

from __future__ import annotations

from dataclasses import dataclass

import torch


@dataclass
class DataSplits:
    """Standardised float inputs ``[N, C, H, W]`` (or ``[N, F]``) and int64 labels per split.

    The test split is never used for selection: searches select on ``val``, and only the final
    network is scored on ``test``.
    """

    name: str
    train_x: torch.Tensor
    train_y: torch.Tensor
    val_x: torch.Tensor
    val_y: torch.Tensor
    test_x: torch.Tensor
    test_y: torch.Tensor
    num_classes: int

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
        return DataSplits(name=self.name, num_classes=self.num_classes, **moved)

    def sizes(self) -> dict[str, int]:
        return {"train": len(self.train_y), "val": len(self.val_y), "test": len(self.test_y)}


def standardise(train: torch.Tensor, *others: torch.Tensor, per_feature: bool = False):
    """Scale every split with the training split's mean and std (no leakage from val/test)."""
    if per_feature:
        mean = train.mean(0, keepdim=True)
        std = train.std(0, keepdim=True).clamp_min(1e-6)
    else:
        mean, std = train.mean(), train.std().clamp_min(1e-6)
    return tuple((t - mean) / std for t in (train, *others))
