"""Training settings shared by the population engine and the one-network reference."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Iterable

import torch


@dataclass(frozen=True)
class TrainSettings:
    """How every network is trained: optimizer, learning rate and its schedule, batch size."""

    optimizer: str = "sgd"
    lr: float = 0.05
    momentum: float = 0.9
    weight_decay: float = 0.0
    batch_size: int = 64
    schedule: str = "constant"

    def make_optimizer(self, params: Iterable[torch.Tensor]) -> torch.optim.Optimizer:
        """Elementwise optimizers only: on stacked tensors they equal per-network ones."""
        params = list(params)
        if self.optimizer == "sgd":
            return torch.optim.SGD(params, lr=self.lr, momentum=self.momentum,
                                   weight_decay=self.weight_decay, foreach=True)
        if self.optimizer == "adam":
            return torch.optim.Adam(params, lr=self.lr, weight_decay=self.weight_decay,
                                    foreach=True)
        raise ValueError(f"unknown optimizer {self.optimizer}")

    def lr_at(self, step: int, total_steps: int) -> float:
        if self.schedule == "cosine" and total_steps > 0:
            return self.lr * 0.5 * (1.0 + math.cos(math.pi * step / total_steps))
        return self.lr


def batch_order(n: int, batch_size: int, epochs: int, data_seed: int):
    """Yield ``(epoch, index tensor)`` for every mini-batch: one shuffle per epoch, fixed by seed.

    Every trainer (population or single network) walks the data in this order, so a network
    trained alone and inside a population sees the same batches.
    """
    g = torch.Generator().manual_seed(int(data_seed))
    for epoch in range(epochs):
        perm = torch.randperm(n, generator=g)
        for start in range(0, n, batch_size):
            yield epoch, perm[start:start + batch_size]


def steps_per_run(n: int, batch_size: int, epochs: int) -> int:
    return epochs * math.ceil(n / batch_size)
