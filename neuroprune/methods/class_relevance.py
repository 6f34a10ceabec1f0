"""Class relevance: train, keep the neurons and channels that a sparse selection finds
relevant to the classes, fine-tune.

The relevance is the one of Oramas, Wang and Tuytelaars, "Visual Explanation by
Interpretation: Improving Visual Feedback Capabilities of Deep Neural Networks", ICLR 2019
(arXiv 1712.06302): the responses of a trained network's internal features on training
images, regressed on the one-hot labels with an l1 penalty, pick the few features relevant to
each class (:mod:`neuroprune.relevance`; ``neuroprune explain`` shows them). The paper uses
the selection to interpret a network, not to prune it; as a pruning score (our use) a unit
scores the largest penalty, over the classes, at which it enters that class's lasso path (as
a fraction of the first): the units a sparse selection picks first score highest, and the
units no class selects rank by their largest correlation with a class. Each layer's units
(a group's root layer: a convolution's channels pooled over the map, ``pooling``, or a
fully connected layer's neurons) are selected among themselves, since the responses of
different layers are not comparable; the global ranking then divides each layer's scores by
their mean (``normalise``), as l1_filter does. ``samples``, ``pooling``, ``positive`` and
``path_points`` are options.
"""

from __future__ import annotations

from typing import Literal

import numpy as np
import torch
from pydantic import Field
from torch.func import functional_call

from ..models import build_model
from ..relevance import entry_scores, pooled
from .structured import StructuredParams, StructuredPruning


class ClassRelevanceParams(StructuredParams):
    samples: int = Field(1024, ge=2, description="training images whose unit responses are "
                         "regressed on the labels")
    pooling: Literal["mean", "max"] = Field("mean", description="a channel's response: mean "
                                            "or max of its feature map")
    positive: bool = Field(True, description="only units whose response supports a class "
                           "(positive weight) are selected")
    path_points: int = Field(30, ge=2, description="penalties on each class's lasso path (the "
                             "resolution of the entry order)")


class ClassRelevance(StructuredPruning):
    name = "class_relevance"
    summary = "train, keep the units a sparse selection finds relevant to the classes, fine-tune"
    citation = "Oramas et al. 2019, arXiv 1712.06302"
    Params = ClassRelevanceParams

    def unit_scores(self, ctx, trained, rows: torch.Tensor) -> torch.Tensor:
        space = ctx.structure
        model = build_model(ctx.spec).eval()
        state = {k: v[0].float() for k, v in trained.weights.items()}
        x = ctx.data.train_x[:self.params.samples].float().cpu()
        y = ctx.data.train_y[:self.params.samples].cpu().numpy()
        modules = dict(model.named_modules())
        roots = sorted({g.root for g in space.groups})
        got: dict[str, list[torch.Tensor]] = {r: [] for r in roots}
        handles = [modules[r].register_forward_hook(
            lambda _m, _i, out, r=r: got[r].append(pooled(out.detach(), self.params.pooling)))
            for r in roots]
        try:
            with torch.no_grad():
                for i in range(0, len(x), 256):
                    functional_call(model, state, (x[i:i + 256],))
        finally:
            for h in handles:
                h.remove()
        scores = torch.zeros(space.size)
        for gi, g in enumerate(space.groups):
            own = next(m for m in g.members if m.side == "out" and m.name == f"{g.root}.weight")
            responses = torch.cat(got[g.root])[:, own.positions].double().numpy()
            unit = np.zeros(g.size)
            unit[own.channels.numpy()] = entry_scores(
                responses, y, ctx.data.num_classes, positive=self.params.positive,
                n_alphas=self.params.path_points)
            scores[space.offsets[gi]:space.offsets[gi + 1]] = torch.from_numpy(unit).float()
        return scores[None]
