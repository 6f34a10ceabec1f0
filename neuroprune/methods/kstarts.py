"""K-starts: pick which of k random p-sparse masks to keep, from the first epochs of training.

Haroon, "What to Prune and What Not to Prune at Initialization", arXiv 2209.02201 (2022).

Two variants of one method (``variant``):

* ``paper``: as the abstract describes it. k random masks at the target sparsity share one set
  of initial weights and are trained together for ``search_epochs`` ("the first couple of
  epochs"); the fittest is kept, fitness being the magnitude of its kept weights, the gradient
  magnitude accumulated over that training, or both (``fitness.magnitude``,
  ``fitness.gradient``; validation accuracy is not used: ``fitness.accuracy`` must be 0). The
  winner then keeps training from where it is, without rewinding: the final training starts
  from its trained weights. The paper does not say whether the optimiser and learning-rate
  schedule carry on; here the final training starts a fresh schedule of ``training.epochs``
  (named, not an option: the engine restarts its optimiser per run).
* ``ga`` (the default, our extension): a DEAP genetic algorithm over the masks. Each
  generation's masks are trained for ``search_epochs``; fitness is a weighted sum of the
  validation accuracy, the mean magnitude and the mean accumulated gradient of the kept weights
  (the last two relative to the first generation's mean, so the weights in the config are
  comparable); selection and sparsity-preserving crossover and mutation breed the next
  generation; the best masks survive (elitism). The winner is trained from the initial weights.
"""

from __future__ import annotations

import random
from typing import Any, Literal

import torch
from deap import tools
from pydantic import Field, model_validator

from ..engine import EvalTask, GradientStatistics, TrainingHook, TrainState
from ..evolution.genome import MaskPopulation
from ..evolution.loop import Told, evolve, population_record, recorder_of
from ..evolution.operators import Draws, cx_kept_sets, mut_guided, mut_swap, random_rows
from ..evolution.random_state import DeapRandom
from ..masks import Layout, flatten_rows
from .base import Method, MethodContext, MethodParams, MethodResult

WORST = -1e9  # fitness of a network whose training diverged


class FitnessWeights(MethodParams):
    accuracy: float = Field(1.0, ge=0, description="weight of validation accuracy")
    magnitude: float = Field(0.0, ge=0, description="weight of kept weights' mean |w|")
    gradient: float = Field(0.0, ge=0, description="weight of kept weights' accumulated |grad|")

    @model_validator(mode="after")
    def _some(self) -> "FitnessWeights":
        if self.accuracy + self.magnitude + self.gradient <= 0:
            raise ValueError("at least one fitness weight must be positive")
        return self


class KStartsParams(MethodParams):
    variant: Literal["ga", "paper"] = Field(
        "ga", description="paper: best of k after the first epochs by magnitude/gradient, the "
        "winner keeps training; ga: our genetic algorithm over the masks")
    population: int = Field(16, ge=2, description="k: masks per generation")
    generations: int = Field(5, ge=1, description="generations, the random start included")
    search_epochs: int = Field(2, ge=1, description="training epochs per fitness evaluation")
    fitness: FitnessWeights = Field(FitnessWeights(), description="what a mask's fitness "
                                    "weighs: validation accuracy, |w| and |grad| of kept weights")
    selection: Literal["tournament", "best"] = Field(
        "tournament", description="parents by tournament, or the best masks (truncation)")
    tournament_size: int = Field(3, ge=2, description="masks in each selection tournament")
    crossover_prob: float = Field(0.5, ge=0, le=1, description="probability that a pair of "
                                  "parents is crossed over")
    mutation_prob: float = Field(0.5, ge=0, le=1, description="probability that a child is "
                                 "mutated")
    mutation_rate: float = Field(0.05, gt=0, le=1, description="share of kept weights swapped")
    mutation: Literal["random", "magnitude", "movement"] = Field(
        "random", description="which kept connections a mutation drops: random ones, the "
        "smallest after the fitness training, or those that moved least from their start "
        "(the dissipating-gradient signal); regrowth is random")
    elite: int = Field(2, ge=0, description="best masks copied unchanged to the next generation")

    @model_validator(mode="after")
    def _elite(self) -> "KStartsParams":  # also for the default elite (a small population)
        breeds = self.variant == "ga" and self.generations > 1
        if breeds and self.elite >= self.population:
            raise ValueError(f"elite ({self.elite}) must be smaller than population "
                             f"({self.population})")
        return self

    @model_validator(mode="after")
    def _paper(self) -> "KStartsParams":
        if self.variant == "paper" and self.fitness.accuracy > 0:
            raise ValueError("the paper's K-starts picks by weight magnitude and/or gradient, "
                             "not validation accuracy: set fitness.accuracy to 0")
        return self


