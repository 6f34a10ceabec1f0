"""Feature flow regularisation (FFR): penalise the length and the curvature of the features'
trajectory across layers, then remove the filters and neurons of smallest norm.

Wu, Lan, Zhang and Xiang, "Feature Flow Regularization: Improving Structured Sparsity in Deep
Neural Networks" (arXiv 2106.02914). The features of consecutive hidden layers are the points
of a trajectory; training adds ``strength * (length_weight * sum_l ||F_{l+1} - F_l|| +
curvature_weight * sum_l ||F_{l+1} - 2 F_l + F_{l-1}||)`` (means over the batch), and short,
straight trajectories leave redundant filters near zero, which are then pruned by their
norm and the network fine-tuned.

Open details, as options or stated here: the points are the outputs of the hidden
activations in model order (``points`` names other modules); two points of different shape
are compared after average-pooling to the smaller spatial size and zero-padding the shorter
feature vector; the curvature is the norm of the discrete second difference (the paper's
total absolute curvature may weigh the turning angle instead). The features are taken in a
second forward pass of every network with BatchNorm in evaluation mode (the running
statistics), which adds a forward and backward pass per step.
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from pydantic import Field
from torch.func import functional_call, vmap

from ..masks.compact import LAYER_TYPES
from ..models import build_model
from .structured import Penalty, StructuredParams, StructuredPruning


class FFRParams(StructuredParams):
    strengths: list[float] = Field([1e-3], min_length=1, description="weight of the feature "
                                   "flow penalty: one network per value, trained together")
    length_weight: float = Field(1.0, ge=0, description="weight of the trajectory's length")
    curvature_weight: float = Field(1.0, ge=0, description="weight of its curvature")
    points: list[str] | None = Field(None, description="modules whose outputs are the "
                                     "trajectory's points (default: the hidden activations)")


def _flat_pair(a: torch.Tensor, b: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Two ``[B, ...]`` features as ``[B, D]`` vectors of one length (see the module
    docstring)."""
    if a.dim() == 4 and b.dim() == 4 and a.shape[2:] != b.shape[2:]:
        size = (min(a.shape[2], b.shape[2]), min(a.shape[3], b.shape[3]))
        a, b = F.adaptive_avg_pool2d(a, size), F.adaptive_avg_pool2d(b, size)
    a, b = a.flatten(1), b.flatten(1)
    d = max(a.shape[1], b.shape[1])
    return F.pad(a, (0, d - a.shape[1])), F.pad(b, (0, d - b.shape[1]))


class FeatureFlow(Penalty):
    """The feature flow penalty of every network (a vmapped second forward pass)."""

    def __init__(self, space, strengths: torch.Tensor, params: FFRParams, spec: Any):
        super().__init__(space, strengths, params)
        self.model = build_model(spec).eval()
        modules = dict(self.model.named_modules())
        self.points = params.points or [
            n for n, m in modules.items() if n and not isinstance(m, LAYER_TYPES)
            and not list(m.children()) and not list(m.parameters(recurse=False))]

    def flow(self, points: list[torch.Tensor]) -> torch.Tensor:
        """``[]`` penalty of one network's points (each ``[B, ...]``)."""
        p = self.params
        steps = [b - a for a, b in (_flat_pair(x, y) for x, y in zip(points, points[1:]))]
        length = sum(s.norm(dim=1).mean() for s in steps)
        turns = [_flat_pair(s, t) for s, t in zip(steps, steps[1:])]
        curv = sum((t - s).norm(dim=1).mean() for s, t in turns) if turns else 0.0
        return p.length_weight * length + p.curvature_weight * curv

    def loss(self, state) -> torch.Tensor:
        modules = dict(self.model.named_modules())
        names = self.points

        def one(params, buffers, x):
            got: list[torch.Tensor] = []
            handles = [modules[n].register_forward_hook(lambda m, i, o: got.append(o))
                       for n in names]
            try:
                functional_call(self.model, (params, buffers), (x,))
            finally:
                for h in handles:
                    h.remove()
            return self.flow(got)

        values = vmap(one, in_dims=(0, 0, None))(state.params, state.buffers, state.x)
        return self.network_strengths(state) * values


class FFR(StructuredPruning):
    name = "ffr"
    summary = "penalise the length and curvature of the feature flow, remove small filters"
    citation = "Wu et al. 2021, arXiv 2106.02914"
    Params = FFRParams
    penalty = FeatureFlow  # built by :meth:`hook`, which also hands it the model

    def hook(self, ctx, strengths: torch.Tensor) -> FeatureFlow:
        return FeatureFlow(ctx.structure, strengths, self.params, ctx.spec)

    def scores(self, space, rows: torch.Tensor) -> torch.Tensor:
        return space.channel_sums(rows.abs(), "filter")
