"""Tasks and results as they travel between processes (Ray actors): each shard carries only
itself.

A shard of a task is a slice of ``[P, n]`` tensors, and a slice is a view: serialising a view
sends its whole storage, so every shard would carry the whole population. Here a shard's
masks are bit-packed (1 bit per connection, 8x less than bool) into a tensor of its own, every
other per-network tensor is copied into storage of its own, and what every shard shares (the
shared initial state, the training hooks) is left out, to be sent once by reference
(:func:`shared_part`). Results travel the same way: ``[p]`` metric tensors, final masks
bit-packed, weights and hook extras only when the task asked for them.
"""

from __future__ import annotations

from dataclasses import dataclass, fields, replace
from typing import Any

import numpy as np
import torch

from .task import EvalTask, PopulationResult

#: an ``EvalTask``'s fields that every shard shares; they travel once, by reference
SHARED = ("init", "hooks")


def pack_bits(bits: torch.Tensor) -> torch.Tensor:
    """``[P, n]`` bool -> ``[P, ceil(n / 8)]`` uint8 on the CPU, 8 connections per byte (the
    first in the highest bit)."""
    if bits.dim() != 2 or bits.dtype != torch.bool:
        raise ValueError(f"pack_bits takes a [P, n] bool tensor, got {tuple(bits.shape)} "
                         f"{bits.dtype}")
    # numpy's packing works on the tensor's own memory, ~15x faster than shifts in torch
    return torch.from_numpy(np.packbits(bits.cpu().numpy(), axis=1))


def unpack_bits(packed: torch.Tensor, n: int) -> torch.Tensor:
    """Inverse of :func:`pack_bits`: ``[P, ceil(n / 8)]`` uint8 -> ``[P, n]`` bool (CPU)."""
    if packed.dim() != 2 or packed.dtype != torch.uint8 or packed.shape[1] != -(-n // 8):
        raise ValueError(f"unpack_bits takes [P, {-(-n // 8)}] uint8 for {n} connections, got "
                         f"{tuple(packed.shape)} {packed.dtype}")
    return torch.from_numpy(np.unpackbits(packed.cpu().numpy(), axis=1, count=n).view(bool))


def owned(value: Any) -> Any:
    """``value`` with every tensor in it copied into storage of its own (a view of a bigger
    tensor would serialise all of that tensor)."""
    if isinstance(value, torch.Tensor):
        return value.clone(memory_format=torch.contiguous_format)
    if isinstance(value, dict):
        return {k: owned(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return type(value)(owned(v) for v in value)
    return value


@dataclass
class PackedTask:
    """Networks ``start:stop`` of a task, as they travel: ``bits`` their masks bit-packed
    (``None``: dense networks), ``width`` the connections per mask, ``fields`` the task's other
    per-shard fields in storage of their own. :meth:`unpack` adds what the shards share."""

    bits: torch.Tensor | None
    width: int
    fields: dict[str, Any]

    @staticmethod
    def of(task: EvalTask, start: int = 0, stop: int | None = None) -> "PackedTask":
        part = task.slice(start, len(task) if stop is None else stop)
        rest = {f.name: owned(getattr(part, f.name)) for f in fields(part)
                if f.name not in ("masks", *SHARED)}
        if part.masks is None:
            return PackedTask(None, 0, rest)
        return PackedTask(pack_bits(part.masks), part.masks.shape[1], rest)

    def unpack(self, shared: dict[str, Any]) -> EvalTask:
        """The task again, with ``shared`` (:func:`shared_part` of the whole task)."""
        masks = None if self.bits is None else unpack_bits(self.bits, self.width)
        return EvalTask(masks=masks, **self.fields, **shared)


def shared_part(task: EvalTask) -> dict[str, Any]:
    """What every shard of ``task`` shares: sent once per task, by reference."""
    return {"init": task.init, "hooks": tuple(task.hooks)}


@dataclass
class PackedResult:
    """A :class:`PopulationResult` as it travels: its final masks bit-packed, every tensor in
    storage of its own."""

    result: PopulationResult
    bits: torch.Tensor | None
    width: int

    @staticmethod
    def of(result: PopulationResult) -> "PackedResult":
        rest = PopulationResult(metrics=owned(result.metrics), weights=owned(result.weights),
                                extras=owned(result.extras))
        if result.masks is None:
            return PackedResult(rest, None, 0)
        return PackedResult(rest, pack_bits(result.masks), result.masks.shape[1])

    def unpack(self) -> PopulationResult:
        if self.bits is None:
            return self.result
        return replace(self.result, masks=unpack_bits(self.bits, self.width))
