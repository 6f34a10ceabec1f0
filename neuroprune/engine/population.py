"""The population engine: P networks of one architecture trained and evaluated as one batch.

Parameters of the P networks are stacked (``[P, ...]``) and run through plain batched kernels
(:mod:`.stacked`; ``vmap(functional_call)`` for architectures it does not cover), so that every
layer is one kernel for the whole population (see DESIGN.md: on a GPU this is two orders of
magnitude faster than a loop over networks). Masks are stacked the same way. Pruned weights
are zeroed before training and their gradients are masked before every optimizer step, so they
and their optimizer state stay exactly zero for any elementwise optimizer; the dense gradient
(needed by RigL and the dissipating-gradient signal) is available to mask updaters before the
masking.

With stacked parameters the per-step work outside the matrix products is memory-bound (a
LeNet-300-100 population of 1,024 holds 1.1 GB of weights), so the step touches each stacked
tensor as few times as it can: fresh gradients instead of zeroed-and-accumulated ones, a fused
optimizer, and the first layer's bias added inside its GEMM.
"""

from __future__ import annotations

import copy
import math
import warnings
from dataclasses import dataclass, field
from typing import Sequence

import torch
from torch.func import functional_call, vmap

from ..data import DataSplits
from ..models import ModelSpec, build_model, prunable_names
from .settings import TrainSettings, batch_order, steps_per_run
from .stacked import stacked_forward
from .updater import MaskUpdater, reset_pruned_state

State = dict[str, torch.Tensor]