class MaskSignal(TrainingHook):
    """Per kept connection, after the fitness training: ``|w|`` (``magnitude``) or how far
    the weight moved from its (possibly rescaled) start (``movement``, the
    dissipating-gradient signal). The extra ``signal``: ``[P, n]`` float16 in layout order."""

    def __init__(self, layout: Layout, kind: str):
        self.layout, self.kind = layout, kind
        self.start_weights: dict[str, torch.Tensor] = {}

    def start(self, state: TrainState) -> None:
        if self.kind == "movement":
            self.start_weights = {k: state.params[k].detach().clone() for k in self.layout.names}

    def finish(self, state: TrainState) -> dict[str, Any]:
        out = {}
        for k in self.layout.names:
            w = state.params[k].detach()
            value = w.abs() if self.kind == "magnitude" else \
                (w - self.start_weights[k]).abs() * state.masks[k]
            out[k] = value
        return {"signal": flatten_rows(self.layout, out).half().cpu()}


class KStarts(Method):
    name = "kstarts"
    summary = "evolve k random sparse masks, picked by magnitude, gradient and/or accuracy"
    citation = "Haroon 2022, arXiv 2209.02201"
    Params = KStartsParams

    def search_network_epochs(self, final_epochs: int, sparsity: float) -> int:
        """Network-epochs the search trains at most (the final training not included)."""
        p = self.params
        if p.variant == "paper":
            return p.population * p.search_epochs
        return p.search_epochs * (p.population + (p.generations - 1) * (p.population - p.elite))

    def state_bytes(self, layout: Layout) -> int:
        """The population and its offspring (one byte per connection each), and the float16
        signals of guided mutation."""
        per_mask = layout.numel * (1 + (2 if self.params.mutation != "random" else 0))
        return 2 * self.params.population * per_mask

    def initial_bits(self, ctx: MethodContext, draws: Draws) -> torch.Tensor:
        """The k starting masks ``[k, n]`` (random; subclasses seed them from other
        signals)."""
        return random_rows(ctx.layout, self.params.population, draws)

    def resumes(self, state) -> bool:
        # the GA continues from its last generation
        return self.params.variant == "ga" and "population" in state

    def find(self, ctx: MethodContext) -> MethodResult:
        if self.params.variant == "paper":
            return self.best_of_k(ctx)
        return self.evolve(ctx)

    def best_of_k(self, ctx: MethodContext, bits: torch.Tensor | None = None) -> MethodResult:
        """The paper's K-starts: train the k masks (``bits``, default random) together for
        ``search_epochs``, keep the fittest by magnitude/gradient, continue from its weights."""
        draws = Draws(ctx.seed + 1, ctx.device)
        pop = MaskPopulation(self.initial_bits(ctx, draws) if bits is None else bits)
        todo = torch.arange(len(pop))
        task = self.fitness_task(ctx, pop, todo)
        task.keep_weights = True
        res = ctx.evaluator.evaluate(task)
        rows = self.collect(pop, todo, res, 0, {})
        if ctx.commit is not None:
            ctx.commit(0, rows, {"generation": 0, "method": self.name, "variant": "paper"})
        best = max(range(len(pop)), key=lambda i: pop.individuals[i].fitness.values[0])
        return MethodResult(bits=pop.bits[best].cpu().clone(), init=res.weights_of(best),
                            from_init=False,
                            info={"best_fitness": pop.individuals[best].fitness.values[0],
                                  "winner": best, "variant": "paper"})

    def evolve(self, ctx: MethodContext) -> MethodResult:
        """Our GA over masks (``variant: ga``), on the one evolution loop."""
        ga = KStartsGA(self, ctx)
        run = evolve(ga, ga.evaluate, recorder_of(ctx.commit), ctx.resume_state,
                     progress=ctx.progress)
        best = run.hof[0]
        return MethodResult(bits=best.bits.cpu().clone(), init=ctx.init,
                            info={"best_fitness": float(best.fitness.values[0]),
                                  "logbook": list(run.logbook), "variant": "ga"})

    def _breed(self, pop: MaskPopulation, hof, ctx: MethodContext, draws: Draws,
               rng: DeapRandom) -> MaskPopulation:
        """Selection (DEAP), then crossover and mutation of the whole offspring at once; the
        ``elite`` best of all time are carried over unchanged."""
        p = self.params
        n_off = p.population - p.elite
        with rng.active():
            chosen = tools.selBest(pop.individuals, n_off) if p.selection == "best" else \
                tools.selTournament(pop.individuals, n_off, tournsize=p.tournament_size)
            cross = [random.random() < p.crossover_prob for _ in range(n_off // 2)]
            mutate = [random.random() < p.mutation_prob for _ in range(n_off)]
        index = torch.tensor([ind.row for ind in chosen], device=pop.bits.device)
        bits = pop.bits[index]
        signals = None if pop.signals is None else pop.signals[index]
        fitness = [ind.fitness.values for ind in chosen]
        pairs = torch.tensor([i for i, c in enumerate(cross) if c], dtype=torch.int64,
                             device=bits.device)
        if len(pairs):
            a, b = 2 * pairs, 2 * pairs + 1
            bits[a], bits[b] = cx_kept_sets(bits[a], bits[b], ctx.layout, draws)
            if signals is not None:  # children inherit both parents' signals
                signals[a] = signals[b] = torch.maximum(signals[a], signals[b])
            for i in torch.cat([a, b]).tolist():
                fitness[i] = None
        rows = torch.tensor([i for i, m in enumerate(mutate) if m], dtype=torch.int64,
                            device=bits.device)
        if len(rows):
            if p.mutation != "random" and signals is not None:
                bits[rows] = mut_guided(bits[rows], ctx.layout, p.mutation_rate, signals[rows],
                                        draws)
            else:
                bits[rows] = mut_swap(bits[rows], ctx.layout, p.mutation_rate, draws)
            for i in rows.tolist():
                fitness[i] = None
        elites = list(hof[:p.elite])
        if elites:
            bits = torch.cat([torch.stack([e.bits.to(bits.device) for e in elites]), bits])
            if signals is not None:
                signals = torch.cat([torch.stack([e.signal.to(bits.device) for e in elites]),
                                     signals])
            fitness = [e.fitness.values for e in elites] + fitness
        return MaskPopulation.assemble(bits, signals, fitness)

    def fitness_task(self, ctx: MethodContext, pop: MaskPopulation,
                     todo: torch.Tensor) -> EvalTask:
        """The fitness training of rows ``todo``: one task for all of them."""
        hooks: list[TrainingHook] = []
        if self.params.fitness.gradient > 0:
            hooks.append(GradientStatistics())
        if self.params.mutation != "random":
            hooks.append(MaskSignal(ctx.layout, self.params.mutation))
        return ctx.task(pop.bits[todo.to(pop.bits.device)], self.params.search_epochs,
                        hooks=hooks)

    def collect(self, pop: MaskPopulation, todo: torch.Tensor, res, generation: int,
                refs: dict[str, float]) -> list[dict[str, Any]]:
        """Fitness from the ``[P]`` metrics of ``res`` (weighted accuracy, magnitude and
        gradient, the last two relative to the first generation's mean), set on the
        individuals; returns their rows for the ledger."""
        w, rows = self.params.fitness, todo.to(pop.bits.device)
        if "signal" in res.extras:
            if pop.signals is None:
                pop.signals = torch.zeros(pop.bits.shape, dtype=torch.float16,
                                          device=pop.bits.device)
            pop.signals[rows] = res.extras["signal"].to(pop.bits.device)
        m = res.metrics
        for key in ("magnitude", "gradient"):
            if key not in refs and key in m:
                vals = m[key][torch.isfinite(m[key])]
                if len(vals):
                    refs[key] = float(vals.mean()) or 1.0
        gradient = m.get("gradient", torch.zeros(len(todo), dtype=torch.float64))
        fitness = (w.accuracy * m["val_accuracy"] + w.magnitude * m["magnitude"] /
                   refs.get("magnitude", 1.0) + w.gradient * gradient /
                   refs.get("gradient", 1.0))
        fitness = torch.where(m["diverged"].bool() | ~torch.isfinite(fitness),
                              torch.tensor(WORST, dtype=torch.float64), fitness)
        pop.set_fitness(todo.tolist(), fitness.tolist())
        sparsity = (1.0 - pop.bits[rows].float().mean(1)).cpu().tolist()
        table = {k: v.tolist() for k, v in m.items()}
        table["fitness"] = fitness.tolist()
        return [{"generation": generation, "index": i, "fitness": table["fitness"][i],
                 "val_accuracy": table["val_accuracy"][i], "train_loss": table["train_loss"][i],
                 "magnitude": table["magnitude"][i],
                 "gradient": table["gradient"][i] if "gradient" in table else "",
                 "sparsity": sparsity[i], "diverged": int(table["diverged"][i])}
                for i in range(len(todo))]


class KStartsGA:
    """K-starts' genetic algorithm as an :class:`~neuroprune.evolution.loop.Algorithm`: its
    state is the population, the fitness references and the two random states."""

    def __init__(self, method: KStarts, ctx: MethodContext):
        self.method, self.ctx = method, ctx
        self.name, self.generations = method.name, method.params.generations
        self.hall_of_fame = max(1, method.params.elite)

    def _random(self) -> tuple[Draws, DeapRandom]:
        return Draws(self.ctx.seed + 1, self.ctx.device), DeapRandom(self.ctx.seed)

    def init(self) -> dict[str, Any]:
        draws, rng = self._random()
        return {"population": MaskPopulation(self.method.initial_bits(self.ctx, draws)),
                "refs": {}, "random": rng, "draws": draws}

    def load(self, saved: dict[str, Any]) -> dict[str, Any]:
        draws, rng = self._random()
        rng.state = saved["random"]
        draws.restore(saved["draws"])
        return {"population": MaskPopulation.from_state(saved["population"], self.ctx.device),
                "refs": saved["refs"], "random": rng, "draws": draws}

    def save(self, state: dict[str, Any]) -> dict[str, Any]:
        return {"population": state["population"].state(), "refs": state["refs"],
                "random": state["random"].state, "draws": state["draws"].state()}

    def ask(self, state: dict[str, Any], generation: int, hof) -> tuple:
        if generation > 0:
            state["population"] = self.method._breed(state["population"], hof, self.ctx,
                                                     state["draws"], state["random"])
        pop = state["population"]
        return pop, pop.invalid()

    def evaluate(self, asked: tuple, generation: int):
        pop, todo = asked
        if not len(todo):
            return None
        return self.ctx.evaluator.evaluate(self.method.fitness_task(self.ctx, pop, todo))

    def tell(self, state: dict[str, Any], asked: tuple, res, generation: int) -> Told:
        pop, todo = asked
        rows = [] if res is None else \
            self.method.collect(pop, todo, res, generation, state["refs"])
        return Told(rows, population_record(pop.individuals, len(todo)), pop.individuals)
