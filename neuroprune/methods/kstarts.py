"""K-starts: evolve which of k random p-sparse masks to keep, from the first epochs of training.

Haroon, "What to Prune and What Not to Prune at Initialization", arXiv 2209.02201 (2022).

k random masks at the target sparsity share one set of initial weights. Each is trained for a
few epochs by the population engine (all k at once); its fitness is a weighted sum of the
validation accuracy, the mean magnitude of its kept weights and the mean accumulated gradient
magnitude of its kept weights (the last two relative to the first generation's mean, so the
weights in the config are comparable). DEAP selection and sparsity-preserving crossover and
mutation breed the next generation; the best masks survive (elitism). The winner is trained to
the end by the search driver.
"""

from __future__ import annotations

import operator
import random
from typing import Any, Literal

import numpy as np
import torch
from deap import tools
from pydantic import Field, field_validator, model_validator
from tqdm.auto import tqdm

from ..engine import EvalTask
from ..evolution.genome import mask_individual
from ..evolution.operators import cx_kept_sets, mut_guided, mut_swap
from ..masks import bits_to_mask, flatten, random_bits
from ..progress import show_best
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
    population: int = Field(16, ge=2, description="k: masks per generation")
    generations: int = Field(5, ge=1, description="generations, the random start included")
    search_epochs: int = Field(2, ge=1, description="training epochs per fitness evaluation")
    fitness: FitnessWeights = FitnessWeights()
    selection: Literal["tournament", "best"] = "tournament"
    tournament_size: int = Field(3, ge=2)
    crossover_prob: float = Field(0.5, ge=0, le=1)
    mutation_prob: float = Field(0.5, ge=0, le=1)
    mutation_rate: float = Field(0.05, gt=0, le=1, description="share of kept weights swapped")
    mutation: Literal["random", "magnitude", "movement"] = Field(
        "random", description="which kept connections a mutation drops: random ones, the "
        "smallest after the fitness training, or those that moved least from their start "
        "(the dissipating-gradient signal); regrowth is random")
    elite: int = Field(2, ge=0, description="best masks copied unchanged to the next generation")

    @field_validator("elite")
    @classmethod
    def _elite(cls, v: int, info) -> int:
        pop = info.data.get("population")
        if pop is not None and v >= pop:
            raise ValueError(f"elite must be smaller than population ({pop})")
        return v


