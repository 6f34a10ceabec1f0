"""Two trainers behind one protocol (``run(task) -> PopulationResult``), one training loop
(the sparse one is :mod:`neuroprune.engine.sparse`; :func:`~neuroprune.engine.autotune.
make_trainer` builds the configured one).

* :class:`StackedTrainer`: networks in chunks, each chunk one set of stacked tensors through
  the population forward (the compiled graph, or vmap);
* :class:`PerNetworkTrainer`: one network at a time through its own ``nn.Module`` (networks
  too large to stack; also the one-by-one reference the stacked trainer is tested against).

Both run :meth:`Trainer.train_chunk`: the same optimiser, schedule, masking, hooks, dropout
seeds and augmentation, so a network's result does not depend on the trainer, the chunking or
the other networks of its population. Pruned weights are zeroed before training and their
gradients masked before every step, so they and their optimiser state stay exactly zero for
any elementwise optimiser; hooks see the dense gradient before the masking.

With stacked parameters the per-step work outside the matrix products is memory-bound (a
LeNet-300-100 population of 1,024 holds 1.1 GB of weights), so the step touches each stacked
tensor as few times as it can: fresh gradients instead of zeroed-and-accumulated ones, a fused
optimiser, and the first layer's bias added inside its GEMM.
"""

from __future__ import annotations

import copy
import math
import warnings
from typing import Any

import torch
from torch import nn

from ..data import DataSplits
from ..data.augment import Augmenter
from ..masks import Layout, unflatten
from ..models import ModelSpec, build_model, torch_seeded
from .dropout import template
from .forward import ModuleForward, population_forward
from .graph import Pass
from .hooks import TrainState
from .memory import Footprint, footprint, free_memory, human
from .optim import PopulationOptimizer
from .precision import autocast, float_dtype, mask_dtype, precision_scope
from .settings import EngineConfig, TrainSettings, batch_order, steps_per_run
from .task import EvalTask, PopulationResult

TRAINERS = ("stacked", "per_network", "sparse")


def _compiled_activations(task: EvalTask, start: int, stop: int, device) -> dict | None:
    """Role -> ``[(index tensor, fn)]``, one entry per distinct formula of the networks."""
    if task.activations is None:
        return None
    from ..activations.expr import compile_formula
    acts = list(task.activations)[start:stop]
    out: dict[str, list] = {}
    for role in sorted({r for a in acts for r in a}):
        by_formula: dict[str, list[int]] = {}
        for i, a in enumerate(acts):
            by_formula.setdefault(a.get(role, "relu(x)"), []).append(i)
        out[role] = [(torch.tensor(ix, device=device), compile_formula(f))
                     for f, ix in by_formula.items()]
    return out


