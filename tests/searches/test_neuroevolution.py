"""kind: neuroevolution: the driving env, NEAT's run directory and export, Q-learning."""

from __future__ import annotations

import csv
import json

import numpy as np
import pytest

pytest.importorskip("gymnasium")
pytest.importorskip("neat")

import gymnasium as gym  # noqa: E402

from helpers import REPO  # noqa: E402
from neuroprune.cli import main  # noqa: E402
from neuroprune.config import NeuroevolutionConfig  # noqa: E402
from neuroprune.masks import read_mask_file  # noqa: E402
from neuroprune.rl.track import TRACK_ID  # noqa: E402
from neuroprune.searches.neuroevolution import (Evaluator, genome_tensors,  # noqa: E402
                                                run_dqn, run_neat, run_q)

CI = str(REPO / "configs" / "neat_ci.yaml")


def _episode(seed, actions):
    env = gym.make(TRACK_ID)
    obs, _ = env.reset(seed=seed)
    trace = [obs]
    for a in actions:
        obs, r, term, trunc, _ = env.step(a)
        trace.append(np.append(obs, r))
        if term or trunc:
            break
    return trace


def test_track_is_registered_and_deterministic_under_a_seed():
    assert TRACK_ID in gym.registry
    actions = [0, 1, 2, 1, 1, 0, 2, 2, 1, 1] * 5
    a, b = _episode(3, actions), _episode(3, actions)
    assert len(a) == len(b) and all(np.array_equal(x, y) for x, y in zip(a, b))
    c = _episode(4, actions)  # another seed starts elsewhere on the road
    assert not np.array_equal(a[0], c[0]) or len(a) != len(c)
    env = gym.make(TRACK_ID)
    obs, _ = env.reset(seed=0)
    assert env.observation_space.contains(obs) and env.action_space.n == 3


def test_neat_run_writes_every_file(tmp_path, capsys):
    out = tmp_path / "run"
    assert main(["run", CI, "--out", str(out), "--no-progress"]) == 0
    for env in ("neuroprune_Track-v0", "CartPole-v1"):
        for name in (f"best_genome_{env}.safetensors", f"topology_{env}.png"):
            assert (out / name).stat().st_size > 0, name
    for name in ("config.yaml", "summary.json", "curves.csv", "curves.png"):
        assert (out / name).stat().st_size > 0, name
    rows = list(csv.DictReader(open(out / "curves.csv")))
    assert {(r["method"], r["seed"]) for r in rows} == {
        (m, s) for m in ("neat", "qlearning") for s in ("0", "1")}
    summary = json.loads((out / "summary.json").read_text())
    track = summary["environments"][TRACK_ID]
    # Q-learning got the budget NEAT spent
    assert track["qlearning"]["env_steps_mean"] == track["neat"]["env_steps_mean"] > 0
    assert "neat" in capsys.readouterr().out


def test_neat_is_seeded_and_its_mask_is_the_genomes_enabled_connections(tmp_path):
    nc = NeuroevolutionConfig(environments=[TRACK_ID], seeds=[0], population=6,
                              generations=3, episodes=1, max_steps=60)
    curve, genome, config = run_neat(TRACK_ID, nc, 0, tmp_path / "neat.cfg")
    assert run_neat(TRACK_ID, nc, 0, tmp_path / "again.cfg")[0] == curve  # seeded
    keys, weight, mask, bias = genome_tensors(genome, config)
    enabled = {k for k, c in genome.connections.items() if c.enabled}
    got = {(keys[i], keys[j]) for i, j in mask.nonzero().tolist()}
    assert got == enabled and len(enabled) > 0
    for (a, b) in enabled:
        assert weight[keys.index(a), keys.index(b)] == pytest.approx(
            genome.connections[(a, b)].weight)
    from neuroprune.searches.neuroevolution import export_genome
    export_genome(tmp_path / "g.safetensors", genome, config, TRACK_ID)
    masks, weights, meta = read_mask_file(tmp_path / "g.safetensors")
    assert masks["weight"].equal(mask)
    assert meta["node_keys"] == keys and weights["weight"].equal(weight * mask)


