"""Truly sparse training of fully connected networks (``engine.trainer: sparse``).

After Curci, Mocanu & Pechenizkiy, "Truly sparse neural networks at scale" (2021), and the
Sparse Evolutionary Training of Mocanu et al., "Scalable training of artificial neural networks
with adaptive sparse connectivity inspired by network science", Nature Communications 2018.

Each ``Linear`` layer keeps only its kept weights: a ``[nnz]`` values tensor (the trained
parameter) and fixed row/column indices. The forward product is ``torch.sparse.mm`` with a
CSR matrix built on the values; the backward gives the input gradient with the transposed CSR
matrix and the values' gradient with ``torch.sparse.sampled_addmm`` (the dense product
``grad_out^T @ x`` computed only at the kept positions). Every step so costs in proportion to
the kept weights, never to the dense shape.

CSR, not COO: measured on this CPU (torch 2.13, 4096 x 4096 at 1% density, batch 128, two
threads) a CSR product took 12.6 ms against 26.9 ms for COO, and ``sampled_addmm`` (CSR only)
gave the weight gradient in 58 ms against 750 ms for a gather-and-sum over COO indices.
The dense operand of the CSR product must be contiguous: with the transposed view ``x.t()``
the CPU kernel took 22.9 ms for 4096 x 784 at 1% density and batch 128, with
``x.t().contiguous()`` 1.2 ms (COO: 15 ms).

SET (``engine.sparse_regrow`` = zeta > 0): after every epoch each layer drops the fraction zeta
of its kept weights with the smallest magnitude and regrows as many at random empty positions
(weights drawn as PyTorch's ``Linear`` draws them, optimiser state zero), on the indices and
values themselves; no dense mask exists. Networks train one after another (a loop over the
task's rows). Without regrowth the results equal the masked dense trainer's.

Neuron importance removal (``engine.sparse_neuron_prune`` = f > 0), after the paper's
importance pruning: after every epoch (before the SET step) each hidden layer -- the outputs
of a ``Linear`` layer that feed the next ``Linear`` layer through elementwise modules only --
loses the fraction f of its remaining neurons with the lowest importance. Importance
(``engine.sparse_neuron_importance``) is the sum of the absolute incoming weights
(``incoming``, the default), or of incoming and outgoing weights (``in_out``); the paper leaves
open whether outgoing weights count, so both are named options. A removed neuron's row, bias
and optimiser state leave the producing layer and its column leaves the consuming layer: both
sparse matrices shrink (``shape`` gets smaller; ``out_ids``/``in_ids`` map the remaining rows
and columns to the original ones, so exported weights and masks keep the original shape, with
zeros for removed neurons). At least one neuron per layer stays, and a removal that would
leave the consuming layer without any weight is skipped for that layer. With f = 0 nothing
changes.
"""

from __future__ import annotations

import math
import warnings
from typing import Any

import torch
from torch import nn

from ..errors import UserError
from ..masks import unflatten
from .memory import require_memory
from .precision import precision_scope
from .settings import batch_order, steps_per_run
from .task import EvalTask, PopulationResult

#: elementwise modules the sparse trainer passes through unchanged
ELEMENTWISE = (nn.ReLU, nn.Tanh, nn.GELU, nn.SiLU, nn.Sigmoid, nn.LeakyReLU, nn.ELU,
               nn.Identity)


def _csr(crow, col, values, shape):
    # Indices are built sorted here, so torch's per-call invariant check would only cost time;
    # the beta-state warning of CSR is silenced for the same reason.
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        return torch.sparse_csr_tensor(crow, col, values, shape, check_invariants=False)


class _SparseLinearFn(torch.autograd.Function):
    """``x @ W^T`` with ``W`` sparse (CSR, values given); gradients for ``x`` and values."""

    @staticmethod
    def forward(ctx, x, values, layer):
        w = _csr(layer.crow, layer.col, values, layer.shape)
        ctx.save_for_backward(x, values)
        ctx.layer = layer
        return torch.sparse.mm(w, x.t().contiguous()).t()

    @staticmethod
    def backward(ctx, grad):
        x, values = ctx.saved_tensors
        layer = ctx.layer
        gx = gv = None
        if ctx.needs_input_grad[0]:
            wt = _csr(layer.t_crow, layer.t_col, values[layer.t_perm],
                                         (layer.shape[1], layer.shape[0]))
            gx = torch.sparse.mm(wt, grad.t().contiguous()).t()
        if ctx.needs_input_grad[1]:
            pattern = _csr(layer.crow, layer.col, torch.zeros_like(values),
                                              layer.shape)
            gv = torch.sparse.sampled_addmm(pattern, grad.t().contiguous(),
                                            x.contiguous(), beta=0.0).values()
        return gx, gv, None


