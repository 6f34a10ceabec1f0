"""Dynamic sparse training: one drop/grow template for RigL, SET and CTRE.

Every ``update_interval`` steps (until ``stop_fraction`` of training) each layer drops the
``f_t`` share of its kept weights with the smallest magnitude and grows as many pruned ones,
ranked by a method-specific score; ``f_t`` decays from ``drop_fraction`` with a cosine (Evci et
al. 2020). The kept count of every layer never changes. The three methods differ only in
:meth:`DropGrowUpdater.grow_scores`. The update is a training hook (after the backward pass,
where gradients are still dense), applied to every network of a population at once.

What may grow: every connection not kept after the drop, those just dropped included
(``regrow: true``, the default), as in RigL's Algorithm 1, the authors' code
(google-research/rigl, ``SparseSETOptimizer._get_update_op``) and rigl-torch. A dropped
connection grown back keeps its weight and optimiser state (the authors' code re-initialises
only connections that were off before the update). ``regrow: false`` grows only connections
that were off before the update, so every update moves ``n`` connections.
"""

from __future__ import annotations

import math
from typing import Any

import torch
from pydantic import Field

from ..engine import LearningCurve, TrainingHook, TrainState
from ..evolution.operators import Draws, random_rows
from .base import Method, MethodContext, MethodParams, MethodResult

GROW_STREAM = 2  # the purpose of the random numbers SET and CTRE draw


class DSTParams(MethodParams):
    update_interval: int = Field(50, ge=1, description="steps between mask updates")
    drop_fraction: float = Field(0.3, gt=0, lt=1, description="initial share of kept weights "
                                 "dropped and regrown per update")
    stop_fraction: float = Field(0.75, gt=0, le=1, description="no updates after this share "
                                 "of training")
    regrow: bool = Field(True, description="a connection dropped in an update may grow back in "
                         "the same update (the paper's Algorithm 1 and its code); false: grow "
                         "only connections that were off before the update")


class DropGrowUpdater(TrainingHook):
    """Drop the smallest kept weights, grow the best-scoring pruned ones; per layer, per net."""

    needs_activations = False

    def __init__(self, params: DSTParams):
        self.p = params
        self.updates = 0

    def due(self, step: int, total_steps: int) -> bool:
        return step > 0 and step % self.p.update_interval == 0 and \
            step < self.p.stop_fraction * total_steps

    def fraction(self, step: int, total_steps: int) -> float:
        end = max(1.0, self.p.stop_fraction * total_steps)
        return self.p.drop_fraction / 2 * (1 + math.cos(math.pi * min(step, end) / end))

    def grow_scores(self, name: str, state: TrainState,
                    activations: dict[str, Any] | None) -> torch.Tensor:
        """Score ``[P, *shape]`` of every connection; the highest pruned ones are grown."""
        raise NotImplementedError

    def random_scores(self, name: str, state: TrainState) -> torch.Tensor:
        """Uniforms per network, step and layer (the same for a network alone or not)."""
        layer = list(state.masks).index(name)
        return state.uniform(GROW_STREAM * 1000 + layer, tuple(state.masks[name].shape[1:]))

    def after_backward(self, state: TrainState) -> None:
        if not self.due(state.step, state.total_steps):
            return
        acts = state.capture(set(state.masks)) if self.needs_activations else None
        frac = self.fraction(state.step, state.total_steps)
        for name, m in state.masks.items():
            w = state.params[name]
            p = m.shape[0]
            flat_m = m.reshape(p, -1)
            kept = int(flat_m[0].sum())
            # what can grow: all but the kept after the drop, or all that was off before it
            n = min(round(frac * kept), kept if self.p.regrow else flat_m.shape[1] - kept)
            if n <= 0:
                continue
            on = flat_m.bool()
            inf = torch.tensor(float("inf"), device=w.device)
            drop_score = torch.where(on, w.detach().reshape(p, -1).abs(), inf)
            drop_idx = torch.topk(drop_score, n, dim=1, largest=False).indices
            grow = self.grow_scores(name, state, acts).reshape(p, -1).float()
            flat_m.scatter_(1, drop_idx, 0)
            grow = torch.where(flat_m.bool() if self.p.regrow else on, -inf, grow)
            grow_idx = torch.topk(grow, n, dim=1).indices
            flat_m.scatter_(1, grow_idx, 1)
        state.masks_updated()
        self.updates += 1


class DynamicSparseMethod(Method):
    """Train a random (ERK by default) sparse network while its mask changes."""

    Params = DSTParams
    updater_cls: type[DropGrowUpdater] = DropGrowUpdater

    def find(self, ctx: MethodContext) -> MethodResult:
        start = random_rows(ctx.layout, 1, Draws(ctx.seed + 1, ctx.device)).cpu()
        res = ctx.evaluator.evaluate(ctx.task(
            start, ctx.final_epochs, keep_weights=True, test=True,
            hooks=(self.updater_cls(self.params), LearningCurve())))
        final = res.masks[0] if res.masks is not None else start[0]
        changed = int((final & ~start[0]).sum())
        return MethodResult(bits=final, init=ctx.init, trained=res,
                            info={"connections_regrown": changed})
