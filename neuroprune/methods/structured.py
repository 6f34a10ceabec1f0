"""The template of the structured methods: train (with a regulariser), score every neuron or
channel, remove the lowest to the budget, fine-tune.

A regulariser is a :class:`~neuroprune.engine.TrainingHook` whose ``loss`` adds
``strength * penalty`` per network, with ``strength`` a ``[P]`` tensor: P networks with P
strengths train together in one population, and one run gives an accuracy-against-FLOPs front
(``info["front"]``: one row per strength). The network kept is the one with the best
validation accuracy after ``select_epochs`` of fine-tuning at the budget (with one strength,
no selection); its mask and trained weights go to the final training.
"""

from __future__ import annotations

from typing import Any, ClassVar

import torch
from pydantic import Field

from ..engine import TrainingHook
from ..errors import ConfigError
from ..masks import unflatten
from .base import Method, MethodContext, MethodParams, MethodResult


class Penalty(TrainingHook):
    """``strengths[i] * penalty(network i)`` added to each network's loss."""

    def __init__(self, space, strengths: torch.Tensor, params: MethodParams | None = None):
        self.space = space
        self.strengths = strengths
        self.params = params

    def memo_key(self) -> Any:
        """Class, strengths and parameters (the structure comes with the training's world)."""
        params = None if self.params is None else self.params.model_dump(mode="json")
        return [f"{type(self).__module__}.{type(self).__qualname__}",
                [float(s) for s in self.strengths.tolist()], params]

    def penalty(self, rows: torch.Tensor) -> torch.Tensor:
        """``[P]`` penalty of the parameters as ``[P, n]`` rows (layout order)."""
        raise NotImplementedError

    def network_strengths(self, state) -> torch.Tensor:
        """``[P]`` strengths of the networks of this chunk."""
        s = self.strengths.to(state.device)
        return s[state.rows.to(state.device)] if state.rows is not None else s

    def loss(self, state) -> torch.Tensor:
        return self.network_strengths(state) * self.penalty(self.space.rows_of(state.params))

    def gate_gradient(self, state, weights: torch.Tensor) -> torch.Tensor:
        """``[P, G]``: the straight-through gradient of the loss with respect to a gate on
        every unit, ``sum of dL/dw * w`` over what produces it, ``weights`` the ``[P, n]``
        rows the gates multiply (in ``after_backward``)."""
        space = self.space
        grads = space.rows_of({n: state.params[n].grad if state.params[n].grad is not None
                               else torch.zeros_like(state.params[n])
                               for n in space.layout.names})
        return space.channel_sums(grads * weights, "out")


def layer_normalised(space, scores: torch.Tensor) -> torch.Tensor:
    """``scores`` (``[P, G]``) divided by their mean magnitude in each group."""
    out = scores.clone()
    for a, b in zip(space.offsets, space.offsets[1:]):
        out[:, a:b] /= out[:, a:b].abs().mean(1, keepdim=True).clamp_min(1e-12)
    return out


class StructuredParams(MethodParams):
    strengths: list[float] = Field([1e-4], min_length=1, description="regulariser strengths: "
                                   "one network per strength, trained together")
    dense_epochs: int | None = Field(None, ge=0, description="epochs of (regularised) "
                                     "training before pruning (default: training.epochs)")
    select_epochs: int = Field(1, ge=0, description="with several strengths: fine-tuning "
                               "epochs of every pruned network before the best (validation "
                               "accuracy) is kept")
    normalise: bool = Field(True, description="divide each layer's scores by their mean "
                            "magnitude before the global ranking (layers of different scale "
                            "compete fairly; what each paper does is in its method's "
                            "description)")


