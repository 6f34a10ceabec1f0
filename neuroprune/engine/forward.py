"""The three ways a population's forward pass is computed, behind one call signature
``forward(params, buffers, x, pass_) -> logits [P, B, C]``:

* :class:`GraphForward`: the compiled population graph (:mod:`.graph`), the fast path for the
  common layers (Linear, Conv, BatchNorm, pooling, residual additions, dropout, ...);
* :class:`VmapForward`: ``vmap(functional_call)`` over the stacked parameters *and buffers*
  (BatchNorm's running statistics, one set per network), for any other architecture;
* :class:`ModuleForward`: one network with its own ``nn.Module`` (the per-network trainer).

:func:`population_forward` picks the graph when it compiles and reproduces the plain module on
a small check batch, and vmap otherwise (saying why).
"""

from __future__ import annotations

import copy
from typing import Any

import torch
from torch import nn
from torch.func import functional_call, vmap

from ..models.base import RoleActivation
from ..models.spec import torch_seeded
from .dropout import dropout_seeds
from . import windows  # noqa: F401  (registers Swin's window functions with the graph)
from .graph import Pass, PopulationGraph, Unsupported


class GraphForward:
    kind = "graph"

    def __init__(self, graph: PopulationGraph):
        self.graph = graph

    def __call__(self, params, buffers, x, pass_: Pass) -> torch.Tensor:
        return self.graph(params, buffers, x, pass_)


class VmapForward:
    """``vmap`` over networks of ``functional_call`` on a parameter-free copy of the model."""

    kind = "vmap"

    def __init__(self, template: nn.Module):
        self.base = copy.deepcopy(template).to("meta")

    def __call__(self, params, buffers, x, pass_: Pass) -> torch.Tensor:
        if pass_.activations:
            raise Unsupported("per-network activation functions need the population graph")
        if pass_.capture is not None:
            raise Unsupported("layer activations are captured by the population graph only")
        self.base.train(pass_.training)
        seeds = pass_.seeds if pass_.seeds is not None else \
            torch.zeros(pass_.p, dtype=torch.int64, device=x.device)

        def one(p: dict, b: dict, seed: torch.Tensor) -> torch.Tensor:
            with dropout_seeds(seed, pass_.step):
                return functional_call(self.base, (p, b), (x,))
        # dropout and torchvision's stochastic depth are seeded per network (.dropout); any
        # other random op (Dropout2d, a user's torch.rand) draws differently in each network
        return vmap(one, in_dims=(0, 0, 0), randomness="different")(params, buffers, seeds)


class ModuleForward:
    """One network (P = 1) through its own ``nn.Module``; hooks capture Linear layers.

    The module is the network's own (a trainer's copy): each call puts views of the given
    parameters and buffers straight into its slots (every slot of a tied weight), as
    ``functional_call`` would, without its per-call bookkeeping, and switches train/eval mode
    only when it changes; on a small network that overhead is a few percent of a step."""

    kind = "module"

    def __init__(self, model: nn.Module):
        self.model = model
        self.linears = {f"{n}.weight": m for n, m in model.named_modules()
                        if isinstance(m, nn.Linear)}
        self.slots = _slots(model)
        self._leaves: list[tuple[torch.Tensor, torch.Tensor]] = []
        #: what the slots hold: ((own leaves?, grad mode), the tensors they were made from);
        #: kept alive, so that an identity check tells the same tensors from new ones
        self._held: tuple[tuple[bool, bool], list[torch.Tensor]] | None = None

    def set_activations(self, formulas: dict[str, Any] | None) -> None:
        """Set each role's function (compiled) for the network this module trains."""
        for mod in self.model.modules():
            if isinstance(mod, RoleActivation):
                mod.fn = formulas[mod.role] if formulas and mod.role in formulas else torch.relu

    def __call__(self, params, buffers, x, pass_: Pass) -> torch.Tensor:
        if self.model.training != pass_.training:
            self.model.train(pass_.training)
        tensors = [*params.values(), *buffers.values()]
        # views made under no_grad do not reach the parameters: the grad mode is part of it
        how = (pass_.own_leaves, torch.is_grad_enabled())
        held = self._held
        if held is None or held[0] != how or len(held[1]) != len(tensors) \
                or not all(a is b for a, b in zip(held[1], tensors)):
            self._fill(params, buffers, pass_.own_leaves)
            self._held = (how, tensors)
        handles = []
        if pass_.capture is not None:
            for name in pass_.capture_names:
                def hook(mod, inp, out, name=name):
                    pass_.capture[name] = (inp[0].unsqueeze(0), out.unsqueeze(0))
                handles.append(self.linears[name].register_forward_hook(hook))
        seed = pass_.seeds[0] if pass_.seeds is not None else torch.zeros((), dtype=torch.int64)
        try:
            with dropout_seeds(seed, pass_.step):
                return self.model(x).unsqueeze(0)
        finally:
            for h in handles:
                h.remove()

    def _fill(self, params, buffers, own_leaves: bool) -> None:
        """Put the tensors into the module's slots: views of ``[1, ...]`` tensors, or for
        the training step's parameters (``own_leaves``) leaves of the module's shape on the
        same storage, kept from step to step while the parameters are the same tensors
        (the optimiser updates them in place): backward then costs what the plain
        module's does (a view adds a few percent). Another forward (a hook's) leaves the
        step's leaves to :meth:`gather_grads`."""
        if own_leaves:
            self._leaves = []
        for group in (params, buffers):
            own = own_leaves and group is params
            for name, value in group.items():
                one = value.squeeze(0)  # a view: no copy backward
                if own and value.requires_grad:
                    one = one.detach().requires_grad_()
                    self._leaves.append((value, one))
                for table, leaf in self.slots[name]:
                    table[leaf] = one

    def gather_grads(self) -> None:
        """After the backward of an ``own_leaves`` pass: each leaf's gradient (a view)
        added to its ``[1, ...]`` parameter's, where the rest of the step reads it."""
        for value, one in self._leaves:
            grad = one.grad
            if grad is None:
                continue
            one.grad = None
            grad = grad.unsqueeze(0)
            value.grad = grad if value.grad is None else value.grad.add_(grad)


