"""``kind: neuroevolution``: NEAT against tabular Q-learning on Gymnasium tasks.

NEAT: Stanley & Miikkulainen, "Evolving Neural Networks through Augmenting Topologies",
Evolutionary Computation 10(2), 2002, through neat-python 2.x (speciation, add/delete node
and connection). The seed compares it with Q-learning for an agent that learns to drive a
given path; the task here is :mod:`neuroprune.rl.track` (``neuroprune/Track-v0``), with
CartPole-v1 as a standard second set.

Both methods are measured as reward against environment steps. A policy's reward is the mean
return over ``episodes`` fixed evaluation episodes (seeds ``10_000 + 100 * seed + k``). NEAT's
fitness is exactly that reward, so each generation's champion gives one curve point at the
steps spent so far (every evaluation step is a training step). Q-learning gets the same step
budget as NEAT used for that seed; its greedy policy is scored every ``q_eval_every`` steps
(evaluation steps not counted). A network's action is the argmax of its outputs.
``baselines`` may add a small DQN (:mod:`neuroprune.rl.dqn`) on the same terms.

Exported per environment: the best genome over all seeds as ``best_genome_<env>.safetensors``.
Layout: nodes ordered inputs (neat keys -1, -2, ...), outputs (0, 1, ...), hidden (ascending
key); ``weight[i, j]`` is the weight of the connection from node i to node j, ``weight_mask``
(same shape, bool) marks the enabled connections, ``bias`` holds every node's bias (inputs 0);
the metadata holds ``kind: neuroevolution``, ``node_keys`` and the activation.
"""

from __future__ import annotations

import csv
import io
import statistics
import time
import warnings
from pathlib import Path
from typing import Any, Literal

import numpy as np
import torch
from pydantic import Field, field_validator
from tqdm.auto import tqdm

from .._io import atomic_write, atomic_write_text
from ..config import _distinct, _seeds, to_dict
from ..errors import ConfigError, require
from ..report.style import band, save, styles
from ..rl.neat_tensor import mean_return
from ..rundir import FILES, RunDir
from ..section import Section
from ..workbench import Workbench
from .kinds import Kind

NEAT_CONFIG = """[NEAT]
fitness_criterion     = max
fitness_threshold     = 1e9
no_fitness_termination = True
pop_size              = {population}
reset_on_extinction   = True

[DefaultGenome]
num_inputs = {inputs}
num_outputs = {outputs}
num_hidden = 0
feed_forward = True
initial_connection = full_direct
activation_default = tanh
activation_mutate_rate = 0.0
activation_options = tanh
aggregation_default = sum
aggregation_mutate_rate = 0.0
aggregation_options = sum
bias_init_mean = 0.0
bias_init_stdev = 1.0
bias_init_type = gaussian
bias_max_value = 30.0
bias_min_value = -30.0
bias_mutate_power = 0.5
bias_mutate_rate = 0.7
bias_replace_rate = 0.1
compatibility_disjoint_coefficient = 1.0
compatibility_weight_coefficient = 0.5
conn_add_prob = 0.3
conn_delete_prob = 0.2
enabled_default = True
enabled_mutate_rate = 0.01
enabled_rate_to_true_add = 0.0
enabled_rate_to_false_add = 0.0
node_add_prob = 0.2
node_delete_prob = 0.1
response_init_mean = 1.0
response_init_stdev = 0.0
response_init_type = gaussian
response_max_value = 30.0
response_min_value = -30.0
response_mutate_power = 0.0
response_mutate_rate = 0.0
response_replace_rate = 0.0
weight_init_mean = 0.0
weight_init_stdev = 1.0
weight_init_type = gaussian
weight_max_value = 30
weight_min_value = -30
weight_mutate_power = 0.5
weight_mutate_rate = 0.8
weight_replace_rate = 0.1
single_structural_mutation = False
structural_mutation_surer = default

[DefaultSpeciesSet]
compatibility_threshold = {compatibility_threshold}

[DefaultStagnation]
species_fitness_func = max
max_stagnation = 15
species_elitism = 2

[DefaultReproduction]
elitism = {elitism}
survival_threshold = 0.2
min_species_size = 2
"""

COLUMNS = ["environment", "method", "seed", "env_steps", "reward"]


def _gym():
    require(["gymnasium", "neat"], "kind: neuroevolution")
    import gymnasium as gym

    import neuroprune.rl.track  # noqa: F401  (registers neuroprune/Track-v0)
    return gym


