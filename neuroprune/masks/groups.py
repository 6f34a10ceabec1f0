"""Groups of coupled entries: which neurons and channels can go, with everything tied to them.

A group is one prunable unit dimension of the network: the output channels of a conv (its
filters) or the output neurons of a Linear layer, with the bias entries, the BatchNorm scale
and shift, the matching input channels of every layer that reads them, and every other layer
tied to the same channels by a residual addition. The coupling is found from the model's
autograd graph by Torch-Pruning's ``DependencyGraph`` (Fang et al., "DepGraph: Towards Any
Structural Pruning", CVPR 2023, arXiv 2301.12900); compaction removes channels through the
same graph (:mod:`.compact`).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Mapping, Sequence

import torch
from torch import nn

from ..errors import MissingDependencyError, UserError

#: structure name -> the root layer types whose output units form its groups
STRUCTURES = {"neuron": (nn.Linear,), "channel": (nn.Conv1d, nn.Conv2d, nn.Conv3d),
              "all": (nn.Linear, nn.Conv1d, nn.Conv2d, nn.Conv3d)}

def torch_pruning():
    """The ``torch_pruning`` module, or a one-line install hint."""
    try:
        import torch_pruning as tp
    except ImportError:
        raise MissingDependencyError("torch-pruning", "structured",
                                     "structured pruning and compaction") from None
    return tp


def _reshape_kind(grad_fn) -> str:
    """How a reshape moves the units of the tensor it reads:

    * ``"same"``: they stay one axis, in order: dims of size one added or removed, or the rows
      of a Linear layer's input (``[..., C]`` to ``[rows, C]`` and back);
    * ``"flatten"``: ``[batch, C, ...]`` to ``[batch, C * ...]``, each unit a block of
      positions (Torch-Pruning's index mapping follows it);
    * ``"opaque"``: anything else, a channel shuffle (``[B, C, H, W]`` viewed as ``[B, g,
      C/g, H, W]``) or a split into attention heads or windows: the units are regrouped, and
      the graph would map them one to one.
    """
    try:
        out = list(grad_fn._input_metadata[0].shape)
        src, at = grad_fn.next_functions[0]
        inp = list(src._input_metadata[at].shape)
    except (AttributeError, IndexError, TypeError):  # shapes not recorded: assume the worst
        return "opaque"

    def rows(a, b):
        return len(b) == 2 and a[-1] == b[-1] and math.prod(a[:-1]) == b[0]

    if [d for d in inp if d != 1] == [d for d in out if d != 1] or rows(inp, out) \
            or rows(out, inp):
        return "same"
    if len(inp) > 2 and out == [inp[0], math.prod(inp[1:])]:
        return "flatten"
    return "opaque"


def _chunk_offsets(node) -> list[tuple[int, int]] | None:
    """For a split along the channels (``torch.split``, ``chunk``), the channel range each of
    ``node.outputs`` reads, from the split's own record; None when it cannot be told."""
    fn = node.grad_fn
    sizes, dim = getattr(fn, "_saved_self_sym_sizes", None), getattr(fn, "_saved_dim", None)
    if sizes is None or dim != 1 or len(sizes) < 2:
        return None
    total = int(sizes[dim])
    if hasattr(fn, "_saved_split_sizes"):
        chunks = [int(c) for c in fn._saved_split_sizes]
    elif hasattr(fn, "_saved_split_size"):
        step = int(fn._saved_split_size)
        chunks = [min(step, total - a) for a in range(0, total, step)]
    else:
        return None
    starts = [sum(chunks[:i]) for i in range(len(chunks) + 1)]
    ranges = []
    for out in node.outputs:
        read = {i for f, i in getattr(out.grad_fn, "next_functions", ()) if f is fn}
        if len(read) != 1:
            return None
        i = read.pop()
        ranges.append((starts[i], starts[i + 1]))
    return ranges


def _graph_type():
    """Torch-Pruning's ``DependencyGraph`` that marks, instead of guessing through, the
    reshapes and splits whose units it cannot follow (``opaque``: their op modules); a group
    through one is kept whole (:func:`removable`). A split along the channels maps each
    output to the channels it reads (the graph's own guess reads the sizes that recent torch
    no longer records and pairs outputs with chunks in tracing order)."""
    tp = torch_pruning()
    from torch_pruning.dependency.index_mapping import _SplitIndexMapping

    class UnitGraph(tp.DependencyGraph):
        def _trace(self, *args, **kwargs):
            module2node = super()._trace(*args, **kwargs)
            self.opaque = set()
            for node in module2node.values():
                if node.type != tp.ops.OPTYPE.RESHAPE:
                    continue
                kind = _reshape_kind(node.grad_fn)
                if kind == "flatten":
                    continue
                # as an element-wise op it maps units one to one, and takes no part in the
                # index mapping (whose guess of a stride divides by zero on a shuffle, and
                # multiplies without end around a window partition)
                node.type = tp.ops.OPTYPE.ELEMENTWISE
                if kind == "opaque":
                    self.opaque.add(node.module)
            return module2node

        def build_dependency(self, *args, **kwargs):
            super().build_dependency(*args, **kwargs)
            for node in self.module2node.values():
                if node.type != tp.ops.OPTYPE.SPLIT:
                    continue
                ranges = _chunk_offsets(node)
                node.enable_index_mapping = False  # what is set here stays
                if ranges is None:
                    node.type = tp.ops.OPTYPE.ELEMENTWISE
                    self.opaque.add(node.module)
                    for dep in node.dependencies + [d for o in node.outputs
                                                    for d in o.dependencies]:
                        if node in (dep.source, dep.target):
                            dep.index_mapping[0] = None
                    continue
                for out, rng in zip(node.outputs, ranges):
                    for dep in node.dependencies:
                        if dep.target is out:
                            dep.index_mapping[0] = _SplitIndexMapping(list(rng), reverse=False)
                    for dep in out.dependencies:
                        if dep.target is node:
                            dep.index_mapping[0] = _SplitIndexMapping(list(rng), reverse=True)
            return self

    return UnitGraph


def removable(group, graph) -> bool:
    """True when the units of ``group`` (a Torch-Pruning group) can go one at a time and leave
    the others' outputs as they were: it crosses no normalisation over its units (LayerNorm,
    GroupNorm: a unit removed changes the mean and variance of the rest) and no reshape that
    regroups them (a channel shuffle, a split into heads or windows)."""
    for it in group.items:
        mod = it.dep.target.module
        if mod in getattr(graph, "opaque", ()) or isinstance(mod, nn.LayerNorm) or (
                isinstance(mod, nn.GroupNorm) and mod.num_groups != mod.num_channels):
            return False
    return True


def dependency_graph(model: nn.Module, example: torch.Tensor):
    """Torch-Pruning's dependency graph of ``model`` traced on ``example``.

    A model the graph cannot trace raises :class:`UserError` naming the module that failed.
    The model's training mode is restored afterwards (tracing switches it to eval).
    """
    graph_type = _graph_type()  # a missing torch-pruning is its install hint, not a trace error
    names = {m: n for n, m in model.named_modules()}
    stack: list[str] = []

    def enter(mod, _inp):
        stack.append(names.get(mod, type(mod).__name__))

    def leave(mod, _inp, _out):
        if stack:
            stack.pop()

    changed: list[str] = []

    def channels(mod, inp, out):
        a, b = (inp[0] if inp else None), out
        if (isinstance(a, torch.Tensor) and isinstance(b, torch.Tensor) and a.dim() > 1
                and b.dim() > 1 and a.shape[1] != b.shape[1]
                and sorted(a.shape) != sorted(b.shape)):  # a permute moves the axis only
            changed.append(names.get(mod, type(mod).__name__))

    handles = [m.register_forward_pre_hook(enter) for m in model.modules()]
    handles += [m.register_forward_hook(leave) for m in model.modules()]
    # parameter-free modules of other libraries that change the channel count (a zero-padded
    # shortcut): the graph would tie their input and output channels one to one
    handles += [m.register_forward_hook(channels) for m in model.modules()
                if not type(m).__module__.startswith("torch.") and not list(m.children())
                and not list(m.parameters(recurse=False))]
    training = model.training
    try:
        with torch.enable_grad():
            graph = graph_type().build_dependency(model, example_inputs=example,
                                                  verbose=False)
    except Exception as exc:  # noqa: BLE001 - any failure of tracing is reported the same way
        where = stack[-1] if stack else "the model's forward"
        raise UserError(f"the dependency graph cannot trace module '{where or 'root'}' "
                        f"({type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''})"
                        f"; structured pruning needs a traceable model") from None
    finally:
        for h in handles:
            h.remove()
        model.train(training)
    if changed:
        raise UserError(f"the dependency graph cannot trace module '{changed[0]}' "
                        f"({type(dict(model.named_modules())[changed[0]]).__name__} changes "
                        f"the channel count without a layer it knows); structured pruning "
                        f"needs a traceable model (a ResNet: shortcut: conv)")
    return graph


@dataclass(frozen=True)
class Member:
    """Entries of one tensor that belong to a group: along ``dim``, ``positions`` (a long
    tensor) belong to the group channels ``channels`` (one per position)."""

    name: str
    dim: int
    positions: torch.Tensor
    channels: torch.Tensor
    side: str  # "out": produces the channel; "in": reads it


@dataclass(frozen=True)
class Group:
    """One coupled unit dimension: ``size`` channels rooted at layer ``root``."""

    root: str
    kind: str  # neuron or channel
    size: int
    members: tuple[Member, ...]


def _members(dep, idxs, names: Mapping[nn.Module, str], size: int) -> list[Member]:
    mod = dep.target.module
    if not isinstance(mod, nn.Module) or mod not in names:
        return []
    plain = torch.tensor([int(i.idx) if hasattr(i, "idx") else int(i) for i in idxs])
    if all(hasattr(i, "root_idx") for i in idxs):
        root = torch.tensor([int(i.root_idx) for i in idxs])
    elif len(idxs) == size:
        # plain indices follow the root's channels in order (the group was asked for
        # range(size)); after a concatenation they are offset (a consumer reading channels
        # 256..511 of a concatenated input reads the root's channels 0..255)
        root = torch.arange(size)
    else:
        root = plain
    prefix = names[mod] + "." if names[mod] else ""
    out = dep.handler.__name__ == "prune_out_channels"
    if isinstance(mod, (nn.Linear, nn.Conv1d, nn.Conv2d, nn.Conv3d)):
        if isinstance(mod, nn.modules.conv._ConvNd) and mod.groups != 1:
            return []
        got = [Member(prefix + "weight", 0 if out else 1, plain, root, "out" if out else "in")]
        if out and mod.bias is not None:
            got.append(Member(prefix + "bias", 0, plain, root, "out"))
        return got
    if isinstance(mod, nn.modules.batchnorm._BatchNorm) and mod.affine:
        return [Member(prefix + "weight", 0, plain, root, "out"),
                Member(prefix + "bias", 0, plain, root, "out")]
    return []


def group_roots(model: nn.Module, graph, structure: str = "all",
                exclude: Sequence[str] = ()) -> list[nn.Module]:
    """The layers whose output units root a group (not the output layers, nor the layers of
    the parameter names in ``exclude``, nor groups that are not :func:`removable`), in the
    graph's order."""
    from ..models import output_names

    modules = dict(model.named_modules())
    # a model may declare layers whose units stay whole (a transformer's residual stream and
    # attention projections: LayerNorm and the split into heads read every unit)
    fixed = [f"{n}.weight" for n in getattr(model, "fixed_unit_layers", ())]
    ignored = [modules[n.rpartition(".")[0]] for n in
               list(output_names(model)) + list(exclude) + fixed
               if n.rpartition(".")[0] in modules]
    return [g[0].dep.target.module for g in graph.get_all_groups(
        ignored_layers=ignored, root_module_types=STRUCTURES[structure])
        if removable(g, graph)]


def group_members(graph, root: nn.Module, names: Mapping[nn.Module, str]) -> list[Member]:
    """Every tensor entry coupled to the output units of ``root``, as the graph has it now
    (``names``: module -> name)."""
    size = graph.get_out_channels(root)
    group = graph.get_pruning_group(root, graph.get_pruner_of_module(root).prune_out_channels,
                                    list(range(size)))
    seen: dict[tuple[str, int], Member] = {}
    for it in group.items:
        for m in _members(it.dep, it.idxs, names, size):
            if len(m.positions) > size and len(m.positions) % size == 0:
                # a layer after a flatten reads ``size`` blocks of positions
                m = Member(m.name, m.dim, m.positions,
                           m.positions // (len(m.positions) // size), m.side)
            seen.setdefault((m.name, m.dim), m)  # a tensor reached twice is listed once
    return list(seen.values())


def find_groups(model: nn.Module, example: torch.Tensor, structure: str = "all",
                exclude: Sequence[str] = (), graph=None) -> list[Group]:
    """The coupled groups of ``model``: one per layer whose output units can be removed
    (output layers and the layers named in ``exclude`` are left out)."""
    if structure not in STRUCTURES:
        raise UserError(f"unknown structure '{structure}'; choose one of "
                        f"{', '.join(STRUCTURES)} (or 'element' for single weights)")
    graph = graph or dependency_graph(model, example)
    names = {m: n for n, m in model.named_modules()}
    groups = []
    for root in group_roots(model, graph, structure, exclude):
        kind = "neuron" if isinstance(root, nn.Linear) else "channel"
        size = graph.get_out_channels(root)
        groups.append(Group(names[root], kind, size, tuple(group_members(graph, root, names))))
    if structure == "all":
        groups += declared_groups(model, exclude)
    return groups


def declared_groups(model: nn.Module, exclude: Sequence[str] = ()) -> list[Group]:
    """Groups a module declares itself (``unit_groups(prefix)``: an attention layer's heads,
    which the dependency graph cannot see through the split into heads); a module whose
    parameters ``exclude`` names is left out."""
    out = []
    for name, mod in model.named_modules():
        declare = getattr(mod, "unit_groups", None)
        if declare is None:
            continue
        prefix = f"{name}." if name else ""
        for g in declare(prefix):
            if not any(m.name in exclude for m in g.members):
                out.append(g)
    return out
