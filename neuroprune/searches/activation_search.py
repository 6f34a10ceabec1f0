"""``kind: activation_search``: evolve the activation functions of an MLP's hidden layers.

Three-population cooperative coevolution (Potter and De Jong, "A Cooperative Coevolutionary
Approach to Function Optimization", PPSN 1994; for activation functions cf. Bingham,
Macke and Miikkulainen, "Evolutionary Optimization of Deep Learning Activation Functions",
GECCO 2020, arXiv 2002.07224): one population per role (first, middle, last hidden layer); an
individual is scored in a network whose other roles use the best member of the other
populations from the last generation (and, with ``collaborators: 2``, also random members;
the better score counts).

Compared on the same number of network trainings: fixed ReLU / GELU / SiLU, random search over
trees, and a one-population GA whose single function is used in every layer. Every candidate
is scored on the validation split; the winners of every strategy are then trained for
``training.epochs`` and scored once on the test split, which no selection saw.

Lapid & Sipper, "Evolution of Activation Functions for Deep Learning-Based Image
Classification" (GECCO 2022, arXiv 2206.12089) run it differently, and the strategies
``es_single``, ``es_triple`` and ``coevolution_sequential`` follow them: (1+lambda)
evolution (``lambda = activation.population``) of one function used in every slot, of three
functions at once, and three (1+lambda) searches in turn, one per slot (first, then middle,
then last), each candidate scored with the other two slots at their current best. All have
the budget of the other strategies, ``population * slots * collaborators * generations``
network trainings. Their trees are DEAP's, not the paper's Cartesian-GP graphs (see
:mod:`neuroprune.activations.gp`).

Every final training records two scores: the held-out one, test accuracy at the epoch
with the best validation accuracy (``test_accuracy``), and the paper's, the best test
accuracy over the epochs (``paper_test_accuracy``, which selects on the test split).
"""

from __future__ import annotations

import random
import time
from pathlib import Path
from typing import Any, Literal


from pydantic import Field, field_validator

from .. import __version__
from ..activations import save as save_activations
from ..activations.expr import FIXED, compile_formula, is_well_behaved, readable
from ..activations.gp import mutant, next_generation, primitive_set, toolbox
from ..config import to_dict
from ..engine import EpochSelection, EvalTask
from ..errors import ConfigError
from ..evolution.loop import Generation, Told, evolve
from ..evolution.random_state import deap_random
from ..models import RoleActivation
from ..models.config import ModelConfig
from ..rundir import RunDir
from ..section import Section, registered_list
from ..tracking import open_tracking
from ..workbench import Workbench
from .kinds import Kind
from .registry import STRATEGIES

class Top:
    """The few best distinct candidates seen (by search validation accuracy)."""

    def __init__(self, k: int = 3):
        self.k, self.items = k, []

    def add(self, combo: dict[str, str], value: float) -> None:
        if any(c == combo for c, _ in self.items):
            return
        self.items.append((dict(combo), value))
        self.items.sort(key=lambda cv: -cv[1] if cv[1] == cv[1] else 0.0)
        del self.items[self.k:]


WORST = -1.0
ES = ("es_single", "es_triple", "coevolution_sequential")  # one generation: lambda trainings


def _fixed(name: str):
    def strategy(search: "ActivationSearch") -> "Top":
        top = Top()
        top.add({r: FIXED[name] for r in search.roles}, float("nan"))
        return top
    strategy.__name__ = f"fixed_{name}"
    return strategy


fixed_relu, fixed_gelu, fixed_silu = _fixed("relu"), _fixed("gelu"), _fixed("silu")


def evolved_model(bench: Workbench) -> Workbench:
    """``bench`` with its model's activations turned into per-network slots (``evolved``)."""
    model = ModelConfig(**{**bench.config.model.model_dump(), "activation": "evolved"})
    return bench.derive(bench.config.model_copy(update={"model": model}))


