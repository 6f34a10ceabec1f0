"""Scores at initialisation (SNIP, GraSP, SynFlow), computed as training hooks.

Each runs in a task of zero epochs, so it is computed wherever the evaluator runs (on its
device, on Ray workers), through the same population forward pass as training, with
BatchNorm in the mode the method asks for (SNIP: evaluation mode with ``preset: paper``, as
the authors' code scores, training mode with ``ours``; GraSP: training mode, as its authors'
code; SynFlow: evaluation mode), and running statistics left untouched. Every network of the
task is scored at once (several initialisations, or one). The scores come back as the extra
``scores`` (``[P, n]`` in layout order), SynFlow's masks as ``bits``.
"""

from __future__ import annotations

from typing import Any

import torch

from ..engine import TrainingHook, TrainState
from ..masks import Layout, flatten_rows, top_rows


def _masked(state: TrainState, layout: Layout) -> list[torch.Tensor]:
    return [state.params[k] for k in layout.names]


def balanced_batch(y: torch.Tensor, per_class: int, seed: int) -> torch.Tensor:
    """Indices of up to ``per_class`` random examples of every class, fixed by ``seed``."""
    g = torch.Generator().manual_seed(seed)
    perm = torch.randperm(len(y), generator=g)
    ranked = y.cpu()[perm]
    # rank of each example among those of its class, in the random order
    order = torch.argsort(ranked, stable=True)
    first = torch.searchsorted(ranked[order], ranked[order])
    rank = torch.empty_like(order)
    rank[order] = torch.arange(len(order)) - first
    return perm[rank < per_class]


class SnipScores(TrainingHook):
    """|dL/dw * w| summed over the first ``batches`` training batches (Lee et al. 2019), with
    BatchNorm and dropout in training mode (``training``) or evaluation mode."""

    def __init__(self, layout: Layout, batches: int, training: bool = True):
        self.layout, self.batches, self.training = layout, batches, training

    def finish(self, state: TrainState) -> dict[str, Any]:
        weights = _masked(state, self.layout)
        total = [torch.zeros_like(w) for w in weights]
        frozen = {k: v.clone() for k, v in state.buffers.items()}
        with torch.enable_grad():
            for x, y in state.batches(self.batches):
                loss = state.settings.per_network_loss(
                    state.forward(x, self.training,
                                  buffers_={k: v.clone() for k, v in frozen.items()}), y)
                for acc, g in zip(total, torch.autograd.grad(loss.sum(), weights)):
                    acc.add_(g)
        scores = {k: (g * w).abs() for k, g, w in zip(self.layout.names, total, weights)}
        return {"scores": flatten_rows(self.layout, scores).detach().cpu()}


class GraspScores(TrainingHook):
    """``-w * (H g)`` (Wang et al. 2020): the Hessian-gradient product through a second
    backward pass, on a class-balanced batch, logits divided by ``temperature``."""

    def __init__(self, layout: Layout, temperature: float, samples_per_class: int, seed: int):
        self.layout, self.temperature = layout, temperature
        self.per_class, self.seed = samples_per_class, seed

    def finish(self, state: TrainState) -> dict[str, Any]:
        idx = balanced_batch(state.data.train_y, self.per_class, self.seed).to(state.device)
        x, y = state.inputs("train", idx), state.data.train_y[idx]
        weights = _masked(state, self.layout)
        frozen = {k: v.clone() for k, v in state.buffers.items()}

        def loss() -> torch.Tensor:
            out = state.forward(x, True, buffers_={k: v.clone() for k, v in frozen.items()})
            return state.settings.per_network_loss(out / self.temperature, y).sum()

        with torch.enable_grad():
            g = [t.detach() for t in torch.autograd.grad(loss(), weights)]
            grads = torch.autograd.grad(loss(), weights, create_graph=True)
            z = sum((a * b).sum() for a, b in zip(g, grads))
            hg = torch.autograd.grad(z, weights)
        scores = {k: -(w.detach() * h) for k, w, h in zip(self.layout.names, weights, hg)}
        return {"scores": flatten_rows(self.layout, scores).cpu()}


class SynFlowPruning(TrainingHook):
    """Data-free iterative pruning (Tanaka et al. 2020): with every parameter replaced by its
    absolute value, in double precision, an all-ones input gives ``R`` = the sum of the
    outputs; each weight scores ``|w * dR/dw|``; the density falls exponentially over
    ``iterations`` rounds, each keeping the best-scored weights among those kept so far."""

    def __init__(self, layout: Layout, iterations: int):
        self.layout, self.iterations = layout, iterations

    def finish(self, state: TrainState) -> dict[str, Any]:
        layout, p = self.layout, state.p
        params = {k: v.detach().double().abs() for k, v in state.params.items()}
        buffers = {k: v.double() if v.is_floating_point() else v.clone()
                   for k, v in state.buffers.items()}
        orig = {k: params[k].clone() for k in layout.names}
        ones = torch.ones(1, *state.data.train_x.shape[1:], dtype=torch.float64,
                          device=state.device)
        bits = torch.ones(p, layout.numel, dtype=torch.bool, device=state.device)
        density = 1.0 - layout.sparsity
        for i in range(1, self.iterations + 1):
            start = 0
            for k, shape in zip(layout.names, layout.shapes):
                size = orig[k][0].numel()
                keep = bits[:, start:start + size].reshape(p, *shape)
                params[k] = (orig[k] * keep).requires_grad_(True)
                start += size
            with torch.enable_grad():
                out = state.forward(ones, False, params_=params, buffers_=buffers)
                grads = torch.autograd.grad(out.sum(), [params[k] for k in layout.names])
            scores = {k: (g * params[k]).abs().detach() for k, g in zip(layout.names, grads)}
            sparsity = 1.0 - density ** (i / self.iterations)
            step = layout.at(sparsity if i < self.iterations else layout.sparsity)
            bits = top_rows(step, flatten_rows(layout, scores), within=bits)
        return {"bits": bits.cpu()}