def check(nc: NeuroevolutionConfig) -> None:
    """Refuse, in one line, environments that are not registered or do not fit (Box
    observations, Discrete actions)."""
    gym = _gym()
    from gymnasium import spaces
    for env_id in nc.environments:
        if env_id not in gym.registry:
            raise ConfigError(f"neuroevolution.environments: unknown Gymnasium id {env_id!r}; "
                              f"use e.g. neuroprune/Track-v0 or CartPole-v1")
        env = _make(env_id, nc.max_steps)
        if not (isinstance(env.observation_space, spaces.Box)
                and isinstance(env.action_space, spaces.Discrete)):
            raise ConfigError(f"neuroevolution.environments: {env_id} needs Box observations "
                              f"and Discrete actions")
        env.close()


def _make(env_id: str, max_steps: int):
    gym = _gym()
    from ..rl.track import TRACK_ID
    kwargs = {"max_steps": max_steps} if env_id == TRACK_ID else {}
    return gym.make(env_id, max_episode_steps=max_steps, disable_env_checker=True, **kwargs)


class Evaluator:
    """Scores a policy on the fixed evaluation episodes and counts the steps it took."""

    def __init__(self, env_id: str, nc: NeuroevolutionConfig, seed: int):
        self.env = _make(env_id, nc.max_steps)
        self.seeds = [10_000 + 100 * seed + k for k in range(nc.episodes)]
        self.steps = 0

    def __call__(self, policy) -> float:
        returns = []
        for s in self.seeds:
            obs, _ = self.env.reset(seed=s)
            done, total = False, 0.0
            while not done:
                obs, r, term, trunc, _ = self.env.step(policy(obs))
                total, done, self.steps = total + r, term or trunc, self.steps + 1
            returns.append(total)
        return mean_return(returns)


def _bounds(space) -> tuple[np.ndarray, np.ndarray]:
    # unbounded components (CartPole's velocities) are clipped to +-3: a named choice
    low = np.where(np.isfinite(space.low), space.low, -3.0)
    high = np.where(np.isfinite(space.high), space.high, 3.0)
    return low, high


def neat_config(env_id: str, nc: NeuroevolutionConfig, path: Path):
    """neat-python's config for ``env_id`` with ``nc``'s settings, written to ``path``."""
    import neat
    env = _make(env_id, nc.max_steps)
    atomic_write_text(path, NEAT_CONFIG.format(
        population=nc.population, inputs=env.observation_space.shape[0],
        outputs=env.action_space.n, compatibility_threshold=nc.compatibility_threshold,
        elitism=nc.elitism))
    env.close()
    return neat.Config(neat.DefaultGenome, neat.DefaultReproduction, neat.DefaultSpeciesSet,
                       neat.DefaultStagnation, str(path))


def run_neat(env_id: str, nc: NeuroevolutionConfig, seed: int, cfg_path: Path):
    """One NEAT run; returns (curve, champion genome, neat config)."""
    import neat
    config = neat_config(env_id, nc, cfg_path)
    evaluator, curve = Evaluator(env_id, nc, seed), []
    tensor = None
    if nc.evaluator == "tensor":
        from ..rl.neat_tensor import TensorEvaluator
        from ..rl.track import TRACK_ID, TrackVectorEnv
        vector = ((lambda n: TrackVectorEnv(n, max_steps=nc.max_steps))
                  if env_id == TRACK_ID else None)
        tensor = TensorEvaluator(lambda: _make(env_id, nc.max_steps), evaluator.seeds, vector)

    def eval_genomes(genomes, config):
        if tensor is not None:  # the generation at once (neuroprune.rl.neat_tensor)
            for (_, genome), fitness in zip(genomes, tensor([g for _, g in genomes], config)):
                genome.fitness = fitness
            curve.append((tensor.steps, max(g.fitness for _, g in genomes)))
            return
        best = -float("inf")
        for _, genome in genomes:
            net = neat.nn.FeedForwardNetwork.create(genome, config)
            genome.fitness = evaluator(lambda o: int(np.argmax(net.activate(o))))
            best = max(best, genome.fitness)
        curve.append((evaluator.steps, best))

    population = neat.Population(config, seed=seed)
    try:
        champion = population.run(eval_genomes, nc.generations)
    finally:
        if tensor is not None:
            tensor.close()
    return curve, champion, config


def run_q(env_id: str, nc: NeuroevolutionConfig, seed: int, budget: int):
    from ..rl.qlearning import Discretiser, QSettings, q_learning
    env = _make(env_id, nc.max_steps)
    disc = Discretiser(*_bounds(env.observation_space), nc.q_bins)
    env.close()
    settings = QSettings(bins=nc.q_bins, alpha=nc.q_alpha, gamma=nc.q_gamma,
                         eval_every=nc.q_eval_every)
    return q_learning(lambda: _make(env_id, nc.max_steps), disc, budget, seed, settings,
                      Evaluator(env_id, nc, seed))[1]


