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

from ..evolution.random_state import deap_random
from ..registry import Registry

FUSIONS = Registry("fusion", "ensemble.fusion", {
    "majority": ("neuroprune.ensembles.search:fuse_majority", "one vote per classifier"),
    "weighted": ("neuroprune.ensembles.search:fuse_weighted",
                 "weighted votes; the weights evolve with the selection"),
    "average": ("neuroprune.ensembles.search:fuse_average", "averaged class probabilities"),
})
INITS = Registry("initialisation", "ensemble.init", {
    "random": ("neuroprune.ensembles.search:init_random", "each classifier in with p = 1/2"),
    "all_ones": ("neuroprune.ensembles.search:init_all_ones", "the whole pool"),
    "best_k": ("neuroprune.ensembles.search:init_best_k", "the k best single classifiers"),
})
ALGORITHMS = Registry("algorithm", "ensemble.algorithm", {
    "ga": ("neuroprune.ensembles.search:evolve_ga", "genetic algorithm with DEAP operators"),
    "umda": ("neuroprune.ensembles.search:evolve_umda",
             "univariate marginal distribution algorithm (Mühlenbein & Paaß 1996)"),
    "pbil": ("neuroprune.ensembles.search:evolve_pbil",
             "population-based incremental learning (Baluja 1994)"),
})


def _votes(p: np.ndarray, weights: np.ndarray) -> np.ndarray:
    votes = np.eye(p.shape[2])[p.argmax(2)]  # one-hot votes [k, n, c]
    # ties between vote counts are broken by the averaged probabilities
    return np.tensordot(weights, votes, axes=1) + 1e-6 * p.mean(0)


def fuse_majority(p: np.ndarray, weights: np.ndarray | None) -> np.ndarray:
    return _votes(p, np.ones(len(p)))


def fuse_weighted(p: np.ndarray, weights: np.ndarray | None) -> np.ndarray:
    return _votes(p, np.ones(len(p)) if weights is None else weights)


def fuse_average(p: np.ndarray, weights: np.ndarray | None) -> np.ndarray:
    return p.mean(0)


def fuse(probas: np.ndarray, select: np.ndarray, fusion: str,
         weights: np.ndarray | None = None) -> np.ndarray:
    """Fused class scores ``[n_samples, n_classes]`` of the selected classifiers."""
    sel = np.flatnonzero(select)
    if len(sel) == 0:
        return np.zeros(probas.shape[1:])
    return FUSIONS.load(fusion)(probas[sel], None if weights is None else weights[sel])


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


def init_all_ones(n: int, k: int, individual_acc: np.ndarray,
                  rng: np.random.Generator) -> np.ndarray:
    return np.ones(n, dtype=bool)


def init_best_k(n: int, k: int, individual_acc: np.ndarray,
                rng: np.random.Generator) -> np.ndarray:
    bits = np.zeros(n, dtype=bool)
    bits[np.argsort(-individual_acc)[:k]] = True
    return bits


def init_random(n: int, k: int, individual_acc: np.ndarray,
                rng: np.random.Generator) -> np.ndarray:
    bits = rng.random(n) < 0.5
    if not bits.any():
        bits[rng.integers(n)] = True
    return bits


def initial_bits(n: int, kind: str, k: int, individual_acc: np.ndarray,
                 rng: np.random.Generator) -> np.ndarray:
    return INITS.load(kind)(n, k, individual_acc, rng)


def evolve(probas: np.ndarray, y: np.ndarray, spec: FitnessSpec, algorithm: str = "ga",
           init: str = "random", population: int = 30, generations: int = 30,
           seed: int = 0, best_k: int = 5) -> EvolutionResult:
    """Evolve the selection (and weights, for weighted fusion) that maximises ``fitness``."""
    return ALGORITHMS.load(algorithm)(Problem(probas, y, spec, init, population, generations,
                                              seed, best_k))


@dataclass
class Problem:
    """Cached classifier outputs, the fitness and the search budget."""

    probas: np.ndarray
    y: np.ndarray
    spec: FitnessSpec
    init: str
    population: int
    generations: int
    seed: int
    best_k: int

    @property
    def n(self) -> int:
        return self.probas.shape[0]

    def score(self, bits, weights=None) -> float:
        return fitness(self.probas, self.y, np.asarray(bits, dtype=bool), self.spec, weights)

    def start(self, rng: np.random.Generator) -> np.ndarray:
        individual = (self.probas.argmax(2) == self.y).mean(1)
        return initial_bits(self.n, self.init, self.best_k, individual, rng)


def _evolve_distribution(pb: Problem, umda: bool, learning_rate: float = 0.1) -> EvolutionResult:
    """UMDA (the mean of the better half) or PBIL (a step towards the best sample)."""
    n, rng = pb.n, np.random.default_rng(pb.seed)
    p = np.full(n, 0.5)
    if pb.init != "random":
        p = np.clip(pb.start(rng).astype(float), 0.1, 0.9)
    best_bits, best_fit, history = None, -np.inf, []
    for g in range(pb.generations):
        samples = rng.random((pb.population, n)) < p
        fits = np.array([pb.score(s) for s in samples])
        order = np.argsort(-fits)
        if fits[order[0]] > best_fit:
            best_fit, best_bits = float(fits[order[0]]), samples[order[0]].copy()
        if umda:
            p = samples[order[: max(2, pb.population // 2)]].mean(0)
        else:
            p = (1 - learning_rate) * p + learning_rate * samples[order[0]]
        p = np.clip(p, 1.0 / n, 1.0 - 1.0 / n)
        history.append({"generation": g, "best": float(fits.max()), "mean": float(fits.mean())})
    return EvolutionResult(best_bits, None, best_fit, history)


def evolve_umda(pb: Problem) -> EvolutionResult:
    return _evolve_distribution(pb, umda=True)


def evolve_pbil(pb: Problem) -> EvolutionResult:
    return _evolve_distribution(pb, umda=False)


def evolve_ga(pb: Problem, cxpb: float = 0.7, mutpb: float = 0.3,
              elite: int = 2) -> EvolutionResult:
    """A GA on selection bits with DEAP's tournament, two-point crossover and bit flips."""
    n, population = pb.n, pb.population
    rng = np.random.default_rng(pb.seed)
    evolve_weights = pb.spec.fusion == "weighted"
    history: list[dict] = []
    py_rng = random.Random(pb.seed)

    def make(bits):
        w = rng.random(n) + 0.5 if evolve_weights else None
        return Genome(bits, w)

    pop = [make(pb.start(rng)) for _ in range(population)]
    if pb.init in ("all_ones", "best_k"):  # keep diversity: all but the first are mutated copies
        for ind in pop[1:]:
            _mutate(ind, py_rng, 2.0 / n, evolve_weights, rng)
    hof = tools.HallOfFame(max(1, elite))
    with deap_random(pb.seed):  # DEAP's tools draw from the global random module
        for g in range(pb.generations):
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
                ind.fitness.values = (pb.score(ind, ind.weights),)
            hof.update(pop)
            fits = [i.fitness.values[0] for i in pop]
            history.append({"generation": g, "best": max(fits), "mean": float(np.mean(fits))})
    best = hof[0]
    return EvolutionResult(np.asarray(best, dtype=bool), best.weights,
                           best.fitness.values[0], history)


def _mutate(ind, py_rng, indpb, evolve_weights, rng):
    tools.mutFlipBit(ind, indpb=max(indpb, 1e-3))
    if evolve_weights and ind.weights is not None:
        ind.weights = np.clip(ind.weights + rng.normal(0, 0.2, len(ind.weights)), 0.01, None)