class StructuredPruning(Method):
    """Base of the structured methods: subclasses give ``penalty`` and ``scores``."""

    structured = True
    Params = StructuredParams
    #: the regulariser (None: plain training before pruning)
    penalty: ClassVar[type[Penalty] | None] = None
    #: train with (all-ones) masks that the hook may change
    masked_training: ClassVar[bool] = False
    #: the training extra (``[P, G]``) that ranks the units, instead of :meth:`scores`
    score_extra: ClassVar[str | None] = None

    def __init__(self, params: MethodParams | None = None):
        super().__init__(params)
        if self.penalty is None and "strengths" in self.params.model_fields_set:
            raise ConfigError(f"method {self.name} trains without a regulariser, so it has no "
                              f"strengths to sweep; drop its strengths")

    def scores(self, space, rows: torch.Tensor) -> torch.Tensor:
        """``[P, G]`` importance of every group channel from trained parameter rows."""
        raise NotImplementedError

    def unit_scores(self, ctx: MethodContext, trained, rows: torch.Tensor) -> torch.Tensor:
        """``[P, G]`` importance from the training's result (default: :meth:`scores` of
        the trained ``rows``, or the extra named by ``score_extra``)."""
        if self.score_extra:
            return trained.extras[self.score_extra].float()
        return self.scores(ctx.structure, rows)

    def hook(self, ctx: MethodContext, strengths: torch.Tensor) -> TrainingHook | None:
        """The training hook of ``strengths`` (``[P]``); None: plain training."""
        return self.penalty(ctx.structure, strengths, self.params) if self.penalty else None

    def trained_rows(self, space, trained) -> torch.Tensor:
        """``[P, n]`` rows of the trained networks that are scored, pruned and fine-tuned
        (default: their parameters)."""
        return space.rows_of({n: trained.weights[n].float() for n in space.layout.names})

    def refine(self, space, rows: torch.Tensor, trained: torch.Tensor) -> torch.Tensor:
        """The element masks of the pruned networks from their structured ``rows`` and
        ``trained`` rows (default: the structured masks as they are)."""
        return rows

    def strengths(self) -> list[float]:
        return list(self.params.strengths) if self.penalty else [0.0]

    def search_network_epochs(self, final_epochs: int, sparsity: float) -> int:
        p = len(self.strengths())
        return p * (self.params.dense_epochs or final_epochs) + \
            (p * self.params.select_epochs if p > 1 else 0)

    def resumes(self, state) -> bool:
        return "found" in state  # generation 0 saved what it found: go on from there

    def find(self, ctx: MethodContext) -> MethodResult:
        space = ctx.structure
        if space is None:
            raise ConfigError(f"method {self.name} needs sparsity.structure: neuron, channel "
                              f"or all")
        if ctx.resume_state is not None and "found" in ctx.resume_state:
            found = ctx.resume_state["found"]
            return MethodResult(bits=found["bits"], init=found["init"], from_init=False,
                                info=found["info"])
        values = self.strengths()
        strengths = torch.tensor(values, dtype=torch.float32)
        p = len(strengths)
        hook = self.hook(ctx, strengths)
        epochs = ctx.final_epochs if self.params.dense_epochs is None else \
            self.params.dense_epochs
        masks = torch.ones(p, space.layout.numel, dtype=torch.bool) \
            if self.masked_training else None
        trained = ctx.evaluator.evaluate(ctx.task(masks, epochs, size=None if masks is not None
                                                  else p, keep_weights=True,
                                                  rescale_init=False,
                                                  hooks=(hook,) if hook else ()))
        weights = self.trained_rows(space, trained)
        scores = self.unit_scores(ctx, trained, weights)
        if self.params.normalise:
            scores = layer_normalised(space, scores)
        keep = space.meet(scores, ctx.budget, ctx.target)
        rows = self.refine(space, space.expand(keep), weights)
        inits = dict(trained.weights)
        for name, part in unflatten(space.layout, weights).items():
            inits[name] = part.to(inits[name].dtype)
        best, front = 0, []
        dense_flops = float(space.cost(torch.ones(1, space.layout.numel, dtype=torch.bool),
                                       "flops")[0])
        flops = (space.cost(rows, "flops") / max(dense_flops, 1.0)).tolist()
        accuracy = trained.metrics["val_accuracy"].tolist()
        if p > 1 and self.params.select_epochs > 0:
            tuned = ctx.evaluator.evaluate(ctx.task(
                rows, self.params.select_epochs, init=None, inits=inits,
                rescale_init=False))
            accuracy = tuned.metrics["val_accuracy"].tolist()
            best = int(torch.tensor(accuracy).argmax())
        for i in range(p):
            front.append({"generation": 0, "index": i, "strength": values[i],
                          "val_accuracy": accuracy[i], "flops_fraction": flops[i],
                          "sparsity": float(space.cost(rows[i:i + 1], "sparsity")[0])})
        info: dict[str, Any] = {"exact": False, "strength": values[best],
                                "front": [{k: r[k] for k in ("strength", "val_accuracy",
                                                             "flops_fraction")} for r in front]}
        result = MethodResult(bits=rows[best].clone(),
                              init={k: v[best].clone() for k, v in inits.items()},
                              from_init=False, info=info)
        if ctx.commit is not None:
            ctx.commit(0, front, {"generation": 0, "method": self.name, "found": {
                "bits": result.bits, "init": result.init, "info": info}})
        return result