class KStarts(Method):
    name = "kstarts"
    summary = "evolve k random sparse masks, picked by magnitude, gradient and/or accuracy"
    citation = "Haroon 2022, arXiv 2209.02201"
    Params = KStartsParams

    def initial_bits(self, ctx: MethodContext, gen: torch.Generator) -> list[torch.Tensor]:
        """The k starting masks (random; subclasses seed them from other signals)."""
        return [random_bits(ctx.layout, gen) for _ in range(self.params.population)]

    def find(self, ctx: MethodContext) -> MethodResult:
        p = self.params
        gen = torch.Generator().manual_seed(ctx.seed + 1)
        state = ctx.resume_state
        if state is None:
            random.seed(ctx.seed)
            pop = [mask_individual(b) for b in self.initial_bits(ctx, gen)]
            hof = tools.HallOfFame(max(1, p.elite), similar=operator.eq)
            logbook = tools.Logbook()
            refs: dict[str, float] = {}
            start = 0
        else:
            pop, hof, logbook, refs = (state["population"], state["hof"], state["logbook"],
                                       state["refs"])
            random.setstate(state["random"])
            gen.set_state(state["torch_generator"])
            start = state["generation"] + 1
        stats = tools.Statistics(lambda ind: ind.fitness.values[0])
        stats.register("best", np.max)
        stats.register("mean", np.mean)
        stats.register("std", np.std)

        bar = tqdm(range(start, p.generations), desc="kstarts", unit="gen",
                   disable=not ctx.progress, initial=start, total=p.generations)
        for g in bar:
            if g > 0:
                pop = self._breed(pop, hof, ctx, gen)
            todo = [ind for ind in pop if not ind.fitness.valid]
            rows = self._evaluate(ctx, todo, g, refs)
            hof.update(pop)
            record = stats.compile(pop)
            logbook.record(gen=g, evals=len(todo), **record)
            show_best(bar, record["best"], rows)
            if ctx.commit is not None:
                ctx.commit(g, rows, {
                    "generation": g, "population": pop, "hof": hof, "logbook": logbook,
                    "refs": refs, "random": random.getstate(),
                    "torch_generator": gen.get_state(), "method": self.name,
                })
        best = hof[0]
        return MethodResult(bits=best.bits.clone(), init=ctx.init,
                            info={"best_fitness": float(best.fitness.values[0]),
                                  "logbook": list(logbook)})

    def _breed(self, pop, hof, ctx: MethodContext, gen: torch.Generator):
        p = self.params
        n_off = p.population - p.elite
        if p.selection == "best":
            chosen = tools.selBest(pop, n_off)
        else:
            chosen = tools.selTournament(pop, n_off, tournsize=p.tournament_size)
        offspring = [self._clone(ind) for ind in chosen]
        for a, b in zip(offspring[::2], offspring[1::2]):
            if random.random() < p.crossover_prob:
                a.bits, b.bits = cx_kept_sets(a.bits, b.bits, ctx.layout, gen)
                del a.fitness.values, b.fitness.values
                if a.signal is not None and b.signal is not None:  # children inherit both
                    a.signal = b.signal = torch.maximum(a.signal, b.signal)
        for ind in offspring:
            if random.random() < p.mutation_prob:
                if p.mutation != "random" and ind.signal is not None:
                    ind.bits = mut_guided(ind.bits, ctx.layout, p.mutation_rate, ind.signal, gen)
                else:
                    ind.bits = mut_swap(ind.bits, ctx.layout, p.mutation_rate, gen)
                del ind.fitness.values
        elites = [self._clone(ind) for ind in hof[: p.elite]]
        return elites + offspring

    @staticmethod
    def _clone(ind):
        new = mask_individual(ind.bits.clone())
        new.signal = getattr(ind, "signal", None)
        if ind.fitness.valid:
            new.fitness.values = ind.fitness.values
        return new

    def _signal(self, ctx: MethodContext, bits: torch.Tensor, trained) -> torch.Tensor:
        """Per kept connection: |w| after the fitness training, or how far it moved from its
        (possibly rescaled) start; float16 to keep checkpoints small."""
        w = flatten(ctx.layout, {k: trained[k] for k in ctx.layout.names})
        if self.params.mutation == "magnitude":
            return w.abs().half()
        start = flatten(ctx.layout, {k: ctx.init[k] for k in ctx.layout.names}).clone()
        if ctx.rescale_init:  # as the engine does: each layer by its own mask density
            offs = ctx.layout.offsets
            for a, b in zip(offs[:-1], offs[1:]):
                start[a:b] *= float(bits[a:b].float().mean().clamp_min(1e-12)) ** -0.5
        return ((w - start).abs() * bits).half()

    def _evaluate(self, ctx: MethodContext, todo, generation: int,
                  refs: dict[str, float]) -> list[dict[str, Any]]:
        w = self.params.fitness
        if not todo:
            return []
        task = EvalTask(masks=[bits_to_mask(ctx.layout, ind.bits) for ind in todo],
                        init=ctx.init, epochs=self.params.search_epochs, data_seed=ctx.seed,
                        collect_grads=w.gradient > 0, rescale_init=ctx.rescale_init,
                        keep_weights=self.params.mutation != "random")
        res = ctx.evaluator.evaluate(task)
        if res.weights is not None:
            for ind, trained in zip(todo, res.weights):
                ind.signal = self._signal(ctx, ind.bits, trained)
        for key in ("magnitude", "gradient"):
            if key not in refs:
                vals = [m[key] for m in res.metrics if key in m and np.isfinite(m[key])]
                if vals:
                    refs[key] = float(np.mean(vals)) or 1.0
        rows = []
        for i, (ind, m) in enumerate(zip(todo, res.metrics)):
            parts = {"accuracy": m["val_accuracy"],
                     "magnitude": m["magnitude"] / refs.get("magnitude", 1.0),
                     "gradient": m.get("gradient", 0.0) / refs.get("gradient", 1.0)}
            fit = sum(getattr(w, k) * v for k, v in parts.items())
            if m["diverged"] or not np.isfinite(fit):
                fit = WORST
            ind.fitness.values = (fit,)
            rows.append({"generation": generation, "index": i, "fitness": fit,
                         "val_accuracy": m["val_accuracy"], "train_loss": m["train_loss"],
                         "magnitude": m["magnitude"], "gradient": m.get("gradient", ""),
                         "sparsity": 1.0 - float(ind.bits.float().mean()),
                         "diverged": int(m["diverged"])})
        return rows
