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


def dependency_graph(model: nn.Module, example: torch.Tensor):
    """Torch-Pruning's dependency graph of ``model`` traced on ``example``.

    A model the graph cannot trace raises :class:`UserError` naming the module that failed.
    The model's training mode is restored afterwards (tracing switches it to eval).
    """
    tp = torch_pruning()
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
                and b.dim() > 1 and a.shape[1] != b.shape[1]):
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
            graph = tp.DependencyGraph().build_dependency(model, example_inputs=example,
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
    the parameter names in ``exclude``), in the graph's order."""
    from ..models import output_names

    modules = dict(model.named_modules())
    # a model may declare layers whose units stay whole (a transformer's residual stream and
    # attention projections: LayerNorm and the split into heads read every unit)
    fixed = [f"{n}.weight" for n in getattr(model, "fixed_unit_layers", ())]
    ignored = [modules[n.rpartition(".")[0]] for n in
               list(output_names(model)) + list(exclude) + fixed
               if n.rpartition(".")[0] in modules]
    return [g[0].dep.target.module for g in graph.get_all_groups(
        ignored_layers=ignored, root_module_types=STRUCTURES[structure])]


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