def test_the_track_vector_env_drives_each_car_as_the_single_env_does():
    from neuroprune.rl.track import TrackEnv, TrackVectorEnv
    seeds = [10_000 + 7 * i for i in range(12)]
    actions = np.random.default_rng(0).integers(0, 3, size=(150, len(seeds)))
    vec = TrackVectorEnv(len(seeds), max_steps=150)
    obs, _ = vec.reset(seed=seeds)
    single = [TrackEnv(max_steps=150) for _ in seeds]
    assert np.array_equal(obs, np.stack([e.reset(seed=s)[0] for e, s in zip(single, seeds)]))
    live, ended = np.ones(len(seeds), bool), 0
    for step in actions:
        obs, reward, term, trunc, _ = vec.step(step)
        for i in np.flatnonzero(live):
            o, r, te, tr, _ = single[i].step(step[i])
            assert np.array_equal(o, obs[i]) and r == reward[i]
            assert (te, tr) == (term[i], trunc[i])
            if te or tr:
                live[i], ended = False, ended + 1
        assert (reward[~live & ~(term | trunc)] == 0).all()
    assert ended == len(seeds)  # every episode ended (crash or time), each as the single env


@pytest.mark.parametrize("env_id", [TRACK_ID, "CartPole-v1"])
def test_neat_scores_a_generation_as_one_tensor_pass_with_neat_pythons_fitnesses(tmp_path,
                                                                                env_id):
    """The same run (seeded) with each evaluator: equal curves (best fitness and steps per
    generation), champions and the fitness of every genome of the last generation."""
    import neat

    from neuroprune.rl.neat_tensor import TensorEvaluator, supported
    from neuroprune.searches.neuroevolution import _make
    nc = NeuroevolutionConfig(environments=[env_id], seeds=[0], population=12,
                              generations=4, episodes=2, max_steps=120)
    serial = run_neat(env_id, nc.model_copy(update={"evaluator": "serial"}), 0,
                      tmp_path / "s.cfg")
    tensor = run_neat(env_id, nc.model_copy(update={"evaluator": "tensor"}), 0,
                      tmp_path / "t.cfg")
    assert tensor[0] == serial[0] and len(serial[0]) == 4
    assert tensor[1].fitness == serial[1].fitness
    assert tensor[1].connections.keys() == serial[1].connections.keys()
    config = serial[2]
    assert supported(config) is None
    # grown genomes (hidden nodes, deleted connections): every fitness equal, one at a time
    pop = neat.Population(config, seed=3)
    scorer = Evaluator(env_id, nc, 0)

    def grow(genomes, config):
        for _, g in genomes:
            g.fitness = 0.0
    pop.run(grow, 1)
    genomes = list(pop.population.values())
    for g in genomes:
        for _ in range(6):
            g.mutate_add_node(config.genome_config)
            g.mutate_add_connection(config.genome_config)
    assert any(len(g.nodes) > config.genome_config.num_outputs for g in genomes)
    one = [scorer(lambda o, net=neat.nn.FeedForwardNetwork.create(g, config):
                  int(np.argmax(net.activate(o)))) for g in genomes]
    together = TensorEvaluator(lambda: _make(env_id, nc.max_steps), scorer.seeds)
    assert together(genomes, config) == one
    assert together.steps == scorer.steps


def test_q_learning_beats_a_random_policy_on_the_track():
    nc = NeuroevolutionConfig(environments=[TRACK_ID], seeds=[0], episodes=3, max_steps=150,
                              q_eval_every=3000)
    rng = np.random.default_rng(0)
    random_reward = Evaluator(TRACK_ID, nc, 0)(lambda o: int(rng.integers(3)))
    curve = run_q(TRACK_ID, nc, 0, budget=6000)
    assert curve[-1][0] == 6000
    assert curve[-1][1] > random_reward + 5, (curve, random_reward)