class SparseLinear(nn.Module):
    """A ``Linear`` layer holding only its kept weights (row-major ``values`` + indices)."""

    def __init__(self, rows: torch.Tensor, cols: torch.Tensor, values: torch.Tensor,
                 bias: torch.Tensor | None, shape: tuple[int, int]):
        super().__init__()
        self.shape = shape
        self.full_shape = shape
        self.out_ids = torch.arange(shape[0], device=values.device)
        self.in_ids = torch.arange(shape[1], device=values.device)
        self.values = nn.Parameter(values.clone())
        self.bias = None if bias is None else nn.Parameter(bias.clone())
        self.set_indices(rows, cols)

    def set_indices(self, rows: torch.Tensor, cols: torch.Tensor) -> None:
        """Fix the structure (``rows``/``cols`` sorted row-major, as ``values`` is)."""
        out, inp = self.shape
        self.rows, self.cols = rows, cols
        self.crow = torch.ops.aten._convert_indices_from_coo_to_csr(rows, out)
        self.col = cols
        self.t_perm = torch.argsort(cols * out + rows)
        self.t_crow = torch.ops.aten._convert_indices_from_coo_to_csr(cols[self.t_perm], inp)
        self.t_col = rows[self.t_perm]

    def forward(self, x):
        y = _SparseLinearFn.apply(x, self.values, self)
        return y if self.bias is None else y + self.bias

    def dense_weight(self) -> torch.Tensor:
        """The weight at the original shape (removed neurons' rows/columns are zero)."""
        w = torch.zeros(self.full_shape, dtype=self.values.dtype, device=self.values.device)
        w[self.out_ids[self.rows], self.in_ids[self.cols]] = self.values.detach()
        return w

    def dense_bias(self) -> torch.Tensor | None:
        if self.bias is None:
            return None
        b = torch.zeros(self.full_shape[0], dtype=self.bias.dtype, device=self.bias.device)
        b[self.out_ids] = self.bias.detach()
        return b


def _shrink_param(module: nn.Module, name: str, keep: torch.Tensor,
                  opt: torch.optim.Optimizer) -> None:
    """Replace parameter ``name`` by its entries at ``keep`` -- a new parameter (autograd fixes
    a parameter's shape), swapped into the optimiser with its state filtered alike."""
    old = getattr(module, name)
    new = nn.Parameter(old.detach()[keep].clone())
    for group in opt.param_groups:
        group["params"] = [new if p is old else p for p in group["params"]]
    state = opt.state.pop(old, None)
    if state:
        opt.state[new] = {k: (b[keep] if torch.is_tensor(b) and b.shape == keep.shape else b)
                          for k, b in state.items()}
    setattr(module, name, new)


def _hidden_pairs(net: "SparseNetwork") -> list[tuple["SparseLinear", "SparseLinear"]]:
    """(producer, consumer) pairs of sparse layers joined by elementwise modules only."""
    from ..models.base import AllReLU
    pairs, prev = [], None
    for mod in net.net:
        if isinstance(mod, SparseLinear):
            if prev is not None:
                pairs.append((prev, mod))
            prev = mod
        elif not isinstance(mod, ELEMENTWISE + (AllReLU,)):
            prev = None
    return pairs


def remove_neurons(net: "SparseNetwork", fraction: float, importance: str,
                   opt: torch.optim.Optimizer) -> int:
    """Remove the fraction ``fraction`` of each hidden layer's least important neurons;
    returns how many neurons went."""
    removed = 0
    with torch.no_grad():
        for prod, cons in _hidden_pairs(net):
            width = prod.shape[0]
            k = min(int(fraction * width), width - 1)
            if k <= 0:
                continue
            a = prod.values.detach().abs()
            score = torch.zeros(width, dtype=a.dtype, device=a.device).index_add_(
                0, prod.rows, a)
            if importance == "in_out":
                score.index_add_(0, cons.cols, cons.values.detach().abs())
            order = torch.argsort(score, stable=True)
            keep_n = torch.ones(width, dtype=torch.bool, device=a.device)
            keep_n[order[:k]] = False
            keep_c = keep_n[cons.cols]
            if not bool(keep_c.any()):
                continue
            keep_p = keep_n[prod.rows]
            new_id = torch.cumsum(keep_n, 0) - 1
            # producer: drop rows (values stay row-major sorted after filtering)
            _shrink_param(prod, "values", keep_p, opt)
            if prod.bias is not None:
                _shrink_param(prod, "bias", keep_n, opt)
            prod.out_ids = prod.out_ids[keep_n]
            prod.shape = (width - k, prod.shape[1])
            prod.set_indices(new_id[prod.rows[keep_p]], prod.cols[keep_p])
            # consumer: drop columns
            _shrink_param(cons, "values", keep_c, opt)
            cons.in_ids = cons.in_ids[keep_n]
            cons.shape = (cons.shape[0], width - k)
            cons.set_indices(cons.rows[keep_c], new_id[cons.cols[keep_c]])
            removed += k
    return removed


