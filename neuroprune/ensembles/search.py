"""Selection and fusion over cached classifier outputs: fitness, fusion, GA / UMDA / PBIL.

CIF-E names the four choices exposed here: Classifiers (the pool), Initialisation, Fitness
function, Evolutionary algorithm. Evolutionary selection and integration of ensemble members as
surveyed by Cagnini, Dôres, Freitas and Barros, "A survey of evolutionary algorithms for
supervised ensemble learning", The Knowledge Engineering Review 38 (2023). UMDA: Mühlenbein and
Paaß, "From recombination of genes to the estimation of distributions I", PPSN 1996. PBIL:
Baluja, "Population-Based Incremental Learning", CMU-CS-94-163 (1994). GA operators: DEAP's.

Everything works on ``probas [n_classifiers, n_samples, n_classes]`` computed once per fold,
so that a fitness evaluation is a few array operations.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field

import numpy as np
from deap import base, tools

FUSIONS = ("majority", "weighted", "average")
INITS = ("random", "all_ones", "best_k")
ALGORITHMS = ("ga", "umda", "pbil")


def fuse(probas: np.ndarray, select: np.ndarray, fusion: str,
         weights: np.ndarray | None = None) -> np.ndarray:
    """Fused class scores ``[n_samples, n_classes]`` of the selected classifiers."""
    sel = np.flatnonzero(select)
    if len(sel) == 0:
        return np.zeros(probas.shape[1:])
    p = probas[sel]
    if fusion == "average":
        return p.mean(0)
    votes = np.eye(p.shape[2])[p.argmax(2)]  # one-hot votes [k, n, c]
    w = np.ones(len(sel)) if fusion == "majority" or weights is None else weights[sel]
    # ties between vote counts are broken by the averaged probabilities
    return np.tensordot(w, votes, axes=1) + 1e-6 * p.mean(0)


def diversity(probas: np.ndarray, y: np.ndarray, select: np.ndarray, kind: str) -> float:
    """Mean pairwise disagreement (higher: more diverse) or 1 - double-fault rate."""
    sel = np.flatnonzero(select)
    if len(sel) < 2:
        return 0.0
    pred = probas[sel].argmax(2)
    i, j = np.triu_indices(len(sel), 1)
    if kind == "disagreement":
        return float((pred[i] != pred[j]).mean())
    wrong = pred != y
    return float(1.0 - (wrong[i] & wrong[j]).mean())


@dataclass
class FitnessSpec:
    fusion: str = "majority"
    diversity_weight: float = 0.0
    diversity: str = "disagreement"
    size_penalty: float = 0.0


def fitness(probas, y, select, spec: FitnessSpec, weights=None) -> float:
    if not select.any():
        return 0.0
    acc = float((fuse(probas, select, spec.fusion, weights).argmax(1) == y).mean())
    div = diversity(probas, y, select, spec.diversity) if spec.diversity_weight else 0.0
    return acc + spec.diversity_weight * div - spec.size_penalty * select.mean()


class _Fit(base.Fitness):
    weights = (1.0,)


class Genome(list):
    """Selection bits (and, for weighted voting, one weight per classifier)."""

    def __init__(self, bits, weights=None):
        super().__init__(int(b) for b in bits)
        self.weights = None if weights is None else np.asarray(weights, dtype=float)
        self.fitness = _Fit()


@dataclass
class EvolutionResult:
    select: np.ndarray
    weights: np.ndarray | None
    fitness: float
    history: list[dict] = field(default_factory=list)


def initial_bits(n: int, kind: str, k: int, individual_acc: np.ndarray,
                 rng: np.random.Generator) -> np.ndarray:
    if kind == "all_ones":
        return np.ones(n, dtype=bool)
    if kind == "best_k":
        bits = np.zeros(n, dtype=bool)
        bits[np.argsort(-individual_acc)[:k]] = True
        return bits
    bits = rng.random(n) < 0.5
    if not bits.any():
        bits[rng.integers(n)] = True
    return bits


def evolve(probas: np.ndarray, y: np.ndarray, spec: FitnessSpec, algorithm: str = "ga",
           init: str = "random", population: int = 30, generations: int = 30,
           seed: int = 0, best_k: int = 5, cxpb: float = 0.7, mutpb: float = 0.3,
           elite: int = 2, learning_rate: float = 0.1) -> EvolutionResult:
    """Evolve the selection (and weights, for weighted fusion) that maximises ``fitness``."""
    n = probas.shape[0]
    rng = np.random.default_rng(seed)
    individual = (probas.argmax(2) == y).mean(1)
    evolve_weights = spec.fusion == "weighted"

    def score(bits, weights=None):
        return fitness(probas, y, np.asarray(bits, dtype=bool), spec, weights)

    history: list[dict] = []
    if algorithm in ("umda", "pbil"):
        p = np.full(n, 0.5)
        if init != "random":
            p = np.clip(initial_bits(n, init, best_k, individual, rng).astype(float), 0.1, 0.9)
        best_bits, best_fit = None, -np.inf
        for g in range(generations):
            samples = rng.random((population, n)) < p
            fits = np.array([score(s) for s in samples])
            order = np.argsort(-fits)
            if fits[order[0]] > best_fit:
                best_fit, best_bits = float(fits[order[0]]), samples[order[0]].copy()
            if algorithm == "umda":
                p = samples[order[: max(2, population // 2)]].mean(0)
            else:
                p = (1 - learning_rate) * p + learning_rate * samples[order[0]]
            p = np.clip(p, 1.0 / n, 1.0 - 1.0 / n)
            history.append({"generation": g, "best": float(fits.max()), "mean": float(fits.mean())})
        return EvolutionResult(best_bits, None, best_fit, history)

    py_rng = random.Random(seed)

    def make(bits):
        w = rng.random(n) + 0.5 if evolve_weights else None
        return Genome(bits, w)

    pop = [make(initial_bits(n, init, best_k, individual, rng)) for _ in range(population)]
    if init in ("all_ones", "best_k"):  # keep diversity: all but the first are mutated copies
        for ind in pop[1:]:
            _mutate(ind, py_rng, 2.0 / n, evolve_weights, rng)
    hof = tools.HallOfFame(max(1, elite))
    state = random.getstate()
    random.seed(seed)  # DEAP's tools draw from the global random module
    try:
        for g in range(generations):
            if g:
                chosen = tools.selTournament(pop, population - elite, tournsize=3)
                off = [Genome(list(c), None if c.weights is None else c.weights.copy())
                       for c in chosen]
                for a, b in zip(off[::2], off[1::2]):
                    if py_rng.random() < cxpb:
                        tools.cxTwoPoint(a, b)
                for ind in off:
                    if py_rng.random() < mutpb:
                        _mutate(ind, py_rng, 1.0 / n, evolve_weights, rng)
                pop = [Genome(list(h), None if h.weights is None else h.weights.copy())
                       for h in hof[:elite]] + off
            for ind in pop:
                if not any(ind):
                    ind[py_rng.randrange(n)] = 1
                ind.fitness.values = (score(ind, ind.weights),)
            hof.update(pop)
            fits = [i.fitness.values[0] for i in pop]
            history.append({"generation": g, "best": max(fits), "mean": float(np.mean(fits))})
    finally:
        random.setstate(state)
    best = hof[0]
    return EvolutionResult(np.asarray(best, dtype=bool), best.weights,
                           best.fitness.values[0], history)


def _mutate(ind, py_rng, indpb, evolve_weights, rng):
    tools.mutFlipBit(ind, indpb=max(indpb, 1e-3))
    if evolve_weights and ind.weights is not None:
        ind.weights = np.clip(ind.weights + rng.normal(0, 0.2, len(ind.weights)), 0.01, None)
