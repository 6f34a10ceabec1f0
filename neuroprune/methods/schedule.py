"""Shared pieces of the methods that prune over several rounds (IMP, DG, SynFlow)."""

from __future__ import annotations

import math

import torch

from ..engine import GradientStatistics, PopulationResult, State
from ..masks import Layout, flatten, top_bits
from .base import MethodContext


def dense_bits(layout: Layout) -> torch.Tensor:
    return torch.ones(layout.numel, dtype=torch.bool)


def rounds_for(target: float, rate: float) -> int:
    """Rounds of pruning ``rate`` of what remains until ``target`` sparsity is reached."""
    if target <= 0:
        return 0
    return max(1, math.ceil(math.log(1 - target) / math.log(1 - rate) - 1e-9))


def prune_to(layout: Layout, sparsity: float, scores: dict[str, torch.Tensor],
             current: torch.Tensor) -> torch.Tensor:
    """Keep the highest ``scores`` among the ``current`` ones, at ``sparsity``."""
    return top_bits(layout.at(sparsity), flatten(layout, scores), within=current)


def train(ctx: MethodContext, bits: torch.Tensor, init: State, epochs: int,
          collect_grads: bool = False) -> PopulationResult:
    """Train one network (``bits`` on ``init``, not rescaled) for ``epochs``, keeping its
    weights (and its accumulated gradients, as the extra ``grads``)."""
    hooks = (GradientStatistics(keep=True),) if collect_grads else ()
    return ctx.evaluator.evaluate(ctx.task(bits.unsqueeze(0), epochs, init=init,
                                           keep_weights=True, hooks=hooks, rescale_init=False))


def round_row(generation: int, metrics: dict, bits: torch.Tensor) -> dict:
    return {"generation": generation, "index": 0, "val_accuracy": metrics["val_accuracy"],
            "train_loss": metrics["train_loss"],
            "sparsity": 1.0 - float(bits.float().mean()), "diverged": int(metrics["diverged"])}
