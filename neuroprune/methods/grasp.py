"""GraSP: prune at initialisation while preserving gradient flow.

Wang, Zhang and Grosse, "Picking Winning Tickets Before Training by Preserving Gradient Flow",
ICLR 2020 (arXiv 2002.07376). Each weight is scored ``-w * (H g)``, where ``g`` is the gradient
of the loss at initialisation and ``H g`` its Hessian-gradient product (a second backward pass
through ``g^T grad L``); the weights with the *highest* scores are removed, since removing them
reduces the gradient norm the least (or increases it).

As in the authors' code, the logits are divided by a temperature (``temperature``, 200) and the
batch holds ``samples_per_class`` examples of every class (10); both are options. BatchNorm
uses the batch's statistics (training mode), as in the authors' code (alecwangcq/GraSP
scores a fresh network in training mode; its ``.eval()`` is commented out; Synaptic-Flow's
reimplementation scores in evaluation mode), and its running statistics are left untouched.

``preset: paper`` (the default): the weights are ranked over all layers at once, as the paper
and its code do. ``preset: ours``: each layer keeps what ``sparsity.allocation`` (ERK) gives
it. Not reproduced from the authors' code: it re-initialises the Linear layers of the copy it
scores (``xavier_normal``, its ``reinit``) and splits the batch in two halves; here the
network is scored as it will be trained, on the whole batch.
"""

from __future__ import annotations

from pydantic import Field

from ..masks import top_bits
from .base import Method, MethodContext, MethodResult
from .preset import PresetParams, preset_info, ranking_layout
from .scores import GraspScores


class GraSPParams(PresetParams):
    temperature: float = Field(200.0, gt=0, description="logits are divided by this")
    samples_per_class: int = Field(10, ge=1, description="examples of each class in the batch")


class GraSP(Method):
    name = "grasp"
    one_shot = True
    summary = "keep the weights whose removal would reduce gradient flow most (Hessian-gradient)"
    citation = "Wang et al. 2020, arXiv 2002.07376"
    Params = GraSPParams

    def find(self, ctx: MethodContext) -> MethodResult:
        p = self.params
        res = ctx.evaluator.evaluate(ctx.task(None, 0, size=1, rescale_init=False, hooks=(
            GraspScores(ctx.layout, p.temperature, p.samples_per_class, ctx.seed),)))
        # the lowest scores are kept: top_bits keeps the highest, so negate
        layout = ranking_layout(ctx, p.preset)
        bits = top_bits(layout, -res.extras["scores"][0])
        return MethodResult(bits=bits, init=ctx.init, info=preset_info(ctx, layout, bits))
