"""Dynamic sparse training: one drop/grow template for RigL, SET and CTRE.

Every ``update_interval`` steps (until ``stop_fraction`` of training) each layer drops the
``f_t`` share of its kept weights with the smallest magnitude and grows as many pruned ones,
ranked by a method-specific score; ``f_t`` decays from ``drop_fraction`` with a cosine (Evci et
al. 2020). The kept count of every layer never changes. The three methods differ only in
:meth:`DropGrowUpdater.grow_scores`.
"""

from __future__ import annotations

import math
from typing import Any

import torch
from pydantic import Field

from ..engine import EvalTask
from ..engine.updater import MaskUpdater
from ..masks import bits_to_mask, flatten, random_bits
from .base import Method, MethodContext, MethodParams, MethodResult


class DSTParams(MethodParams):
    update_interval: int = Field(50, ge=1, description="steps between mask updates")
    drop_fraction: float = Field(0.3, gt=0, lt=1, description="initial share of kept weights "
                                 "dropped and regrown per update")
    stop_fraction: float = Field(0.75, gt=0, le=1, description="no updates after this share "
                                 "of training")


class DropGrowUpdater(MaskUpdater):
    """Drop the smallest kept weights, grow the best-scoring pruned ones; per layer, per net."""

    def __init__(self, params: DSTParams, seed: int):
        self.p = params
        self.seed = seed
        self.generator: torch.Generator | None = None
        self.updates = 0

    def start(self, params, masks) -> None:
        dev = next(iter(params.values())).device
        self.generator = torch.Generator(device=dev).manual_seed(self.seed)

    def due(self, step: int, total_steps: int) -> bool:
        return step > 0 and step % self.p.update_interval == 0 and \
            step < self.p.stop_fraction * total_steps

    def fraction(self, step: int, total_steps: int) -> float:
        end = max(1.0, self.p.stop_fraction * total_steps)
        return self.p.drop_fraction / 2 * (1 + math.cos(math.pi * min(step, end) / end))

    def grow_scores(self, name: str, param: torch.Tensor, mask: torch.Tensor,
                    activations: dict[str, Any] | None) -> torch.Tensor:
        """Score ``[P, *shape]`` of every connection; the highest pruned ones are grown."""
        raise NotImplementedError

    def random_scores(self, like: torch.Tensor) -> torch.Tensor:
        return torch.rand(like.shape, generator=self.generator, device=like.device)

    def update(self, step, total_steps, params, masks, activations) -> None:
        frac = self.fraction(step, total_steps)
        for name, m in masks.items():
            w = params[name]
            p = m.shape[0]
            flat_m = m.reshape(p, -1)
            kept = int(flat_m[0].sum())
            n = min(round(frac * kept), flat_m.shape[1] - kept)
            if n <= 0:
                continue
            inf = torch.tensor(float("inf"), device=w.device)
            drop_score = torch.where(flat_m.bool(), w.detach().reshape(p, -1).abs(), inf)
            drop_idx = torch.topk(drop_score, n, dim=1, largest=False).indices
            grow = self.grow_scores(name, w, m, activations).reshape(p, -1).float()
            grow = torch.where(flat_m.bool(), -inf, grow)
            grow_idx = torch.topk(grow, n, dim=1).indices
            flat_m.scatter_(1, drop_idx, 0.0)
            flat_m.scatter_(1, grow_idx, 1.0)
        self.updates += 1


class DynamicSparseMethod(Method):
    """Train a random (ERK by default) sparse network while its mask changes."""

    Params = DSTParams
    updater_cls: type[DropGrowUpdater] = DropGrowUpdater

    def find(self, ctx: MethodContext) -> MethodResult:
        gen = torch.Generator().manual_seed(ctx.seed + 1)
        start = random_bits(ctx.layout, gen)
        updater = self.updater_cls(self.params, ctx.seed)
        res = ctx.evaluator.evaluate(EvalTask(
            masks=[bits_to_mask(ctx.layout, start)], init=ctx.init, epochs=ctx.final_epochs,
            data_seed=ctx.seed, keep_weights=True, test=True, updater=updater, curve=True,
            rescale_init=ctx.rescale_init))
        final = flatten(ctx.layout, res.masks[0])
        changed = int((final & ~start).sum())
        return MethodResult(bits=final, init=ctx.init, trained=res,
                            info={"connections_regrown": changed})
