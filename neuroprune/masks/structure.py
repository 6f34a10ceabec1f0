"""Structured mask spaces: neurons, channels and filters, with their coupling.

A *group* is one prunable unit dimension of the network with everything coupled to it
(:mod:`.groups` finds them with Torch-Pruning's dependency graph).

A structured mask is one bit per group channel (``[P, G]``); :meth:`StructureSpace.expand`
turns it into element masks (``[P, n]``, the rows the population engine trains) over the
weights, biases and BatchNorm parameters of its :attr:`StructureSpace.layout`. A pruned
channel has all of them zero, so it carries exactly zero signal and compaction can remove it.

Budgets are met, not hit exactly: :meth:`StructureSpace.select` removes the lowest-scoring
channels until the kept parameters, FLOPs or weight sparsity are within the budget.
"""

from __future__ import annotations

import math
from typing import Mapping, Sequence

import torch
from torch import nn

from ..errors import UserError
from .allocation import Layout
from .groups import Group, find_groups

BUDGETS = ("sparsity", "params", "flops")


class StructureSpace:
    """Structured masks over ``groups``: group bits ``[P, G]`` and their element rows.

    ``layout`` lists every tensor a group touches (weights first, in model order, then
    biases and BatchNorm parameters); its rows are what :meth:`expand` returns. ``layout``
    has no exact-count units: a structured mask meets a budget instead.
    """

    def __init__(self, model: nn.Module, groups: Sequence[Group],
                 layer_flops: Mapping[str, float] | None = None):
        if not groups:
            raise UserError("no layer has prunable units in this structure (every group is "
                            "an output layer or excluded)")
        self.groups = tuple(groups)
        params = dict(model.named_parameters())
        touched = {m.name for g in self.groups for m in g.members}
        from ..models import prunable_names
        weights = [n for n in prunable_names(model)]
        names = weights + [n for n in params if n in touched and n not in weights]
        self.layout = Layout(names=tuple(names),
                             shapes=tuple(tuple(params[n].shape) for n in names), units=())
        self.weights = tuple(weights)
        self.offsets = [0]
        for g in self.groups:
            self.offsets.append(self.offsets[-1] + g.size)
        elem, bit, kinds = [], [], []
        offs = dict(zip(names, self.layout.offsets))
        modules = dict(model.named_modules())
        for gi, g in enumerate(self.groups):
            for m in g.members:
                shape = params[m.name].shape
                index = torch.arange(math.prod(shape)).reshape(shape).movedim(m.dim, 0)
                sel = index[m.positions].reshape(len(m.positions), -1)
                elem.append(offs[m.name] + sel.reshape(-1))
                bit.append((self.offsets[gi] + m.channels)[:, None].expand_as(sel).reshape(-1))
                layer = m.name.rpartition(".")[0]
                kind = ("filter" if layer == g.root and m.name.endswith("weight") else
                        "scale" if isinstance(modules.get(layer), nn.modules.batchnorm._BatchNorm)
                        and m.name.endswith("weight") else "other")
                kinds += [(kind, m.side)] * sel.numel()
        self.element_index = torch.cat(elem)
        self.bit_index = torch.cat(bit)
        #: which entries of ``element_index`` are the root layer's own weights (``filter``),
        #: BatchNorm scales (``scale``), what produces the unit (``out``: filter, bias,
        #: BatchNorm); every entry, the next layers' inputs too, is in ``all``
        self.entries = {k: torch.tensor([x[0] == k for x in kinds]) for k in ("filter", "scale")}
        self.entries["out"] = torch.tensor([x[1] == "out" for x in kinds])
        self.entries["all"] = torch.ones(len(kinds), dtype=torch.bool)
        self._device_copies: dict[tuple[str, str], tuple[torch.Tensor, torch.Tensor]] = {}
        self.has_scale = torch.zeros(self.size, dtype=torch.bool)
        self.has_scale[self.bit_index[self.entries["scale"]]] = True
        # FLOPs per kept weight of each prunable layer (multiply-adds x 2 per sample)
        self.layer_flops = dict(layer_flops or {})
        w_offs = [offs[n] for n in self.weights]
        self._cost_params = torch.zeros(self.layout.numel)
        self._cost_flops = torch.zeros(self.layout.numel, dtype=torch.float64)
        for n, o in zip(self.weights, w_offs):
            k = math.prod(params[n].shape)
            self._cost_params[o:o + k] = 1
            self._cost_flops[o:o + k] = self.layer_flops.get(n, 0.0) / k

    @property
    def size(self) -> int:
        """Group channels in all: the length of a structured genome."""
        return self.offsets[-1]

    def expand(self, keep: torch.Tensor) -> torch.Tensor:
        """Element rows ``[P, n]`` (bool, ``layout`` order) of group bits ``keep [P, G]``:
        an entry is kept when every group it belongs to keeps its channel."""
        keep = keep.reshape(-1, self.size)
        rows = torch.ones(len(keep), self.layout.numel, device=keep.device)
        src = keep[:, self.bit_index.to(keep.device)].float()
        idx = self.element_index.to(keep.device).expand(len(keep), -1)
        return rows.scatter_reduce_(1, idx, src, reduce="amin").bool()

    def rows_of(self, tensors: Mapping[str, torch.Tensor]) -> torch.Tensor:
        """Stacked tensors ``{name: [P, ...]}`` (parameters) as ``[P, n]`` rows in
        ``layout`` order (differentiable)."""
        return torch.cat([tensors[n].reshape(len(tensors[n]), -1) for n in self.layout.names],
                         1)

    def _entry_index(self, entries: str, device) -> tuple[torch.Tensor, torch.Tensor]:
        key = (entries, str(device))
        if key not in self._device_copies:  # regularisers call this every step
            sel = self.entries[entries]
            self._device_copies[key] = (self.element_index[sel].to(device),
                                        self.bit_index[sel].to(device))
        return self._device_copies[key]

    def scale_channels(self, rows: torch.Tensor, factors: torch.Tensor,
                       entries: str = "out") -> torch.Tensor:
        """``rows`` (``[P, n]``) with every group channel's ``entries`` (``out``, ``filter`` or
        ``scale``: each entry in one group) multiplied by its factor (``factors``: ``[P, G]``);
        differentiable in both."""
        if entries == "all":
            raise ValueError("an entry may be in several groups of 'all'; scale 'out' entries")
        idx, bits = self._entry_index(entries, rows.device)
        return rows.index_copy(1, idx, rows[:, idx] * factors[:, bits].to(rows.dtype))

    def channel_sums(self, rows: torch.Tensor, entries: str = "all") -> torch.Tensor:
        """``[P, G]``: for every group channel, the sum of ``rows`` (``[P, n]``, e.g. squared
        or absolute weights) over its ``entries`` (all, out, filter or scale)."""
        idx, bits = self._entry_index(entries, rows.device)
        out = torch.zeros(len(rows), self.size, dtype=rows.dtype, device=rows.device)
        return out.index_add(1, bits, rows[:, idx])

    def split(self, keep: torch.Tensor) -> dict[str, torch.Tensor]:
        """Group bits ``[..., G]`` as ``{root layer: [..., size]}``."""
        return {g.root: keep[..., a:b] for g, a, b in zip(self.groups, self.offsets,
                                                             self.offsets[1:])}

    def cost(self, rows: torch.Tensor, budget: str) -> torch.Tensor:
        """``[P]`` cost of element rows: kept prunable weights (``params``), their FLOPs per
        sample (``flops``) or the weight sparsity (``sparsity``)."""
        dev = rows.device
        if budget == "flops":
            return rows.double() @ self._cost_flops.to(dev)
        kept = rows.float() @ self._cost_params.to(dev)
        if budget == "params":
            return kept
        return 1.0 - kept / float(self._cost_params.sum())

    def meet(self, scores: torch.Tensor, budget: str, target: float) -> torch.Tensor:
        """:meth:`select` for a config's ``sparsity.target``: remove at least ``target`` of the
        prunable weights (``sparsity``), or of the parameters or FLOPs of the prunable layers."""
        return self.select(scores, budget, target if budget == "sparsity" else 1.0 - target)

    def select(self, scores: torch.Tensor, budget: str, value: float) -> torch.Tensor:
        """Group bits ``[P, G]`` that drop the lowest-``scores`` (``[P, G]``) channels until
        the budget holds: ``sparsity`` at least ``value``, or ``params`` / ``flops`` at most
        ``value`` (a fraction of the dense network's when below 1). Every group keeps at least
        one channel; a budget that cannot be met that way raises :class:`UserError`."""
        if budget not in BUDGETS:
            raise UserError(f"unknown budget '{budget}'; choose one of {', '.join(BUDGETS)}")
        scores = scores.reshape(-1, self.size).double()
        p = len(scores)
        dense = self.cost(torch.ones(1, self.layout.numel, dtype=torch.bool), budget)[0]
        target = value * float(dense) if budget != "sparsity" and value <= 1 else value
        # the best channel of every group is never dropped
        protect = torch.zeros_like(scores, dtype=torch.bool)
        for a, b in zip(self.offsets, self.offsets[1:]):
            best = scores[:, a:b].argmax(1)
            protect[torch.arange(p), a + best] = True
        order = torch.where(protect, torch.inf, scores).argsort(1)
        droppable = self.size - len(self.groups)

        def keep_after(k: torch.Tensor) -> torch.Tensor:
            rank = torch.empty_like(order)
            rank.scatter_(1, order, torch.arange(self.size).expand(p, -1).contiguous())
            return rank >= k[:, None]

        def met(k: torch.Tensor) -> torch.Tensor:
            c = self.cost(self.expand(keep_after(k)), budget)
            return c >= target if budget == "sparsity" else c <= target * (1 + 1e-12)

        hi = torch.full((p,), droppable)
        if not bool(met(hi).all()):
            best = float(self.cost(self.expand(keep_after(hi)), budget).max()
                         if budget != "sparsity" else
                         self.cost(self.expand(keep_after(hi)), budget).min())
            raise UserError(f"no structure meets the {budget} budget {value:g}: keeping one "
                            f"unit per layer still gives {best:.6g} ({budget})")
        lo = torch.zeros(p, dtype=torch.long)
        while bool((lo < hi).any()):  # smallest k that meets the budget, per network
            mid = (lo + hi) // 2
            ok = met(mid)
            hi = torch.where(ok, mid, hi)
            lo = torch.where(ok, lo, mid + 1)
        return keep_after(hi)