def _slots(model: nn.Module) -> dict[str, list[tuple[dict, str]]]:
    """For each parameter and buffer name (as ``named_parameters``/``named_buffers`` give
    them), the module dictionaries and keys that hold it: several for a tied weight."""
    canonical: dict[int, str] = {}
    for name, t in (*model.named_parameters(), *model.named_buffers()):
        canonical.setdefault(id(t), name)
    slots: dict[str, list[tuple[dict, str]]] = {}
    for _, mod in model.named_modules(remove_duplicate=False):
        for table in (mod._parameters, mod._buffers):
            for leaf, t in table.items():
                if t is not None and id(t) in canonical:
                    entry = (table, leaf)
                    got = slots.setdefault(canonical[id(t)], [])
                    if not any(d is table and k == leaf for d, k in got):
                        got.append(entry)
    return slots


def _stack(states: list[dict[str, torch.Tensor]]) -> dict[str, torch.Tensor]:
    return {k: torch.stack([s[k] for s in states]) for k in states[0]}


def check_graph(graph: PopulationGraph, template: nn.Module, input_shape: tuple[int, ...],
                tolerance: float = 1e-4) -> None:
    """Run the compiled graph and the plain module on two networks and a small batch, in
    training and evaluation mode; :class:`Unsupported` when they disagree. In fp64: what is
    compared is what is computed, not float32 rounding (which a deep network's BatchNorm over
    a small batch amplifies past any fixed tolerance)."""
    nets = []
    for seed in (11, 12):
        net = copy.deepcopy(template).double()
        with torch_seeded(seed):
            for prm in net.parameters():
                prm.data.add_(torch.randn_like(prm) * 0.01)
            for buf_name, buf in net.named_buffers():
                if buf.is_floating_point():
                    buf.add_(torch.rand_like(buf) * 0.1)
        nets.append(net)
    params = _stack([dict(n.named_parameters()) for n in nets])
    params = {k: v.detach() for k, v in params.items()}
    x = torch.randn(3, *input_shape, generator=torch.Generator().manual_seed(0),
                    dtype=torch.float64)
    seeds = torch.tensor([5, 6])
    for training in (True, False):
        buffers = _stack([{k: v.clone() for k, v in n.named_buffers()} for n in nets])
        got = graph(params, buffers, x, Pass(p=2, training=training, seeds=seeds, step=3))
        for i, net in enumerate(nets):
            ref_buffers = {k: v.clone() for k, v in net.named_buffers()}
            module = ModuleForward(net)
            want = module({k: v[i:i + 1] for k, v in params.items()},
                          {k: v.unsqueeze(0) for k, v in ref_buffers.items()}, x,
                          Pass(p=1, training=training, seeds=seeds[i:i + 1], step=3))[0]
            scale = max(1.0, float(want.abs().max()))
            if got.shape[1:] != want.shape or not torch.allclose(
                    got[i], want, rtol=tolerance, atol=tolerance * scale):
                raise Unsupported("the compiled population graph does not reproduce the model")


def population_forward(template: nn.Module, input_shape: tuple[int, ...]):
    """``(forward, reason)``: the population graph when it compiles and reproduces
    ``template``, else vmap with the reason the graph was not used."""
    try:
        graph = PopulationGraph.compile(template)
        check_graph(graph, template, input_shape)
        return GraphForward(graph), ""
    except Unsupported as exc:
        return VmapForward(template), str(exc)
