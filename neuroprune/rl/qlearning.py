"""Tabular Q-learning (Watkins & Dayan, "Q-learning", Machine Learning 8, 1992) on
discretised observations: the baseline the seed's NEAT driver is compared with.

Each observation component is clipped to ``bounds`` and cut into ``bins`` equal cells; the
table has ``bins ** dims`` rows. Exploration is epsilon-greedy with epsilon falling linearly
from ``epsilon_start`` to ``epsilon_end`` over the step budget (the paper leaves the
schedule open). Every ``eval_every`` training steps the greedy policy is scored on the fixed
evaluation episodes; those evaluation steps are not counted as training steps.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import numpy as np


@dataclass
class QSettings:
    bins: int = 4
    alpha: float = 0.1
    gamma: float = 0.99
    epsilon_start: float = 1.0
    epsilon_end: float = 0.05
    eval_every: int = 2000


class Discretiser:
    """Observation -> row of the Q table."""

    def __init__(self, low: np.ndarray, high: np.ndarray, bins: int):
        self.low, self.high, self.bins = np.asarray(low, float), np.asarray(high, float), bins
        self.scale = bins ** np.arange(len(self.low))

    @property
    def states(self) -> int:
        return int(self.bins ** len(self.low))

    def __call__(self, obs) -> int:
        x = (np.asarray(obs, float) - self.low) / (self.high - self.low)
        cells = np.clip((x * self.bins).astype(int), 0, self.bins - 1)
        return int(cells @ self.scale)


def q_learning(make_env: Callable, discretiser: Discretiser, budget: int, seed: int,
               settings: QSettings, evaluate: Callable[[Callable], float]
               ) -> tuple[np.ndarray, list[tuple[int, float]]]:
    """Train for ``budget`` environment steps; returns the table and the curve
    ``[(training steps, greedy evaluation reward), ...]`` (``evaluate(policy)`` scores it)."""
    rng = np.random.default_rng(seed)
    env = make_env()
    n_actions = int(env.action_space.n)
    q = np.zeros((discretiser.states, n_actions))

    def greedy(obs) -> int:
        return int(q[discretiser(obs)].argmax())

    curve = [(0, evaluate(greedy))]
    steps, episode = 0, 0
    while steps < budget:
        obs, _ = env.reset(seed=int(rng.integers(2 ** 31)))
        s, done = discretiser(obs), False
        episode += 1
        while not done and steps < budget:
            eps = settings.epsilon_start + (settings.epsilon_end - settings.epsilon_start) * \
                min(1.0, steps / max(1, budget))
            a = int(rng.integers(n_actions)) if rng.random() < eps else int(q[s].argmax())
            obs, r, term, trunc, _ = env.step(a)
            s2 = discretiser(obs)
            target = r + (0.0 if term else settings.gamma * q[s2].max())
            q[s, a] += settings.alpha * (target - q[s, a])
            s, done, steps = s2, term or trunc, steps + 1
            if steps % settings.eval_every == 0 or steps == budget:
                curve.append((steps, evaluate(greedy)))
    env.close()
    return q, curve
