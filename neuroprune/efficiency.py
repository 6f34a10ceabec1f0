"""Efficiency figures of a sparse network: parameters, FLOPs, effective sparsity, latency.

Three versions of one network are measured:

* ``dense``: the architecture with every weight (what the mask was cut from);
* ``masked``: the same dense tensors with the pruned entries zero (what a dense kernel runs);
  its parameters and FLOPs count the kept weights only (what sparse kernels could reach);
* ``compact``: the smaller dense network of :func:`neuroprune.masks.compact` (pruned
  neurons and channels, and the units an unstructured mask leaves dead, removed by
  torch-pruning). Without torch-pruning there is none: ``deployed`` says ``masked`` and
  ``compact_error`` why.

FLOPs are per sample, counted by ``torch.utils.flop_counter`` (a multiply-add is 2).
*Effective sparsity* counts a weight as removed when it is masked or hangs off a dead unit:
one minus the compact network's non-zero prunable weights over the dense prunable weights.

Latency is CPU wall time of a forward pass at batch 1 and 256, measured by
:func:`time_interleaved`: ``torch.utils.benchmark`` timers, a warm-up that also sizes each
block, then rounds in which every network runs one block in turn (alternating the order), so
that a change of the machine's load hits all of them alike. Each figure is the median over
rounds with its interquartile range; rounds are added until the 95% interval of every median
lies within :data:`TARGET_REL_ERROR` of it (or the time cap is spent), and the speedup is the
median of the rounds' paired dense/deployed ratios with its 95% interval: where that interval
holds 1, no speedup was measured. ``params``, ``flops`` and ``latency`` (batch 256) are those
of the network one would deploy (``deployed``: compact when there is one): the Optuna
objectives of the same names; ``latency_rel_error`` is the noise of the last.
"""

from __future__ import annotations

import math
import statistics
import time
from dataclasses import dataclass
from typing import Any, Mapping

import torch
from torch import nn

from .errors import UserError
from .models import prunable_names

LATENCY_BATCHES = (1, 256)
#: rounds are added until each median's 95% interval is within this fraction of it
TARGET_REL_ERROR = 0.05
#: at most this many rounds, and past this many seconds per batch size no more than 6
MAX_ROUNDS, MAX_SECONDS = 40, 1.0
#: the shortest block (one timer call of a network): a block repeats the pass to fill it
MIN_BLOCK_SECONDS = 0.01


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


def median_interval(values: list[float]) -> tuple[float, float] | None:
    """Distribution-free 95% interval of the median of ``values`` (order statistics: ranks
    from the binomial(n, 1/2)); None below 6 values, where no such interval exists."""
    n = len(values)
    cdf, j = 0.0, 0
    while True:  # the largest j with P(Binomial(n, 1/2) < j) <= 2.5%
        cdf += math.comb(n, j) / 2 ** n
        if cdf > 0.025:
            break
        j += 1
    if j == 0:
        return None
    s = sorted(values)
    return s[j - 1], s[n - j]


@dataclass
class Timing:
    """Per-call seconds of one network in each round, and what they tell."""

    seconds: list[float]

    @property
    def median(self) -> float:
        return statistics.median(self.seconds)

    @property
    def iqr(self) -> tuple[float, float]:
        if len(self.seconds) < 2:
            return self.median, self.median
        q = statistics.quantiles(self.seconds, n=4, method="inclusive")
        return q[0], q[2]

    @property
    def rel_error(self) -> float:
        """Half-width of the median's 95% interval over the median (inf without one)."""
        ci = median_interval(self.seconds)
        if ci is None:
            return math.inf
        return max(self.median - ci[0], ci[1] - self.median) / self.median


def time_interleaved(nets: Mapping[str, nn.Module], input_shape: tuple[int, ...], batch: int,
                     min_rounds: int = 6, target: float = TARGET_REL_ERROR,
                     max_rounds: int = MAX_ROUNDS,
                     max_seconds: float = MAX_SECONDS) -> dict[str, Timing]:
    """CPU seconds of a forward pass of each of ``nets`` on one batch, measured in
    interleaved rounds (see the module docstring): at least ``min_rounds``, then until every
    median's 95% interval is within ``target`` of it, ``max_rounds`` or ``max_seconds``."""
    from torch.utils.benchmark import Timer

    x = torch.randn(batch, *input_shape, generator=torch.Generator().manual_seed(0))
    timers, number = {}, {}
    for name, net in nets.items():
        net = net.eval()

        def forward(net=net):
            with torch.inference_mode():
                net(x)

        timers[name] = Timer("forward()", globals={"forward": forward},
                             num_threads=torch.get_num_threads())
        # warm-up, and the number of passes that fill a block
        warm = timers[name].blocked_autorange(min_run_time=2 * MIN_BLOCK_SECONDS)
        number[name] = max(1, math.ceil(MIN_BLOCK_SECONDS / max(warm.median, 1e-9)))
    out = {name: Timing([]) for name in nets}
    names = list(nets)
    start = time.perf_counter()
    for r in range(max_rounds):
        for name in (names if r % 2 == 0 else names[::-1]):
            out[name].seconds.append(timers[name].timeit(number[name]).median)
        if r + 1 < min_rounds:
            continue
        if all(t.rel_error <= target for t in out.values()):
            break
        # past the time cap, stop once the medians have an interval at all (6 rounds)
        if time.perf_counter() - start > max_seconds and r + 1 >= 6:
            break
    return out


