"""Several searches trained as one population: the evaluator behind ``neuroprune tune --batch``.

Each trial of a batch runs its own search (its own run directory, mask population, random
state) in its own thread. Where a search asks its evaluator to train networks, it asks a
member of a :class:`BatchEvaluator` instead; the batch waits until every member still running
has asked (or finished), merges the tasks that can share kernels into one population (same
epochs, data order and hooks; the networks' own settings, initial weights and masks may
differ), trains it with the one real evaluator, and hands each member its own rows back.

A network's result does not depend on the other networks of its population (the engine's
contract), so a trial gives the same figures in a batch as alone, to float rounding. A trial
that stops (done, pruned, failed) leaves the batch; the others carry on without it.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, replace
from typing import Any

import torch

from ..engine import EvalTask, Evaluator, PopulationResult


def _hook_key(hooks) -> tuple:
    """Hooks merge when they are of the same kinds with the same settings."""
    out = []
    for h in hooks:
        items = tuple(sorted((k, repr(v)) for k, v in vars(h).items()))
        out.append((type(h).__module__, type(h).__qualname__, items))
    return tuple(out)


def merge_key(task: EvalTask) -> tuple:
    """What must be equal for two tasks to train as one population."""
    return (task.epochs, int(task.data_seed), task.test, task.rescale_init,
            task.masks is None, task.activations is None, _hook_key(task.hooks))


def merge(tasks: list[EvalTask]) -> EvalTask:
    """One task holding every network of ``tasks`` (which share a :func:`merge_key`; a
    setting given per network in one of them is given in all: batch members give theirs)."""
    first = tasks[0]
    names = list((first.init or first.inits).keys())

    def inits(t: EvalTask) -> dict[str, torch.Tensor]:
        if t.inits is not None:
            return t.inits
        return {k: v.unsqueeze(0).expand(len(t), *v.shape) for k, v in t.init.items()}

    keys = sorted({k for t in tasks for k in (t.network_settings or {})})

    return EvalTask(
        masks=None if first.masks is None else torch.cat([t.masks.cpu() for t in tasks]),
        size=sum(len(t) for t in tasks) if first.masks is None else None,
        inits={k: torch.cat([inits(t)[k].cpu() for t in tasks]) for k in names},
        epochs=first.epochs, data_seed=first.data_seed,
        seeds=torch.cat([t.network_seeds() for t in tasks]), hooks=first.hooks,
        activations=None if first.activations is None else
        [a for t in tasks for a in t.activations],
        keep_weights=any(t.keep_weights for t in tasks), test=first.test,
        rescale_init=first.rescale_init,
        network_settings={k: torch.cat([t.network_settings[k].double() for t in tasks])
                          for k in keys} or None)


@dataclass
class _Member:
    task: EvalTask | None = None
    result: PopulationResult | None = None
    error: BaseException | None = None
    active: bool = True


class BatchEvaluator:
    """Trains the tasks its members submit together (see the module docstring)."""

    def __init__(self, inner: Evaluator):
        self.inner = inner
        self.members: list[_Member] = []
        self.cond = threading.Condition()
        self.batches = 0  # population runs made (for tests and benchmarks)

    def member(self, settings) -> "BatchMember":
        """A new member whose networks train with ``settings`` (its trial's
        :class:`~neuroprune.engine.TrainSettings`)."""
        with self.cond:
            self.members.append(_Member())
            return BatchMember(self, len(self.members) - 1, settings)

    def leave(self, index: int) -> None:
        with self.cond:
            self.members[index].active = False
            self._maybe_run()
            self.cond.notify_all()

    def submit(self, index: int, task: EvalTask) -> PopulationResult:
        with self.cond:
            me = self.members[index]
            me.task, me.result, me.error = task, None, None
            self._maybe_run()
            while me.result is None and me.error is None:
                self.cond.wait()
            if me.error is not None:
                raise me.error
            return me.result

    def _maybe_run(self) -> None:
        """Run the pending tasks once every active member has one (holding the lock: the
        members are all waiting, so nothing else would run meanwhile)."""
        waiting = [m for m in self.members if m.active and m.task is not None]
        if not waiting or any(m.active and m.task is None for m in self.members):
            return
        groups: dict[tuple, list[_Member]] = {}
        for m in waiting:
            groups.setdefault(merge_key(m.task), []).append(m)
        for group in groups.values():
            tasks = [m.task for m in group]
            for m in group:
                m.task = None
            try:
                result = self.inner.evaluate(merge(tasks) if len(tasks) > 1 else tasks[0])
                self.batches += 1
            except BaseException as exc:  # every member of the group sees the failure
                for m in group:
                    m.error = exc
                continue
            start = 0
            for m, t in zip(group, tasks):
                m.result = _rows(result, start, start + len(t), t.keep_weights)
                start += len(t)
        self.cond.notify_all()


def _rows(result: PopulationResult, start: int, stop: int, weights: bool) -> PopulationResult:
    """Rows ``start:stop`` of a merged result."""
    def cut(value: Any) -> Any:
        if isinstance(value, torch.Tensor):
            return value[start:stop]
        if isinstance(value, dict):
            return {k: cut(v) for k, v in value.items()}
        return value[start:stop]
    return PopulationResult(
        metrics={k: v[start:stop] for k, v in result.metrics.items()},
        weights=cut(result.weights) if weights and result.weights is not None else None,
        masks=None if result.masks is None else result.masks[start:stop],
        extras={k: cut(v) for k, v in result.extras.items()})


class BatchMember(Evaluator):
    """One trial's view of a :class:`BatchEvaluator`: its tasks carry the trial's own
    learning rate, momentum, weight decay and schedule as per-network settings."""

    name = "batch"

    def __init__(self, batch: BatchEvaluator, index: int, settings):
        self.batch, self.index = batch, index
        self.device = batch.inner.device
        self.own = {"lr": settings.lr, "momentum": settings.momentum,
                    "weight_decay": settings.weight_decay,
                    "cosine": 1.0 if settings.schedule == "cosine" else 0.0}

    def evaluate(self, task: EvalTask) -> PopulationResult:
        n = len(task)
        given = dict(task.network_settings or {})
        for key, value in self.own.items():
            given.setdefault(key, torch.full((n,), float(value), dtype=torch.float64))
        return self.batch.submit(self.index, replace(task, network_settings=given))

    def describe(self) -> str:
        return f"a batch of trials on {self.batch.inner.describe()}"

    def close(self) -> None:
        """The trial is done: the batch goes on without it."""
        self.batch.leave(self.index)


__all__ = ["BatchEvaluator", "BatchMember", "merge", "merge_key"]
