"""Explicit random state for DEAP's tools.

DEAP's selection and variation operators draw from Python's global ``random`` module. A search
keeps its own state instead (a :class:`DeapRandom`, saved in checkpoints, as evosax keeps its
keys) and lends it to the global module only while DEAP runs, restoring the caller's global
state afterwards: two searches in one process never share or disturb each other's draws.
"""

from __future__ import annotations

import random
from contextlib import contextmanager
from typing import Iterator


class DeapRandom:
    """A ``random`` state that DEAP operators draw from inside :meth:`active`."""

    def __init__(self, seed: int):
        self.state = random.Random(seed).getstate()

    @contextmanager
    def active(self) -> Iterator[None]:
        saved = random.getstate()
        random.setstate(self.state)
        try:
            yield
        finally:
            self.state = random.getstate()
            random.setstate(saved)

    def random(self) -> float:
        """One uniform draw from this state (for crossover and mutation probabilities)."""
        with self.active():
            return random.random()


@contextmanager
def deap_random(seed: int) -> Iterator[DeapRandom]:
    """A fresh :class:`DeapRandom` from ``seed``, active for the block."""
    state = DeapRandom(seed)
    with state.active():
        yield state