def slot_roles(bench: Workbench) -> list[str]:
    """The activation roles of the model's slots, in the order first, middle, last."""
    roles = {m.role for m in bench.build_model().modules() if isinstance(m, RoleActivation)}
    if not roles:
        raise ConfigError(f"model {bench.spec.describe()} has no activation slots to evolve; "
                          f"use a model with an 'activation' option (mlp, lenet5, conv4, ...)")
    return sorted(roles, key=["first", "middle", "last"].index)


def held_out_val(m: dict[str, float]) -> float:
    """The validation accuracy that picks a final network: the best over its epochs."""
    return m.get("best_val_accuracy", m["val_accuracy"])


class _Strategy:
    """A strategy's generations as an :class:`~neuroprune.evolution.loop.Algorithm` (not
    resumable): ``ask(state, g)`` gives the combinations to score and what they belong to,
    ``tell(state, g, owners, combos, metrics)`` learns from their metrics; each generation is
    committed as ``strategy:offset+g`` (the :class:`~neuroprune.evolution.loop.Recorder`)."""

    hall_of_fame = 0

    def __init__(self, search: "ActivationSearch", name: str, generations: int, init, ask,
                 tell, offset: int = 0):
        self.search, self.name, self.generations, self.offset = search, name, generations, offset
        self.init, self._ask, self._tell = init, ask, tell

    def load(self, saved: dict) -> dict:
        raise NotImplementedError("an activation search does not resume from a checkpoint")

    def save(self, state: dict) -> None:
        return None  # no checkpoints: the generations are committed alone

    def ask(self, state: dict, generation: int, hof) -> tuple:
        return self._ask(state, generation)

    def evaluate(self, asked: tuple, generation: int) -> list[dict[str, float]]:
        return self.search.score(asked[1])

    def tell(self, state: dict, asked: tuple, metrics, generation: int) -> Told:
        owners, combos = asked
        self._tell(state, generation, owners, combos, metrics)
        rows = self.search.rows(self.name, self.offset + generation, combos, metrics)
        return Told(rows, {"best": max((m["fitness"] for m in metrics), default=float("nan"))})

    def record(self, generation: Generation) -> None:
        self.search.commit_rows(self.name, self.offset + generation.number, generation.rows)

    def run(self) -> dict:
        """The strategy's last state."""
        return evolve(self, self.evaluate, self, progress=False).state


