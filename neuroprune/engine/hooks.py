"""Training hooks: what methods add to training without touching the trainer.

A hook is called at fixed points of every training run, with the population's
:class:`TrainState` (all tensors stacked ``[P, ...]``):

* ``start``: before the first step;
* ``loss``: extra loss terms, a ``[P]`` tensor added to each network's loss (regularisers);
* ``after_backward``: gradients are dense here (pruned weights get gradients too), before they
  are masked (gradient statistics, RigL's growth, mask updates);
* ``after_step``: after the optimiser step (projections, hard thresholding);
* ``end_epoch``: after every epoch (learning curves);
* ``finish``: after training, with the networks in evaluation mode; it may add ``[P]``
  metrics to ``state.metrics`` and returns extras for the result (stacked tensors, or lists
  with one item per network).

Every chunk of networks gets a fresh copy of each hook, so a hook's state belongs to one run.
Random draws inside hooks go through :func:`TrainState.uniform` (counter-based, per network),
so that a network's result does not depend on the chunk or population it trains in.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable

import torch

from .rng import stream_id, uniform


@dataclass
class TrainState:
    """The population while it trains (see the module docstring)."""

    p: int
    params: dict[str, torch.Tensor]
    buffers: dict[str, torch.Tensor]
    masks: dict[str, torch.Tensor]      # name -> [P, ...] (changed in place by mask updates)
    optimizer: torch.optim.Optimizer
    settings: Any
    seeds: torch.Tensor                 # [P] network seeds
    total_steps: int
    forward: Callable[..., torch.Tensor]  # (x, training, capture=, params_=, buffers_=)
    evaluate: Callable[[str], tuple[torch.Tensor, torch.Tensor]]  # split -> (acc, loss) [P]
    data: Any = None                    # DataSplits placed for the device (DataSplits.place)
    data_seed: int = 0
    rows: torch.Tensor | None = None    # [P] these networks' positions in the whole task
    step: int = 0
    epoch: int = 0
    x: torch.Tensor | None = None
    y: torch.Tensor | None = None
    logits: torch.Tensor | None = None
    loss: torch.Tensor | None = None    # [P] this step's data loss
    epoch_loss: torch.Tensor | None = None  # [P] mean training loss of the epoch just ended
    masks_changed: bool = False
    metrics: dict[str, torch.Tensor] = field(default_factory=dict)

    @property
    def device(self) -> torch.device:
        return next(iter(self.params.values())).device

    def inputs(self, split: str, rows: torch.Tensor | slice) -> torch.Tensor:
        """Inputs of ``split`` at ``rows`` on the device in the parameters' dtype (read from
        disk when the data is cached there)."""
        dtype = next(iter(self.params.values())).dtype
        return self.data.inputs(split, rows, self.device, dtype)

    def uniform(self, purpose: int, shape: tuple[int, ...]) -> torch.Tensor:
        """``[P, *shape]`` uniforms that depend on each network's seed, this step and
        ``purpose`` only."""
        return uniform(self.seeds, stream_id(purpose, self.step), shape, self.device)

    def capture(self, names: set[str]) -> dict[str, tuple[torch.Tensor, torch.Tensor]]:
        """Inputs and outputs ``[P, B, features]`` of the named Linear layers on this step's
        batch (one extra forward pass without gradients; running statistics untouched)."""
        got: dict[str, tuple[torch.Tensor, torch.Tensor]] = {}
        with torch.no_grad():
            self.forward(self.x, training=True, capture=(got, frozenset(names)),
                         buffers_={k: v.clone() for k, v in self.buffers.items()})
        return got

    def masks_updated(self) -> None:
        """After a hook changed ``masks`` in place: zero the pruned weights and their
        optimiser state (dropped weights must not come back through momentum; grown ones
        start from zero with a clean state, as RigL does), and report the new masks."""
        with torch.no_grad():
            for k, m in self.masks.items():
                w = self.params[k]
                w.mul_(m)
                for v in self.optimizer.state.get(w, {}).values():
                    if isinstance(v, torch.Tensor) and v.shape == w.shape:
                        v.mul_(m)
        self.masks_changed = True

    def batches(self, count: int, batch_size: int | None = None):
        """The first ``count`` training batches ``(x, y)`` in this run's data order."""
        from .settings import batch_order
        size = batch_size or self.settings.batch_size
        n = len(self.data.train_y)
        for i, (_, idx) in enumerate(batch_order(n, size, 1, self.data_seed)):
            if i >= count:
                break
            yield self.inputs("train", idx), self.data.train_y[idx.to(self.device)]