def init_state(spec: ModelSpec, seed: int) -> State:
    """The initial weights of ``spec`` for ``seed`` (without touching the global RNG)."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(int(seed))
        model = build_model(spec)
    return {k: v.detach().clone() for k, v in model.state_dict().items()}


@dataclass
class PopulationResult:
    """Per-individual results of one population run, in input order.

    ``metrics[i]`` holds floats: ``train_loss``, ``val_accuracy``, ``val_loss``, (``test_*``
    when asked), ``magnitude`` (mean |w| of kept weights after training), ``gradient`` (mean
    accumulated |dL/dw| of kept weights per step, when gradients are collected) and
    ``diverged`` (1.0 when the loss became NaN/Inf).
    """

    metrics: list[dict[str, float]]
    weights: list[State] | None = None
    grads: list[State] | None = None
    masks: list[dict[str, torch.Tensor]] | None = None
    extra: dict[str, object] = field(default_factory=dict)


class PopulationTrainer:
    """Train and evaluate a population of masked networks of one architecture on one device.

    The dataset is moved to ``device`` once. ``chunk_size`` caps how many networks run in one
    batch (on a CPU, 16 keeps the working set in cache; on a GPU the whole population).
    """

    def __init__(self, spec: ModelSpec, data: DataSplits, settings: TrainSettings,
                 device: str | torch.device = "cpu", chunk_size: int | None = None,
                 eval_batch_size: int = 2048):
        self.spec = spec
        self.settings = settings
        self.device = torch.device(device)
        self.data = data.to(self.device)
        if chunk_size is None:
            chunk_size = 16 if self.device.type == "cpu" else 4096
        self.chunk_size = max(1, int(chunk_size))
        self.eval_batch_size = eval_batch_size
        template = build_model(spec)
        self.prunable = prunable_names(template)
        self.shapes = {k: tuple(v.shape) for k, v in template.named_parameters()}
        self._base = copy.deepcopy(template).to("meta")
        # Plain batched kernels where the architecture allows; vmap for anything else.
        stacked = stacked_forward(template)
        self._forward = stacked or vmap(self._call, in_dims=(0, None))
        self._capture = stacked_forward(template, capture=True) if stacked else None
        self._acts = None

    def _call(self, params: State, x: torch.Tensor) -> torch.Tensor:
        return functional_call(self._base, params, (x,))

    def _fwd(self, params: State, x: torch.Tensor) -> torch.Tensor:
        if self._acts is not None:
            return self._forward(params, x, self._acts)
        return self._forward(params, x)

    def _set_activations(self, activations):
        """Group networks by identical activation formula per role (see ``per_network``)."""
        self._acts = None
        if activations is None:
            return
        if self._capture is None:
            raise ValueError("per-network activation functions need the stacked path "
                             "(an nn.Sequential MLP)")
        from ..activations.expr import compile_formula
        acts: dict[str, list] = {}
        roles = {r for a in activations for r in a}
        for role in roles:
            by_formula: dict[str, list[int]] = {}
            for i, a in enumerate(activations):
                by_formula.setdefault(a.get(role, "relu(x)"), []).append(i)
            acts[role] = [(torch.tensor(ix, device=self.device), compile_formula(f))
                          for f, ix in by_formula.items()]
        self._acts = acts

    # ------------------------------------------------------------------ public API
    def run(self, init: State | Sequence[State], masks: Sequence[dict[str, torch.Tensor]],
            epochs: int, data_seed: int, *, collect_grads: bool = False,
            keep_weights: bool = False, test: bool = False,
            updater: "MaskUpdater | None" = None,
            activations: Sequence[dict[str, str]] | None = None,
            rescale_init: bool = False, curve: bool = False) -> PopulationResult:
        """Train ``len(masks)`` networks for ``epochs`` and evaluate them.

        ``init`` is one state shared by all networks or one state per network. Networks are
        processed in chunks of ``chunk_size``; the results do not depend on the chunking.
        ``updater`` changes the masks during training (dynamic sparse training); the final
        masks are returned in ``result.masks``. ``rescale_init`` multiplies each network's kept
        weights by ``1/sqrt(density)`` of their layer, so that a sparse network starts with the
        signal scale its dense initialisation was meant to give.
        """
        n = len(masks)
        if n == 0:
            return PopulationResult(metrics=[], weights=[] if keep_weights else None,
                                    grads=[] if collect_grads else None)
        inits = [init] * n if isinstance(init, dict) else list(init)
        if len(inits) != n:
            raise ValueError(f"{len(inits)} initial states for {n} masks")
        out = PopulationResult(metrics=[], weights=[] if keep_weights else None,
                               grads=[] if collect_grads else None,
                               masks=[] if updater is not None else None)
        if updater is not None:
            updater = copy.deepcopy(updater)  # its state is per run; the caller's stays clean
        if activations is not None and len(activations) != n:
            raise ValueError(f"{len(activations)} activation sets for {n} networks")
        start = 0
        while start < n:
            size = min(self.chunk_size, n - start)
            try:
                self._set_activations(None if activations is None
                                      else activations[start:start + size])
                part = self._run_chunk(inits[start:start + size], masks[start:start + size],
                                       epochs, data_seed, collect_grads, keep_weights, test,
                                       updater, rescale_init, curve)
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
            start += size
            out.metrics += part.metrics
            if keep_weights:
                out.weights += part.weights
            if collect_grads:
                out.grads += part.grads
            if updater is not None:
                out.masks += part.masks
            if curve:
                out.extra.setdefault("curve", []).extend(part.extra["curve"])
        self._acts = None
        return out

    def evaluate(self, params: State, x: torch.Tensor, y: torch.Tensor):
        """Accuracy and mean loss ``[P]`` of stacked ``params`` on ``(x, y)``."""
        p = next(iter(params.values())).shape[0]
        correct = torch.zeros(p, device=self.device)
        loss = torch.zeros(p, device=self.device)
        with torch.no_grad():
            for s in range(0, len(y), self.eval_batch_size):
                xb, yb = x[s:s + self.eval_batch_size], y[s:s + self.eval_batch_size]
                batch_loss, hits = self.settings.scores(self._fwd(params, xb), yb)
                correct += hits
                loss += batch_loss
        return self.settings.accuracy(correct, len(y), y), loss / len(y)

    # ------------------------------------------------------------------ internals
    def _stack(self, inits: Sequence[State], masks: Sequence[dict[str, torch.Tensor]],
               rescale_init: bool = False):
        params = {k: torch.stack([s[k] for s in inits]).to(self.device, torch.float32)
                  for k in self.shapes}
        mstack = {k: torch.stack([m[k] for m in masks]).to(self.device, torch.float32)
                  for k in self.prunable if k in masks[0]}  # {} trains dense networks
        with torch.no_grad():
            for k, m in mstack.items():
                params[k].mul_(m)
                if rescale_init:
                    density = m.reshape(len(m), -1).mean(1).clamp_min(1e-12)
                    params[k].mul_(density.rsqrt().view(-1, *[1] * (m.dim() - 1)))
        for v in params.values():
            v.requires_grad_(True)
        return params, mstack

    def _activations(self, params: State, x: torch.Tensor):
        if self._capture is None:
            raise ValueError("this method needs layer activations, which only the stacked "
                             "path provides (nn.Sequential of Linear/Conv2d layers)")
        with torch.no_grad():
            return self._capture(params, x)

    def _epoch_rows(self, params, epoch: int, loss_sum, seen: int) -> list[dict[str, float]]:
        """One learning-curve row per network after ``epoch``."""
        with torch.no_grad():
            acc, loss = self.evaluate({k: v.detach() for k, v in params.items()},
                                      self.data.val_x, self.data.val_y)
        train = (loss_sum / max(seen, 1)).tolist()
        return [{"epoch": epoch, "train_loss": t, "val_loss": float(v), "val_accuracy": float(a)}
                for t, v, a in zip(train, loss.tolist(), acc.tolist())]

    def _run_chunk(self, inits, masks, epochs, data_seed, collect_grads, keep_weights, test,
                   updater=None, rescale_init=False, curve=False):
        p = len(masks)
        params, mstack = self._stack(inits, masks, rescale_init)
        opt = self.settings.make_optimizer(params.values())
        if updater is not None:
            updater.start(params, mstack)
        masked_params = [params[k] for k in mstack]
        mask_list = list(mstack.values())  # float: a bool mask multiplies 10x slower on a CPU
        grad_acc = {k: torch.zeros_like(m) for k, m in mstack.items()} if collect_grads else None
        x_all, y_all = self.data.train_x, self.data.train_y
        n = len(y_all)
        total = steps_per_run(n, self.settings.batch_size, epochs)
        loss_sum = torch.zeros(p, device=self.device)  # over the last epoch only
        bad = torch.zeros(p, dtype=torch.bool, device=self.device)
        step, seen, cur_epoch = 0, 0, 0
        rows: list[list[dict[str, float]]] = [[] for _ in range(p)]
        for epoch, idx in batch_order(n, self.settings.batch_size, epochs, data_seed,
                                      self.device):
            if epoch != cur_epoch:
                if curve:
                    for r, row in zip(rows, self._epoch_rows(params, epoch, loss_sum, seen)):
                        r.append(row)
                loss_sum.zero_()
                seen, cur_epoch = 0, epoch
            xb, yb = x_all[idx], y_all[idx]
            lr = self.settings.lr_at(step, total)
            for g in opt.param_groups:
                g["lr"] = lr
            logits = self._fwd(params, xb)
            per = self.settings.per_network_loss(logits, yb)
            opt.zero_grad(set_to_none=True)  # backward writes fresh gradients, no accumulate
            per.sum().backward()
            with torch.no_grad():
                bad |= ~torch.isfinite(per)
                loss_sum += per.detach() * len(idx)
                seen += len(idx)
                if grad_acc is not None:
                    for k in grad_acc:
                        grad_acc[k].add_(params[k].grad.abs())
                if updater is not None and updater.due(step, total):
                    acts = self._activations(params, xb) if updater.needs_activations else None
                    updater.update(step, total, params, mstack, acts)
                    reset_pruned_state(opt, params, mstack)
                # Masked gradients keep pruned weights and their optimizer state at exactly 0.
                if mask_list:
                    torch._foreach_mul_([q.grad for q in masked_params], mask_list)
            opt.step()
            step += 1
        if curve and epochs:
            for r, row in zip(rows, self._epoch_rows(params, epochs, loss_sum, seen)):
                r.append(row)
        train_loss = loss_sum / seen if seen else torch.full_like(loss_sum, float("nan"))
        res = self._collect(params, mstack, grad_acc, train_loss, bad, step, keep_weights, test)
        if curve:
            res.extra["curve"] = rows
        if updater is not None:
            cpu = {k: v.bool().cpu() for k, v in mstack.items()}
            res.masks = [{k: v[i].clone() for k, v in cpu.items()} for i in range(p)]
        return res

    def _collect(self, params, mstack, grad_acc, train_loss, bad, steps, keep_weights, test):
        p = len(train_loss)
        with torch.no_grad():
            params = {k: v.detach() for k, v in params.items()}
            bad |= ~torch.stack([torch.isfinite(v.reshape(p, -1)).all(1)
                                 for v in params.values()]).all(0)
            val_acc, val_loss = self.evaluate(params, self.data.val_x, self.data.val_y)
            cols = {"train_loss": train_loss, "val_accuracy": val_acc, "val_loss": val_loss}
            if test:
                cols["test_accuracy"], cols["test_loss"] = self.evaluate(
                    params, self.data.test_x, self.data.test_y)
            zero = torch.zeros(p, device=self.device)
            kept = (sum((m.reshape(p, -1).sum(1) for m in mstack.values()), zero)).clamp_min(1)
            cols["magnitude"] = sum(((params[k].abs() * m).reshape(p, -1).sum(1)
                                     for k, m in mstack.items()), zero) / kept
            if grad_acc is not None:
                cols["gradient"] = sum(((g * mstack[k]).reshape(p, -1).sum(1)
                                        for k, g in grad_acc.items()), zero) / kept / max(steps, 1)
            cols["diverged"] = bad.float()
            table = {k: v.float().cpu().tolist() for k, v in cols.items()}
        if bool(bad.any()):
            warnings.warn(f"{int(bad.sum())} of {p} networks diverged (NaN/Inf loss); they get "
                          f"the worst fitness", RuntimeWarning, stacklevel=3)
        metrics = []
        for i in range(p):
            row = {k: float(v[i]) for k, v in table.items()}
            if row["diverged"]:
                row["val_accuracy"] = 0.0
                row.setdefault("test_accuracy", 0.0)
                for k in ("train_loss", "val_loss", "magnitude", "gradient"):
                    if k in row and not math.isfinite(row[k]):
                        row[k] = float("nan")
            metrics.append(row)
        res = PopulationResult(metrics=metrics)
        if keep_weights:
            cpu = {k: v.cpu() for k, v in params.items()}
            res.weights = [{k: v[i].clone() for k, v in cpu.items()} for i in range(p)]
        if grad_acc is not None:
            cpu = {k: v.cpu() for k, v in grad_acc.items()}
            res.grads = [{k: v[i].clone() for k, v in cpu.items()} for i in range(p)]
        return res