def run_dqn(env_id: str, nc: NeuroevolutionConfig, seed: int, budget: int):
    from ..rl.dqn import DQNSettings, dqn
    env = _make(env_id, nc.max_steps)
    low, high = _bounds(env.observation_space)
    env.close()
    settings = DQNSettings(hidden=nc.dqn_hidden, lr=nc.dqn_lr, gamma=nc.q_gamma,
                           buffer=nc.dqn_buffer, batch_size=nc.dqn_batch_size,
                           learning_starts=nc.dqn_learning_starts,
                           train_every=nc.dqn_train_every, target_every=nc.dqn_target_every,
                           exploration_fraction=nc.dqn_exploration_fraction,
                           eval_every=nc.q_eval_every)
    return dqn(lambda: _make(env_id, nc.max_steps), low, high, budget, seed, settings,
               Evaluator(env_id, nc, seed))[1]


BASELINES = {"qlearning": run_q, "dqn": run_dqn}


def genome_tensors(genome, config) -> tuple[list[int], torch.Tensor, torch.Tensor, torch.Tensor]:
    """Node order, weight matrix, enabled mask and biases of ``genome`` (module docstring)."""
    g = config.genome_config
    keys = list(g.input_keys) + list(g.output_keys) + sorted(
        k for k in genome.nodes if k not in g.output_keys)
    index = {k: i for i, k in enumerate(keys)}
    n = len(keys)
    weight, mask, bias = torch.zeros(n, n), torch.zeros(n, n, dtype=torch.bool), torch.zeros(n)
    for (a, b), c in genome.connections.items():
        weight[index[a], index[b]] = c.weight
        mask[index[a], index[b]] = bool(c.enabled)
    for k, node in genome.nodes.items():
        bias[index[k]] = node.bias
    return keys, weight, mask, bias


def export_genome(path: Path, genome, config, env_id: str) -> None:
    from ..masks import save_mask
    keys, weight, mask, bias = genome_tensors(genome, config)
    g = config.genome_config
    save_mask(path, {"weight": mask}, {
        "kind": "neuroevolution", "environment": env_id, "node_keys": keys,
        "inputs": len(g.input_keys),
        "outputs": len(g.output_keys), "activation": "tanh", "fitness": genome.fitness,
        "layout": "weight[i, j]: connection from node i to node j"},
        weights={"weight": weight * mask, "bias": bias})


def run_neuroevolution(bench: Workbench, out: str | Path, progress: bool = True
                       ) -> dict[str, Any]:
    t0, cfg = time.time(), bench.config
    nc = cfg.neuroevolution
    rd = RunDir(out).create()
    rd.write_config(to_dict(cfg))
    rows, summary_envs = [], {}
    plan = [(e, s) for e in nc.environments for s in nc.seeds]
    best: dict[str, tuple] = {}
    for env_id, seed in tqdm(plan, desc="neuroevolution", unit="seed", disable=not progress):
        slug = _slug(env_id)
        curve, champion, config = run_neat(env_id, nc, seed, rd.path / f"neat_{slug}.cfg")
        rows += [dict(environment=env_id, method="neat", seed=seed, env_steps=s, reward=r)
                 for s, r in curve]
        if env_id not in best or champion.fitness > best[env_id][0].fitness:
            best[env_id] = (champion, config)
        for method in nc.baselines:
            b_curve = BASELINES[method](env_id, nc, seed, budget=curve[-1][0])
            rows += [dict(environment=env_id, method=method, seed=seed, env_steps=s, reward=r)
                     for s, r in b_curve]
    buf = io.StringIO()
    writer = csv.DictWriter(buf, COLUMNS)
    writer.writeheader()
    writer.writerows(rows)
    atomic_write_text(rd.path / FILES.curves, buf.getvalue())
    for env_id in nc.environments:
        slug = _slug(env_id)
        genome, config = best[env_id]
        export_genome(rd.path / FILES.genome(slug), genome, config, env_id)
        _draw(rd.path / f"topology_{slug}.png", genome, config, env_id)
        ms = {}
        for m in ("neat", *nc.baselines):
            finals = [[r for r in rows if r["environment"] == env_id and r["method"] == m
                       and r["seed"] == s][-1] for s in nc.seeds]
            rewards = [f["reward"] for f in finals]
            ms[m] = {"final_reward_mean": statistics.mean(rewards),
                     "final_reward_std": statistics.pstdev(rewards),
                     "env_steps_mean": statistics.mean(f["env_steps"] for f in finals)}
        _, _, mask, _ = genome_tensors(genome, config)
        ms["best_genome"] = {"fitness": genome.fitness, "nodes": int(mask.shape[0]),
                             "enabled_connections": int(mask.sum())}
        summary_envs[env_id] = ms
    _plot(rows, nc, rd.path / "curves.png")
    # the tuner's objective: NEAT's final evaluation reward, mean over seeds and environments
    reward = statistics.mean(ms["neat"]["final_reward_mean"] for ms in summary_envs.values())
    summary = {"status": "complete", "kind": "neuroevolution", "environments": summary_envs,
               "reward": reward, "seeds": nc.seeds, "wall_seconds": round(time.time() - t0, 3)}
    rd.write_summary(summary)
    return summary