def test_dqn_beats_a_random_policy_on_the_track():
    nc = NeuroevolutionConfig(environments=[TRACK_ID], seeds=[0], episodes=3, max_steps=150,
                              q_eval_every=1500, dqn_learning_starts=200)
    rng = np.random.default_rng(0)
    random_reward = Evaluator(TRACK_ID, nc, 0)(lambda o: int(rng.integers(3)))
    curve = run_dqn(TRACK_ID, nc, 0, budget=3000)
    assert [s for s, _ in curve] == [0, 1500, 3000]
    assert curve[-1][1] > random_reward + 5, (curve, random_reward)
    assert run_dqn(TRACK_ID, nc, 0, budget=3000) == curve  # seeded


def test_dqn_baseline_runs_beside_neat_and_q_learning(tmp_path):
    out = tmp_path / "run"
    assert main(["run", CI, "--out", str(out), "--no-progress", "--set",
                 "neuroevolution.environments=[CartPole-v1]", "--set",
                 "neuroevolution.baselines=[qlearning, dqn]", "--set",
                 "neuroevolution.dqn_learning_starts=50"]) == 0
    rows = list(csv.DictReader((out / "curves.csv").open()))
    assert {r["method"] for r in rows} == {"neat", "qlearning", "dqn"}
    summary = json.loads((out / "summary.json").read_text())["environments"]["CartPole-v1"]
    neat_steps = summary["neat"]["env_steps_mean"]
    assert summary["dqn"]["env_steps_mean"] == neat_steps  # the same budget as NEAT
    assert summary["dqn"]["final_reward_mean"] >= 8  # CartPole pays 1 per step kept up


@pytest.mark.parametrize("setting, words", [
    ("neuroevolution.environments=[NoSuchEnv-v9]", "unknown Gymnasium id"),
    ("neuroevolution.population=1", "population"),
    ("neuroevolution.environments=[Pendulum-v1]", "Discrete actions"),
    ("neuroevolution.baselines=[dqn, dqn]", "baseline"),
    ("neuroevolution.baselines=[ppo]", "baselines"),
    ("neuroevolution.evaluator=gpu", "evaluator"),
])
def test_bad_input_is_one_line_exit_2(tmp_path, capsys, setting, words):
    out = tmp_path / "run"
    code = main(["run", CI, "--out", str(out), "--set", setting, "--no-progress"])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(err) == 1 and words in err[0], err
    assert not out.exists()


def test_export_and_load_model_say_what_a_genome_file_is(tmp_path, capsys):
    from safetensors import safe_open
    from safetensors.torch import load_file, save_file

    import neuroprune
    from neuroprune.errors import UserError
    out = tmp_path / "run"
    assert main(["run", CI, "--out", str(out), "--no-progress", "--set", "neuroevolution.seeds=[0]",
                 "--set", "neuroevolution.environments=[CartPole-v1]"]) == 0
    capsys.readouterr()
    assert main(["export", str(out), "--out", str(tmp_path / "x.safetensors")]) == 2
    err = capsys.readouterr().err.strip()
    assert "\n" not in err and "best_genome_CartPole-v1.safetensors" in err
    assert "NEAT genome" in err and "read_mask_file" in err
    genome = out / "best_genome_CartPole-v1.safetensors"
    with safe_open(str(genome), "pt") as f:
        meta = f.metadata()
    assert meta["kind"] == "neuroevolution"
    old = tmp_path / "old.safetensors"  # written before the files named their kind
    save_file(load_file(str(genome)), str(old),
              metadata={k: v for k, v in meta.items() if k != "kind"})
    for path in (genome, old):
        with pytest.raises(UserError, match="NEAT genome") as exc:
            neuroprune.load_model(path)
        assert "altered" not in str(exc.value) and "read_mask_file" in str(exc.value)
        masks, weights, _ = read_mask_file(path)  # the way the message points to still reads
        assert masks["weight"].shape == weights["weight"].shape