def speedup(slow: Timing, fast: Timing) -> tuple[float, tuple[float, float] | None]:
    """Median of the rounds' paired ratios ``slow / fast`` and its 95% interval."""
    ratios = [a / b for a, b in zip(slow.seconds, fast.seconds)]
    return statistics.median(ratios), median_interval(ratios)


def speedup_words(ratio: float | None, interval: Any) -> str:
    """``1.9x (1.8-2.0)``; ``no speedup measurable (0.9-1.1x)`` where the interval holds 1;
    without an interval, the ratio and so."""
    if ratio is None or ratio != ratio:
        return "-"
    if not interval or interval[0] != interval[0]:
        return f"{ratio:.2f}x (no interval: too few rounds)"
    lo, hi = interval
    if lo <= 1.0 <= hi:
        return f"no speedup measurable ({lo:.2f}-{hi:.2f}x)"
    return f"{ratio:.2f}x ({lo:.2f}-{hi:.2f})"


def latency(model: nn.Module, input_shape: tuple[int, ...], batch: int,
            repeats: int = 6) -> float:
    """Median seconds of a forward pass at ``batch`` on the CPU (:func:`time_interleaved`
    of the one network, at least ``repeats`` rounds)."""
    return time_interleaved({"net": model}, input_shape, batch, repeats)["net"].median


def nonzero_weights(model: nn.Module) -> int:
    """Non-zero entries of the prunable weights."""
    params = dict(model.named_parameters())
    return sum(int(params[n].count_nonzero()) for n in prunable_names(model) if n in params)


def compacted_with() -> str:
    """What compacts a network here (recorded beside the compact figures)."""
    from importlib.metadata import PackageNotFoundError, version

    try:
        return f"torch-pruning {version('torch-pruning')}"
    except PackageNotFoundError:
        return "torch-pruning"


def latency_figures(nets: Mapping[str, nn.Module], input_shape: tuple[int, ...],
                    deployed: str, rounds: int) -> dict[str, Any]:
    """``latency_b{B}_{net}`` (median seconds), ``..._iqr``, ``latency_b{B}_rounds`` and
    ``speedup_b{B}`` (dense over ``deployed``) with ``speedup_b{B}_ci`` for each batch."""
    out: dict[str, Any] = {}
    for b in LATENCY_BATCHES:
        times = time_interleaved(nets, input_shape, b, rounds)
        for name, t in times.items():
            out[f"latency_b{b}_{name}"] = t.median
            out[f"latency_b{b}_{name}_iqr"] = list(t.iqr)
        out[f"latency_b{b}_rounds"] = len(times["dense"].seconds)
        ratio, ci = speedup(times["dense"], times[deployed])
        out[f"speedup_b{b}"], out[f"speedup_b{b}_ci"] = ratio, list(ci) if ci else None
        out[f"latency_b{b}_rel_error"] = times[deployed].rel_error
    return out


def efficiency(dense: nn.Module, masked: nn.Module, input_shape: tuple[int, ...],
               latency_repeats: int = 6) -> dict[str, Any]:
    """Flat figures (``params_dense``, ``flops_compact``, ``latency_b256_masked``, ...) of
    ``dense`` and ``masked`` (pruned entries zero, no pruning hooks) and of the compact
    network; ``latency_repeats`` is the least number of timing rounds (0 skips the latency).
    Without a compact network (no torch-pruning, an untraceable model) its figures are left
    out, ``deployed`` is ``masked`` and ``compact_error`` says why."""
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
        out["compacted_with"] = compacted_with()
        out["params_compact"] = count_params(small)
        out["flops_compact"] = count_flops(small, input_shape)
        out["effective_sparsity"] = 1.0 - nonzero_weights(small) / prunable
    # the tuning objectives: what the network to deploy (compact, else masked) costs
    best = out["deployed"] = "compact" if "compact" in nets else "masked"
    out["params"], out["flops"] = out[f"params_{best}"], out[f"flops_{best}"]
    if latency_repeats:
        out.update(latency_figures(nets, input_shape, best, latency_repeats))
        out["latency"] = out[f"latency_b{LATENCY_BATCHES[-1]}_{best}"]
        out["latency_rel_error"] = out[f"latency_b{LATENCY_BATCHES[-1]}_rel_error"]
    return out


def efficiency_of_weights(spec, weights: Mapping[str, torch.Tensor],
                          mask: Mapping[str, torch.Tensor],
                          latency_repeats: int = 6) -> dict[str, Any]:
    """:func:`efficiency` of the network of ``spec`` with trained ``weights`` and ``mask``
    (the dense network is the same weights unmasked)."""
    from .models import build_model
    from .models.base import load_weights

    dense = build_model(spec)
    load_weights(dense, weights)
    masked = build_model(spec)
    load_weights(masked, weights)
    params = dict(masked.named_parameters())
    with torch.no_grad():
        for k, m in mask.items():
            params[k].mul_(m.to(params[k].dtype))
    return efficiency(dense.eval(), masked.eval(), tuple(spec.input_shape), latency_repeats)
