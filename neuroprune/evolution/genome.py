"""A population of masks for DEAP: one ``[P, n]`` bool tensor, and light individuals.

The genome of a mask search lives as one tensor on the engine's device; variation operators
(:mod:`.operators`) act on its rows all at once. DEAP's selection, hall of fame and statistics
need objects with a ``fitness``: :class:`MaskIndividual` is one row of the population (a view,
no copy), and becomes a standalone copy of its row when DEAP copies it (hall of fame entries,
checkpoints).

Fitness classes are ordinary module-level subclasses of :class:`deap.base.Fitness`, not
``deap.creator`` ones: since DEAP 1.4 creator classes pickle *by value*, and unpickling one
re-creates the global class, so every checkpoint load or Ray transfer would replace
``creator.X`` and leave earlier references pointing at a stale class. These pickle by
reference and touch no global state.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Sequence

import torch
from deap import base


class FitnessMax(base.Fitness):
    """One objective, maximised."""

    weights = (1.0,)


class FitnessMulti(base.Fitness):
    """Two objectives, both maximised (e.g. accuracy and sparsity)."""

    weights = (1.0, 1.0)


class MaskIndividual:
    """One mask of a :class:`MaskPopulation` (its row), with a DEAP fitness.

    ``copy.deepcopy`` gives a standalone individual holding a copy of its row only (what
    DEAP's hall of fame stores), never of the whole population.
    """

    def __init__(self, population: "MaskPopulation | None", row: int,
                 bits: torch.Tensor | None = None, signal: torch.Tensor | None = None):
        self.population, self.row = population, row
        self._bits, self._signal = bits, signal
        self.fitness = FitnessMax()

    @property
    def bits(self) -> torch.Tensor:
        return self._bits if self.population is None else self.population.bits[self.row]

    @property
    def signal(self) -> torch.Tensor | None:
        if self.population is None:
            return self._signal
        sig = self.population.signals
        return None if sig is None else sig[self.row]

    def __deepcopy__(self, memo) -> "MaskIndividual":
        sig = self.signal
        out = MaskIndividual(None, -1, self.bits.clone(), None if sig is None else sig.clone())
        if self.fitness.valid:
            out.fitness.values = self.fitness.values
        return out

    def __getstate__(self) -> dict:
        if self.population is not None:  # pickled alone: keep only its row
            return self.__deepcopy__({}).__getstate__()
        return {"bits": self._bits, "signal": self._signal,
                "fitness": self.fitness.values if self.fitness.valid else None}

    def __setstate__(self, state: dict) -> None:
        self.population, self.row = None, -1
        self._bits, self._signal = state["bits"], state["signal"]
        self.fitness = FitnessMax()
        if state["fitness"] is not None:
            self.fitness.values = state["fitness"]

    def __eq__(self, other: object) -> bool:
        return isinstance(other, MaskIndividual) and torch.equal(self.bits, other.bits)

    __hash__ = None  # type: ignore[assignment]  # mutable

    def __len__(self) -> int:
        return int(self.bits.numel())

    def __repr__(self) -> str:
        return f"MaskIndividual(kept={int(self.bits.sum())}/{self.bits.numel()})"


@dataclass
class MaskPopulation:
    """``bits [P, n]`` (bool), optional per-connection ``signals [P, n]`` (float16: what
    guided mutation reads), and one :class:`MaskIndividual` per row."""

    bits: torch.Tensor
    signals: torch.Tensor | None = None
    individuals: list[MaskIndividual] = field(default_factory=list)

    def __post_init__(self) -> None:
        if not self.individuals:
            self.individuals = [MaskIndividual(self, i) for i in range(len(self.bits))]

    def __len__(self) -> int:
        return len(self.bits)

    def invalid(self) -> torch.Tensor:
        """Rows whose fitness is not known (to be evaluated)."""
        return torch.tensor([i for i, ind in enumerate(self.individuals)
                             if not ind.fitness.valid], dtype=torch.int64)

    def set_fitness(self, rows: Sequence[int], values: Sequence[float]) -> None:
        for r, v in zip(rows, values):
            self.individuals[r].fitness.values = (float(v),)

    @classmethod
    def assemble(cls, bits: torch.Tensor, signals: torch.Tensor | None,
                 fitness: Sequence[tuple[float, ...] | None]) -> "MaskPopulation":
        """A population whose row ``i`` has fitness ``fitness[i]`` (``None``: to evaluate)."""
        pop = cls(bits, signals)
        for ind, values in zip(pop.individuals, fitness):
            if values is not None:
                ind.fitness.values = values
        return pop

    def state(self) -> dict:
        """What a checkpoint keeps (on the CPU)."""
        return {"bits": self.bits.cpu(),
                "signals": None if self.signals is None else self.signals.cpu(),
                "fitness": [ind.fitness.values if ind.fitness.valid else None
                            for ind in self.individuals]}

    @classmethod
    def from_state(cls, state: dict, device: torch.device | str) -> "MaskPopulation":
        sig = state["signals"]
        return cls.assemble(state["bits"].to(device),
                            None if sig is None else sig.to(device), state["fitness"])