class ActivationSearch:
    def __init__(self, bench: Workbench):
        self.bench = evolved_model(bench)
        self.cfg = self.bench.config
        self.a = self.cfg.activation
        self.roles = slot_roles(self.bench)
        self.pset = primitive_set(self.a.primitives)
        self.tb = toolbox(self.pset, self.a.max_height)
        self.init = self.bench.init_state()
        self.ok_cache: dict[str, bool] = {}
        self.bar = None
        self.on_generation = None
        self._reported = 0

    # --------------------------------------------------------------- evaluation
    def well_behaved(self, formula: str) -> bool:
        if formula not in self.ok_cache:
            self.ok_cache[formula] = is_well_behaved(compile_formula(formula),
                                                     max_linearity=self.a.max_linearity)
        return self.ok_cache[formula]

    def score(self, combos: list[dict[str, str]], epochs: int | None = None,
              test: bool = False) -> list[dict[str, float]]:
        """Metrics of a network per combination, with its ``fitness`` (see
        :meth:`fitness`); broken ones (the probe refused them, or they diverged): WORST."""
        good = [i for i, c in enumerate(combos) if all(self.well_behaved(f) for f in c.values())]
        out = [{"val_accuracy": WORST, "fitness": WORST, "diverged": 1.0} for _ in combos]
        if good:
            res = self.evaluator.evaluate(EvalTask(
                masks=None, size=len(good), init=self.init,
                epochs=epochs or self.a.search_epochs, data_seed=self.cfg.seed,
                activations=[combos[i] for i in good], test=test,
                hooks=(EpochSelection(test),)))
            for i, m in zip(good, res.rows()):
                out[i] = ({**m, "fitness": self.fitness(m)} if not m["diverged"] else
                          {**m, "val_accuracy": WORST, "fitness": WORST})
        return out

    def fitness(self, m: dict[str, float]) -> float:
        """Validation accuracy after the last epoch (``fitness: last``) or the best over the
        epochs (``best``), less ``stability`` times the drop from the best epoch to the
        last: a function whose network gets worse as it trains is marked down."""
        best, last = m["best_val_accuracy"], m["val_accuracy"]
        return (best if self.a.fitness == "best" else last) - self.a.stability * (best - last)

    def rows(self, strategy: str, generation: int, combos, metrics) -> list[dict[str, Any]]:
        """The ledger rows of a generation's combinations and their metrics."""
        return [{"generation": f"{strategy}:{generation}", "index": i, "strategy": strategy,
                 "val_accuracy": m["val_accuracy"], "fitness": m["fitness"],
                 "diverged": int(m.get("diverged", 0)),
                 **{f"f_{r}": readable(c[r]) for r in self.roles}}
                for i, (c, m) in enumerate(zip(combos, metrics))]

    def commit(self, strategy: str, generation: int, combos, metrics) -> None:
        self.commit_rows(strategy, generation, self.rows(strategy, generation, combos, metrics))

    def commit_rows(self, strategy: str, generation: int, rows: list[dict[str, Any]]) -> None:
        if self.bar is not None:
            best = max((r["fitness"] for r in rows), default=float("nan"))
            self.bar.set_postfix(strategy=strategy, best=f"{best:.4f}")
            self.bar.update(1)
        self.rd.commit_generation(f"{strategy}:{generation}", rows)
        if self.on_generation is not None:  # tuning: one step per searched generation
            self.on_generation(self._reported, rows)
            self._reported += 1

    def new_individual(self):
        """A random tree that passes the probe (constant or exploding ones are redrawn)."""
        for _ in range(200):
            ind = self.tb.individual()
            if self.well_behaved(str(ind)):
                return ind
        return ind

    # --------------------------------------------------------------- strategies
    @property
    def per_generation(self) -> int:
        return self.a.population * len(self.roles) * self.a.collaborators

    def random_search(self) -> "Top":
        top = Top(self.a.final_candidates)

        def ask(state, g):
            return None, [{r: str(self.new_individual()) for r in self.roles}
                          for _ in range(self.per_generation)]

        def tell(state, g, owners, combos, metrics):
            for c, m in zip(combos, metrics):
                top.add(c, m["fitness"])
        _Strategy(self, "random", self.a.generations, dict, ask, tell).run()
        return top

    def ga(self) -> "Top":
        top = Top(self.a.final_candidates)

        def init():
            return {"population": [self.new_individual() for _ in range(self.per_generation)]}

        def ask(state, g):
            if g:
                state["population"] = next_generation(state["population"], self.tb)
            todo = [i for i in state["population"] if not i.fitness.valid]
            return todo, [{r: str(i) for r in self.roles} for i in todo]

        def tell(state, g, todo, combos, metrics):
            for ind, c, m in zip(todo, combos, metrics):
                ind.fitness.values = (m["val_accuracy"],)
                top.add(c, m["fitness"])
        _Strategy(self, "ga", self.a.generations, init, ask, tell).run()
        return top

    def random_member(self, pop) -> str:
        ok = [str(i) for i in pop if self.well_behaved(str(i))]
        return random.choice(ok or [str(i) for i in pop])

    def coevolution(self) -> "Top":
        top = Top(self.a.final_candidates)

        def init():
            pops = {r: [self.new_individual() for _ in range(self.a.population)]
                    for r in self.roles}
            return {"pops": pops, "reps": {r: self.random_member(pops[r]) for r in self.roles}}

        def tell(state, g, owners, combos, metrics):
            for ind, c, m in zip(owners, combos, metrics):
                v = m["fitness"]
                if not ind.fitness.valid or v > ind.fitness.values[0]:
                    ind.fitness.values = (v,)
                top.add(c, v)
            state["reps"] = {r: str(max(state["pops"][r], key=lambda i: i.fitness.values[0]))
                             for r in self.roles}
        _Strategy(self, "coevolution", self.a.generations, init, self._coevolution_ask,
                  tell).run()
        return top

    def _coevolution_ask(self, state: dict, g: int) -> tuple[list, list]:
        """Each role's individuals, each with the other roles' representatives (and, with
        ``collaborators: 2``, random members too)."""
        if g:
            state["pops"] = {r: next_generation(state["pops"][r], self.tb) for r in self.roles}
            for p in state["pops"].values():
                for ind in p:  # collaborators changed: every score is stale
                    del ind.fitness.values
        pops, combos, owners = state["pops"], [], []
        for r in self.roles:
            for ind in pops[r]:
                partners = [state["reps"]] + (
                    [{o: self.random_member(pops[o]) for o in self.roles}]
                    if self.a.collaborators == 2 else [])
                for partner in partners:
                    combos.append({**partner, r: str(ind)})
                    owners.append(ind)
        return owners, combos

    # ------------------------------------------------ (1+lambda), as Lapid & Sipper run it
    @property
    def es_generations(self) -> int:
        """(1+lambda) generations of lambda = ``population`` trainings on the budget."""
        return len(self.roles) * self.a.collaborators * self.a.generations

    def one_plus_lambda(self, strategy: str, generations: int, draw, vary, combo, top: "Top",
                        parent=None, offset: int = 0):
        """(1+lambda): ``population`` offspring a generation (``vary(parent)``, or ``draw()``
        while there is no parent yet); the best replaces the parent when at least as good
        (ties move on, as in CGP). ``combo(genome)`` is the network's functions by role.
        Returns the parent and its fitness."""
        def init():
            return {"parent": parent, "best": WORST if parent is None else parent[1]}

        def ask(state, g):
            kids = [draw() if state["parent"] is None else vary(state["parent"][0])
                    for _ in range(self.a.population)]
            return kids, [combo(k) for k in kids]

        def tell(state, g, kids, combos, metrics):
            for k, c, m in zip(kids, combos, metrics):
                top.add(c, m["fitness"])
                if state["parent"] is None or m["fitness"] >= state["best"]:
                    state["parent"], state["best"] = (k, m["fitness"]), m["fitness"]
        end = _Strategy(self, strategy, generations, init, ask, tell, offset).run()
        return end["parent"], end["best"]

    def es_single(self) -> "Top":
        top = Top(self.a.final_candidates)
        self.one_plus_lambda("es_single", self.es_generations, self.new_individual,
                             lambda p: self.fit_mutant(p),
                             lambda t: {r: str(t) for r in self.roles}, top)
        return top

    def es_triple(self) -> "Top":
        def vary(parent: dict) -> dict:
            pick = [r for r in self.roles if random.random() < 1 / len(self.roles)]
            pick = pick or [random.choice(self.roles)]
            return {r: self.fit_mutant(t) if r in pick else t for r, t in parent.items()}

        top = Top(self.a.final_candidates)
        self.one_plus_lambda("es_triple", self.es_generations,
                             lambda: {r: self.new_individual() for r in self.roles}, vary,
                             lambda t: {r: str(v) for r, v in t.items()}, top)
        return top

    def coevolution_sequential(self) -> "Top":
        """Three (1+lambda) searches in turn, one per slot, ``rounds`` times over."""
        searches = self.a.rounds * len(self.roles)
        share = [self.es_generations // searches + (i < self.es_generations % searches)
                 for i in range(searches)]
        start = {r: (self.new_individual() if self.a.start == "random" else None)
                 for r in self.roles}
        current = {r: str(t) if t is not None else FIXED["relu"] for r, t in start.items()}
        parents: dict[str, tuple | None] = {r: None for r in self.roles}
        top, done = Top(self.a.final_candidates), 0
        for i, generations in enumerate(share):
            role = self.roles[i % len(self.roles)]
            # a later round starts from the slot's parent and its score from the last round
            parent, _ = self.one_plus_lambda(
                "coevolution_sequential", generations, self.new_individual, self.fit_mutant,
                lambda t, role=role: {**current, role: str(t)}, top,
                parent=parents[role], offset=done)
            done += generations
            if parent is not None:
                parents[role] = parent
                current[role] = str(parent[0])
        return top

    def fit_mutant(self, parent):
        """A mutant of ``parent`` that passes the probe (a few tries, then any mutant)."""
        for _ in range(20):
            child = mutant(parent, self.tb)
            if self.well_behaved(str(child)):
                return child
        return child

    # --------------------------------------------------------------- run
    def run(self, out: str | Path, progress: bool = True, on_generation=None) -> dict[str, Any]:
        from tqdm.auto import tqdm

        t0 = time.time()
        steps = sum(self.es_generations if s in ES else self.a.generations
                    for s in self.a.strategies if s not in FIXED)
        self.bar = tqdm(total=steps, desc="activation",
                        unit="gen", disable=not progress)
        self.on_generation = on_generation
        self.evaluator = self.bench.evaluator()
        self.rd = RunDir(out, open_tracking(self.cfg.logging, out, self.cfg.name)).create()
        self.rd.write_config(to_dict(self.cfg))
        self.rd.write_data_record(self.bench.data.record())
        tops: dict[str, Top] = {}
        # DEAP's gp draws from the global random module: lend it this search's own state
        with self.evaluator, deap_random(self.cfg.seed):
            for strategy in self.a.strategies:
                tops[strategy] = STRATEGIES.load(strategy)(self)
            # The best few candidates of each strategy get the full training; the one with the
            # best validation accuracy is that strategy's answer (test is looked at once).
            cands = [(s, c, v) for s, t in tops.items() for c, v in t.items]
            finals = self.score([c for _, c, _ in cands], epochs=self.cfg.training.epochs,
                                test=True)
        self.bar.close()
        self.rd.commit_generation("final", [
            {"generation": "final", "index": i, "strategy": s, "search_fitness": v,
             "val_accuracy": m.get("best_val_accuracy", m["val_accuracy"]),
             "test_accuracy": m.get("test_at_best_val", ""),
             "paper_test_accuracy": m.get("best_test_accuracy", ""),
             "last_test_accuracy": m.get("test_accuracy", ""),
             "diverged": int(m.get("diverged", 0)),
             **{f"f_{r}": readable(c[r]) for r in self.roles}}
            for i, ((s, c, v), m) in enumerate(zip(cands, finals))])
        # A strategy's answer: its finalist with the best validation accuracy over the final
        # training's epochs; that epoch's test accuracy is the held-out score.
        winners: dict[str, tuple[dict[str, str], float, dict]] = {}
        for (s, c, v), m in zip(cands, finals):
            if s not in winners or held_out_val(m) > held_out_val(winners[s][2]):
                winners[s] = (c, v, m)
        nan = float("nan")
        strategies = {s: {"functions": {r: readable(c[r]) for r in self.roles}, "prefix": c,
                          "search_fitness": v, "val_accuracy": held_out_val(m),
                          "best_val_epoch": m.get("best_val_epoch", nan),
                          "test_accuracy": m.get("test_at_best_val", nan),
                          "paper_test_accuracy": m.get("best_test_accuracy", nan),
                          "last_test_accuracy": m.get("test_accuracy", nan),
                          "diverged": bool(m.get("diverged", 0))}
                      for s, (c, v, m) in winners.items()}
        best = max(strategies, key=lambda s: strategies[s]["val_accuracy"])  # by validation
        save_activations(self.rd.path / "best_activations.json", winners[best][0],
                         {"strategy": best})
        summary = {"status": "complete", "kind": "activation_search", "best_strategy": best,
                   "best_functions": strategies[best]["functions"],
                   "test_accuracy": strategies[best]["test_accuracy"],
                   "paper_test_accuracy": strategies[best]["paper_test_accuracy"],
                   "val_accuracy": strategies[best]["val_accuracy"],
                   "scores": {"test_accuracy": "test accuracy at the final training's epoch "
                              "with the best validation accuracy (held out)",
                              "paper_test_accuracy": "best test accuracy over the final "
                              "training's epochs (selects on the test split, as the paper "
                              "reports)"},
                   "strategies": strategies, "evaluations_per_strategy":
                       self.per_generation * self.a.generations,
                   "dataset": self.cfg.data.dataset, "data": self.bench.data.record(),
                   "seed": self.cfg.seed, "device": self.bench.device,
                   "wall_seconds": round(time.time() - t0, 3),
                   "neuroprune_version": __version__}
        self.rd.write_summary(summary)
        return summary


