"""neuroprune's DEAP genomes: ordinary module-level classes, not ``deap.creator`` ones.

DEAP's ``creator`` makes classes at run time in one global namespace. Since DEAP 1.4 those
classes pickle *by value*, and unpickling one re-creates the global class: every checkpoint
load or Ray transfer would then replace ``creator.X`` and leave earlier references (and
``isinstance`` checks) pointing at a stale class, and two runs in one process would share and
overwrite that state. Plain subclasses of :class:`deap.base.Fitness` are what ``creator`` would
build, pickle by reference (Ray workers import this module), and touch no global state.
DEAP's tools only need an object with a ``fitness`` attribute.
"""

from __future__ import annotations

import torch
from deap import base


class FitnessMax(base.Fitness):
    """One objective, maximised."""

    weights = (1.0,)


class FitnessMulti(base.Fitness):
    """Two objectives, both maximised (e.g. accuracy and sparsity)."""

    weights = (1.0, 1.0)


class MaskBits:
    """A flat boolean vector over all prunable weights (see :class:`~neuroprune.masks.Layout`).

    Kept as a tensor attribute rather than a tensor subclass: DEAP copies individuals with
    ``deepcopy`` and compares them with ``==``, which must mean "same mask".
    """

    def __init__(self, bits: torch.Tensor):
        self.bits = bits.to(torch.bool).contiguous()

    def __eq__(self, other: object) -> bool:
        return isinstance(other, MaskBits) and torch.equal(self.bits, other.bits)

    __hash__ = None  # mutable

    def __len__(self) -> int:
        return int(self.bits.numel())

    def __repr__(self) -> str:
        return f"{type(self).__name__}(kept={int(self.bits.sum())}/{self.bits.numel()})"


class MaskIndividual(MaskBits):
    """A mask with a single-objective fitness: the K-starts individual."""

    def __init__(self, bits: torch.Tensor):
        super().__init__(bits)
        self.fitness = FitnessMax()
        self.signal: torch.Tensor | None = None  # per-connection score from its evaluation


def mask_individual(bits: torch.Tensor) -> MaskIndividual:
    """A DEAP individual (with an empty fitness) holding ``bits``."""
    return MaskIndividual(bits)
