"""Optimisers whose settings differ from network to network inside one population.

When every network of a task trains with the same learning rate, momentum and weight decay,
the trainer uses PyTorch's fused SGD or Adam (one pass over memory). When a task gives
per-network values (``EvalTask.settings``: a ``[P]`` tensor per setting, as batched tuning
trials do), this optimiser takes their place: the same update rules, written with the
settings broadcast along each parameter's network dimension, so network ``p`` follows exactly
the update it would get alone with its own settings (tested against the fused optimisers).

* SGD, PyTorch's rule: ``d = g + wd * w``; ``b = momentum * b + d`` (``b = d`` at the first
  step); ``w -= lr * b``.
* Adam, PyTorch's rule (L2 weight decay added to the gradient): ``g += wd * w``;
  ``m = b1 m + (1 - b1) g``; ``v = b2 v + (1 - b2) g^2``;
  ``w -= lr / (1 - b1^t) * m / (sqrt(v / (1 - b2^t)) + eps)``.

The learning-rate schedule multiplies every network's learning rate by a factor per step
(``set_scale``), the cosine factor for networks on the cosine schedule and 1 for the others.
"""

from __future__ import annotations

import math

import torch

VARYING = ("lr", "momentum", "weight_decay", "cosine")  # what may differ per network


class PopulationOptimizer(torch.optim.Optimizer):
    """SGD or Adam over stacked ``[P, ...]`` parameters with ``[P]`` settings."""

    def __init__(self, params, kind: str, lr: torch.Tensor, momentum: torch.Tensor,
                 weight_decay: torch.Tensor, betas: tuple[float, float] = (0.9, 0.999),
                 eps: float = 1e-8):
        if kind not in ("sgd", "adam"):
            raise ValueError(f"no per-network optimiser for '{kind}'")
        super().__init__(list(params), {"lr": 0.0})
        self.kind, self.betas, self.eps = kind, betas, eps
        self.base_lr, self.momentum, self.weight_decay = lr, momentum, weight_decay
        self.scale = torch.ones_like(lr)
        self.steps = 0

    def set_scale(self, scale: torch.Tensor) -> None:
        """This step's schedule factor per network (``[P]``)."""
        self.scale = scale

    @staticmethod
    def _view(values: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
        return values.to(like.dtype).view(-1, *[1] * (like.dim() - 1))

    @torch.no_grad()
    def step(self, closure=None):  # noqa: D102 (the rule is in the module docstring)
        self.steps += 1
        lr = self.base_lr * self.scale
        for group in self.param_groups:
            for w in group["params"]:
                if w.grad is None:
                    continue
                g = w.grad.add(w * self._view(self.weight_decay, w))
                state = self.state[w]
                if self.kind == "sgd":
                    buf = state.get("momentum_buffer")
                    if buf is None:
                        buf = state["momentum_buffer"] = g.clone()
                    else:
                        buf.mul_(self._view(self.momentum, w)).add_(g)
                    w.sub_(buf * self._view(lr, w))
                else:
                    b1, b2 = self.betas
                    if not state:
                        state["exp_avg"] = torch.zeros_like(w)
                        state["exp_avg_sq"] = torch.zeros_like(w)
                    m, v = state["exp_avg"], state["exp_avg_sq"]
                    m.mul_(b1).add_(g, alpha=1 - b1)
                    v.mul_(b2).addcmul_(g, g, value=1 - b2)
                    denom = (v.sqrt() / math.sqrt(1 - b2 ** self.steps)).add_(self.eps)
                    w.sub_(m / denom * self._view(lr / (1 - b1 ** self.steps), w))
        return None
