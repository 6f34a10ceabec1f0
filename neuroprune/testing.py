"""What a method's unit test needs, in one call: a tiny MLP on generated data, trained on the
CPU, and the :class:`~neuroprune.methods.MethodContext` a method is given in a run.

    from neuroprune.testing import find, method_context

    ctx = method_context(sparsity=0.9)
    result = find("snip", ctx, preset="ours")
    assert int(result.bits.sum()) == ctx.layout.kept
"""

from __future__ import annotations

from typing import Any

import torch

from .backends.local import LocalEvaluator
from .data import load_dataset
from .engine import TrainSettings, init_state
from .masks import make_layout
from .methods import MethodContext, MethodResult, get_method_class
from .models import ModelSpec, build_model, prunable_names


def method_context(sparsity: float = 0.8, allocation: str = "erk",
                   widths: tuple[int, ...] = (16,), epochs: int = 2, seed: int = 0,
                   samples: int = 240, features: int = 8, classes: int = 3,
                   **training: Any) -> MethodContext:
    """A :class:`MethodContext` for an MLP (``widths``) on ``samples`` Gaussian blobs of
    ``features`` dimensions in ``classes`` classes, masks at ``sparsity`` by ``allocation``,
    ``epochs`` of final training; ``training`` overrides further ``training:`` keys."""
    data = load_dataset("blobs", samples=samples, features=features, classes=classes)
    spec = ModelSpec.zoo("mlp", data.input_shape, data.num_classes, widths=tuple(widths))
    model = build_model(spec)
    shapes = {k: tuple(v.shape) for k, v in model.named_parameters()}
    layout = make_layout({k: shapes[k] for k in prunable_names(model)}, sparsity, allocation)
    settings = TrainSettings(**{"epochs": epochs, "lr": 0.1, "batch_size": 32, **training})
    evaluator = LocalEvaluator(spec, data, settings, layout, "cpu")
    return MethodContext(spec=spec, data=data, layout=layout, settings=settings,
                         evaluator=evaluator, init=init_state(spec, seed), seed=seed,
                         final_epochs=epochs, progress=False, device=torch.device("cpu"),
                         target=sparsity)


def find(name: str, ctx: MethodContext, **params: Any) -> MethodResult:
    """Run method ``name`` with ``params`` (its ``Params`` fields) on ``ctx``."""
    cls = get_method_class(name)
    return cls(cls.Params(**params)).find(ctx)
