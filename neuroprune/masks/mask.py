"""Masks as named boolean tensors, validated where they are written."""

from __future__ import annotations

from typing import Mapping

import torch


class Mask(dict):
    """``{parameter name: bool tensor}``; ``True`` keeps a weight.

    Writes are checked: only boolean tensors are accepted, so a float or int mask never enters
    silently (OpenLTH's ``Mask`` does the same).
    """

    def __init__(self, other: Mapping[str, torch.Tensor] | None = None):
        super().__init__()
        for k, v in (other or {}).items():
            self[k] = v

    def __setitem__(self, name: str, value: torch.Tensor) -> None:
        if not isinstance(name, str):
            raise TypeError(f"mask names are parameter names (str), got {type(name).__name__}")
        if not isinstance(value, torch.Tensor):
            raise TypeError(f"mask '{name}' must be a torch.Tensor, got {type(value).__name__}")
        if value.dtype != torch.bool:
            if value.dtype.is_floating_point or value.dtype in (torch.uint8, torch.int64,
                                                                 torch.int32):
                if not bool(((value == 0) | (value == 1)).all()):
                    raise ValueError(f"mask '{name}' has values other than 0 and 1")
                value = value.bool()
            else:
                raise TypeError(f"mask '{name}' must be boolean, got {value.dtype}")
        super().__setitem__(name, value)

    def kept(self) -> int:
        return int(sum(int(v.sum()) for v in self.values()))

    def numel(self) -> int:
        return int(sum(v.numel() for v in self.values()))

    def sparsity(self) -> float:
        """Fraction of weights removed, over all masked tensors."""
        n = self.numel()
        return 1.0 - self.kept() / n if n else 0.0

    def layer_sparsity(self) -> dict[str, float]:
        return {k: 1.0 - float(v.float().mean()) for k, v in self.items()}

    def to(self, device: torch.device | str) -> "Mask":
        return Mask({k: v.to(device) for k, v in self.items()})

    def check_shapes(self, shapes: Mapping[str, torch.Size]) -> None:
        """Raise ``ValueError`` naming the first tensor whose name or shape does not match."""
        missing = [k for k in shapes if k not in self]
        extra = [k for k in self if k not in shapes]
        if missing or extra:
            raise ValueError(f"mask does not match the model: missing {missing}, "
                             f"unexpected {extra}")
        for k, shape in shapes.items():
            if tuple(self[k].shape) != tuple(shape):
                raise ValueError(f"mask '{k}' has shape {tuple(self[k].shape)}, the model's "
                                 f"weight has {tuple(shape)}")