def check_sparse_model(template: nn.Module, model_name: str) -> list[tuple[str, nn.Module]]:
    """The template's layers in order, or a one-line error naming the first unsupported one."""
    if not isinstance(template, nn.Sequential):
        raise UserError(f"engine.trainer: sparse trains fully connected networks "
                        f"(nn.Sequential of Linear and elementwise activations); {model_name} "
                        f"is a {type(template).__name__}; use engine.trainer: per_network")
    from ..models.base import AllReLU
    supported = (nn.Linear, nn.Flatten, AllReLU) + ELEMENTWISE
    for name, mod in template.named_modules():
        if not isinstance(mod, supported) and not list(mod.children()):
            raise UserError(f"engine.trainer: sparse does not support layer {name} "
                            f"({type(mod).__name__}) of {model_name}; it trains Linear layers "
                            f"with elementwise activations; use engine.trainer: per_network")
    layers = list(template.named_children())
    for name, mod in layers:
        if not isinstance(mod, supported):
            raise UserError(f"engine.trainer: sparse does not support layer {name} "
                            f"({type(mod).__name__}) of {model_name}; it trains a flat "
                            f"Sequential; use engine.trainer: per_network")
    return layers


class SparseNetwork(nn.Module):
    """One network of the template with every ``Linear`` replaced by a :class:`SparseLinear`."""

    def __init__(self, layers, state: dict[str, torch.Tensor], masks: dict[str, torch.Tensor],
                 rescale: bool):
        super().__init__()
        mods = []
        for name, mod in layers:
            if isinstance(mod, nn.Linear):
                w = state[f"{name}.weight"]
                m = masks.get(f"{name}.weight")
                m = torch.ones_like(w, dtype=torch.bool) if m is None else m.bool()
                if not bool(m.any()):
                    raise UserError(f"layer {name} keeps no weight at this sparsity; lower the "
                                    f"sparsity or allocate more weights to it")
                rows, cols = m.nonzero(as_tuple=True)
                values = w[rows, cols]
                if rescale:
                    values = values * m.float().mean().clamp_min(1e-12).rsqrt().to(w.dtype)
                mods.append(SparseLinear(rows, cols, values, state.get(f"{name}.bias"),
                                         tuple(w.shape)))
            else:
                mods.append(mod)
        self.names = [n for n, _ in layers]
        self.net = nn.Sequential(*mods)

    def forward(self, x):
        return self.net(x)

    def sparse_layers(self) -> dict[str, SparseLinear]:
        return {n: m for n, m in zip(self.names, self.net) if isinstance(m, SparseLinear)}