class TrainingHook:
    """Base class: every phase does nothing."""

    def memo_key(self) -> Any:
        """What this hook is, as JSON-able values, when that alone fixes what it does to a
        training (its class and parameters); None (the default): it cannot be told apart
        from another, so a training with it is never read from a memo
        (:mod:`neuroprune.engine.memo`)."""
        return None

    def start(self, state: TrainState) -> None:
        pass

    def loss(self, state: TrainState) -> torch.Tensor | None:
        return None

    def after_backward(self, state: TrainState) -> None:
        pass

    def after_step(self, state: TrainState) -> None:
        pass

    def end_epoch(self, state: TrainState) -> None:
        pass

    def finish(self, state: TrainState) -> dict[str, Any]:
        return {}


class GradientStatistics(TrainingHook):
    """Accumulates |dL/dw| of the masked weights over every step: adds the ``gradient`` metric
    (mean per kept weight and step) and, with ``keep``, the sums themselves as the extra
    ``grads`` (``{name: [P, ...]}``)."""

    def __init__(self, keep: bool = False):
        self.keep = keep
        self.sums: dict[str, torch.Tensor] = {}

    def start(self, state: TrainState) -> None:
        names = state.masks or {k: v for k, v in state.params.items() if v.dim() > 2}
        self.sums = {k: torch.zeros_like(state.params[k]) for k in names}

    def after_backward(self, state: TrainState) -> None:
        for k, acc in self.sums.items():
            acc.add_(state.params[k].grad.abs())

    def finish(self, state: TrainState) -> dict[str, Any]:
        p = state.p
        total = torch.zeros(p, device=state.device, dtype=torch.float64)
        kept = torch.zeros(p, device=state.device, dtype=torch.float64)
        for k, acc in self.sums.items():
            m = state.masks.get(k)
            weighted = acc if m is None else acc * m
            total += weighted.reshape(p, -1).sum(1).double()
            kept += (torch.ones_like(acc) if m is None else m).reshape(p, -1).sum(1).double()
        state.metrics["gradient"] = total / kept.clamp_min(1) / max(state.step, 1)
        return {"grads": {k: v.cpu() for k, v in self.sums.items()}} if self.keep else {}


class LearningCurve(TrainingHook):
    """Training loss, validation loss and accuracy after every epoch: the extra ``curve``,
    one list of ``{epoch, train_loss, val_loss, val_accuracy}`` per network."""

    def __init__(self):
        self.rows: list[list[dict[str, float]]] = []

    def start(self, state: TrainState) -> None:
        self.rows = [[] for _ in range(state.p)]

    def end_epoch(self, state: TrainState) -> None:
        acc, loss = state.evaluate("val")
        for r, t, v, a in zip(self.rows, state.epoch_loss.tolist(), loss.tolist(),
                              acc.tolist()):
            r.append({"epoch": state.epoch + 1, "train_loss": t, "val_loss": v,
                      "val_accuracy": a})

    def finish(self, state: TrainState) -> dict[str, Any]:
        return {"curve": self.rows}


class EpochSelection(TrainingHook):
    """Scores every epoch and keeps, per network, what early stopping on validation and
    selection on test would report: ``best_val_accuracy`` (over the epochs),
    ``best_val_epoch`` (the first epoch reaching it), ``first_val_accuracy`` and, with
    ``test``, ``test_at_best_val`` (the held-out score: test accuracy at the epoch validation
    picked) and ``best_test_accuracy`` (the best over epochs: selection on the test split)."""

    def __init__(self, test: bool = False):
        self.test = test
        self.val: list[torch.Tensor] = []
        self.tests: list[torch.Tensor] = []

    def start(self, state: TrainState) -> None:
        self.val, self.tests = [], []

    def end_epoch(self, state: TrainState) -> None:
        self.val.append(torch.nan_to_num(state.evaluate("val")[0].double(), nan=0.0))
        if self.test:
            self.tests.append(torch.nan_to_num(state.evaluate("test")[0].double(), nan=0.0))

    def finish(self, state: TrainState) -> dict[str, Any]:
        if not self.val:
            return {}
        val = torch.stack(self.val, 1)                      # [P, epochs]
        best, at = val.max(1)                               # max gives the first maximum
        state.metrics.update(best_val_accuracy=best, best_val_epoch=at.double() + 1,
                             first_val_accuracy=val[:, 0])
        if self.test:
            test = torch.stack(self.tests, 1)
            state.metrics.update(test_at_best_val=test.gather(1, at[:, None])[:, 0],
                                 best_test_accuracy=test.max(1).values)
        return {}
