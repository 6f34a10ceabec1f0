"""Shared pieces of the methods that prune over several rounds (IMP, DG, SynFlow)."""

from __future__ import annotations

import math

import torch
from pydantic import Field

from ..engine import GradientStatistics, PopulationResult, State
from ..masks import Layout, flatten, top_bits
from .base import Method, MethodContext
from .preset import PresetParams, ranking_layout


class RoundsParams(PresetParams):
    """What every method that prunes a share of the remaining weights per round takes."""

    rate: float = Field(0.2, gt=0, lt=1, description="share of remaining weights pruned per round")
    round_epochs: int | None = Field(None, ge=1, description="training epochs per round "
                                     "(default: training.epochs)")


class RoundsMethod(Method):
    """A method of :class:`RoundsParams`: its search trains ``round_epochs`` per round."""

    def search_network_epochs(self, final_epochs: int, sparsity: float) -> int:
        p = self.params
        return (getattr(p, "rewind_epoch", 0)
                + rounds_for(sparsity, p.rate) * (p.round_epochs or final_epochs))

    def plan(self, ctx: MethodContext) -> tuple[Layout, int, list[float]]:
        """The ranking layout, the epochs of a round and the sparsity after each round."""
        p = self.params
        layout = ranking_layout(ctx, p.preset)
        target = layout.sparsity
        steps = [min(target, 1 - (1 - p.rate) ** (r + 1))
                 for r in range(rounds_for(target, p.rate))]
        if steps:
            steps[-1] = target
        return layout, p.round_epochs or ctx.final_epochs, steps

    def commit_round(self, ctx: MethodContext, r: int, res: PopulationResult,
                     bits: torch.Tensor) -> None:
        if ctx.commit is not None:
            ctx.commit(r, [round_row(r, res.row(0), bits)], {"generation": r, "method": self.name})


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