def _slug(env_id: str) -> str:
    return env_id.replace("/", "_")


def _pyplot():
    """The report's pyplot, or None without matplotlib (the figures are then left out)."""
    from ..errors import MissingDependencyError
    from ..report.style import pyplot
    try:
        return pyplot()
    except MissingDependencyError:
        return None


def _plot(rows, nc: NeuroevolutionConfig, path: Path) -> None:
    plt = _pyplot()
    if plt is None:
        return
    envs = nc.environments
    fig, axes = plt.subplots(1, len(envs), figsize=(5.5 * len(envs), 4), squeeze=False)
    for ax, env_id in zip(axes[0], envs):
        rs = [r for r in rows if r["environment"] == env_id]
        top = max(r["env_steps"] for r in rs)
        grid = np.linspace(0, top, 100)
        look = styles(["neat", "qlearning", "dqn"])
        for m in ("neat", *nc.baselines):
            # each seed's curve as a step function (the last point at or before x)
            ys = []
            for s in nc.seeds:
                c = [(r["env_steps"], r["reward"]) for r in rs
                     if r["method"] == m and r["seed"] == s]
                xs, vs = np.array([p[0] for p in c]), np.array([p[1] for p in c])
                idx = np.searchsorted(xs, grid, side="right") - 1
                ys.append(np.where(idx >= 0, vs[np.maximum(idx, 0)], np.nan))
            ys = np.array(ys)
            with warnings.catch_warnings():  # before a seed's first point: NaN, not plotted
                warnings.simplefilter("ignore", RuntimeWarning)
                mean, std = np.nanmean(ys, 0), np.nanstd(ys, 0)
            ax.plot(grid, mean, color=look[m]["color"],
                    label=f"{m} (mean ± std of {len(nc.seeds)} seeds)")
            band(ax, grid, mean, std, look[m]["color"])
        ax.set_xlabel("environment steps")
        ax.set_ylabel("evaluation reward")
        ax.set_title(env_id)
        ax.legend()
    atomic_write(path, lambda tmp: save(fig, tmp))


def _draw(path: Path, genome, config, env_id: str) -> None:
    plt = _pyplot()
    if plt is None:
        return
    keys, weight, mask, _ = genome_tensors(genome, config)
    g = config.genome_config
    n_in = len(g.input_keys)
    depth = np.zeros(len(keys))
    for _ in keys:  # longest path from the inputs (the network is feed-forward)
        for i, j in mask.nonzero().tolist():
            depth[j] = max(depth[j], depth[i] + 1)
    out_idx = range(n_in, n_in + len(g.output_keys))
    depth[list(out_idx)] = max(depth.max(), 1)
    pos = {}
    for d in sorted(set(depth)):
        col = [i for i in range(len(keys)) if depth[i] == d]
        for r, i in enumerate(col):
            pos[i] = (d, r - (len(col) - 1) / 2)
    fig, ax = plt.subplots(figsize=(6, 4))
    for i, j in mask.nonzero().tolist():
        w = float(weight[i, j])
        ax.annotate("", pos[j], pos[i], arrowprops=dict(
            arrowstyle="->", color="tab:red" if w > 0 else "tab:blue",
            lw=0.5 + min(abs(w), 3)))
    for i, (x, y) in pos.items():
        kind = "in" if i < n_in else "out" if i in out_idx else "hidden"
        ax.scatter(x, y, s=300, c={"in": "lightgray", "out": "gold", "hidden": "white"}[kind],
                   edgecolors="k", zorder=3)
        ax.text(x, y, str(keys[i]), ha="center", va="center", fontsize=7, zorder=4)
    ax.set_title(f"{env_id}: best NEAT genome ({int(mask.sum())} enabled connections; "
                 f"red > 0, blue < 0)", fontsize=8)
    ax.axis("off")
    atomic_write(path, lambda tmp: save(fig, tmp))


