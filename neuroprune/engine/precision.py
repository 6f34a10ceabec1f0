"""Numeric precision of a training run, applied for that run only.

``fp32`` everywhere; on CUDA ``tf32`` lets matrix products and convolutions use TensorFloat-32
and ``bf16`` runs forward passes under autocast (weights, gradients and optimiser state stay
fp32). The flags are set while the trainer runs and restored afterwards: no search changes a
process-global setting, and Ray workers apply the same settings from their task. On the CPU the
engine always computes in fp32.
"""

from __future__ import annotations

import contextlib
from typing import Iterator

import torch

PRECISIONS = ("fp32", "tf32", "bf16", "fp64")


def float_dtype(precision: str) -> torch.dtype:
    """The dtype of weights, optimiser state and data."""
    return torch.float64 if precision == "fp64" else torch.float32


@contextlib.contextmanager
def precision_scope(precision: str, device: torch.device) -> Iterator[None]:
    """Matrix-product precision flags for the block (CUDA only)."""
    if device.type != "cuda" or precision == "fp32":
        yield
        return
    saved = (torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32)
    torch.backends.cuda.matmul.allow_tf32 = torch.backends.cudnn.allow_tf32 = True
    try:
        yield
    finally:
        torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32 = saved


def autocast(precision: str, device: torch.device):
    """bf16 autocast on CUDA, nothing otherwise."""
    if device.type == "cuda" and precision == "bf16":
        return torch.autocast("cuda", dtype=torch.bfloat16)
    return contextlib.nullcontext()


def mask_dtype(device: torch.device) -> torch.dtype:
    """How masks are stored during training: float32 on the CPU, where multiplying by a bool
    tensor runs about 10x slower than by a float one; one byte (bool) on CUDA, where the step
    outside the matrix products is memory-bound and a mask read costs a quarter."""
    return torch.bool if device.type == "cuda" else torch.float32
