"""Train dense, prune the smallest weights, retrain.

Han, Pool, Tran and Dally, "Learning both Weights and Connections for Efficient Neural
Networks", NeurIPS 2015 (arXiv 1506.02626). One shot; the retraining starts from the trained
weights (not from init) with a fresh learning-rate schedule.
"""

from __future__ import annotations

from pydantic import Field

from .base import Method, MethodContext, MethodParams, MethodResult
from .schedule import dense_bits, prune_to, round_row, train


class MagnitudeRetrainParams(MethodParams):
    dense_epochs: int | None = Field(None, ge=1, description="dense training epochs "
                                     "(default: training.epochs)")


class MagnitudeRetrain(Method):
    name = "magnitude_retrain"
    summary = "train dense, prune the smallest trained weights, retrain from them"
    citation = "Han et al. 2015, arXiv 1506.02626"
    Params = MagnitudeRetrainParams

    def find(self, ctx: MethodContext) -> MethodResult:
        dense = dense_bits(ctx.layout)
        res = train(ctx, dense, ctx.init, self.params.dense_epochs or ctx.final_epochs)
        trained = res.weights_of(0)
        bits = prune_to(ctx.layout, ctx.layout.sparsity,
                        {k: trained[k].abs() for k in ctx.layout.names}, dense)
        if ctx.commit is not None:
            ctx.commit(0, [round_row(0, res.row(0), dense)],
                       {"generation": 0, "method": self.name})
        return MethodResult(bits=bits, init=trained, from_init=False)
