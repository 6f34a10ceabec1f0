"""Dissipating gradients: remove the weights that stay near their initial value.

Haroon, "What to Prune and What Not to Prune at Initialization", arXiv 2209.02201 (2022):
weights whose gradients dissipate early in training barely move from their initial value and
are judged unimportant; the method "eliminates the weights that remain within a fraction of
their initial value during the first couple of epochs", preserves performance best, and
needs the most epochs to reach high sparsity.

The network trains for up to ``epochs`` epochs in one run (one optimiser, one schedule); at the
end of every epoch a training hook prunes by one of two rules (``rule``):

* ``fraction`` (the paper's wording): every kept weight whose relative change
  ``|w - w0| / |w0|`` is below ``fraction`` is removed, until the target sparsity is reached
  (then the weights that changed least among those below go first, so the target is met
  exactly). The paper does not say what happens when the epochs run out before the target is
  reached: ``fill: smallest_change`` removes the rest by smallest relative change at the last
  epoch (so every method meets the same sparsity); the value of ``fraction`` is not given
  either (0.1 here, a named option).
* ``ramp`` (our earlier version): after epoch e of E the sparsity is e/E of the target, the
  weights with the smallest ``score`` go: how far a weight moved (``distance``), its
  accumulated gradient magnitude (``gradient``), or the product of both ranks (``both``).

``w0`` is a weight's value when the pruning training starts. The final mask is then trained
from the initial weights (``rewind: true``) or goes on from the pruning run's weights
(``rewind: false``: the paper's "retraining is neither necessary nor harmful").
"""

from __future__ import annotations

from typing import Any, Literal

import torch
from pydantic import Field

from ..engine import LearningCurve, State, TrainingHook, TrainState
from ..masks import Layout, flatten_rows, top_rows, unflatten
from .base import Method, MethodContext, MethodParams, MethodResult
from .schedule import dense_bits


class DGParams(MethodParams):
    rule: Literal["fraction", "ramp"] = Field(
        "ramp", description="fraction: drop weights within `fraction` of their initial value "
        "(the paper); ramp: reach the target linearly over the epochs by `score`")
    epochs: int = Field(3, ge=1, description="epochs of the pruning training (fraction: at "
                        "most; ramp: the target is reached at the last)")
    fraction: float = Field(0.1, gt=0, description="fraction rule: relative change below "
                            "which a weight is dropped")
    fill: Literal["smallest_change", "stop"] = Field(
        "smallest_change", description="fraction rule, when the epochs end before the target: "
        "drop the rest by smallest relative change, or stop at the sparsity reached")
    score: Literal["distance", "gradient", "both"] = Field(
        "distance", description="ramp rule: what ranks the weights")
    rewind: bool = Field(True, description="train the final mask from the initial weights "
                         "(false: continue from the pruning run's weights)")


def _rank(x: torch.Tensor) -> torch.Tensor:
    """Ranks in [0, 1] along the last dimension (ties broken by position)."""
    r = torch.empty_like(x, dtype=torch.float64)
    r.scatter_(-1, x.argsort(-1), torch.arange(x.shape[-1], dtype=torch.float64,
                                                device=x.device).expand_as(x).contiguous())
    return r / max(1, x.shape[-1] - 1)


