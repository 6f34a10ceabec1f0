"""DEAP classes for neuroprune's genomes, created once, here, under unique names.

DEAP's ``creator`` makes classes at run time inside its own module. Creating them at import of
this one module (and nowhere else) means every process that imports neuroprune, Ray workers
included, has the same classes, so individuals pickle and unpickle; repeated runs in one process
reuse them instead of re-creating (and warning about) them.
"""

from __future__ import annotations

import torch
from deap import base, creator


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


def _create(name: str, parent: type, **attrs: object) -> None:
    if not hasattr(creator, name):
        creator.create(name, parent, **attrs)


_create("NeuropruneFitnessMax", base.Fitness, weights=(1.0,))
_create("NeuropruneFitnessMulti", base.Fitness, weights=(1.0, 1.0))
_create("NeuropruneMask", MaskBits, fitness=creator.NeuropruneFitnessMax)

FitnessMax = creator.NeuropruneFitnessMax
MaskIndividual = creator.NeuropruneMask


def mask_individual(bits: torch.Tensor) -> "MaskIndividual":
    """A DEAP individual (with an empty fitness) holding ``bits``."""
    return MaskIndividual(bits)
