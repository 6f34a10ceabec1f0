"""A generation of NEAT genomes evaluated together: one tensor pass for every network, the
episodes of all of them in one Gymnasium vector env.

neat-python evaluates a genome at a time: ``FeedForwardNetwork.activate`` walks its nodes in
Python for every observation, and its ``ParallelEvaluator`` spreads genomes over processes.
Here the G genomes of a generation are padded to a common node count: ``weight[g, i, j]``
(the enabled connection from node i to node j, 0 elsewhere), ``bias[g, j]`` and
``response[g, j]``. The G x E episodes (E evaluation episodes per genome, the same seeds as
the one-by-one evaluation) step together, and at every step the observations of all
unfinished episodes go through their networks at once, in float64. The episodes are a list
of environments stepped in turn, not a ``gymnasium.vector`` env: a vector env steps every
sub-env at every call, the finished ones too (they reset and go on), and the episodes of one
generation end at very different times (a policy that crashes at once beside one that
drives the whole track): measured on the track, a ``SyncVectorEnv`` made the generation 2.7
times slower than one network at a time. An environment with a batched implementation
(``make_vector``: the track's :class:`~neuroprune.rl.track.TrackVectorEnv`, which drives all
cars in numpy and leaves finished ones alone) steps as one; any other steps its live
episodes one after another.

A feed-forward network is evaluated by ``depth`` rounds of ``v_j = act(bias_j + response_j
* sum_i v_i w_ij)`` with the inputs held: after round d every node whose longest path from
an input or a bias-only node has d nodes holds its final value, as neat-python's layer by
layer evaluation gives it (``depth`` is the largest number of its layers in the
generation). Nodes that feed no output (neat-python skips them) get values that reach no
output. The activation is neat-python's ``tanh``: ``tanh(clamp(2.5 z, -60, 60))``; sum
aggregation. The action is the argmax of the outputs, as in the one-by-one evaluation. The
fitnesses equal neat-python's up to the order of float64 additions (an action decided by a
tie within rounding could differ; none has in the tests).
"""

from __future__ import annotations

from typing import Any, Callable

import numpy as np
import torch


def mean_return(returns: list[float]) -> float:
    """The mean of episode returns, summed in order: every evaluator's one formula, so that
    the tensor evaluator's fitness equals the one-by-one evaluation's to the last bit."""
    return sum(returns) / len(returns)


def supported(config) -> str | None:
    """Why ``config``'s genomes cannot be evaluated as tensors, or None."""
    g = config.genome_config
    if not g.feed_forward:
        return "recurrent genomes (feed_forward = False)"
    if set(g.activation_options) != {"tanh"} or g.activation_default != "tanh":
        return f"activations other than tanh ({', '.join(g.activation_options)})"
    if set(g.aggregation_options) != {"sum"} or g.aggregation_default != "sum":
        return f"aggregations other than sum ({', '.join(g.aggregation_options)})"
    return None


def pack(genomes: list, config) -> dict[str, torch.Tensor]:
    """``weight [G, N, N]``, ``bias [G, N]``, ``response [G, N]`` (node order: inputs,
    outputs, then each genome's hidden nodes) and the ``depth`` of the deepest network."""
    from neat.graphs import feed_forward_layers

    g = config.genome_config
    inputs, outputs = list(g.input_keys), list(g.output_keys)
    hidden = [sorted(k for k in genome.nodes if k not in outputs) for genome in genomes]
    n = len(inputs) + len(outputs) + max((len(h) for h in hidden), default=0)
    count = len(genomes)
    weight = np.zeros((count, n, n))
    bias = np.zeros((count, n))
    response = np.ones((count, n))
    depth = 1
    for r, (genome, own) in enumerate(zip(genomes, hidden)):
        index = {k: i for i, k in enumerate(inputs + outputs + own)}
        enabled = [c.key for c in genome.connections.values() if c.enabled]
        for a, b in enabled:
            weight[r, index[a], index[b]] = genome.connections[(a, b)].weight
        for k, node in genome.nodes.items():
            bias[r, index[k]] = node.bias
            response[r, index[k]] = node.response
        layers, _ = feed_forward_layers(inputs, outputs, enabled)
        depth = max(depth, len(layers))
    return {"weight": torch.from_numpy(weight), "bias": torch.from_numpy(bias),
            "response": torch.from_numpy(response), "depth": torch.tensor(depth),
            "inputs": torch.tensor(len(inputs)), "outputs": torch.tensor(len(outputs))}