class DissipatingPruning(TrainingHook):
    """Prunes every network at the end of each epoch by the rule (see the module docstring);
    records the sparsity after each epoch (extra ``dg_sparsity``) and the last scores (extra
    ``scores``, ``[P, n]``)."""

    def __init__(self, layout: Layout, params: DGParams, target: float):
        self.layout, self.p, self.target = layout, params, target
        # the mask at the end: the layout itself when the target is its sparsity (a layout
        # rebuilt at the realised sparsity may allocate the kept weights differently by one)
        self.final = layout if target == layout.sparsity else layout.at(target)
        self.w0: torch.Tensor | None = None
        self.start_sparsity = 0.0
        self.grads: torch.Tensor | None = None
        self.history: list[list[float]] = []
        self.scores: torch.Tensor | None = None

    def _weights(self, state: TrainState) -> torch.Tensor:
        return flatten_rows(self.layout, {k: state.params[k].detach() for k in self.layout.names})

    def start(self, state: TrainState) -> None:
        self.w0 = self._weights(state).clone()
        # the sparsity the training starts from (0 for a dense network); the ramp goes on
        # from there to the target
        self.start_sparsity = 1.0 - float(flatten_rows(self.layout, state.masks)[0].float().mean())
        self.grads = torch.zeros_like(self.w0)
        self.history = [[] for _ in range(state.p)]

    def after_backward(self, state: TrainState) -> None:
        if self.p.rule == "ramp" and self.p.score != "distance":
            self.grads += flatten_rows(self.layout, {k: state.params[k].grad.abs()
                                                     for k in self.layout.names})

    def end_epoch(self, state: TrainState) -> None:
        w = self._weights(state)
        current = flatten_rows(self.layout, state.masks).bool()
        last = state.epoch + 1 >= self.p.epochs
        if self.p.rule == "ramp":
            moved = (w - self.w0).abs()
            score = {"distance": moved, "gradient": self.grads,
                     "both": _rank(moved) * _rank(self.grads)}[self.p.score]
            s0 = self.start_sparsity
            sparsity = s0 + (self.target - s0) * (state.epoch + 1) / self.p.epochs
            step = self.final if last else self.layout.at(sparsity)
            keep = top_rows(step, score, within=current)
        else:
            score = (w - self.w0).abs() / self.w0.abs().clamp_min(1e-12)
            keep = current & (score >= self.p.fraction)
            # never beyond the target: there the weights that changed least go first
            at_target = top_rows(self.final, score, within=current)
            for start, stop, kept in self.final.units:
                short = keep[:, start:stop].sum(1) < kept
                if last and self.p.fill == "smallest_change":
                    short = torch.ones_like(short)
                keep[:, start:stop] = torch.where(short[:, None], at_target[:, start:stop],
                                                  keep[:, start:stop])
        self.scores = score
        for name, m in unflatten(self.layout, keep).items():
            state.masks[name].copy_(m.to(state.masks[name].dtype))
        state.masks_updated()
        for h, row in zip(self.history, (1.0 - keep.double().mean(1)).tolist()):
            h.append(row)

    def finish(self, state: TrainState) -> dict[str, Any]:
        return {"dg_sparsity": self.history,
                "scores": (self.scores if self.scores is not None else
                           torch.zeros_like(self._weights(state))).float().cpu()}


def prune_by_dissipation(ctx: MethodContext, params: DGParams, target: float,
                         bits: torch.Tensor | None = None, init: State | None = None,
                         generation: int = 0):
    """One pruning run from ``bits`` (default dense) and ``init`` (default the initial
    weights) to ``target``: ``(final bits, trained weights, scores, result)``."""
    bits = dense_bits(ctx.layout) if bits is None else bits
    res = ctx.evaluator.evaluate(ctx.task(
        bits.unsqueeze(0), params.epochs, init=ctx.init if init is None else init,
        keep_weights=True, rescale_init=False,
        hooks=(DissipatingPruning(ctx.layout, params, target), LearningCurve())))
    final = res.masks[0] if res.masks is not None else bits
    if ctx.commit is not None:
        rows = [{"generation": generation + i, "index": 0, "val_accuracy": c["val_accuracy"],
                 "train_loss": c["train_loss"], "sparsity": s, "diverged": 0}
                for i, (c, s) in enumerate(zip(res.extras["curve"][0],
                                               res.extras["dg_sparsity"][0]))]
        for r in rows:
            ctx.commit(r["generation"], [r], {"generation": r["generation"]})
    return final, res.weights_of(0), res.extras["scores"][0], res


class DissipatingGradients(Method):
    name = "dissipating_gradients"
    summary = "prune the weights that moved least from init during the first epochs"
    citation = "Haroon 2022, arXiv 2209.02201"
    Params = DGParams

    def find(self, ctx: MethodContext) -> MethodResult:
        p = self.params
        bits, weights, _, _ = prune_by_dissipation(ctx, p, ctx.layout.sparsity)
        exact = p.rule == "ramp" or p.fill == "smallest_change"
        return MethodResult(bits=bits, init=ctx.init if p.rewind else weights,
                            from_init=p.rewind, info={"rule": p.rule, "exact": exact})

    def search_network_epochs(self, final_epochs: int, sparsity: float) -> int:
        return self.params.epochs