class ActivationConfig(Section):
    """``kind: activation_search``: what is compared and the evolutionary budget."""

    strategies: registered_list(STRATEGIES) = Field(
        ["relu", "gelu", "silu", "random", "ga", "coevolution"], min_length=1,
        description="what is compared, on the same number of network trainings")
    population: int = Field(8, ge=2, description="individuals per coevolving population")
    generations: int = Field(5, ge=1, description="generations")
    search_epochs: int = Field(2, ge=1, description="training epochs per fitness evaluation")
    collaborators: Literal[1, 2] = Field(1, description="1: best of the other populations; "
                                         "2: and a random member")
    max_height: int = Field(5, ge=1, le=12, description="tree height limit")
    primitives: str = Field("default", description="primitive set: default (ours, with "
                            "constants) or paper (Lapid & Sipper's fifteen, x the only "
                            "terminal)")
    fitness: Literal["last", "best"] = Field(
        "last", description="a candidate's score from its search training: validation "
        "accuracy after the last epoch, or the best over the epochs (the paper's)")
    stability: float = Field(0.0, ge=0, allow_inf_nan=False, description="subtract this "
                             "times the drop of validation accuracy from its best epoch to "
                             "the last: favours functions that keep improving as they train")
    max_linearity: float | None = Field(0.998, gt=0, le=1, description="the probe rejects "
                                        "functions whose best affine fit on [-3, 3] has a "
                                        "larger R^2 (none: keep them)")
    rounds: int = Field(1, ge=1, description="coevolution_sequential: passes over the three "
                        "slots; the budget is split evenly between passes and slots")
    start: Literal["random", "relu"] = Field("random", description="coevolution_sequential: "
                                             "the slots' functions before their first search")
    final_candidates: int = Field(3, ge=1, description="best distinct candidates per strategy "
                                  "that get the final training (the winner is picked on "
                                  "validation)")

    @field_validator("primitives")
    @classmethod
    def _known_set(cls, v: str) -> str:
        from ..activations.expr import PRIMITIVE_SETS
        if v not in PRIMITIVE_SETS:
            raise ValueError(f"unknown primitive set {v!r}; choose one of "
                             f"{', '.join(PRIMITIVE_SETS)}")
        return v


