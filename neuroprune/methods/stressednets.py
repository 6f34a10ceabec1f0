"""StressedNets: stress-induced evolutionary synthesis of smaller networks.

Shafiee, Chwyl, Li, Wong et al., "StressedNets: Efficient Feature Representations via
Stress-induced Evolutionary Synthesis of Deep Neural Networks" (arXiv 1801.05387). Over
generations, offspring networks are synthesised from a parent: each of the parent's units
(neurons, filters, with everything coupled to them) survives into an offspring with a
probability drawn from its trained strength, and the offspring train under stress; the
fittest becomes the next parent.

Here (the paper's details left open are options): a unit's strength is its filter's L1 norm
over the layer's largest; the offspring are drawn by weighted sampling without replacement
(key ``u ** (1 / strength)``, Efraimidis and Spirakis) until they meet the generation's
budget, which reaches ``sparsity.target`` linearly over ``generations``; a unit the parent
lost never comes back; the stress is a group-lasso penalty of strength ``stress`` on what
produces each unit; fitness is validation accuracy after ``epochs`` of training from the
parent's weights, all ``offspring`` in one population. DEAP picks the parent
(``tools.selBest``) and keeps the logbook.
"""

from __future__ import annotations

import torch
from deap import tools
from pydantic import Field

from ..errors import ConfigError
from ..evolution.genome import MaskPopulation
from .base import Method, MethodContext, MethodParams, MethodResult
from .group_lasso import GroupNorms


class StressedNetsParams(MethodParams):
    generations: int = Field(3, ge=1, description="generations of synthesis")
    offspring: int = Field(8, ge=1, description="offspring per generation, trained together")
    epochs: int = Field(1, ge=1, description="training epochs of every offspring")
    stress: float = Field(1e-4, ge=0, description="strength of the stress (group lasso) the "
                          "offspring train under")


class StressedNets(Method):
    name = "stressednets"
    summary = "evolutionary synthesis: units survive by their trained strength under stress"
    citation = "Shafiee et al. 2018, arXiv 1801.05387"
    Params = StressedNetsParams
    structured = True

    def search_network_epochs(self, final_epochs: int, sparsity: float) -> int:
        p = self.params
        return p.generations * p.offspring * p.epochs

    def resumes(self, state) -> bool:
        return "parent_keep" in state  # each generation saves its parent and random state

    def find(self, ctx: MethodContext) -> MethodResult:
        space, p = ctx.structure, self.params
        if space is None:
            raise ConfigError(f"method {self.name} needs sparsity.structure: neuron, channel "
                              f"or all")
        gen = torch.Generator().manual_seed(ctx.seed)
        parent_keep = torch.ones(space.size, dtype=torch.bool)
        parent_state = {k: v.clone() for k, v in ctx.init.items()}
        logbook = tools.Logbook()
        start = 0
        if ctx.resume_state is not None:  # the generation after the last committed one
            saved = ctx.resume_state
            parent_keep, parent_state = saved["parent_keep"], saved["parent_state"]
            logbook = saved["logbook"]
            gen.set_state(saved["random"])
            start = saved["generation"] + 1
        for g in range(start, p.generations):
            rows_w = space.rows_of({n: parent_state[n][None].float()
                                    for n in space.layout.names})
            strength = space.channel_sums(rows_w.abs(), "filter")[0]
            for a, b in zip(space.offsets, space.offsets[1:]):
                strength[a:b] /= strength[a:b].max().clamp_min(1e-12)
            u = torch.rand(p.offspring, space.size, generator=gen)
            keys = u.log() / strength.clamp_min(1e-6)  # log(u ** (1 / strength))
            keys = torch.where(parent_keep, keys, torch.tensor(-torch.inf))
            keep = space.meet(keys, ctx.budget, ctx.target * (g + 1) / p.generations)
            keep &= parent_keep
            rows = space.expand(keep)
            res = ctx.evaluator.evaluate(ctx.task(
                rows, p.epochs, init=parent_state, keep_weights=True, rescale_init=False,
                hooks=(GroupNorms(space, torch.full((p.offspring,), p.stress)),)))
            population = MaskPopulation(keep)
            population.set_fitness(range(p.offspring), res.metrics["val_accuracy"].tolist())
            best = tools.selBest(population.individuals, 1)[0].row
            parent_keep, parent_state = keep[best].clone(), res.weights_of(best)
            accuracy = res.metrics["val_accuracy"]
            logbook.record(gen=g, best=float(accuracy[best]), mean=float(accuracy.mean()),
                           units=int(parent_keep.sum()))
            if ctx.commit is not None:
                ctx.commit(g, [{"generation": g, "index": i, "val_accuracy": float(a),
                                "sparsity": float(space.cost(rows[i:i + 1], "sparsity")[0])}
                               for i, a in enumerate(accuracy.tolist())],
                           {"generation": g, "method": self.name, "parent_keep": parent_keep,
                            "parent_state": parent_state, "logbook": logbook,
                            "random": gen.get_state()})
        return MethodResult(bits=space.expand(parent_keep[None])[0], init=parent_state,
                            from_init=False, info={"exact": False, "logbook": list(logbook),
                                                   "units_kept": int(parent_keep.sum())})
