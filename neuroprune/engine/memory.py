"""Memory estimates: how many networks of an architecture fit in one stacked batch.

Per network: parameters, their gradients, optimiser state (SGD with momentum: one buffer,
Adam: two), masks, and the activations of one training batch kept for the backward pass
(the outputs of every leaf module, counted on the meta device, twice for what autograd keeps).
The engine picks its trainer and chunk size from this and the device's free memory, and says
so; a population whose genome alone cannot fit is refused before anything runs.
"""

from __future__ import annotations

import copy
import math
from dataclasses import dataclass

import torch
from torch import nn

from .._system import free_memory, human, require_memory  # noqa: F401 (trainers, data)


@dataclass(frozen=True)
class Footprint:
    """Bytes one network needs while it trains (and while it is evaluated)."""

    state: int          # parameters, gradients, optimiser state, masks, buffers
    activations: int    # one training batch, kept for backward
    per_sample: int     # activation bytes of one sample in a forward pass

    @property
    def training(self) -> int:
        return self.state + self.activations

    def eval_batch(self, networks: int, budget: int, cap: int = 2048) -> int:
        """The largest evaluation batch (at most ``cap``) whose activations for ``networks``
        fit in ``budget`` bytes."""
        return max(16, min(cap, budget // max(1, networks * self.per_sample)))


def activation_bytes(model: nn.Module, input_shape: tuple[int, ...], batch: int) -> int:
    """Bytes of every leaf module's output for a batch, counted on the meta device."""
    meta = copy.deepcopy(model).to("meta")
    total = [0]

    def count(_mod, _inp, out):
        if isinstance(out, torch.Tensor):
            total[0] += out.numel() * out.element_size()

    handles = [m.register_forward_hook(count) for m in meta.modules()
               if not list(m.children())]
    try:
        with torch.no_grad():
            meta.eval()(torch.zeros(batch, *input_shape, device="meta"))
    except Exception:  # a model that cannot run on meta tensors: a rough stand-in
        total[0] = 4 * batch * 16 * math.prod(input_shape)
    finally:
        for h in handles:
            h.remove()
    return total[0]


def footprint(model: nn.Module, input_shape: tuple[int, ...], batch: int, optimizer: str,
              momentum: float, masked_numel: int) -> Footprint:
    params = sum(p.numel() for p in model.parameters())
    buffers = sum(b.numel() * b.element_size() for b in model.buffers())
    opt_states = 2 if optimizer == "adam" else (1 if momentum > 0 else 0)
    state = params * 4 * (2 + opt_states) + masked_numel * 4 + buffers
    per_sample = activation_bytes(model, input_shape, 1)
    return Footprint(state=state, activations=2 * per_sample * batch, per_sample=per_sample)


def forward_flops(model: nn.Module, input_shape: tuple[int, ...]) -> int:
    """FLOPs of one sample's forward pass through the dense model (``torch.utils.
    flop_counter`` on the meta device; a masked network in dense kernels costs the same)."""
    from torch.utils.flop_counter import FlopCounterMode

    meta = copy.deepcopy(model).to("meta").eval()
    with FlopCounterMode(display=False) as counter, torch.no_grad():
        meta(torch.zeros(1, *input_shape, device="meta"))
    return int(counter.get_total_flops())
