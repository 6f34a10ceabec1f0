"""Compaction: a masked network rewritten as a smaller dense one that gives the same outputs.

A unit (a neuron, a channel and every entry coupled to it, see :mod:`.structure`) is removed
when it cannot change the output:

* every entry that *reads* it is zero (the next layers ignore it), or
* every entry that *produces* it is zero (weights, bias, BatchNorm scale and shift) and every
  activation maps 0 to 0, so it carries zero signal, or
* its incoming weights are zero but its bias is not, and every layer that reads it is a
  Linear layer with a bias: its constant output is folded into those biases first (the dead
  units an unstructured mask leaves in a fully connected network).

Units coupled to a grouped (not depthwise) convolution, as in ResNeXt and RegNet, are kept:
they can only go a whole group at a time. Units normalised together (LayerNorm, GroupNorm:
ConvNeXt's and Swin's residual streams) or regrouped by a reshape (ShuffleNet's channel
shuffle, a split into attention heads or windows) are kept too: they form no group
(:func:`.groups.removable`).

The removal itself is Torch-Pruning's (:func:`.groups.dependency_graph`); its pruning
history, replayed on a fresh dense model (:func:`rebuild_compact`), rebuilds the compact
architecture, so a compact file is a state dict plus that history.
"""

from __future__ import annotations

import copy
from typing import Any, Sequence

import torch
from torch import nn

from .groups import dependency_graph, group_members, group_roots

#: module types that are not activations (an activation maps 0 to 0, or compaction checks)
LAYER_TYPES = (nn.Linear, nn.modules.conv._ConvNd, nn.modules.batchnorm._BatchNorm,
           nn.modules.pooling._MaxPoolNd, nn.modules.pooling._AvgPoolNd,
           nn.modules.pooling._AdaptiveAvgPoolNd, nn.modules.pooling._AdaptiveMaxPoolNd,
           nn.Flatten, nn.Identity, nn.Dropout, nn.Sequential, nn.ModuleList)


def zero_preserving(model: nn.Module) -> bool:
    """True when every activation-like leaf module of ``model`` maps 0 to 0."""
    for mod in model.modules():
        if isinstance(mod, LAYER_TYPES) or list(mod.children()):
            continue
        try:
            with torch.no_grad():
                if bool(mod(torch.zeros(1, 1)).abs().max() != 0):
                    return False
        except Exception:  # noqa: BLE001 - a module that is not elementwise: assume it is fine
            continue
    return True


def _channel_zero(members, params, size: int, side: str) -> torch.Tensor | None:
    """``[size]``: True where every entry of ``side`` members is zero (None: no such member)."""
    chosen = [m for m in members if m.side == side]
    if not chosen:
        return None
    zero = torch.ones(size, dtype=torch.bool)
    for m in chosen:
        t = params[m.name].detach().movedim(m.dim, 0)[m.positions]
        nz = t.reshape(len(m.positions), -1).ne(0).any(1)
        hit = torch.zeros(size, dtype=torch.bool).index_put_((m.channels,), nz, accumulate=True)
        zero &= ~hit
    return zero


def _fold_constants(model, members, params, size, example, dead) -> torch.Tensor:
    """Fold the constant outputs of ``dead`` units (zero weights, non-zero bias) into the
    biases of the Linear layers that read them; the units folded (``[size]`` bool)."""
    modules = dict(model.named_modules())
    readers = [m for m in members if m.side == "in"]
    mods = [modules[m.name.rpartition(".")[0]] for m in readers]
    if not readers or not all(isinstance(mod, nn.Linear) and mod.bias is not None
                              and len(m.positions) == size for m, mod in zip(readers, mods)):
        return torch.zeros(size, dtype=torch.bool)
    seen: dict[nn.Module, torch.Tensor] = {}
    hooks = [mod.register_forward_pre_hook(lambda mod, inp: seen.setdefault(mod, inp[0]))
             for mod in mods]
    try:
        with torch.no_grad():
            model(torch.cat([example, torch.randn_like(example)]))
    finally:
        for h in hooks:
            h.remove()
    folded = dead.clone()
    for m, mod in zip(readers, mods):
        x = seen[mod][:, m.positions]
        folded &= torch.zeros(size, dtype=torch.bool).index_put_((m.channels,),
                                                                 (x == x[:1]).all(0))
    if not bool(folded.any()):
        return folded
    with torch.no_grad():
        for m, mod in zip(readers, mods):
            x = seen[mod][0, m.positions]  # one value per position
            const = torch.zeros(size, dtype=x.dtype).index_put_((m.channels,), x)
            use = folded[m.channels]
            w = params[m.name].movedim(m.dim, 0)[m.positions]
            mod.bias.add_((w[use] * const[m.channels][use, None]).sum(0))
            params[m.name].movedim(m.dim, 0)[m.positions[use]] = 0
    return folded


