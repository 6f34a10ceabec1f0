"""What an evaluation is asked to do (:class:`EvalTask`) and what it returns
(:class:`PopulationResult`): stacked tensors end to end, sliced only when one network is asked
for.

A task carries its population's masks as one ``[P, n]`` bool tensor (rows in the mask layout's
order, the genome of a mask search) and one initial state broadcast to every network (or one
per network, stacked). Results carry ``[P]`` metric tensors and, when asked, stacked weights.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Any, Sequence

import torch

State = dict[str, torch.Tensor]
StackedState = dict[str, torch.Tensor]  # name -> [P, ...]


@dataclass
class EvalTask:
    """Train ``len(task)`` networks for ``epochs`` and score them.

    ``masks`` is ``[P, n]`` bool (``None``: ``size`` dense networks). ``init`` is one state for
    every network, or ``inits`` one per network (stacked ``[P, ...]``). ``data_seed`` fixes the
    mini-batch order and the augmentation; ``seeds`` (``[P]``, default ``data_seed`` for every
    network) fix each network's own random draws (dropout, random regrowth), so a network gives
    the same result alone and in any population. ``hooks`` act during training (regularisers,
    mask updates, gradient statistics, learning curves); every chunk of networks gets fresh
    copies, and a hook with per-network parameters reads its networks' positions in the
    whole task from :attr:`TrainState.rows`. ``activations`` gives each network its
    activation functions by role (formulas).
    """

    masks: torch.Tensor | None
    init: State | None = None
    epochs: int = 1
    data_seed: int = 0
    inits: StackedState | None = None
    size: int | None = None
    seeds: torch.Tensor | None = None
    hooks: Sequence[Any] = ()
    activations: Sequence[dict[str, str]] | None = None
    keep_weights: bool = False
    test: bool = False
    rescale_init: bool = False
    offset: int = 0  # index of the first network in the task it was sliced from

    def __post_init__(self) -> None:
        if (self.init is None) == (self.inits is None):
            raise ValueError("give exactly one of init (shared) and inits (per network)")
        n = len(self)
        if self.masks is not None and (self.masks.dim() != 2 or self.masks.dtype != torch.bool):
            raise ValueError(f"masks must be a [P, n] bool tensor, got {tuple(self.masks.shape)} "
                             f"{self.masks.dtype}")
        if self.inits is not None and any(len(v) != n for v in self.inits.values()):
            raise ValueError(f"inits are stacked for another population size than {n}")
        if self.seeds is not None and len(self.seeds) != n:
            raise ValueError(f"{len(self.seeds)} seeds for {n} networks")
        if self.activations is not None and len(self.activations) != n:
            raise ValueError(f"{len(self.activations)} activation sets for {n} networks")

    def __len__(self) -> int:
        if self.masks is not None:
            return len(self.masks)
        if self.size is None:
            raise ValueError("a dense task (masks=None) needs size")
        return self.size

    def network_seeds(self) -> torch.Tensor:
        if self.seeds is not None:
            return self.seeds.to(torch.int64)
        return torch.full((len(self),), int(self.data_seed), dtype=torch.int64)

    def slice(self, start: int, stop: int) -> "EvalTask":
        """Networks ``start`` to ``stop`` (for chunks and shards); hooks are shared."""
        return replace(
            self, offset=self.offset + start,
            masks=None if self.masks is None else self.masks[start:stop],
            size=None if self.masks is not None else stop - start,
            inits=None if self.inits is None else {k: v[start:stop]
                                                   for k, v in self.inits.items()},
            seeds=self.network_seeds()[start:stop],
            activations=None if self.activations is None else
            list(self.activations)[start:stop])

    def to(self, device: torch.device | str) -> "EvalTask":
        """The same task with its tensors on ``device`` (CPU before shipping to a worker)."""
        return replace(
            self, masks=None if self.masks is None else self.masks.to(device),
            init=None if self.init is None else {k: v.to(device) for k, v in self.init.items()},
            inits=None if self.inits is None else {k: v.to(device)
                                                   for k, v in self.inits.items()},
            seeds=self.network_seeds().to(device))


@dataclass
class PopulationResult:
    """Per-network results of one population run, in input order.

    ``metrics`` maps names to ``[P]`` float64 CPU tensors: ``train_loss`` (last epoch),
    ``val_accuracy``, ``val_loss``, ``test_*`` when asked, ``magnitude`` (mean |w| of kept
    weights), ``diverged`` (1.0 when loss or weights became NaN/Inf; such a network gets
    accuracy 0), and what hooks add (``gradient``). ``weights`` is the stacked trained state
    (parameters and buffers), ``masks`` the final ``[P, n]`` masks when training changed them,
    ``extras`` what hooks return (stacked tensors or lists with one item per network).
    """

    metrics: dict[str, torch.Tensor]
    weights: StackedState | None = None
    masks: torch.Tensor | None = None
    extras: dict[str, Any] = field(default_factory=dict)

    def __len__(self) -> int:
        return len(next(iter(self.metrics.values()))) if self.metrics else 0

    def row(self, i: int) -> dict[str, float]:
        """Network ``i``'s metrics as floats."""
        return {k: float(v[i]) for k, v in self.metrics.items()}

    def rows(self) -> list[dict[str, float]]:
        table = {k: v.tolist() for k, v in self.metrics.items()}
        return [{k: table[k][i] for k in table} for i in range(len(self))]

    def weights_of(self, i: int) -> State:
        """Network ``i``'s trained state (a state dict)."""
        if self.weights is None:
            raise ValueError("this run did not keep weights (EvalTask.keep_weights)")
        return {k: v[i].clone() for k, v in self.weights.items()}

    @staticmethod
    def concat(parts: Sequence["PopulationResult"]) -> "PopulationResult":
        """Results of consecutive chunks or shards, as one."""
        parts = [p for p in parts if len(p)]
        if not parts:
            return PopulationResult(metrics={})
        first = parts[0]
        out = PopulationResult(
            metrics={k: torch.cat([p.metrics[k] for p in parts]) for k in first.metrics},
            weights=None if first.weights is None else
            {k: torch.cat([p.weights[k] for p in parts]) for k in first.weights},
            masks=None if first.masks is None else torch.cat([p.masks for p in parts]))
        for key, value in first.extras.items():
            values = [p.extras[key] for p in parts]
            if isinstance(value, torch.Tensor):
                out.extras[key] = torch.cat(values)
            elif isinstance(value, dict):
                out.extras[key] = {k: torch.cat([v[k] for v in values]) for k in value}
            else:
                out.extras[key] = [item for v in values for item in v]
        return out
