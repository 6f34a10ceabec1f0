"""A population forward pass compiled from a model's ``torch.fx`` graph: P networks of one
architecture in plain batched kernels.

When every network sees the same mini-batch, the first layer of P networks is one large matrix
product ``x @ [W_1; ...; W_P]^T`` (or one convolution with ``P * C_out`` filters); later
layers are one ``baddbmm`` or one grouped convolution (``groups = P``); BatchNorm runs over
``P * C`` channels with the running statistics of every network stacked. ``vmap`` cannot see
the first of these (it batches the first layer as ``bmm`` over a broadcast input, the same
FLOPs at a lower rate), and on a GPU the difference is large.

Activations travel in one of three layouts:

* ``SHARED``  ``[B, ...]``: the same for every network (the input);
* ``PACKED``  ``[B, P * C, ...]``: networks packed along channels (after a convolution), so
  that BatchNorm, pooling, residual additions and the next grouped convolution need no copies;
* ``POP``     ``[P, B, ...]``: one block per network (after a Linear).

The interpreter walks the traced graph once per forward pass. A node it does not know raises
:class:`Unsupported` when the graph is compiled (a dry run on a small batch), and the engine then
falls back to ``vmap(functional_call)`` (:mod:`.functional`). Compilation also checks the
compiled forward against the plain module on two networks, so a layer handled wrongly can only
cost speed, never correctness.
"""

from __future__ import annotations

import math
import operator
from dataclasses import dataclass, field
from typing import Any, Callable

import torch
import torch.fx as fx
import torch.nn.functional as F
from torch import nn

from ..models.base import RoleActivation
from .dropout import SeededDropout, SeededStochasticDepth, keep_mask

#: handlers of further leaf functions, ``(target, args, kwargs, pass_) -> value or None``:
#: a module that knows a library's fx-wrapped functions registers here (engine/windows.py)
LEAF_CALLS: list[Callable] = []

SHARED, PACKED, POP = "shared", "packed", "pop"


class Unsupported(Exception):
    """The population graph cannot handle this model (the engine uses vmap instead)."""


@dataclass
class Act:
    """An activation of the whole population: its tensor and layout."""

    t: torch.Tensor
    layout: str


@dataclass
class Weight:
    """A parameter (or buffer) the forward uses directly, one per network: ``[P, *shape]``
    (ViT's class token and position embedding, ConvNeXt's layer scale)."""

    t: torch.Tensor

    def aligned(self, nd: int, p: int) -> torch.Tensor:
        """As ``[P, 1.., *shape]`` against an activation of ``nd`` logical dimensions
        (broadcasting aligns trailing dimensions)."""
        shape = tuple(self.t.shape[1:])
        if len(shape) > nd:
            raise Unsupported("a parameter with more dimensions than the activation")
        return self.t.reshape(p, *[1] * (nd - len(shape)), *shape)


@dataclass
class Pass:
    """What one forward pass needs besides parameters and input."""

    p: int
    training: bool
    seeds: torch.Tensor | None = None          # [P] dropout seeds
    step: int = 0
    activations: dict[str, list] | None = None  # role -> [(index tensor, fn)]
    capture: dict[str, tuple[torch.Tensor, torch.Tensor]] | None = None
    capture_names: frozenset[str] = frozenset()
    #: the training step's own forward: a one-network module may differentiate into leaves
    #: of its own and hand their gradients back (``ModuleForward.gather_grads``)
    own_leaves: bool = False


ELEMENTWISE_MODULES = {
    nn.ReLU: F.relu, nn.ReLU6: F.relu6, nn.Tanh: torch.tanh, nn.Sigmoid: torch.sigmoid,
    nn.GELU: None, nn.SiLU: F.silu, nn.LeakyReLU: None, nn.ELU: None, nn.CELU: None,
    nn.Softplus: None, nn.Hardswish: F.hardswish, nn.Hardtanh: None, nn.Hardshrink: None,
    nn.Softshrink: None, nn.Mish: F.mish, nn.Identity: lambda x: x, nn.Hardsigmoid: None,
    nn.SELU: F.selu, nn.Tanhshrink: F.tanhshrink,
}
ELEMENTWISE_FUNCTIONS = {
    F.relu, torch.relu, F.relu6, torch.tanh, F.tanh, torch.sigmoid, F.sigmoid, F.gelu, F.silu,
    F.leaky_relu, F.elu, F.celu, F.softplus, F.hardswish, F.hardtanh, F.mish, F.selu,
    F.hardsigmoid, torch.abs, torch.exp, torch.neg, torch.square, torch.sqrt, torch.erf,
}
ELEMENTWISE_METHODS = {"relu", "tanh", "sigmoid", "abs", "exp", "neg", "square", "sqrt", "erf"}
BINARY = {operator.add: torch.add, operator.iadd: torch.add, torch.add: torch.add,
          operator.sub: torch.sub, operator.isub: torch.sub, torch.sub: torch.sub,
          operator.mul: torch.mul, operator.imul: torch.mul, torch.mul: torch.mul,
          operator.truediv: torch.div, torch.div: torch.div}
