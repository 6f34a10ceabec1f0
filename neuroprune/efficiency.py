"""Efficiency figures of a sparse network: parameters, FLOPs, effective sparsity, latency.

Three versions of one network are measured:

* ``dense``: the architecture with every weight (what the mask was cut from);
* ``masked``: the same dense tensors with the pruned entries zero (what a dense kernel runs);
  its parameters and FLOPs count the kept weights only (what sparse kernels could reach);
* ``compact``: the smaller dense network of :func:`neuroprune.masks.compact` (pruned
  neurons and channels, and the units an unstructured mask leaves dead, removed).

FLOPs are per sample, counted by ``torch.utils.flop_counter`` (a multiply-add is 2).
*Effective sparsity* counts a weight as removed when it is masked or hangs off a dead unit:
one minus the compact network's non-zero prunable weights over the dense prunable weights.
Latency is the median CPU wall time of a forward pass at batch 1 and 256. ``params``,
``flops`` and ``latency`` (batch 256) are those of the network one would deploy (the compact
one when there is one): the Optuna objectives of the same names.
"""

from __future__ import annotations

import statistics
import time
from typing import Any, Mapping

import torch
from torch import nn

from .errors import UserError
from .models import prunable_names

LATENCY_BATCHES = (1, 256)


def count_params(model: nn.Module) -> int:
    """Parameters of ``model`` (every tensor, zeros included)."""
    return sum(p.numel() for p in model.parameters())


def count_flops(model: nn.Module, input_shape: tuple[int, ...]) -> int:
    """FLOPs of one forward pass on one sample of ``input_shape``."""
    from torch.utils.flop_counter import FlopCounterMode

    counter = FlopCounterMode(display=False)
    with torch.no_grad(), counter:
        model.eval()(torch.zeros(1, *input_shape))
    return int(counter.get_total_flops())


def masked_flops(model: nn.Module, input_shape: tuple[int, ...]) -> int:
    """FLOPs of the kept weights only: each prunable layer's FLOPs scaled by its density."""
    from .masks.structure import layer_flops

    per_layer = layer_flops(model.eval(), torch.zeros(1, *input_shape))
    params = dict(model.named_parameters())
    total = count_flops(model, input_shape)
    dense_layers = sum(per_layer.values())
    kept = sum(f * float(params[n].ne(0).float().mean()) for n, f in per_layer.items())
    return int(round(total - dense_layers + kept))


def latency(model: nn.Module, input_shape: tuple[int, ...], batch: int,
            repeats: int = 5) -> float:
    """Median seconds of a forward pass at ``batch`` on the CPU (one warm-up pass first)."""
    model = model.eval()
    x = torch.randn(batch, *input_shape)
    times = []
    with torch.inference_mode():
        model(x)
        for _ in range(repeats):
            t = time.perf_counter()
            model(x)
            times.append(time.perf_counter() - t)
    return statistics.median(times)


def nonzero_weights(model: nn.Module) -> int:
    """Non-zero entries of the prunable weights."""
    params = dict(model.named_parameters())
    return sum(int(params[n].count_nonzero()) for n in prunable_names(model) if n in params)


def efficiency(dense: nn.Module, masked: nn.Module, input_shape: tuple[int, ...],
               latency_repeats: int = 3) -> dict[str, Any]:
    """Flat figures (``params_dense``, ``flops_compact``, ``latency_b256_masked``, ...) of
    ``dense`` and ``masked`` (pruned entries zero, no pruning hooks) and of the compact
    network; ``latency_repeats=0`` skips the latency. Without a compact network (no
    torch-pruning, an untraceable model) its figures are left out and ``compact_error``
    says why."""
    from .masks import compact

    prunable = sum(dict(dense.named_parameters())[n].numel() for n in prunable_names(dense))
    out: dict[str, Any] = {
        "params_dense": count_params(dense),
        "params_masked": count_params(dense) - prunable + nonzero_weights(masked),
        "flops_dense": count_flops(dense, input_shape),
        "flops_masked": masked_flops(masked, input_shape),
    }
    nets: dict[str, nn.Module] = {"dense": dense, "masked": masked}
    try:
        small, _ = compact(masked, torch.zeros(1, *input_shape))
    except UserError as exc:
        out["compact_error"] = str(exc)
    else:
        nets["compact"] = small
        out["params_compact"] = count_params(small)
        out["flops_compact"] = count_flops(small, input_shape)
        out["effective_sparsity"] = 1.0 - nonzero_weights(small) / prunable
    if latency_repeats:
        for name, net in nets.items():
            for b in LATENCY_BATCHES:
                out[f"latency_b{b}_{name}"] = latency(net, input_shape, b, latency_repeats)
    # the tuning objectives: what the network to deploy (compact, else masked) costs
    best = "compact" if "compact" in nets else "masked"
    out["params"], out["flops"] = out[f"params_{best}"], out[f"flops_{best}"]
    if latency_repeats:
        out["latency"] = out[f"latency_b{LATENCY_BATCHES[-1]}_{best}"]
    return out


def efficiency_of_weights(spec, weights: Mapping[str, torch.Tensor],
                          mask: Mapping[str, torch.Tensor],
                          latency_repeats: int = 3) -> dict[str, Any]:
    """:func:`efficiency` of the network of ``spec`` with trained ``weights`` and ``mask``
    (the dense network is the same weights unmasked)."""
    from .models import build_model

    dense = build_model(spec)
    dense.load_state_dict(dict(weights))
    masked = build_model(spec)
    masked.load_state_dict(dict(weights))
    params = dict(masked.named_parameters())
    with torch.no_grad():
        for k, m in mask.items():
            params[k].mul_(m.to(params[k].dtype))
    return efficiency(dense.eval(), masked.eval(), tuple(spec.input_shape), latency_repeats)
