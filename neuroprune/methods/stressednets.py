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
from ..evolution.loop import Told, evolve, recorder_of
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
        if ctx.structure is None:
            raise ConfigError(f"method {self.name} needs sparsity.structure: neuron, channel "
                              f"or all")
        synthesis = Synthesis(self, ctx)
        run = evolve(synthesis, synthesis.evaluate, recorder_of(ctx.commit), ctx.resume_state,
                     progress=ctx.progress)
        keep, weights = run.state["parent_keep"], run.state["parent_state"]
        return MethodResult(bits=ctx.structure.expand(keep[None])[0], init=weights,
                            from_init=False, info={"exact": False, "logbook": list(run.logbook),
                                                   "units_kept": int(keep.sum())})


class Synthesis:
    """StressedNets' generations as an :class:`~neuroprune.evolution.loop.Algorithm`: the
    state is the parent (its units and trained weights) and the random generator."""

    hall_of_fame = 0

    def __init__(self, method: StressedNets, ctx: MethodContext):
        self.ctx, self.params, self.space = ctx, method.params, ctx.structure
        self.name, self.generations = method.name, method.params.generations

    def init(self) -> dict:
        return {"parent_keep": torch.ones(self.space.size, dtype=torch.bool),
                "parent_state": {k: v.clone() for k, v in self.ctx.init.items()},
                "random": torch.Generator().manual_seed(self.ctx.seed)}

    def load(self, saved: dict) -> dict:
        gen = torch.Generator()
        gen.set_state(saved["random"])
        return {"parent_keep": saved["parent_keep"], "parent_state": saved["parent_state"],
                "random": gen}

    def save(self, state: dict) -> dict:
        return {"parent_keep": state["parent_keep"], "parent_state": state["parent_state"],
                "random": state["random"].get_state()}

    def ask(self, state: dict, g: int, hof) -> tuple:
        """The offspring's units (``keep``) and their rows, drawn from the parent."""
        space, p, parent_keep = self.space, self.params, state["parent_keep"]
        rows_w = space.rows_of({n: state["parent_state"][n][None].float()
                                for n in space.layout.names})
        strength = space.channel_sums(rows_w.abs(), "filter")[0]
        for a, b in zip(space.offsets, space.offsets[1:]):
            strength[a:b] /= strength[a:b].max().clamp_min(1e-12)
        u = torch.rand(p.offspring, space.size, generator=state["random"])
        keys = u.log() / strength.clamp_min(1e-6)  # log(u ** (1 / strength))
        keys = torch.where(parent_keep, keys, torch.tensor(-torch.inf))
        keep = space.meet(keys, self.ctx.budget, self.ctx.target * (g + 1) / p.generations)
        keep &= parent_keep
        return keep, space.expand(keep), state["parent_state"]

    def evaluate(self, asked: tuple, g: int):
        _, rows, parent_state = asked
        p = self.params
        return self.ctx.evaluator.evaluate(self.ctx.task(
            rows, p.epochs, init=parent_state, keep_weights=True, rescale_init=False,
            hooks=(GroupNorms(self.space, torch.full((p.offspring,), p.stress)),)))

    def tell(self, state: dict, asked: tuple, res, g: int) -> Told:
        keep, rows, _ = asked
        population = MaskPopulation(keep)
        population.set_fitness(range(self.params.offspring),
                               res.metrics["val_accuracy"].tolist())
        best = tools.selBest(population.individuals, 1)[0].row
        state["parent_keep"], state["parent_state"] = keep[best].clone(), res.weights_of(best)
        accuracy = res.metrics["val_accuracy"]
        return Told([{"generation": g, "index": i, "val_accuracy": float(a),
                      "sparsity": float(self.space.cost(rows[i:i + 1], "sparsity")[0])}
                     for i, a in enumerate(accuracy.tolist())],
                    {"best": float(accuracy[best]), "mean": float(accuracy.mean()),
                     "units": int(state["parent_keep"].sum())})
