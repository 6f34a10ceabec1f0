"""The one evolution loop (neuroprune.evolution.loop): a toy algorithm on a tiny problem."""

import pytest
import torch

from neuroprune.checkpoint import load_checkpoint, save_checkpoint
from neuroprune.errors import UserError
from neuroprune.evolution.genome import MaskPopulation
from neuroprune.evolution.loop import Generation, Told, evolve, population_record
from neuroprune.rundir import FILES, RunDir

N, P = 12, 4


class OneMax:
    """Flip bits of the best rows at random; fitness is the number of ones."""

    name, generations, hall_of_fame = "onemax", 5, 2

    def init(self):
        gen = torch.Generator().manual_seed(3)
        return {"population": MaskPopulation(torch.rand(P, N, generator=gen) < 0.3),
                "random": gen}

    def load(self, saved):
        gen = torch.Generator()
        gen.set_state(saved["random"])
        return {"population": MaskPopulation.from_state(saved["population"], "cpu"),
                "random": gen}

    def save(self, state):
        return {"population": state["population"].state(), "random": state["random"].get_state()}

    def ask(self, state, generation, hof):
        if generation > 0:
            parents = torch.stack([ind.bits for ind in hof[:2]])
            flip = torch.rand(P, N, generator=state["random"]) < 0.2
            state["population"] = MaskPopulation(parents.repeat(P // 2, 1) ^ flip)
        return state["population"]

    def tell(self, state, pop, fitness, generation):
        pop.set_fitness(range(P), fitness)
        rows = [{"generation": generation, "index": i, "fitness": f}
                for i, f in enumerate(fitness)]
        return Told(rows, population_record(pop.individuals, P), pop.individuals)


def ones(pop, generation):
    return pop.bits.sum(1).double().tolist()


class Memory:
    def __init__(self, stop_after=None, folder=None):
        self.generations: list[Generation] = []
        self.stop_after, self.folder = stop_after, folder

    def record(self, generation):
        self.generations.append(generation)
        if self.folder is not None:
            save_checkpoint(self.folder / f"gen_{generation.number}.pt", generation.state)
        if generation.number == self.stop_after:
            raise KeyboardInterrupt


def test_the_loop_records_every_generation_with_its_hall_of_fame_and_logbook():
    memory = Memory()
    run = evolve(OneMax(), ones, memory, progress=False)
    assert [g.number for g in memory.generations] == list(range(5))
    assert [r["gen"] for r in run.logbook] == list(range(5))
    assert list(run.logbook[0]) == ["gen", "evals", "best", "mean", "std"]
    assert len(run.hof) == 2
    best = max(r["fitness"] for g in memory.generations for r in g.rows)
    assert run.hof[0].fitness.values[0] == best == max(r["best"] for r in run.logbook)
    last = memory.generations[-1]
    assert last.state["generation"] == 4 and last.state["method"] == "onemax"
    assert last.record == run.logbook[-1]


def test_a_resumed_run_equals_the_uninterrupted_one(tmp_path):
    whole = Memory()
    full = evolve(OneMax(), ones, whole, progress=False)
    with pytest.raises(KeyboardInterrupt):
        evolve(OneMax(), ones, Memory(stop_after=2, folder=tmp_path), progress=False)
    saved = load_checkpoint(tmp_path / "gen_2.pt")
    rest = Memory()
    resumed = evolve(OneMax(), ones, rest, saved, progress=False)
    assert [g.number for g in rest.generations] == [3, 4]
    assert [g.rows for g in rest.generations] == [g.rows for g in whole.generations[3:]]
    assert list(resumed.logbook) == list(full.logbook)
    assert [ind.fitness.values for ind in resumed.hof] == [ind.fitness.values for ind in full.hof]
    assert all(torch.equal(a.bits, b.bits) for a, b in zip(resumed.hof, full.hof))


def test_the_state_is_data_that_loads_with_weights_only(tmp_path):
    memory = Memory(folder=tmp_path)
    evolve(OneMax(), ones, memory, progress=False)
    blob = torch.load(tmp_path / "gen_4.pt", weights_only=True)  # no code runs
    assert blob["checkpoint_version"] == 2
    state = load_checkpoint(tmp_path / "gen_4.pt")
    assert state["generation"] == 4 and torch.equal(state["random"],
                                                    memory.generations[-1].state["random"])
    assert len(state["hof"]) == 2 and len(state["logbook"]) == 5


def test_an_algorithm_without_hall_of_fame_keeps_none():
    class NoHof(OneMax):
        hall_of_fame = 0

        def ask(self, state, generation, hof):
            assert hof is None
            return state["population"]

    memory = Memory()
    run = evolve(NoHof(), ones, memory, progress=False)
    assert run.hof is None and "hof" not in memory.generations[-1].state


def test_a_checkpoint_missing_the_algorithms_state_is_refused_in_one_line(tmp_path):
    memory = Memory()
    evolve(OneMax(), ones, memory, progress=False)
    saved = dict(memory.generations[1].state)
    del saved["random"]
    with pytest.raises(UserError, match="generation 1 has no 'random' for onemax"):
        evolve(OneMax(), ones, None, saved, progress=False)


def test_a_checkpoint_of_another_version_is_refused_naming_it(tmp_path):
    rd = RunDir(tmp_path / "run")
    rd.commit_generation(0, [{"generation": 0, "index": 0, "fitness": 1.0}])
    rd.save_checkpoint(0, {"generation": 0})
    torch.save({"checkpoint_version": 3, "state": {"generation": 0}}, rd.checkpoints()[0])
    with pytest.raises(UserError, match="is of version 3 and this neuroprune reads version 2"):
        rd.load_last_checkpoint()


def test_a_run_directory_records_the_loop(tmp_path):
    rd = RunDir(tmp_path / "run")
    run = evolve(OneMax(), ones, rd, progress=False)
    assert sorted(rd.committed()) == list(range(5))
    assert [p.name for p in rd.checkpoints()] == [FILES.checkpoint(g) for g in (2, 3, 4)]
    assert (rd.path / FILES.logbook).read_text().count("\n") == 6  # header and 5 lines
    assert rd.best_so_far["fitness"] == run.hof[0].fitness.values[0]
    assert rd.last_generation == 4
    resumed, _ = rd.load_last_checkpoint()
    assert resumed["generation"] == 4 and len(resumed["logbook"]) == 5
    rd.write_interrupted("onemax", 0, resume="neuroprune resume run")
    summary = rd.read_summary()
    assert summary["status"] == "interrupted" and summary["last_generation"] == 4
    assert summary["best_so_far"]["generation"] <= 4


def test_an_algorithm_that_does_not_resume_is_recorded_without_checkpoints():
    class Once(OneMax):
        def save(self, state):
            return None

    memory = Memory()
    evolve(Once(), ones, memory, progress=False)
    assert [g.state for g in memory.generations] == [{}] * 5
    assert [g.rows for g in memory.generations][0][0]["generation"] == 0


def test_a_method_context_needs_six_fields():
    from neuroprune.methods import MethodContext
    from neuroprune.testing import method_context

    full = method_context()
    small = MethodContext(full.spec, full.data, full.layout, full.settings, full.evaluator,
                          full.init)
    assert small.seed == 0 and small.commit is None and small.resume_state is None
    assert small.without_commit().layout is full.layout
