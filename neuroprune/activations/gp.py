"""DEAP genetic programming over activation-function trees.

The primitive set names the operations of :mod:`neuroprune.activations.expr`; DEAP only builds,
varies and prints trees (``str(tree)`` is the prefix form). Trees are never compiled by DEAP
(its ``gp.compile`` uses ``eval``): :func:`~neuroprune.activations.expr.compile_formula` does it.

Lapid & Sipper (arXiv 2206.12089) evolve Cartesian-GP graphs; these are DEAP trees instead:
a tree cannot reuse a node's value (a graph can: ``mul(tanh(x), tanh(x))`` costs one
``tanh`` there, two here), its size is bounded by a height limit rather than a fixed grid of
nodes, and it has no inactive genes, so a mutation always changes the function (CGP's neutral
drift through inactive nodes does not happen). Mutation replaces a random subtree (or, half the
time, one node by another of the same arity: the nearest thing to CGP's point mutation).
"""

from __future__ import annotations

import operator
import random

from deap import base, gp, tools

from .expr import PRIMITIVE_SETS


def _never(*_):  # placeholders: DEAP wants callables, neuroprune compiles the trees itself
    raise RuntimeError("activation trees are compiled by neuroprune.activations.expr")


def primitive_set(name: str = "default") -> gp.PrimitiveSet:
    """DEAP's primitive set for one of :data:`~neuroprune.activations.expr.PRIMITIVE_SETS`."""
    unary, binary, constants = PRIMITIVE_SETS[name]
    pset = gp.PrimitiveSet("ACT", 1)
    pset.renameArguments(ARG0="x")
    for op in unary:
        pset.addPrimitive(_never, 1, name=op)
    for op in binary:
        pset.addPrimitive(_never, 2, name=op)
    for c in constants:
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
    tb.register("mutate_node", gp.mutNodeReplacement, pset=pset)
    limit = gp.staticLimit(key=operator.attrgetter("height"), max_value=max_height)
    tb.decorate("mate", limit)
    tb.decorate("mutate", limit)
    return tb


def mutant(parent: ActTree, tb: base.Toolbox) -> ActTree:
    """One (1+lambda) offspring: a changed copy of ``parent`` (subtree or point mutation)."""
    child = tb.clone(parent)
    for _ in range(10):  # a mutation may give back the same tree; try again a few times
        (child,) = tb.mutate(child) if random.random() < 0.5 else tb.mutate_node(child)
        if str(child) != str(parent):
            break
    del child.fitness.values
    return child


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