BINARY_METHODS = {"add": torch.add, "sub": torch.sub, "mul": torch.mul, "div": torch.div}
POOL_MODULES = (nn.MaxPool1d, nn.MaxPool2d, nn.AvgPool1d, nn.AvgPool2d, nn.AdaptiveAvgPool1d,
                nn.AdaptiveAvgPool2d, nn.AdaptiveMaxPool1d, nn.AdaptiveMaxPool2d)
POOL_FUNCTIONS = {F.max_pool1d, F.max_pool2d, F.avg_pool1d, F.avg_pool2d,
                  F.adaptive_avg_pool1d, F.adaptive_avg_pool2d, F.adaptive_max_pool1d,
                  F.adaptive_max_pool2d}
NOOP_METHODS = {"contiguous", "clone"}
INTEGER_ARITHMETIC = {operator.floordiv, operator.mul, operator.add, operator.sub,
                      operator.mod, operator.pow, operator.truediv, operator.neg}


class _Tracer(fx.Tracer):
    """Keeps neuroprune's own per-network modules as leaves."""

    def is_leaf_module(self, m: nn.Module, qualname: str) -> bool:
        if isinstance(m, (SeededDropout, SeededStochasticDepth, RoleActivation)) \
                or getattr(m, "elementwise", False):
            return True
        return super().is_leaf_module(m, qualname)