def set_step(layer: SparseLinear, zeta: float, opt: torch.optim.Optimizer,
             gen: torch.Generator) -> None:
    """Drop the fraction ``zeta`` of smallest-magnitude weights, regrow as many at random empty
    positions, and re-sort values, indices and optimiser state row-major."""
    nnz = layer.values.numel()
    k = int(zeta * nnz)
    out, inp = layer.shape
    if k == 0 or nnz + k > out * inp:
        return
    with torch.no_grad():
        v = layer.values
        drop = torch.topk(v.abs(), k, largest=False).indices
        keep = torch.ones(nnz, dtype=torch.bool, device=v.device)
        keep[drop] = False
        flat = layer.rows * inp + layer.cols
        taken = set(flat[keep].tolist())
        new: list[int] = []
        while len(new) < k:  # rejection sampling: cheap at the high sparsity this is for
            draw = torch.randint(0, out * inp, (2 * k,), generator=gen).tolist()
            for f in draw:
                if f not in taken:
                    taken.add(f)
                    new.append(f)
                    if len(new) == k:
                        break
        new_t = torch.tensor(new, dtype=flat.dtype, device=flat.device)
        bound = 1.0 / math.sqrt(inp)
        fresh = (torch.rand(k, generator=gen, dtype=v.dtype) * 2 - 1).to(v.device) * bound
        allflat = torch.cat([flat[keep], new_t])
        order = torch.argsort(allflat)
        v.data = torch.cat([v[keep], fresh])[order]
        state = opt.state.get(layer.values)
        if state:
            for name, buf in list(state.items()):
                if torch.is_tensor(buf) and buf.shape == keep.shape:
                    state[name] = torch.cat([buf[keep], torch.zeros_like(buf[:k])])[order]
        allflat = allflat[order]
        layer.set_indices(allflat // inp, allflat % inp)


class SparseTrainer:
    """``engine.trainer: sparse``: fully connected networks on sparse matrices, one at a time.

    Takes the same arguments as the other trainers and returns the same columns
    (``train_loss``, ``val_accuracy``, ``val_loss``, test columns, ``magnitude``,
    ``diverged``); training hooks, evolved activations and per-network settings are not
    supported (a one-line error).
    """

    name = "sparse"

    def __init__(self, spec, data, settings, layout=None, device="cpu", engine=None,
                 augment=()):
        from .settings import EngineConfig
        from .dropout import template
        from .precision import float_dtype
        self.spec, self.settings, self.layout = spec, settings, layout
        self.device = torch.device(device)
        self.engine = engine or EngineConfig()
        if augment:
            raise UserError("engine.trainer: sparse does not augment data; drop the "
                            "augmentation or use engine.trainer: per_network")
        self.dtype = float_dtype(self.engine.precision)
        self.data = data.place(self.device, self.dtype)  # mapped inputs stay on the host
        self.template = template(spec)
        self.layers = check_sparse_model(self.template, spec.describe())

    def describe(self) -> str:
        e = self.engine
        return (f"sparse trainer (CSR weights), one network at a time on {self.device}"
                + (f", SET regrowth zeta={e.sparse_regrow}" if e.sparse_regrow else "")
                + (f", neuron removal {e.sparse_neuron_prune} per epoch "
                   f"({e.sparse_neuron_importance} importance)"
                   if e.sparse_neuron_prune else ""))

    def _network(self, task: EvalTask, i: int) -> SparseNetwork:
        if task.inits is not None:
            state = {k: v[i] for k, v in task.inits.items()}
        else:
            state = dict(task.init)
        state = {k: v.to(self.device, self.dtype) for k, v in state.items()}
        masks: dict[str, torch.Tensor] = {}
        if task.masks is not None:
            masks = {k: m[0] for k, m in
                     unflatten(self.layout, task.masks[i:i + 1].to(self.device)).items()}
        return SparseNetwork(self.layers, state, masks, task.rescale_init).to(self.device)

    def run(self, task: EvalTask) -> PopulationResult:
        if task.hooks or task.activations is not None or task.network_settings:
            raise UserError("engine.trainer: sparse supports neither training hooks, evolved "
                            "activations nor per-network settings; use engine.trainer: "
                            "per_network for this method")
        self.check(task)
        return PopulationResult.concat([self._train_one(task, i) for i in range(len(task))])

    def check(self, task: EvalTask) -> None:
        """Before any network trains: every layer of every network keeps a weight, and the
        largest network's sparse matrices fit in memory (one line each otherwise)."""
        masks = {} if task.masks is None else unflatten(self.layout, task.masks.bool())
        cfg = self.settings
        opt_states = 2 if cfg.optimizer == "adam" else (1 if cfg.momentum > 0 else 0)
        worst, width = 0, 0
        for i in range(len(task)):
            nbytes = 0
            for name, mod in self.layers:
                if not isinstance(mod, nn.Linear):
                    continue
                m = masks.get(f"{name}.weight")
                nnz = mod.weight.numel() if m is None else int(m[i].sum())
                if nnz == 0:
                    raise UserError(f"layer {name} keeps no weight at this sparsity; lower the "
                                    f"sparsity or allocate more weights to it")
                # values, gradient, optimiser state (4 B each at fp32) and the int64 row,
                # column, CSR and transposed indices (~5 x 8 B) per kept weight
                nbytes += nnz * (self.dtype.itemsize * (2 + opt_states) + 40)
                width = max(width, mod.out_features)
            worst = max(worst, nbytes)
        act = 2 * cfg.batch_size * width * self.dtype.itemsize * len(self.layers)
        require_memory(worst + act, "one sparse network", "raise the sparsity or lower the "
                       "hidden widths", self.device)

    def _train_one(self, task: EvalTask, i: int) -> PopulationResult:
        cfg, dev = self.settings, self.device
        net = self._network(task, i)
        opt = cfg.make_optimizer(net.parameters())
        y_all = self.data.train_y
        n = len(y_all)
        total = steps_per_run(n, cfg.batch_size, task.epochs)
        order_device = "cpu" if self.data.on_disk else dev  # index mapped rows on the host
        seed = int(task.network_seeds()[i])
        gen = torch.Generator().manual_seed(seed + 104729)
        loss_sum = torch.zeros(1, dtype=self.dtype, device=dev)
        bad = torch.zeros(1, dtype=torch.bool, device=dev)
        seen, epoch, step = 0, -1, 0
        zeta = self.engine.sparse_regrow
        with precision_scope(self.engine.precision, dev):
            for ep, idx in batch_order(n, cfg.batch_size, task.epochs, task.data_seed,
                                       order_device):
                if ep != epoch:
                    if epoch >= 0 and self.engine.sparse_neuron_prune > 0:
                        remove_neurons(net, self.engine.sparse_neuron_prune,
                                       self.engine.sparse_neuron_importance, opt)
                    if epoch >= 0 and zeta > 0:
                        for layer in net.sparse_layers().values():
                            set_step(layer, zeta, opt, gen)
                    loss_sum.zero_()
                    seen, epoch = 0, ep
                for g in opt.param_groups:
                    g["lr"] = cfg.lr_at(step, total)
                out = net(self.data.inputs("train", idx, dev, self.dtype)).unsqueeze(0)
                per = cfg.per_network_loss(out, y_all[idx.to(dev)])
                opt.zero_grad(set_to_none=True)
                per.sum().backward()
                with torch.no_grad():
                    bad |= ~torch.isfinite(per)
                    loss_sum += per.detach() * len(idx)
                    seen += len(idx)
                opt.step()
                step += 1
            train_loss = loss_sum / seen if seen else torch.full((1,), float("nan"))
            return self._collect(task, net, train_loss, bad)

    def _evaluate(self, net, split: str):
        cfg = self.settings
        y = getattr(self.data, f"{split}_y")
        hits = torch.zeros(1, dtype=self.dtype, device=self.device)
        loss = torch.zeros(1, dtype=self.dtype, device=self.device)
        with torch.no_grad():
            for s in range(0, len(y), 1024):
                xb = self.data.inputs(split, slice(s, s + 1024), self.device, self.dtype)
                bl, bh = cfg.scores(net(xb).unsqueeze(0), y[s:s + 1024])
                hits += bh
                loss += bl
        return cfg.accuracy(hits, len(y), y), loss / max(len(y), 1)

    def _collect(self, task, net: SparseNetwork, train_loss, bad) -> PopulationResult:
        layers = net.sparse_layers()
        with torch.no_grad():
            for p in net.parameters():
                bad |= ~torch.isfinite(p).all()
            cols: dict[str, Any] = {"train_loss": train_loss}
            cols["val_accuracy"], cols["val_loss"] = self._evaluate(net, "val")
            if task.test:
                cols["test_accuracy"], cols["test_loss"] = self._evaluate(net, "test")
            masked = [] if task.masks is None else list(self.layout.names)
            vals = [layers[k[:-len(".weight")]].values.detach().abs() for k in masked
                    if k[:-len(".weight")] in layers]
            kept = sum(v.numel() for v in vals)
            cols["magnitude"] = torch.stack([sum(v.sum() for v in vals).double() /
                                             max(kept, 1)])
            cols["diverged"] = bad.double()
            metrics = {k: v.reshape(1).double().cpu() for k, v in cols.items()}
        if bool(bad.any()):
            warnings.warn("1 of 1 networks diverged (NaN/Inf loss); it gets the worst "
                          "fitness", RuntimeWarning, stacklevel=3)
            for k in ("val_accuracy", "test_accuracy"):
                if k in metrics:
                    metrics[k][:] = 0.0
        result = PopulationResult(metrics=metrics, extras={})
        if task.keep_weights:
            weights = {}
            for name, layer in layers.items():
                weights[f"{name}.weight"] = layer.dense_weight().unsqueeze(0).cpu()
                if layer.bias is not None:
                    weights[f"{name}.bias"] = layer.dense_bias().unsqueeze(0).cpu()
            result.weights = weights
        if ((self.engine.sparse_regrow > 0 or self.engine.sparse_neuron_prune > 0)
                and self.layout is not None):
            bits = []
            for k in self.layout.names:
                name = k[:-len(".weight")]
                bits.append(layers[name].dense_weight().ne(0).reshape(1, -1)
                            if name in layers else
                            torch.ones(1, self.layout.numel, dtype=torch.bool))
            result.masks = torch.cat(bits, 1).cpu()
        return result


__all__ = ["SparseLinear", "SparseNetwork", "SparseTrainer", "check_sparse_model",
           "remove_neurons", "set_step"]