def activate(net: dict[str, torch.Tensor], rows: torch.Tensor, obs: torch.Tensor
             ) -> torch.Tensor:
    """The outputs ``[B, outputs]`` of the networks ``rows`` ``[B]`` for observations
    ``[B, inputs]``."""
    w, b, resp = net["weight"][rows], net["bias"][rows], net["response"][rows]
    k, o = int(net["inputs"]), int(net["outputs"])
    v = torch.zeros(b.shape, dtype=torch.float64)
    v[:, :k] = obs
    for _ in range(int(net["depth"])):
        z = torch.bmm(v.unsqueeze(1), w).squeeze(1)
        new = torch.tanh((2.5 * (b + resp * z)).clamp(-60.0, 60.0))
        v = torch.cat([v[:, :k], new[:, k:]], 1)
    return v[:, k:k + o]


class TensorEvaluator:
    """Scores a generation of genomes at once on fixed evaluation episodes (the seeds of the
    one-by-one evaluation) and counts the environment steps they took."""

    def __init__(self, make_env: Callable[[], Any], seeds: list[int],
                 make_vector: Callable[[int], Any] | None = None):
        self.make_env, self.seeds, self.make_vector = make_env, list(seeds), make_vector
        self.vector, self.vector_size = None, 0
        self.envs: list = []
        self.steps = 0

    def _envs(self, size: int) -> list:
        while len(self.envs) < size:  # made once, reused by every generation
            self.envs.append(self.make_env())
        return self.envs[:size]

    def __call__(self, genomes: list, config) -> list[float]:
        """The mean return of every genome over the evaluation episodes."""
        net = pack(genomes, config)
        e = len(self.seeds)
        rows = torch.arange(len(genomes)).repeat_interleave(e)
        seeds = [s for _ in genomes for s in self.seeds]
        if self.make_vector is not None:
            total = self._batched(net, rows, seeds)
        else:
            total = self._one_by_one(net, rows, seeds)
        return [mean_return(row) for row in total.reshape(len(genomes), e).tolist()]

    def _batched(self, net, rows: torch.Tensor, seeds: list[int]) -> np.ndarray:
        if self.vector is None or self.vector_size != len(seeds):
            if self.vector is not None:
                self.vector.close()
            self.vector, self.vector_size = self.make_vector(len(seeds)), len(seeds)
        obs, _ = self.vector.reset(seed=seeds)
        total = np.zeros(len(seeds))
        live = np.ones(len(seeds), dtype=bool)
        actions = np.zeros(len(seeds), dtype=np.int64)
        while live.any():
            idx = np.flatnonzero(live)
            out = activate(net, rows[idx], torch.as_tensor(obs[idx], dtype=torch.float64))
            actions[idx] = out.argmax(1).numpy()
            obs, reward, term, trunc, _ = self.vector.step(actions)
            total[idx] += reward[idx]
            self.steps += len(idx)
            live &= ~(term | trunc)
        return total

    def _one_by_one(self, net, rows: torch.Tensor, seeds: list[int]) -> np.ndarray:
        envs = self._envs(len(seeds))
        obs = np.stack([env.reset(seed=s)[0] for env, s in zip(envs, seeds)])
        total = np.zeros(len(envs))
        live = list(range(len(envs)))
        while live:
            out = activate(net, rows[live], torch.as_tensor(obs[live], dtype=torch.float64))
            still = []
            for i, action in zip(live, out.argmax(1).tolist()):
                obs[i], reward, term, trunc, _ = envs[i].step(action)
                total[i] += reward
                if not (term or trunc):
                    still.append(i)
            self.steps += len(live)
            live = still
        return total

    def close(self) -> None:
        if self.vector is not None:
            self.vector.close()
            self.vector = None
        for env in self.envs:
            env.close()
        self.envs = []