class Trainer:
    """What both trainers share: the data on the device, the template, the loop."""

    name = "trainer"

    def __init__(self, spec: ModelSpec, data: DataSplits, settings: TrainSettings,
                 layout: Layout | None = None, device: str | torch.device = "cpu",
                 engine: EngineConfig | None = None, augment: tuple[str, ...] = ()):
        self.spec, self.settings, self.layout = spec, settings, layout
        self.device = torch.device(device)
        self.engine = engine or EngineConfig()
        self.dtype = float_dtype(self.engine.precision)
        self.data = data.place(self.device, self.dtype)  # mapped inputs stay on the host
        self.augmenter = Augmenter(list(augment))
        self.template = template(spec)
        self.footprint: Footprint = estimate(self.template, data, settings, layout)
        self.mask_dtype = mask_dtype(self.device)
        from .output_structure import settings_hooks
        #: what the settings add to every training (multi-label metrics, regulariser)
        self.settings_hooks = settings_hooks(self.template, settings, data.num_classes)

    # ------------------------------------------------------------------ protocol
    def run(self, task: EvalTask) -> PopulationResult:
        raise NotImplementedError

    def describe(self) -> str:
        raise NotImplementedError

    # ------------------------------------------------------------------ the loop
    def _stack(self, task: EvalTask) -> tuple[dict, dict, dict]:
        """Parameters, buffers and masks of the task's networks, stacked on the device."""
        p, dev = len(task), self.device

        def place(v: torch.Tensor) -> torch.Tensor:
            return v.to(dev, self.dtype if v.is_floating_point() else v.dtype)
        if task.inits is not None:
            state = {k: place(v).clone() for k, v in task.inits.items()}
        else:
            state = {k: place(v).unsqueeze(0).expand(p, *v.shape).clone()
                     for k, v in task.init.items()}
        names = dict(self.template.named_parameters())
        params = {k: state[k] for k in names}
        buffers = {k: state[k] for k, _ in self.template.named_buffers()}
        masks: dict[str, torch.Tensor] = {}
        if task.masks is not None:
            if self.layout is None:
                raise ValueError("masks need the trainer's layout")
            masks = {k: m.to(self.mask_dtype) for k, m in
                     unflatten(self.layout, task.masks.to(dev)).items()}
        with torch.no_grad():
            for k, m in masks.items():
                params[k].mul_(m)
                if task.rescale_init:
                    density = m.reshape(p, -1).float().mean(1).clamp_min(1e-12)
                    params[k].mul_(density.rsqrt().view(-1, *[1] * (m.dim() - 1)))
        for v in params.values():
            v.requires_grad_(True)
        return params, buffers, masks

    def _optimizer(self, task: EvalTask, params: dict, p: int):
        """The fused optimiser of the run's settings, or, when networks have their own
        settings, the per-network one: ``(optimizer, [P] cosine flags or None)``."""
        cfg, dev = self.settings, self.device
        if not task.network_settings:
            return cfg.make_optimizer(params.values()), None
        given = {k: v.to(dev, self.dtype) for k, v in task.network_settings.items()}
        default = {"lr": cfg.lr, "momentum": cfg.momentum, "weight_decay": cfg.weight_decay,
                   "cosine": 1.0 if cfg.schedule == "cosine" else 0.0}
        value = {k: given.get(k, torch.full((p,), d, device=dev, dtype=self.dtype))
                 for k, d in default.items()}
        opt = PopulationOptimizer(params.values(), cfg.optimizer, value["lr"],
                                  value["momentum"], value["weight_decay"])
        return opt, value["cosine"]

    def train_chunk(self, task: EvalTask, forward, activations: dict | None) -> PopulationResult:
        """Train and evaluate the networks of ``task`` (one chunk) with ``forward``."""
        p, dev, cfg = len(task), self.device, self.settings
        params, buffers, masks = self._stack(task)
        seeds = task.network_seeds().to(dev)
        precision = self.engine.precision
        opt, cosine = self._optimizer(task, params, p)
        masked = [params[k] for k in masks]
        mask_list = list(masks.values())
        eval_batch = self.footprint.eval_batch(p, max(1 << 28, free_memory(dev) // 8))

        fwd = self._forward_fn(forward, params, buffers, seeds, activations,
                               lambda: state.step)
        evaluate = self._evaluate_fn(fwd, p, eval_batch)
        state = TrainState(p=p, params=params, buffers=buffers, masks=masks, optimizer=opt,
                           settings=cfg, seeds=seeds, total_steps=0, forward=fwd,
                           evaluate=evaluate, data=self.data, data_seed=task.data_seed,
                           rows=torch.arange(task.offset, task.offset + p, device=dev))
        hooks = [copy.deepcopy(h) for h in (*task.hooks, *self.settings_hooks)]
        y_all = self.data.train_y
        n = len(y_all)
        order_device = "cpu" if self.data.on_disk else dev  # index mapped rows on the host
        state.total_steps = steps_per_run(n, cfg.batch_size, task.epochs)
        loss_sum = torch.zeros(p, device=dev, dtype=self.dtype)
        bad = torch.zeros(p, dtype=torch.bool, device=dev)
        seen, epoch = 0, -1
        aug_gen = torch.Generator().manual_seed(int(task.data_seed) + 7919)
        aug = None

        def end_epoch() -> None:
            bad.logical_or_(~torch.isfinite(loss_sum))
            state.epoch_loss = loss_sum / max(seen, 1)
            for h in hooks:
                h.end_epoch(state)

        with precision_scope(precision, dev):
            for h in hooks:
                h.start(state)
            for ep, idx in batch_order(n, cfg.batch_size, task.epochs, task.data_seed,
                                       order_device):
                if ep != epoch:
                    if epoch >= 0:
                        end_epoch()
                    loss_sum.zero_()
                    seen, epoch, state.epoch = 0, ep, ep
                    if self.augmenter:
                        aug = self.augmenter.draw(n, aug_gen).to(dev)
                xb = self.data.inputs("train", idx, dev, self.dtype)  # one read for all P
                idx = idx.to(dev)
                yb = y_all[idx]
                if aug is not None:
                    xb = self.augmenter.apply(xb, aug[idx])
                state.x, state.y = xb, yb
                per = self._step(state, hooks, cosine, masked, mask_list)
                with torch.no_grad():  # a NaN/Inf loss stays in the sum: checked per epoch
                    loss_sum.add_(per.detach(), alpha=len(idx))
                    seen += len(idx)
            if epoch >= 0:
                end_epoch()
            return self._collect(task, state, hooks, loss_sum / max(seen, 1) if seen else
                                 torch.full((p,), float("nan"), device=dev), bad)

    def _forward_fn(self, forward, params, buffers, seeds, activations, step):
        """``fwd(x, training, capture=None, params_=None, buffers_=None)``: logits
        ``[P, B, C]`` of the chunk's networks (float32 or float64) at the step ``step()``."""
        p, dev, precision = len(seeds), self.device, self.engine.precision

        def fwd(x, training: bool, capture=None, params_=None, buffers_=None,
                own_leaves: bool = False) -> torch.Tensor:
            got, names = capture if capture is not None else (None, frozenset())
            pass_ = Pass(p=p, training=training, seeds=seeds, step=step(),
                         activations=activations, capture=got, capture_names=names,
                         own_leaves=own_leaves and params_ is None)
            with autocast(precision, dev):
                out = forward(params if params_ is None else params_,
                              buffers if buffers_ is None else buffers_, x, pass_)
            return out if out.dtype == torch.float64 else out.float()
        #: after the step's backward: gradients of the forward's own leaves to ``params``
        fwd.gather_grads = getattr(forward, "gather_grads", lambda: None)
        return fwd

    def _evaluate_fn(self, fwd, p: int, eval_batch: int):
        """``evaluate(split) -> (accuracy [P], loss [P])`` over a whole split, in batches of
        ``eval_batch``, without gradients."""
        dev, cfg = self.device, self.settings

        def evaluate(split: str) -> tuple[torch.Tensor, torch.Tensor]:
            y = getattr(self.data, f"{split}_y")
            hits = torch.zeros(p, device=dev, dtype=self.dtype)
            loss = torch.zeros(p, device=dev, dtype=self.dtype)
            with torch.no_grad():
                for s in range(0, len(y), eval_batch):
                    yb = y[s:s + eval_batch]
                    xb = self.data.inputs(split, slice(s, s + eval_batch), dev, self.dtype)
                    batch_loss, batch_hits = cfg.scores(fwd(xb, False), yb)
                    hits += batch_hits
                    loss += batch_loss
            return cfg.accuracy(hits, len(y), y), loss / max(len(y), 1)
        return evaluate

    @staticmethod
    def _step(state: TrainState, hooks, cosine, masked, mask_list) -> torch.Tensor:
        """One optimiser step of every network on ``state.x, state.y``; each network's loss
        ``[P]``. The learning rate follows the schedule (or each network's own); masked
        gradients keep pruned weights and their optimiser state at 0."""
        cfg, opt, total = state.settings, state.optimizer, state.total_steps
        if cosine is None:
            lr = cfg.lr_at(state.step, total)
            for g in opt.param_groups:
                g["lr"] = lr
        else:  # per-network settings: each its own rate and schedule
            factor = 0.5 * (1.0 + math.cos(math.pi * state.step / max(total, 1)))
            opt.set_scale(torch.where(cosine > 0, factor, 1.0))
        logits = state.forward(state.x, True, own_leaves=True)
        per = cfg.per_network_loss(logits, state.y)
        state.logits, state.loss = logits, per
        objective = per
        for h in hooks:
            extra = h.loss(state)
            if extra is not None:
                objective = objective + extra
        opt.zero_grad(set_to_none=True)  # backward writes fresh gradients
        objective.sum().backward()
        state.forward.gather_grads()
        with torch.no_grad():
            for h in hooks:
                h.after_backward(state)
            if mask_list:
                used = [(q.grad, m) for q, m in zip(masked, mask_list)
                        if q.grad is not None]  # a layer forward never reached
                torch._foreach_mul_([g for g, _ in used], [m for _, m in used])
        opt.step()
        with torch.no_grad():
            for h in hooks:
                h.after_step(state)
        state.step += 1
        return per

    def _collect(self, task: EvalTask, state: TrainState, hooks, train_loss, bad):
        p, params, masks = state.p, state.params, state.masks
        with torch.no_grad():
            bad |= ~torch.stack([torch.isfinite(v.reshape(p, -1)).all(1)
                                 for v in params.values()]).all(0)
            cols = {"train_loss": train_loss}
            cols["val_accuracy"], cols["val_loss"] = state.evaluate("val")
            if task.test:
                cols["test_accuracy"], cols["test_loss"] = state.evaluate("test")
            zero = torch.zeros(p, device=self.device, dtype=torch.float64)
            kept = sum((m.reshape(p, -1).sum(1).double() for m in masks.values()), zero)
            cols["magnitude"] = sum(((params[k].detach().abs() * m).reshape(p, -1).sum(1)
                                     .double() for k, m in masks.items()), zero) / kept.clamp_min(1)
            extras: dict[str, Any] = {}
            for h in hooks:
                extras.update(h.finish(state))
            cols.update(state.metrics)
            cols["diverged"] = bad.double()
            metrics = {k: v.double().cpu() for k, v in cols.items()}
        worst = metrics["diverged"].bool()
        if bool(worst.any()):
            warnings.warn(f"{int(worst.sum())} of {p} networks diverged (NaN/Inf loss); they "
                          f"get the worst fitness", RuntimeWarning, stacklevel=4)
            for k in ("val_accuracy", "test_accuracy"):
                if k in metrics:
                    metrics[k][worst] = 0.0
            for k, v in metrics.items():
                if k not in ("val_accuracy", "test_accuracy", "diverged"):
                    v[worst & ~torch.isfinite(v)] = float("nan")
        out = PopulationResult(metrics=metrics, extras=extras)
        if task.keep_weights:
            out.weights = {k: v.detach().cpu() for k, v in {**params, **state.buffers}.items()}
        if state.masks_changed and self.layout is not None:
            out.masks = torch.cat([masks[k].reshape(p, -1).bool() for k in self.layout.names],
                                  1).cpu()
        return out


class StackedTrainer(Trainer):
    """Networks in chunks of ``chunk_size``, each chunk as one set of stacked tensors."""

    name = "stacked"

    def __init__(self, spec, data, settings, layout=None, device="cpu", engine=None,
                 augment=()):
        super().__init__(spec, data, settings, layout, device, engine, augment)
        self.forward, self.fallback_reason = population_forward(
            self.template, tuple(self.data.input_shape))
        self.chunk_size = self.engine.chunk_size or self.default_chunk()

    def default_chunk(self) -> int:
        if self.device.type == "cpu":
            return 16  # keeps the working set in cache
        return max(1, min(4096, int(0.8 * free_memory(self.device) // self.footprint.training)))

    def describe(self) -> str:
        path = "population graph" if self.forward.kind == "graph" else \
            f"vmap: {self.fallback_reason}"
        return (f"stacked trainer ({path}), up to {self.chunk_size} networks per batch, "
                f"~{human(self.footprint.training)} per network; "
                f"{human(free_memory(self.device))} free on {self.device}")

    def run(self, task: EvalTask) -> PopulationResult:
        n, parts, start = len(task), [], 0
        while start < n:
            size = min(self.chunk_size, n - start)
            try:
                part = self.train_chunk(task.slice(start, start + size), self.forward,
                                        _compiled_activations(task, start, start + size,
                                                              self.device))
            except torch.cuda.OutOfMemoryError:
                if size == 1:
                    raise MemoryError(f"one network does not fit on {self.device}; use a "
                                      f"smaller model or batch size") from None
                self.chunk_size = max(1, size // 2)  # remembered for later generations
                warnings.warn(f"out of device memory with {size} networks at once; "
                              f"retrying with {self.chunk_size}", RuntimeWarning, stacklevel=2)
                if self.device.type == "cuda":
                    torch.cuda.empty_cache()
                continue
            parts.append(part)
            start += size
        return PopulationResult.concat(parts)


class PerNetworkTrainer(Trainer):
    """One network at a time, each through its own ``nn.Module``."""

    name = "per_network"

    def __init__(self, spec, data, settings, layout=None, device="cpu", engine=None,
                 augment=()):
        super().__init__(spec, data, settings, layout, device, engine, augment)
        self.module = copy.deepcopy(self.template).to(self.device)
        self.forward = ModuleForward(self.module)

    def describe(self) -> str:
        return (f"per-network trainer, one network at a time, "
                f"~{human(self.footprint.training)} per network; "
                f"{human(free_memory(self.device))} free on {self.device}")

    def run(self, task: EvalTask) -> PopulationResult:
        parts = []
        for i in range(len(task)):
            acts = _compiled_activations(task, i, i + 1, self.device)
            self.forward.set_activations(
                {role: groups[0][1] for role, groups in acts.items()} if acts else None)
            parts.append(self.train_chunk(task.slice(i, i + 1), self.forward, None))
        return PopulationResult.concat(parts)


def estimate(model: nn.Module, data: DataSplits, settings: TrainSettings,
             layout: Layout | None) -> Footprint:
    """Memory one network of ``model`` needs while it trains on ``data``."""
    return footprint(model, tuple(data.input_shape), settings.batch_size, settings.optimizer,
                     settings.momentum, layout.numel if layout is not None else 0)


def init_state(spec: ModelSpec, seed: int) -> dict[str, torch.Tensor]:
    """The initial weights of ``spec`` for ``seed`` (without touching the global RNG)."""
    with torch_seeded(seed):
        model: nn.Module = build_model(spec)
    return {k: v.detach().clone() for k, v in model.state_dict().items()}


__all__ = ["PerNetworkTrainer", "StackedTrainer", "Trainer", "TRAINERS", "estimate",
           "init_state"]
