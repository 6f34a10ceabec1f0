"""DEAP genetic programming over activation-function trees.

The primitive set names the operations of :mod:`neuroprune.activations.expr`; DEAP only builds,
varies and prints trees (``str(tree)`` is the prefix form). Trees are never compiled by DEAP
(its ``gp.compile`` uses ``eval``): :func:`~neuroprune.activations.expr.compile_formula` does it.
"""

from __future__ import annotations

import operator
import random

from deap import base, gp, tools

from .expr import BINARY, CONSTANTS, UNARY


def _never(*_):  # placeholders: DEAP wants callables, neuroprune compiles the trees itself
    raise RuntimeError("activation trees are compiled by neuroprune.activations.expr")


def primitive_set() -> gp.PrimitiveSet:
    pset = gp.PrimitiveSet("ACT", 1)
    pset.renameArguments(ARG0="x")
    for name in UNARY:
        pset.addPrimitive(_never, 1, name=name)
    for name in BINARY:
        pset.addPrimitive(_never, 2, name=name)
    for c in CONSTANTS:
        pset.addTerminal(c, name=repr(c))
    return pset


class ActFitness(base.Fitness):
    weights = (1.0,)


class ActTree(gp.PrimitiveTree):
    """An activation-function individual."""

    def __init__(self, content):
        super().__init__(content)
        self.fitness = ActFitness()


def toolbox(pset: gp.PrimitiveSet, max_height: int) -> base.Toolbox:
    tb = base.Toolbox()
    tb.register("expr", gp.genHalfAndHalf, pset=pset, min_=1, max_=3)
    tb.register("individual", tools.initIterate, ActTree, tb.expr)
    tb.register("select", tools.selTournament, tournsize=3)
    tb.register("mate", gp.cxOnePoint)
    tb.register("expr_mut", gp.genFull, min_=0, max_=2)
    tb.register("mutate", gp.mutUniform, expr=tb.expr_mut, pset=pset)
    limit = gp.staticLimit(key=operator.attrgetter("height"), max_value=max_height)
    tb.decorate("mate", limit)
    tb.decorate("mutate", limit)
    return tb


def next_generation(pop: list[ActTree], tb: base.Toolbox, cxpb: float = 0.6,
                    mutpb: float = 0.3, elite: int = 1) -> list[ActTree]:
    """Tournament selection, one-point crossover, uniform mutation; ``elite`` best kept."""
    best = tools.selBest(pop, elite)
    off = [tb.clone(i) for i in tb.select(pop, len(pop) - elite)]
    for a, b in zip(off[::2], off[1::2]):
        if random.random() < cxpb:
            tb.mate(a, b)
            del a.fitness.values, b.fitness.values
    for ind in off:
        if random.random() < mutpb:
            tb.mutate(ind)
            del ind.fitness.values
    return [tb.clone(b) for b in best] + off