# ---------------------------------------------------------------------- layout conversion
def logical_shape(a: Act, p: int) -> tuple[int, ...]:
    """The shape one network sees."""
    if a.layout == SHARED:
        return tuple(a.t.shape)
    if a.layout == PACKED:
        return (a.t.shape[0], a.t.shape[1] // p, *a.t.shape[2:])
    return tuple(a.t.shape[1:])


def to_packed(a: Act, p: int) -> torch.Tensor:
    if a.layout == PACKED:
        return a.t
    if a.layout == SHARED:
        if a.t.dim() < 2:
            raise Unsupported("a packed layout needs a channel dimension")
        return a.t.repeat(1, p, *[1] * (a.t.dim() - 2))
    t = a.t  # [P, B, C, ...]
    if t.dim() < 3:
        raise Unsupported("a packed layout needs a channel dimension")
    return t.transpose(0, 1).reshape(t.shape[1], p * t.shape[2], *t.shape[3:])


def to_pop(a: Act, p: int) -> torch.Tensor:
    if a.layout == POP:
        return a.t
    if a.layout == SHARED:
        return a.t.unsqueeze(0).expand(p, *a.t.shape)
    t = a.t  # [B, P*C, ...]
    return t.reshape(t.shape[0], p, t.shape[1] // p, *t.shape[2:]).transpose(0, 1)


def from_pop(t: torch.Tensor, layout: str, p: int) -> torch.Tensor:
    """A ``[P, B, ...]`` tensor in ``layout`` (PACKED or POP)."""
    if layout == POP:
        return t
    return t.transpose(0, 1).reshape(t.shape[1], p * t.shape[2], *t.shape[3:])


def per_network(a: Act, groups: list, p: int) -> Act:
    """Apply a different elementwise function to each network's part of ``a``.

    ``groups`` is ``[(index tensor, fn), ...]``: one entry per *distinct* function, so the loop
    runs over functions (few in an evolving population), never over networks one by one.
    """
    if len(groups) == 1:
        return Act(groups[0][1](a.t), a.layout)
    layout = POP if a.layout == SHARED else a.layout
    t = to_pop(Act(a.t, a.layout), p) if layout == POP else a.t
    if layout == POP:
        out = torch.empty_like(t)
        for idx, fn in groups:
            out[idx] = fn(t[idx])
        return Act(out, POP)
    view = t.reshape(t.shape[0], p, t.shape[1] // p, *t.shape[2:])
    out = torch.empty_like(view)
    for idx, fn in groups:
        out[:, idx] = fn(view[:, idx])
    return Act(out.reshape(t.shape), PACKED)


# ---------------------------------------------------------------------- the graph
@dataclass
class PopulationGraph:
    """``forward(params, buffers, x, pass_) -> logits [P, B, C]`` for stacked ``params``."""

    gm: fx.GraphModule
    modules: dict[str, nn.Module] = field(default_factory=dict)

    @classmethod
    def compile(cls, model: nn.Module) -> "PopulationGraph":
        """Trace ``model``; :class:`Unsupported` when it cannot be traced."""
        try:
            graph = _Tracer().trace(model)
        except Exception as exc:  # data-dependent control flow and the like
            raise Unsupported(f"torch.fx cannot trace the model: {type(exc).__name__}: "
                              f"{str(exc).splitlines()[0] if str(exc) else ''}") from None
        gm = fx.GraphModule(model, graph)
        return cls(gm, dict(gm.named_modules()))

    def __call__(self, params: dict[str, torch.Tensor], buffers: dict[str, torch.Tensor],
                 x: torch.Tensor, pass_: Pass) -> torch.Tensor:
        env: dict[fx.Node, Any] = {}
        out, inputs = None, 0
        for node in self.gm.graph.nodes:
            if node.op == "placeholder":
                if inputs == 0:
                    env[node] = Act(x, SHARED)
                elif node.args:  # a later argument with a default value
                    env[node] = node.args[0]
                else:
                    raise Unsupported("the model's forward takes more than one input")
                inputs += 1
            elif node.op == "output":
                out = env[node.args[0]] if isinstance(node.args[0], fx.Node) else None
                break
            elif node.op == "get_attr":
                if node.target in params:
                    env[node] = Weight(params[node.target])
                elif node.target in buffers:
                    env[node] = Weight(buffers[node.target])
                else:
                    raise Unsupported(f"attribute {node.target} used in forward")
            else:
                args = fx.node.map_arg(node.args, lambda n: env[n])
                kwargs = fx.node.map_arg(node.kwargs, lambda n: env[n])
                env[node] = self._node(node, args, kwargs, params, buffers, pass_)
        if not isinstance(out, Act):
            raise Unsupported("the model's output is not a tensor")
        return to_pop(out, pass_.p) if out.layout != POP else out.t

    # ------------------------------------------------------------------ dispatch
    def _node(self, node: fx.Node, args, kwargs, params, buffers, pass_: Pass):
        if node.op == "call_module":
            return self._module(node.target, self.modules[node.target], args, kwargs, params,
                                buffers, pass_)
        if node.op == "call_function":
            return _function(node.target, args, kwargs, pass_)
        if node.op == "call_method":
            return _method(node.target, args, kwargs, pass_)
        raise Unsupported(f"graph node {node.op} {node.target} (parameters used directly in "
                          f"forward)")

    def _module(self, name: str, mod: nn.Module, args, kwargs, params, buffers, pass_: Pass):
        a = args[0]
        if not isinstance(a, Act) or len(args) != 1 or kwargs:
            raise Unsupported(f"module {name} ({type(mod).__name__}) called with extra arguments")
        pre = f"{name}."
        p = pass_.p
        if isinstance(mod, nn.Linear):
            out = _linear(a, params[pre + "weight"], params.get(pre + "bias"), p)
            if name + ".weight" in pass_.capture_names and pass_.capture is not None:
                pass_.capture[pre + "weight"] = (to_pop(a, p), out.t)
            return out
        if isinstance(mod, (nn.Conv1d, nn.Conv2d)):
            return _conv(a, mod, params[pre + "weight"], params.get(pre + "bias"), p)
        if isinstance(mod, (nn.BatchNorm1d, nn.BatchNorm2d)):
            return _batch_norm(a, mod, pre, params, buffers, pass_)
        if isinstance(mod, nn.GroupNorm):
            t = to_packed(a, p)
            w, b = params.get(pre + "weight"), params.get(pre + "bias")
            return Act(F.group_norm(t, p * mod.num_groups,
                                    None if w is None else w.reshape(-1),
                                    None if b is None else b.reshape(-1), mod.eps), PACKED)
        if isinstance(mod, nn.LayerNorm):
            return _layer_norm(a, mod, pre, params, p)
        if isinstance(mod, RoleActivation):
            groups = (pass_.activations or {}).get(mod.role)
            return per_network(a, groups, p) if groups else Act(mod.fn(a.t), a.layout)
        if isinstance(mod, SeededDropout):
            return _dropout(a, mod.p, mod.layer, pass_)
        if isinstance(mod, SeededStochasticDepth):
            return _stochastic_depth(a, mod, pass_)
        if type(mod) in ELEMENTWISE_MODULES:
            fn = ELEMENTWISE_MODULES[type(mod)]
            if fn is None:  # parametrised activations: call the module, never in place
                if getattr(mod, "inplace", False):
                    raise Unsupported(f"in-place {type(mod).__name__}")
                return Act(mod(a.t), a.layout)
            return Act(fn(a.t), a.layout)
        if getattr(mod, "elementwise", False) and not any(True for _ in mod.parameters()):
            return Act(mod(a.t), a.layout)
        if isinstance(mod, POOL_MODULES):
            return _pool(mod, a, p)
        if isinstance(mod, nn.Flatten):
            return _flatten(a, mod.start_dim, mod.end_dim, p)
        if isinstance(mod, nn.Dropout) and (not pass_.training or mod.p == 0):
            return a
        raise Unsupported(f"module {name} ({type(mod).__name__})")


# ---------------------------------------------------------------------- layers
def _linear(a: Act, w: torch.Tensor, b: torch.Tensor | None, p: int) -> Act:
    out_f, in_f = w.shape[1], w.shape[2]
    if a.layout == SHARED and a.t.dim() == 2:
        flat = w.reshape(p * out_f, in_f).t()
        t = torch.addmm(b.reshape(-1), a.t, flat) if b is not None else a.t @ flat
        # [B, P*out] -> [P, B, out]: a strided view the batched GEMMs after it read as it is
        return Act(t.view(a.t.shape[0], p, out_f).transpose(0, 1), POP)
    x = to_pop(a, p)
    lead = x.shape[1:-1]
    x3 = x.reshape(p, -1, in_f)
    t = torch.baddbmm(b.unsqueeze(1), x3, w.transpose(1, 2)) if b is not None else \
        torch.bmm(x3, w.transpose(1, 2))
    return Act(t.reshape(p, *lead, out_f), POP)


def _conv(a: Act, mod, w: torch.Tensor, b: torch.Tensor | None, p: int) -> Act:
    if mod.padding_mode != "zeros":
        raise Unsupported(f"{type(mod).__name__} with padding mode {mod.padding_mode}")
    conv = F.conv2d if isinstance(mod, nn.Conv2d) else F.conv1d
    wf = w.reshape(-1, *w.shape[2:])
    bf = None if b is None else b.reshape(-1)
    if a.layout == SHARED and mod.groups == 1:
        t = conv(a.t, wf, bf, mod.stride, mod.padding, mod.dilation)
    else:
        t = conv(to_packed(a, p), wf, bf, mod.stride, mod.padding, mod.dilation,
                 groups=p * mod.groups)
    return Act(t, PACKED)


def _batch_norm(a: Act, mod, pre: str, params, buffers, pass_: Pass) -> Act:
    p = pass_.p
    rm, rv = buffers.get(pre + "running_mean"), buffers.get(pre + "running_var")
    use_batch = pass_.training or rm is None
    momentum = mod.momentum
    if pass_.training and mod.track_running_stats and rm is not None:
        count = buffers[pre + "num_batches_tracked"]
        count.add_(1)
        if momentum is None:  # cumulative average: every network has taken as many steps
            momentum = 1.0 / float(count.reshape(-1)[0])
    w, b = params.get(pre + "weight"), params.get(pre + "bias")
    if a.layout == POP:  # BatchNorm1d after a Linear: [P, B, F, ...] -> [B, P*F, ...]
        t = a.t
        flat = t.transpose(0, 1).reshape(t.shape[1], p * t.shape[2], *t.shape[3:])
    else:
        flat = to_packed(a, p)
    out = F.batch_norm(flat, None if rm is None else rm.reshape(-1),
                       None if rv is None else rv.reshape(-1),
                       None if w is None else w.reshape(-1), None if b is None else b.reshape(-1),
                       use_batch, momentum if momentum is not None else 0.0, mod.eps)
    if a.layout == POP:
        t = a.t
        return Act(out.reshape(t.shape[1], p, *t.shape[2:]).transpose(0, 1), POP)
    return Act(out, PACKED)


def _layer_norm(a: Act, mod: nn.LayerNorm, pre: str, params, p: int) -> Act:
    x = to_pop(a, p)  # (the normalised dimensions are the trailing ones of [P, B, ...])
    out = F.layer_norm(x, mod.normalized_shape, None, None, mod.eps)
    w, b = params.get(pre + "weight"), params.get(pre + "bias")
    extra = [1] * (x.dim() - 1 - len(mod.normalized_shape))
    if w is not None:
        out = out * w.reshape(p, *extra, *mod.normalized_shape)
    if b is not None:
        out = out + b.reshape(p, *extra, *mod.normalized_shape)
    return Act(out, POP)


def _dropout(a: Act, rate: float, layer: int, pass_: Pass) -> Act:
    if not pass_.training or rate == 0.0:
        return a
    if pass_.seeds is None:
        raise Unsupported("dropout needs per-network seeds")
    p = pass_.p
    shape = logical_shape(a, p)
    keep = keep_mask(pass_.seeds, pass_.step, layer, rate, shape)  # [P, *shape]
    layout = POP if a.layout == SHARED else a.layout
    t = to_pop(a, p) if layout == POP else a.t
    keep = keep if layout == POP else from_pop(keep, PACKED, p)
    return Act(t * keep / (1.0 - rate), layout)


def _stochastic_depth(a: Act, mod: SeededStochasticDepth, pass_: Pass) -> Act:
    """A residual branch dropped per sample (``row``) or per batch, each network its own
    draws: the same keep mask as :class:`SeededStochasticDepth` draws alone."""
    if not pass_.training or mod.p == 0.0:
        return a
    if pass_.seeds is None:
        raise Unsupported("stochastic depth needs per-network seeds")
    p = pass_.p
    shape = logical_shape(a, p)
    draw = (shape[0],) + (1,) * (len(shape) - 1) if mod.mode == "row" else (1,) * len(shape)
    keep = keep_mask(pass_.seeds, pass_.step, mod.layer, mod.p, draw)  # [P, *draw]
    survival = 1.0 - mod.p
    t = to_pop(a, p) * keep  # in this order, as the module computes it
    if survival > 0.0:
        t = t / survival
    return Act(from_pop(t, PACKED, p), PACKED) if a.layout == PACKED else Act(t, POP)


def _pool(pool: Callable[[torch.Tensor], torch.Tensor], a: Act, p: int) -> Act:
    """Pooling acts on each channel: shared and packed layouts as they are."""
    if a.layout == POP:
        if a.t.dim() < 4:
            raise Unsupported("pooling a Linear layer's output")
        a = Act(to_packed(a, p), PACKED)
    return Act(pool(a.t), a.layout)


def _flatten(a: Act, start: int, end: int, p: int) -> Act:
    if start != 1 or end != -1:
        nd = len(logical_shape(a, p))
        start, end = (d + nd if d < 0 else d for d in (start, end))
        if start == 0 or end < start:
            raise Unsupported(f"flatten({start}, {end}) over the batch")
        return Act(to_pop(a, p).flatten(start + 1, end + 1), POP)
    if a.layout == SHARED:
        return Act(a.t.flatten(1), SHARED)
    if a.layout == PACKED:
        t = a.t
        return Act(t.reshape(t.shape[0], p, -1).transpose(0, 1), POP)
    return Act(a.t.flatten(2), POP)


# ---------------------------------------------------------------------- functions, methods
def _same_layout(a: Act, b: Act, p: int) -> tuple[torch.Tensor, torch.Tensor, str]:
    if a.layout == b.layout:
        return a.t, b.t, a.layout
    if PACKED in (a.layout, b.layout):
        return to_packed(a, p), to_packed(b, p), PACKED
    return to_pop(a, p), to_pop(b, p), POP


def _binary(fn, x, y, p: int):
    if isinstance(x, Weight) or isinstance(y, Weight):
        return _binary_weight(fn, x, y, p)
    if isinstance(x, Act) and isinstance(y, Act):
        s, t, layout = _same_layout(x, y, p)
        return Act(fn(s, t), layout)
    if isinstance(x, Act):
        if isinstance(y, torch.Tensor) and y.dim() > 0:
            raise Unsupported("arithmetic with a constant tensor")
        return Act(fn(x.t, y), x.layout)
    if isinstance(y, Act):
        if isinstance(x, torch.Tensor) and x.dim() > 0:
            raise Unsupported("arithmetic with a constant tensor")
        return Act(fn(x, y.t), y.layout)
    return fn(x, y)


def _binary_weight(fn, x, y, p: int):
    """Arithmetic where a parameter takes part: with an activation it is per network (the
    population layout), with a number it stays a parameter."""
    if isinstance(x, Act) or isinstance(y, Act):
        a = x if isinstance(x, Act) else y
        nd = len(logical_shape(a, p))
        s = to_pop(x, p) if isinstance(x, Act) else x.aligned(nd, p)
        t = to_pop(y, p) if isinstance(y, Act) else y.aligned(nd, p)
        return Act(fn(s, t), POP)
    if isinstance(x, Weight) and isinstance(y, Weight):
        if x.t.dim() != y.t.dim():
            raise Unsupported("arithmetic of parameters of different ranks")
        return Weight(fn(x.t, y.t))
    if isinstance(x, torch.Tensor) and x.dim() > 0 or isinstance(y, torch.Tensor) and y.dim() > 0:
        raise Unsupported("arithmetic of a parameter with a constant tensor")
    return Weight(fn(x.t, y) if isinstance(x, Weight) else fn(x, y.t))


def _physical_dim(a: Act, dim: int, p: int) -> int:
    """The physical dimension of logical ``dim`` (only batch-preserving, non-channel dims
    of a packed layout map one to one)."""
    nd = len(logical_shape(a, p))
    dim = dim + nd if dim < 0 else dim
    if dim == 0:
        raise Unsupported("an operation over the batch dimension")
    if a.layout == SHARED:
        return dim
    if a.layout == POP:
        return dim + 1
    if dim == 1:
        raise Unsupported("an operation over the channel dimension of a convolution's output")
    return dim


def _reduce(fn, a: Act, dims, keepdim: bool, p: int) -> Act:
    dims = [dims] if isinstance(dims, int) else list(dims)
    phys = [_physical_dim(a, d, p) for d in dims]
    return Act(fn(a.t, phys, keepdim=keepdim), a.layout)


def _cat(items: list, dim: int, p: int) -> Act:
    acts = [x for x in items if isinstance(x, Act)]
    if len(acts) != len(items):
        raise Unsupported("concatenating activations with constants")
    layouts = {x.layout for x in acts}
    if layouts == {SHARED}:
        return Act(torch.cat([x.t for x in acts], dim), SHARED)
    layout = PACKED if PACKED in layouts else POP
    ts = [to_packed(x, p) if layout == PACKED else to_pop(x, p) for x in acts]
    nd = len(logical_shape(acts[0], p))
    dim = dim + nd if dim < 0 else dim
    if dim == 0:
        raise Unsupported("concatenation along the batch")
    if layout == POP:
        return Act(torch.cat(ts, dim + 1), POP)
    if dim >= 2:
        return Act(torch.cat(ts, dim), PACKED)
    views = [t.reshape(t.shape[0], p, t.shape[1] // p, *t.shape[2:]) for t in ts]
    joined = torch.cat(views, 2)
    return Act(joined.reshape(joined.shape[0], -1, *joined.shape[3:]), PACKED)


def _getitem(a, index, p: int):
    if not isinstance(a, Act):
        return a[index]
    index = index if isinstance(index, tuple) else (index,)
    if any(i is Ellipsis or i is None for i in index):
        raise Unsupported("indexing with ... or None")
    if index and index[0] != slice(None):
        raise Unsupported("indexing the batch")
    if a.layout == SHARED:
        return Act(a.t[index], SHARED)
    if a.layout == POP:
        return Act(a.t[(slice(None), *index)], POP)
    if len(index) > 1 and index[1] != slice(None):
        view = a.t.reshape(a.t.shape[0], p, a.t.shape[1] // p, *a.t.shape[2:])
        t = view[(slice(None), slice(None), *index[1:])]
        return Act(t.reshape(t.shape[0], -1, *t.shape[3:]), PACKED)
    return Act(a.t[index], PACKED)


def _pad(a: Act, pad: tuple[int, ...], p: int, mode: str = "constant", value: float = 0.0):
    nd = len(logical_shape(a, p))
    touched = nd - len(pad) // 2  # first logical dim that is padded
    if a.layout == PACKED and touched <= 1:
        if touched < 1:
            raise Unsupported("padding the batch")
        t = a.t
        view = t.reshape(t.shape[0], p, t.shape[1] // p, *t.shape[2:])
        out = F.pad(view, pad, mode, value)
        return Act(out.reshape(out.shape[0], -1, *out.shape[3:]), PACKED)
    if touched < 1:
        raise Unsupported("padding the batch")
    return Act(F.pad(a.t, pad, mode, value), a.layout)


def _reshape(a: Act, shape: tuple, p: int) -> Act:
    """The flattening reshapes ``x.view(x.size(0), -1)`` and ``x.view(-1, N)``, and any
    reshape that keeps the batch as its first dimension (ShuffleNet's channel shuffle)."""
    shape = tuple(shape[0]) if len(shape) == 1 and isinstance(shape[0], (tuple, list)) \
        else tuple(shape)
    logical = logical_shape(a, p)
    per_sample = math.prod(logical[1:])
    if len(shape) == 2 and (shape[0] == logical[0] and shape[1] in (-1, per_sample)
                            or shape[0] == -1 and shape[1] == per_sample):
        return _flatten(a, 1, -1, p)
    if tuple(shape) == logical:
        return a
    if shape and shape[0] == logical[0] and all(isinstance(d, int) for d in shape):
        return Act(to_pop(a, p).reshape(p, *shape), POP)
    raise Unsupported(f"reshape to {shape}")


def _transpose(a: Act, d0: int, d1: int, p: int) -> Act:
    """Swap two logical dimensions other than the batch (in the population layout)."""
    nd = len(logical_shape(a, p))
    d0, d1 = (d + nd if d < 0 else d for d in (d0, d1))
    if 0 in (d0, d1):
        raise Unsupported("a transpose of the batch dimension")
    return Act(to_pop(a, p).transpose(d0 + 1, d1 + 1), POP)


def _chunk(a: Act, chunks: int, dim: int, p: int) -> tuple[Act, ...]:
    """``x.chunk(chunks, dim)`` along a dimension other than the batch."""
    nd = len(logical_shape(a, p))
    dim = dim + nd if dim < 0 else dim
    if dim == 0:
        raise Unsupported("chunks of the batch")
    return tuple(Act(t, POP) for t in to_pop(a, p).chunk(chunks, dim + 1))


def _permute(a: Act, dims, p: int) -> Act:
    dims = tuple(dims[0]) if len(dims) == 1 and isinstance(dims[0], (tuple, list)) \
        else tuple(dims)
    nd = len(logical_shape(a, p))
    dims = tuple(d + nd if d < 0 else d for d in dims)
    if not dims or dims[0] != 0:
        raise Unsupported("a permutation that moves the batch dimension")
    return Act(to_pop(a, p).permute(0, 1, *[d + 1 for d in dims[1:]]), POP)


def _softmax(a: Act, dim: int, p: int) -> Act:
    return Act(a.t.softmax(_physical_dim(a, dim, p)), a.layout)


def _matmul(x, y, p: int) -> Act:
    if not (isinstance(x, Act) and isinstance(y, Act)):
        raise Unsupported("a matrix product with a constant or a parameter")
    if len(logical_shape(x, p)) < 3 or len(logical_shape(y, p)) < 3:
        raise Unsupported("a matrix product over the batch dimension")
    return Act(torch.matmul(to_pop(x, p), to_pop(y, p)), POP)


def _functional_layer_norm(a: Act, shape, weight, bias, eps: float, p: int) -> Act:
    x = to_pop(a, p)  # (the normalised dimensions are the trailing ones of [P, B, ...])
    out = F.layer_norm(x, tuple(shape), None, None, eps)
    nd = x.dim() - 1
    for w, op in ((weight, torch.mul), (bias, torch.add)):
        if isinstance(w, Weight):
            out = op(out, w.aligned(nd, p))
        elif w is not None:
            raise Unsupported("layer_norm with a constant weight")
    return Act(out, POP)


def _function(target: Callable, args, kwargs, pass_: Pass):
    p = pass_.p
    if target is torch.permute:
        return _permute(args[0], args[1:] or (kwargs["dims"],), p)
    if target in (F.softmax, torch.softmax):
        return _softmax(args[0], args[1] if len(args) > 1 else kwargs["dim"], p)
    if target in (operator.matmul, torch.matmul):
        return _matmul(args[0], args[1], p)
    if target is F.layer_norm:
        named = dict(zip(("input", "normalized_shape", "weight", "bias", "eps"), args))
        named.update(kwargs)
        return _functional_layer_norm(named["input"], named["normalized_shape"],
                                      named.get("weight"), named.get("bias"),
                                      named.get("eps", 1e-5), p)
    if target in INTEGER_ARITHMETIC and not any(isinstance(v, Act) for v in args):
        return target(*args, **kwargs)  # sizes computed from .size(): plain numbers
    if target is torch.transpose:
        return _transpose(args[0], *args[1:3], p)
    if target is torch.chunk:
        return _chunk(args[0], args[1], args[2] if len(args) > 2 else kwargs.get("dim", 0), p)
    if target in BINARY:
        return _binary(BINARY[target], args[0], args[1], p)
    if target is operator.getitem:
        return _getitem(args[0], args[1], p)
    if target is getattr:
        obj, name = args
        if isinstance(obj, Act) and name == "shape":
            return torch.Size(logical_shape(obj, p))
        if isinstance(obj, Act):
            raise Unsupported(f"attribute {name} of an activation")
        return getattr(obj, name)
    if target in ELEMENTWISE_FUNCTIONS:
        a, rest = args[0], args[1:]
        kwargs = {k: v for k, v in kwargs.items() if k != "inplace"}
        return Act(target(a.t, *rest, **kwargs), a.layout)
    if target in (torch.flatten,):
        start = args[1] if len(args) > 1 else kwargs.get("start_dim", 0)
        end = args[2] if len(args) > 2 else kwargs.get("end_dim", -1)
        return _flatten(args[0], start, end, p)
    if target in POOL_FUNCTIONS:
        return _pool(lambda t: target(t, *args[1:], **kwargs), args[0], p)
    if target is torch.cat:
        return _cat(list(args[0]), args[1] if len(args) > 1 else kwargs.get("dim", 0), p)
    if target is F.pad:
        return _pad(args[0], tuple(args[1]), p, *args[2:], **kwargs)
    if target is F.dropout:
        training = args[2] if len(args) > 2 else kwargs.get("training", True)
        rate = args[1] if len(args) > 1 else kwargs.get("p", 0.5)
        if training and pass_.training and rate > 0:
            raise Unsupported("functional dropout in forward (use nn.Dropout)")
        return args[0]
    if target in (torch.mean, torch.sum, torch.amax):
        dims = args[1] if len(args) > 1 else kwargs.get("dim")
        if dims is None:
            raise Unsupported(f"{target.__name__} over every dimension")
        return _reduce(target, args[0], dims, kwargs.get("keepdim", False), p)
    for leaf in LEAF_CALLS:  # functions other modules handle (engine/windows.py: Swin's)
        got = leaf(target, args, kwargs, pass_)
        if got is not None:
            return got
    raise Unsupported(f"function {getattr(target, '__name__', target)}")


def _method(name: str, args, kwargs, pass_: Pass):
    p = pass_.p
    self, rest = args[0], args[1:]
    if isinstance(self, Weight):
        if name == "expand" and len(rest) == self.t.dim() - 1:
            # a parameter expanded over the batch (ViT's class token): one per sample
            size = [self.t.shape[0]] + [s if s != -1 else self.t.shape[i + 1]
                                        for i, s in enumerate(rest)]
            return Act(self.t.expand(*size), POP)
        raise Unsupported(f"method .{name}() of a parameter")
    if not isinstance(self, Act):
        return getattr(self, name)(*rest, **kwargs)
    if name == "permute":
        return _permute(self, rest, p)
    if name == "softmax":
        return _softmax(self, rest[0] if rest else kwargs["dim"], p)
    if name in ELEMENTWISE_METHODS:
        return Act(getattr(self.t, name)(*rest, **kwargs), self.layout)
    if name in NOOP_METHODS:
        return self
    if name in BINARY_METHODS:
        return _binary(BINARY_METHODS[name], self, rest[0], p)
    if name == "size":
        shape = logical_shape(self, p)
        return torch.Size(shape) if not rest and "dim" not in kwargs else \
            shape[rest[0] if rest else kwargs["dim"]]
    if name == "dim":
        return len(logical_shape(self, p))
    if name in ("view", "reshape"):
        return _reshape(self, rest, p)
    if name == "transpose":
        return _transpose(self, *rest[:2], p)
    if name == "chunk":
        return _chunk(self, rest[0], rest[1] if len(rest) > 1 else kwargs.get("dim", 0), p)
    if name == "flatten":
        start = rest[0] if rest else kwargs.get("start_dim", 0)
        end = rest[1] if len(rest) > 1 else kwargs.get("end_dim", -1)
        return _flatten(self, start, end, p)
    if name in ("mean", "sum", "amax"):
        dims = rest[0] if rest else kwargs.get("dim")
        if dims is None:
            raise Unsupported(f"{name}() over every dimension")
        return _reduce(getattr(torch, name), self, dims, kwargs.get("keepdim", False), p)
    raise Unsupported(f"method .{name}()")