def layer_flops(model: nn.Module, example: torch.Tensor) -> dict[str, float]:
    """FLOPs per sample of every prunable weight's layer, counted by
    ``torch.utils.flop_counter`` on one example input."""
    from torch.utils.flop_counter import FlopCounterMode

    from ..models import prunable_names

    counter = FlopCounterMode(display=False)
    with torch.no_grad(), counter:
        model(example[:1])
    counts = counter.get_flop_counts()
    top = type(model).__name__
    out = {}
    for n in prunable_names(model):
        mod = n.rpartition(".")[0]
        out[n] = float(sum(counts.get(f"{top}.{mod}" if mod else top, {}).values()))
    return out


def structure_space(model: nn.Module, example: torch.Tensor, structure: str = "all",
                    layers: Sequence[str] | None = None,
                    exclude: Sequence[str] = ()) -> StructureSpace:
    """The structured mask space of ``model``: groups of ``structure`` (neuron, channel or
    all), only those rooted at ``layers`` (module names) when given."""
    groups = find_groups(model, example, structure, exclude)
    if layers is not None:
        roots = {g.root for g in groups}
        unknown = [n for n in layers if n not in roots]
        if unknown:
            raise UserError(f"group spec names {unknown}, which are not layers with "
                            f"prunable {structure} units; choose from {sorted(roots)}")
        groups = [g for g in groups if g.root in set(layers)]
    return StructureSpace(model, groups, layer_flops(model, example))
