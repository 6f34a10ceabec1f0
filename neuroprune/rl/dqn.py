"""A small DQN (Mnih et al., "Human-level control through deep reinforcement learning",
Nature 518, 2015): the neural baseline beside tabular Q-learning in ``kind: neuroevolution``.

An MLP (one hidden ReLU layer of ``hidden`` units) maps the observation, scaled to [-1, 1] by
the environment's bounds, to one value per action. Transitions go into a replay buffer of
``buffer`` entries; after ``learning_starts`` steps every ``train_every``-th step takes one
Adam step on a minibatch of ``batch_size`` against a target network copied every
``target_every`` steps (Huber loss, bootstrapped from the target's max, none at termination).
Exploration is epsilon-greedy, falling linearly from ``epsilon_start`` to ``epsilon_end``
over the first ``exploration_fraction`` of the budget. As in :mod:`.qlearning`, the greedy
policy is scored every ``eval_every`` training steps; evaluation steps are not counted.

Why not stable-baselines3's ``DQN``: the baseline must follow the kind's protocol (NEAT's
step budget for the seed, the greedy policy scored on the same fixed evaluation episodes as
NEAT and Q-learning, evaluation steps not counted, seeded per run seed), which these
few lines of torch do with no further dependency. stable-baselines3 is not a dependency and
was not installed where this was built; its ``DQN`` (the same algorithm) would be a drop-in
alternative, neither used nor compared here.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass
from typing import Callable

import numpy as np
import torch
from torch import nn


@dataclass
class DQNSettings:
    hidden: int = 64
    lr: float = 1e-3
    gamma: float = 0.99
    buffer: int = 10_000
    batch_size: int = 64
    learning_starts: int = 500
    train_every: int = 1
    target_every: int = 500
    epsilon_start: float = 1.0
    epsilon_end: float = 0.05
    exploration_fraction: float = 0.5
    eval_every: int = 2000


class Replay:
    """A ring buffer of (obs, action, reward, next obs, terminated)."""

    def __init__(self, size: int, dims: int):
        self.obs, self.next = np.zeros((size, dims), np.float32), np.zeros((size, dims),
                                                                            np.float32)
        self.action, self.reward = np.zeros(size, np.int64), np.zeros(size, np.float32)
        self.done = np.zeros(size, np.float32)
        self.size, self.n, self.i = size, 0, 0

    def add(self, o, a, r, o2, d) -> None:
        self.obs[self.i], self.action[self.i], self.reward[self.i] = o, a, r
        self.next[self.i], self.done[self.i] = o2, d
        self.i, self.n = (self.i + 1) % self.size, min(self.n + 1, self.size)

    def sample(self, k: int, rng: np.random.Generator):
        j = rng.integers(self.n, size=k)
        return tuple(torch.from_numpy(x[j]) for x in (self.obs, self.action, self.reward,
                                                       self.next, self.done))


def dqn(make_env: Callable, low: np.ndarray, high: np.ndarray, budget: int, seed: int,
        settings: DQNSettings, evaluate: Callable[[Callable], float]
        ) -> tuple[nn.Module, list[tuple[int, float]]]:
    """Train for ``budget`` environment steps; returns the network and the curve
    ``[(training steps, greedy evaluation reward), ...]``."""
    rng = np.random.default_rng(seed)
    torch.manual_seed(seed)
    env = make_env()
    n_actions, dims = int(env.action_space.n), len(low)
    low, span = np.asarray(low, np.float32), np.asarray(high - low, np.float32)

    def scale(obs) -> np.ndarray:
        return np.clip(2 * (np.asarray(obs, np.float32) - low) / span - 1, -1, 1)

    net = nn.Sequential(nn.Linear(dims, settings.hidden), nn.ReLU(),
                        nn.Linear(settings.hidden, n_actions))
    target = copy.deepcopy(net)
    opt = torch.optim.Adam(net.parameters(), lr=settings.lr)
    replay = Replay(min(settings.buffer, max(budget, 1)), dims)

    @torch.no_grad()
    def greedy(obs) -> int:
        return int(net(torch.from_numpy(scale(obs))).argmax())

    curve = [(0, evaluate(greedy))]
    steps, explore = 0, max(1, int(settings.exploration_fraction * budget))
    while steps < budget:
        obs, _ = env.reset(seed=int(rng.integers(2 ** 31)))
        s, done = scale(obs), False
        while not done and steps < budget:
            eps = settings.epsilon_start + (settings.epsilon_end - settings.epsilon_start) * \
                min(1.0, steps / explore)
            if rng.random() < eps:
                a = int(rng.integers(n_actions))
            else:
                with torch.no_grad():
                    a = int(net(torch.from_numpy(s)).argmax())
            obs, r, term, trunc, _ = env.step(a)
            s2 = scale(obs)
            replay.add(s, a, r, s2, float(term))
            s, done, steps = s2, term or trunc, steps + 1
            if steps >= settings.learning_starts and steps % settings.train_every == 0:
                o, act, rew, o2, d = replay.sample(settings.batch_size, rng)
                with torch.no_grad():
                    y = rew + settings.gamma * (1 - d) * target(o2).max(1).values
                q = net(o).gather(1, act[:, None])[:, 0]
                loss = nn.functional.smooth_l1_loss(q, y)
                opt.zero_grad()
                loss.backward()
                opt.step()
            if steps % settings.target_every == 0:
                target.load_state_dict(net.state_dict())
            if steps % settings.eval_every == 0 or steps == budget:
                curve.append((steps, evaluate(greedy)))
    env.close()
    return net, curve