class ActivationSearchKind(Kind):
    name = "activation_search"
    section = "activation"
    Config = ActivationConfig
    columns = ("generation", "strategy", "val_accuracy")
    reporter = "neuroprune.report.activation:report"
    resumable = False
    objectives = ("val_accuracy", "wall_seconds")

    def __init__(self, bench: Workbench):
        super().__init__(bench)
        from .._system import require_memory
        from .activation_search import ActivationSearch
        a = bench.config.activation  # three populations of trees, and their offspring
        require_memory(a.population * 3 * 2 * 2 ** (a.max_height + 6),
                       f"activation.population={a.population:,}", "lower activation.population")
        self.search = ActivationSearch(bench)

    def run(self, out, *, progress=True, resume=False, log=print, on_generation=None):
        return self.search.run(out, progress, on_generation=on_generation)

    def lines(self, summary, out):
        lines = []
        for name, st in summary["strategies"].items():
            funcs = "; ".join(f"{r}: {f}" for r, f in st["functions"].items())
            paper = st.get("paper_test_accuracy", float("nan"))
            lines.append(f"{name:<12} val {st['val_accuracy']:.4f} "
                         f"test {st['test_accuracy']:.4f} (paper's {paper:.4f})  {funcs}")
        return lines + [f"best by validation: {summary['best_strategy']}; run directory: {out}"]