def unmasked_copy(model: nn.Module) -> nn.Module:
    """A deep copy of ``model`` with its ``torch.nn.utils.prune`` masks folded in: pruned
    entries zero, plain parameters, no pruning hooks. (A masked module cannot be deep-copied
    as it is: its ``weight`` is computed from ``weight_orig`` and the mask, not a leaf.)"""
    from torch.nn.utils import prune

    def pruned(m: nn.Module) -> list[prune.BasePruningMethod]:
        return [h for h in m._forward_pre_hooks.values()
                if isinstance(h, prune.BasePruningMethod)]
    stash = [(mod, hook._tensor_name) for mod in model.modules() for hook in pruned(mod)]
    computed = [mod.__dict__.pop(name, None) for mod, name in stash]
    try:
        out = copy.deepcopy(model)
    finally:
        for (mod, name), value in zip(stash, computed):
            if value is not None:
                mod.__dict__[name] = value
    for mod in out.modules():
        for hook in pruned(mod):
            prune.remove(mod, hook._tensor_name)
    return out


def _grouped(mod: Any) -> bool:
    """A grouped convolution that is not depthwise (ResNeXt, RegNet): its channels can only go
    a whole group at a time, which unit-by-unit removal cannot promise."""
    return (isinstance(mod, nn.modules.conv._ConvNd) and mod.groups > 1
            and not mod.groups == mod.in_channels == mod.out_channels)


def _crosses_grouped_conv(graph, root: nn.Module, pruner, size: int) -> bool:
    group = graph.get_pruning_group(root, pruner.prune_out_channels, list(range(size)))
    return any(_grouped(it.dep.target.module) or _grouped(it.dep.source.module)
               for it in group.items)


def compact(model: nn.Module, example: torch.Tensor,
            exclude: Sequence[str] = ()) -> tuple[nn.Module, list[Any]]:
    """A smaller dense copy of ``model`` (masks attached with ``torch.nn.utils.prune`` are
    folded in first) with the same outputs, and the pruning history that rebuilds its
    architecture from the dense one (:func:`rebuild_compact`). ``exclude``: parameter names
    whose layers keep their units."""
    model = unmasked_copy(model).eval()
    graph = dependency_graph(model, example)
    names = {m: n for n, m in model.named_modules()}
    modules = dict(model.named_modules())
    silent_ok = zero_preserving(model)
    for root in group_roots(model, graph, "all", exclude):
        pruner = graph.get_pruner_of_module(root)
        size = pruner.get_out_channels(root)
        if _crosses_grouped_conv(graph, root, pruner, size):
            continue
        members = group_members(graph, root, names)
        params = dict(model.named_parameters())
        read_zero = _channel_zero(members, params, size, "in")
        out_zero = _channel_zero(members, params, size, "out")
        remove = torch.zeros(size, dtype=torch.bool)
        if read_zero is not None:
            remove |= read_zero
        if out_zero is not None and silent_ok:
            remove |= out_zero
        weights_only = [m for m in members if m.side == "out" and m.name.endswith("weight")
                        and modules[m.name.rpartition(".")[0]] is root]
        if weights_only:
            dead = _channel_zero(weights_only, params, size, "out") & ~remove
            if bool(dead.any()):
                remove |= _fold_constants(model, members, params, size, example, dead)
        if bool(remove.all()):  # keep one unit: the layer's shape must stay valid
            remove[0] = False
        idxs = remove.nonzero().flatten().tolist()
        if idxs:
            graph.get_pruning_group(root, pruner.prune_out_channels, idxs).prune()
    history = [list(h) for h in graph.pruning_history()]
    return model, history + _remove_heads(model)


#: the first field of a history entry that removes attention heads (not Torch-Pruning's)
HEADS = "neuroprune:heads"


def _remove_heads(model: nn.Module) -> list[list]:
    """Drop the silent heads of every module that can (``silent_heads``/``keep_heads``);
    one history entry ``[HEADS, module name, kept heads]`` each."""
    entries = []
    for name, mod in list(model.named_modules()):
        if not (hasattr(mod, "silent_heads") and hasattr(mod, "keep_heads")):
            continue
        silent = set(mod.silent_heads())
        keep = [h for h in range(mod.heads) if h not in silent] or [0]
        if len(keep) < mod.heads:
            mod.keep_heads(keep)
            entries.append([HEADS, name, keep])
    return entries


def rebuild_compact(dense: nn.Module, example: torch.Tensor,
                    history: list[Any]) -> nn.Module:
    """Replay a compaction ``history`` on a fresh ``dense`` model: the compact architecture,
    ready for the compact state dict."""
    heads = [h for h in history if h and h[0] == HEADS]
    graph = dependency_graph(dense, example)
    graph.load_pruning_history([h for h in history if not (h and h[0] == HEADS)])
    modules = dict(dense.named_modules())
    for _, name, keep in heads:
        if name not in modules or not hasattr(modules[name], "keep_heads"):
            from ..errors import UserError
            raise UserError(f"the compact history names heads of '{name}', which this model "
                            f"does not have; the file was made for another model")
        modules[name].keep_heads(list(keep))
    return dense
