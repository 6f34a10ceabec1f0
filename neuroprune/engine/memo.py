"""Trainings asked for twice are done once.

A sweep asks for the same training again and again: a structured method trains (and
regularises) the dense network the same way whatever FLOPs budget it prunes to afterwards,
IMP's first round is the same dense training at every sparsity, and ``l1_filter`` and
``ispasp`` both start from one plain dense training. :class:`Memoised` keys each training of
unpruned networks (``masks`` absent or all ones) by a hash of everything it depends on: the
task's tensors and options, its hooks (only hooks that say what they are, by
:meth:`~neuroprune.engine.TrainingHook.memo_key`, can be keyed; a task with any other hook is
trained as usual) and the world it trains in (model, data, training and engine settings,
device: the ``context`` the caller gives). A repeated training is read from the folder instead
of run; trainings are deterministic, so the result is the one the training would give.
Trainings of pruned networks are not kept: their masks differ from cell to cell.

Entries are written atomically; one that cannot be read (a foreign or damaged file) is trained
again and rewritten. The folder is a cache: deleting it costs time, never results.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

import torch

from .evaluator import Evaluator
from .task import EvalTask, PopulationResult

#: bump when what a key covers changes, so that old entries are never read as new ones
VERSION = 1


def _feed_tensor(h, t: torch.Tensor) -> None:
    t = t.detach().cpu().contiguous()
    h.update(f"{t.dtype}{tuple(t.shape)}".encode())
    flat = t.reshape(-1)
    h.update((flat.to(torch.uint8) if t.dtype == torch.bool else flat.view(torch.uint8))
             .numpy().tobytes())


def _feed_state(h, state: dict[str, torch.Tensor] | None) -> None:
    if state is None:
        h.update(b"none")
        return
    for name in sorted(state):
        h.update(name.encode())
        _feed_tensor(h, state[name])


def task_key(task: EvalTask, context: dict[str, Any]) -> str | None:
    """The hash of ``task`` in ``context``; None when it is not kept (pruned networks, or a
    hook that does not say what it is)."""
    if task.masks is not None and not bool(task.masks.all()):
        return None
    hooks = []
    for hook in task.hooks:
        key = hook.memo_key()
        if key is None:
            return None
        hooks.append(key)
    h = hashlib.sha256()
    options = {"version": VERSION, "context": context, "hooks": hooks,
               "size": len(task), "epochs": task.epochs, "data_seed": task.data_seed,
               "activations": task.activations, "keep_weights": task.keep_weights,
               "test": task.test, "rescale_init": task.rescale_init, "offset": task.offset,
               "masks": task.masks is not None}
    h.update(json.dumps(options, sort_keys=True, default=str).encode())
    _feed_state(h, task.init)
    _feed_state(h, task.inits)
    _feed_state(h, {"seeds": task.network_seeds()})
    _feed_state(h, task.network_settings)
    return h.hexdigest()[:32]


class Memoised(Evaluator):
    """An evaluator that reads repeated trainings of unpruned networks from ``folder``
    instead of running them (see the module docstring). ``reused_network_epochs`` counts
    what it did not have to train."""

    def __init__(self, inner: Evaluator, folder: str | Path, context: dict[str, Any]):
        self.inner = inner
        self.name, self.device = inner.name, inner.device
        self.folder = Path(folder)
        self.context = context
        self.reused_network_epochs = 0

    def evaluate(self, task: EvalTask) -> PopulationResult:
        key = task_key(task, self.context)
        if key is None:
            return self.inner.evaluate(task)
        path = self.folder / f"{key}.pt"
        found = self._read(path, len(task))
        if found is not None:
            self.reused_network_epochs += len(task) * task.epochs
            return found
        result = self.inner.evaluate(task)
        from .._io import atomic_torch_save
        atomic_torch_save(path, {"version": VERSION, "metrics": result.metrics,
                                 "weights": result.weights, "masks": result.masks,
                                 "extras": result.extras})
        return result

    @staticmethod
    def _read(path: Path, size: int) -> PopulationResult | None:
        if not path.is_file():
            return None
        try:
            data = torch.load(path, map_location="cpu", weights_only=True)
            result = PopulationResult(metrics=data["metrics"], weights=data["weights"],
                                      masks=data["masks"], extras=data["extras"])
            if data["version"] != VERSION or len(result) != size:
                return None
            return result
        except Exception:  # a damaged or foreign file: train again, and overwrite it
            return None

    def describe(self) -> str:
        return self.inner.describe()

    def close(self) -> None:
        self.inner.close()
