"""A population forward pass for ``nn.Sequential`` models in plain batched kernels.

When every network of the population sees the same mini-batch (the engine's default), the
first layer of P networks is one large matrix product ``x @ [W_1; ...; W_P]^T`` (or one conv
with ``P * C_out`` filters) instead of P small ones; later layers are one ``baddbmm`` (or one
grouped conv, ``groups=P``). This is what ``vmap`` cannot see: it batches the first layer as
``bmm`` over a broadcast input, which costs the same FLOPs at a lower rate.

Activations travel in one of three layouts:

* ``shared``  ``[B, ...]``: the same for every network (the input);
* ``pop``     ``[P, B, F]``: one row block per network (after a Linear);
* ``packed``  ``[B, P * C, H, W]``: networks packed along channels (after a Conv2d), so
  that pooling and the next grouped conv need no copies.

Unsupported layer types make :func:`stacked_forward` return ``None``; the engine then falls back
to ``vmap(functional_call)``.
"""

from __future__ import annotations

from typing import Callable

import torch
import torch.nn.functional as F
from torch import nn

ELEMENTWISE = (nn.ReLU, nn.Tanh, nn.GELU, nn.SiLU, nn.Sigmoid, nn.LeakyReLU, nn.ELU,
               nn.Softplus, nn.Identity)
POOLS = (nn.MaxPool2d, nn.AvgPool2d)


def _leaves(model: nn.Module) -> list[tuple[str, nn.Module]] | None:
    out = []
    for name, mod in model.named_modules():
        children = list(mod.children())
        if children:
            if not isinstance(mod, nn.Sequential):
                return None
            continue
        out.append((name, mod))
    return out


def _supported(mod: nn.Module) -> bool:
    if isinstance(mod, nn.Conv2d):
        return mod.groups == 1 and mod.padding_mode == "zeros" and mod.bias is not None
    if isinstance(mod, nn.Linear):
        return mod.bias is not None
    if isinstance(mod, nn.Flatten):
        return mod.start_dim == 1 and mod.end_dim == -1
    return isinstance(mod, ELEMENTWISE + POOLS) or _is_elementwise(mod)


def _is_elementwise(mod: nn.Module) -> bool:
    return bool(getattr(mod, "elementwise", False))


def per_network(h: torch.Tensor, groups, kind: str) -> torch.Tensor:
    """Apply a different elementwise function to each network's rows of ``h``.

    ``groups`` is ``[(index tensor, fn), ...]``: one entry per *distinct* function, so the loop
    runs over functions (few in an evolving population), never over networks one by one.
    """
    if kind != "pop":
        raise RuntimeError("per-network activations need a [P, B, F] layout (MLPs)")
    if len(groups) == 1:
        return groups[0][1](h)
    out = torch.empty_like(h)
    for idx, fn in groups:
        out[idx] = fn(h[idx])
    return out


def stacked_forward(model: nn.Module, capture: bool = False
                    ) -> Callable[[dict, torch.Tensor], torch.Tensor] | None:
    """``forward(params, x) -> logits [P, B, C]`` for stacked ``params``, or None if the model
    has layers this path does not handle.

    With ``capture=True`` it returns instead ``{weight name: (input [P, B, in], output
    [P, B, out])}`` for every Linear layer (what CTRE's activation similarity needs).
    """
    leaves = _leaves(model)
    if leaves is None or not all(_supported(m) for _, m in leaves):
        return None

    def forward(params: dict[str, torch.Tensor], x: torch.Tensor, acts=None):
        p = next(iter(params.values())).shape[0]
        h, kind = x, "shared"
        seen: dict[str, tuple[torch.Tensor, torch.Tensor]] = {}
        for name, mod in leaves:
            pre = f"{name}." if name else ""
            if isinstance(mod, nn.Linear):
                w, b = params[pre + "weight"], params[pre + "bias"]
                h_in = h
                if kind == "shared":
                    # [B, P*out]: one GEMM with the bias in its epilogue; the [P, B, out]
                    # view is strided, which the batched GEMMs after it read as they are.
                    out = torch.addmm(b.reshape(-1), h, w.reshape(-1, w.shape[-1]).t())
                    h = out.view(h.shape[0], p, -1).transpose(0, 1)
                    h_in = h_in.unsqueeze(0).expand(p, *h_in.shape)
                elif kind == "pop":
                    h = torch.baddbmm(b.unsqueeze(1), h, w.transpose(1, 2))
                else:
                    raise RuntimeError("Linear after Conv2d needs a Flatten in between")
                if capture:
                    seen[pre + "weight"] = (h_in, h)
                kind = "pop"
            elif isinstance(mod, nn.Conv2d):
                w, b = params[pre + "weight"], params[pre + "bias"]
                wf = w.reshape(-1, *w.shape[2:])
                if kind == "shared":
                    h = F.conv2d(h, wf, b.reshape(-1), mod.stride, mod.padding, mod.dilation)
                elif kind == "packed":
                    h = F.conv2d(h, wf, b.reshape(-1), mod.stride, mod.padding, mod.dilation,
                                 groups=p)
                else:
                    raise RuntimeError("Conv2d after Linear is not supported")
                kind = "packed"
            elif isinstance(mod, nn.Flatten):
                if kind == "shared":
                    h = h.flatten(1)
                elif kind == "packed":
                    h = h.reshape(h.shape[0], p, -1).transpose(0, 1)
                    kind = "pop"
                else:
                    h = h.flatten(2)
            elif acts is not None and hasattr(mod, "role") and mod.role in acts:
                h = per_network(h, acts[mod.role], kind)
            else:  # elementwise activations and pooling act on any layout
                h = mod(h)
        if kind != "pop":
            raise RuntimeError("the model must end with a Linear layer")
        return seen if capture else h

    return forward
