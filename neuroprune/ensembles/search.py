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

from ..evolution.loop import Told
from ..evolution.loop import evolve as evolve_loop
from ..evolution.random_state import DeapRandom
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


class _NotResumable:
    """The ensemble searches run on the one loop without checkpoints."""

    def load(self, saved: dict) -> dict:
        raise NotImplementedError("an ensemble search does not resume from a checkpoint")

    def save(self, state: dict) -> None:
        return None  # no checkpoints


class _Distribution(_NotResumable):
    """UMDA (the mean of the better half) or PBIL (a step towards the best sample) as an
    :class:`~neuroprune.evolution.loop.Algorithm`: the state is the probability of each
    classifier, the random generator and the best sample so far."""

    hall_of_fame = 0

    def __init__(self, pb: Problem, umda: bool, learning_rate: float = 0.1):
        self.pb, self.umda, self.learning_rate = pb, umda, learning_rate
        self.name, self.generations = "umda" if umda else "pbil", pb.generations

    def init(self) -> dict:
        rng = np.random.default_rng(self.pb.seed)
        p = np.full(self.pb.n, 0.5)
        if self.pb.init != "random":
            p = np.clip(self.pb.start(rng).astype(float), 0.1, 0.9)
        return {"p": p, "rng": rng, "best_bits": None, "best_fit": -np.inf}

    def ask(self, state: dict, generation: int, hof) -> np.ndarray:
        return state["rng"].random((self.pb.population, self.pb.n)) < state["p"]

    def evaluate(self, samples: np.ndarray, generation: int) -> np.ndarray:
        return np.array([self.pb.score(s) for s in samples])

    def tell(self, state: dict, samples: np.ndarray, fits: np.ndarray, generation: int) -> Told:
        n, order = self.pb.n, np.argsort(-fits)
        if fits[order[0]] > state["best_fit"]:
            state["best_fit"], state["best_bits"] = float(fits[order[0]]), samples[order[0]].copy()
        if self.umda:
            p = samples[order[: max(2, self.pb.population // 2)]].mean(0)
        else:
            p = (1 - self.learning_rate) * state["p"] + self.learning_rate * samples[order[0]]
        state["p"] = np.clip(p, 1.0 / n, 1.0 - 1.0 / n)
        return Told([], {"best": float(fits.max()), "mean": float(fits.mean())})


def _history(logbook) -> list[dict]:
    return [{"generation": r["gen"], "best": r["best"], "mean": r["mean"]} for r in logbook]


def _evolve_distribution(pb: Problem, umda: bool, learning_rate: float = 0.1) -> EvolutionResult:
    """UMDA or PBIL on the one evolution loop."""
    algorithm = _Distribution(pb, umda, learning_rate)
    run = evolve_loop(algorithm, algorithm.evaluate, progress=False)
    return EvolutionResult(run.state["best_bits"], None, run.state["best_fit"],
                           _history(run.logbook))


def evolve_umda(pb: Problem) -> EvolutionResult:
    return _evolve_distribution(pb, umda=True)


def evolve_pbil(pb: Problem) -> EvolutionResult:
    return _evolve_distribution(pb, umda=False)


class _GA(_NotResumable):
    """A GA on selection bits with DEAP's tournament, two-point crossover and bit flips, as an
    :class:`~neuroprune.evolution.loop.Algorithm`: the state is the population and three
    random states (numpy's, a ``random.Random`` and DEAP's)."""

    name = "ga"

    def __init__(self, pb: Problem, cxpb: float, mutpb: float, elite: int):
        self.pb, self.cxpb, self.mutpb, self.elite = pb, cxpb, mutpb, elite
        self.generations, self.hall_of_fame = pb.generations, max(1, elite)
        self.evolve_weights = pb.spec.fusion == "weighted"

    def init(self) -> dict:
        pb, n = self.pb, self.pb.n
        rng, py_rng = np.random.default_rng(pb.seed), random.Random(pb.seed)
        pop = [Genome(pb.start(rng), rng.random(n) + 0.5 if self.evolve_weights else None)
               for _ in range(pb.population)]
        deap = DeapRandom(pb.seed)
        if pb.init in ("all_ones", "best_k"):  # keep diversity: all but the first are mutated
            with deap.active():  # (these flips drew from the global random module before)
                for ind in pop[1:]:
                    _mutate(ind, py_rng, 2.0 / n, self.evolve_weights, rng)
        return {"population": pop, "rng": rng, "py_rng": py_rng, "deap": deap}

    def ask(self, state: dict, generation: int, hof) -> list:
        n, py_rng = self.pb.n, state["py_rng"]
        if generation:
            with state["deap"].active():  # DEAP's tools draw from the random module
                state["population"] = self._breed(state, hof)
        for ind in state["population"]:
            if not any(ind):
                ind[py_rng.randrange(n)] = 1
        return state["population"]

    def _breed(self, state: dict, hof) -> list:
        py_rng, elite = state["py_rng"], self.elite
        chosen = tools.selTournament(state["population"], self.pb.population - elite,
                                     tournsize=3)
        off = [Genome(list(c), None if c.weights is None else c.weights.copy()) for c in chosen]
        for a, b in zip(off[::2], off[1::2]):
            if py_rng.random() < self.cxpb:
                tools.cxTwoPoint(a, b)
        for ind in off:
            if py_rng.random() < self.mutpb:
                _mutate(ind, py_rng, 1.0 / self.pb.n, self.evolve_weights, state["rng"])
        return [Genome(list(h), None if h.weights is None else h.weights.copy())
                for h in hof[:elite]] + off

    def evaluate(self, pop: list, generation: int) -> list[float]:
        return [self.pb.score(ind, ind.weights) for ind in pop]

    def tell(self, state: dict, pop: list, fits: list[float], generation: int) -> Told:
        for ind, f in zip(pop, fits):
            ind.fitness.values = (f,)
        return Told([], {"best": max(fits), "mean": float(np.mean(fits))}, pop)


def evolve_ga(pb: Problem, cxpb: float = 0.7, mutpb: float = 0.3,
              elite: int = 2) -> EvolutionResult:
    """A GA on selection bits with DEAP's tournament, two-point crossover and bit flips."""
    ga = _GA(pb, cxpb, mutpb, elite)
    run = evolve_loop(ga, ga.evaluate, progress=False)
    best = run.hof[0]
    return EvolutionResult(np.asarray(best, dtype=bool), best.weights,
                           best.fitness.values[0], _history(run.logbook))


def _mutate(ind, py_rng, indpb, evolve_weights, rng):
    tools.mutFlipBit(ind, indpb=max(indpb, 1e-3))
    if evolve_weights and ind.weights is not None:
        ind.weights = np.clip(ind.weights + rng.normal(0, 0.2, len(ind.weights)), 0.01, None)
