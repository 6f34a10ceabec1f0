"""One network at a time, with a plain ``nn.Module``: the reference the population engine must
match, and the one-by-one baseline of ``benchmarks/population_eval.py``."""

from __future__ import annotations

import copy
import math
from typing import Sequence

import torch

from ..data import DataSplits
from ..models import ModelSpec, build_model, prunable_names
from .population import PopulationResult, State
from .settings import TrainSettings, batch_order, steps_per_run
from .updater import reset_pruned_state


class ReferenceTrainer:
    """Same interface and same math as :class:`PopulationTrainer`, looping over networks."""

    def __init__(self, spec: ModelSpec, data: DataSplits, settings: TrainSettings,
                 device: str | torch.device = "cpu", eval_batch_size: int = 2048):
        self.spec, self.settings = spec, settings
        self.device = torch.device(device)
        self.data = data.to(self.device)
        self.eval_batch_size = eval_batch_size
        self.prunable = prunable_names(build_model(spec))

    def run(self, init: State | Sequence[State], masks: Sequence[dict[str, torch.Tensor]],
            epochs: int, data_seed: int, *, collect_grads: bool = False,
            keep_weights: bool = False, test: bool = False, updater=None,
            activations=None, rescale_init: bool = False,
            curve: bool = False) -> PopulationResult:
        inits = [init] * len(masks) if isinstance(init, dict) else list(init)
        out = PopulationResult(metrics=[], weights=[] if keep_weights else None,
                               grads=[] if collect_grads else None,
                               masks=[] if updater is not None else None)
        for i, (state, mask) in enumerate(zip(inits, masks)):
            metrics, weights, grads, final_mask = self.train_one(
                state, mask, epochs, data_seed, collect_grads, test, updater,
                None if activations is None else activations[i], rescale_init, curve)
            if curve:
                out.extra.setdefault("curve", []).append(metrics.pop("curve"))
            if updater is not None:
                out.masks.append(final_mask)
            out.metrics.append(metrics)
            if keep_weights:
                out.weights.append(weights)
            if collect_grads:
                out.grads.append(grads)
        return out

    def _accuracy(self, model, x, y):
        correct, loss = torch.zeros(1), torch.zeros(1)
        with torch.no_grad():
            for s in range(0, len(y), self.eval_batch_size):
                out = model(x[s:s + self.eval_batch_size]).unsqueeze(0)
                batch_loss, hits = self.settings.scores(out, y[s:s + self.eval_batch_size])
                correct += hits.cpu()
                loss += batch_loss.cpu()
        return float(self.settings.accuracy(correct, len(y), y.cpu())), float(loss) / len(y)

    def train_one(self, state: State, mask: dict[str, torch.Tensor], epochs: int, data_seed: int,
                  collect_grads: bool = False, test: bool = False, updater=None,
                  activations: dict[str, str] | None = None, rescale_init: bool = False,
                  curve: bool = False):
        model = build_model(self.spec).to(self.device)
        model.load_state_dict(state)
        if activations:
            from ..activations.expr import compile_formula
            for mod in model.modules():
                if getattr(mod, "role", None) in activations:
                    mod.fn = compile_formula(activations[mod.role])
        params = dict(model.named_parameters())
        m = {k: mask[k].to(self.device, torch.float32) for k in self.prunable if k in mask}
        with torch.no_grad():
            for k, mk in m.items():
                params[k].mul_(mk)
                if rescale_init:
                    params[k].mul_(mk.mean().clamp_min(1e-12).rsqrt())
        opt = self.settings.make_optimizer(model.parameters())
        if updater is not None:
            updater = copy.deepcopy(updater)
            updater.start({k: v.unsqueeze(0) for k, v in params.items()},
                          {k: v.unsqueeze(0) for k, v in m.items()})
        grads = {k: torch.zeros_like(v) for k, v in m.items()} if collect_grads else None
        n = len(self.data.train_y)
        total = steps_per_run(n, self.settings.batch_size, epochs)
        step, seen, loss_sum, cur, bad = 0, 0, 0.0, 0, False
        rows: list[dict[str, float]] = []

        def curve_row(epoch: int) -> None:
            acc, loss = self._accuracy(model, self.data.val_x, self.data.val_y)
            rows.append({"epoch": epoch, "train_loss": loss_sum / max(seen, 1),
                         "val_loss": loss, "val_accuracy": acc})

        for epoch, idx in batch_order(n, self.settings.batch_size, epochs, data_seed,
                                      self.device):
            if epoch != cur:
                if curve:
                    curve_row(epoch)
                seen, loss_sum, cur = 0, 0.0, epoch
            for g in opt.param_groups:
                g["lr"] = self.settings.lr_at(step, total)
            loss = self.settings.per_network_loss(model(self.data.train_x[idx]).unsqueeze(0),
                                                  self.data.train_y[idx])[0]
            opt.zero_grad()
            loss.backward()
            value = float(loss.detach())  # one host sync per step
            bad |= not math.isfinite(value)
            loss_sum += value * len(idx)
            seen += len(idx)
            with torch.no_grad():
                if grads is not None:
                    for k in grads:
                        grads[k].add_(params[k].grad.abs())
                if updater is not None and updater.due(step, total):
                    if updater.needs_activations:
                        raise ValueError("the reference trainer does not capture activations")
                    views = {k: v.unsqueeze(0) for k, v in params.items()}
                    for k, v in views.items():
                        v.grad = params[k].grad.unsqueeze(0)
                    mviews = {k: v.unsqueeze(0) for k, v in m.items()}
                    updater.update(step, total, views, mviews, None)
                    reset_pruned_state(opt, params, m)
                for k, mk in m.items():
                    params[k].grad.mul_(mk)
            opt.step()
            step += 1
        if curve and epochs:
            curve_row(epochs)
        model.eval()
        bad |= not all(bool(torch.isfinite(p).all()) for p in model.parameters())
        metrics = {"train_loss": loss_sum / seen if seen else float("nan")}
        metrics["val_accuracy"], metrics["val_loss"] = self._accuracy(
            model, self.data.val_x, self.data.val_y)
        if test:
            metrics["test_accuracy"], metrics["test_loss"] = self._accuracy(
                model, self.data.test_x, self.data.test_y)
        kept = max(1.0, float(sum((mk.sum() for mk in m.values()), torch.tensor(0.0))))
        metrics["magnitude"] = float(sum(((params[k].detach().abs() * mk).sum()
                                       for k, mk in m.items()), torch.tensor(0.0))) / kept
        if grads is not None:
            metrics["gradient"] = float(sum(((g * m[k]).sum() for k, g in grads.items()),
                                            torch.tensor(0.0))) / kept / max(step, 1)
        metrics["diverged"] = float(bad)
        if curve:
            metrics["curve"] = rows
        if bad:
            metrics["val_accuracy"] = 0.0
            if test:
                metrics["test_accuracy"] = 0.0
        weights = {k: v.detach().cpu().clone() for k, v in model.state_dict().items()}
        cpu_grads = {k: v.cpu() for k, v in grads.items()} if grads is not None else None
        final_mask = {k: v.bool().cpu() for k, v in m.items()}
        return metrics, weights, cpu_grads, final_mask