class NeuroevolutionConfig(Section):
    """``kind: neuroevolution``: NEAT against tabular Q-learning on Gymnasium tasks."""

    environments: list[str] = Field(["neuroprune/Track-v0", "CartPole-v1"], min_length=1,
                                    description="Gymnasium ids (Box observations, Discrete "
                                    "actions)")
    seeds: list[int] = Field([0, 1, 2, 3, 4], min_length=1, description="seeds")
    population: int = Field(50, ge=2, description="NEAT population size")
    generations: int = Field(20, ge=1, description="NEAT generations")
    episodes: int = Field(2, ge=1, description="evaluation episodes per policy (fixed seeds)")
    max_steps: int = Field(400, ge=1, description="steps per episode before truncation")
    compatibility_threshold: float = Field(3.0, gt=0, description="NEAT speciation distance")
    elitism: int = Field(2, ge=0, description="NEAT genomes kept unchanged per species")
    q_bins: int = Field(4, ge=2, description="Q-learning: cells per observation component")
    q_alpha: float = Field(0.1, gt=0, le=1, description="Q-learning step size")
    q_gamma: float = Field(0.99, ge=0, le=1, description="Q-learning discount")
    q_eval_every: int = Field(2000, ge=1, description="Q-learning: training steps between "
                              "greedy evaluations")
    evaluator: Literal["tensor", "serial"] = Field(
        "tensor", description="how a NEAT generation is scored: tensor (every genome padded "
        "into one tensor pass, the episodes stepped together; the same fitnesses) or serial "
        "(neat-python's networks, one genome at a time)")
    baselines: list[Literal["qlearning", "dqn"]] = Field(
        ["qlearning"], min_length=1, description="what NEAT is compared with on the same step "
        "budget: qlearning (tabular), dqn (a small deep Q-network); q_eval_every for both")
    dqn_hidden: int = Field(64, ge=1, description="DQN: hidden units (one ReLU layer)")
    dqn_lr: float = Field(1e-3, gt=0, description="DQN: Adam learning rate")
    dqn_buffer: int = Field(10_000, ge=1, description="DQN: replay buffer size")
    dqn_batch_size: int = Field(64, ge=1, description="DQN: minibatch size")
    dqn_learning_starts: int = Field(500, ge=0, description="DQN: steps before the first "
                                     "update")
    dqn_train_every: int = Field(1, ge=1, description="DQN: environment steps per update")
    dqn_target_every: int = Field(500, ge=1, description="DQN: steps between target-network "
                                  "copies")
    dqn_exploration_fraction: float = Field(0.5, gt=0, le=1, description="DQN: share of the "
                                            "budget over which epsilon falls to 0.05")

    _seeds = field_validator("seeds")(classmethod(lambda cls, v: _seeds(v)))
    _envs = field_validator("environments")(classmethod(
        lambda cls, v: _distinct(v, "environment")))
    _baselines = field_validator("baselines")(classmethod(
        lambda cls, v: _distinct(v, "baseline")))


class NeuroevolutionKind(Kind):
    name = "neuroevolution"
    section = "neuroevolution"
    Config = NeuroevolutionConfig
    table = FILES.curves
    columns = ("environment", "method", "seed", "env_steps", "reward")
    reporter = "neuroprune.report.neuroevolution:report"
    resumable = False
    objectives = ("reward", "wall_seconds")
    network_files = ("best_genome_<env>.safetensors: the best NEAT genome of each "
                     "environment, a network over node ids rather than layers (weight[i, j] "
                     "from node i to node j, weight_mask its enabled connections, bias per "
                     "node, node_keys in the metadata); read it with "
                     "neuroprune.masks.read_mask_file(path) -> (mask, weights, metadata)")

    def __init__(self, bench: Workbench):
        super().__init__(bench)
        from .neuroevolution import check
        check(bench.config.neuroevolution)

    def run(self, out, *, progress=True, resume=False, log=print, on_generation=None):
        from .neuroevolution import run_neuroevolution
        return run_neuroevolution(self.bench, out, progress)

    def lines(self, summary, out):
        return [f"{env}: " + "; ".join(f"{m} {r['final_reward_mean']:.1f} ± "
                                       f"{r['final_reward_std']:.1f}" for m, r in ms.items()
                                       if m != "best_genome")
                for env, ms in summary["environments"].items()] + [f"run directory: {out}"]
