"""Explicit random state for DEAP's tools.

DEAP's selection and variation operators draw from Python's global ``random`` module. A search
keeps its own state instead (a :class:`DeapRandom`, saved in checkpoints, as evosax keeps its
keys) and lends it to the ``random`` module only while DEAP runs, and only to the thread that
runs it: inside :meth:`DeapRandom.active` the module's functions (``random.random``,
``random.sample``, ...) draw from the search's own ``random.Random`` on that thread, and from
the module's usual global state everywhere else. Two searches in one process (the trials of a
``tune --batch``, each in its own thread) never share or disturb each other's draws, and the
caller's global state is never touched.
"""

from __future__ import annotations

import functools
import random
import threading
from contextlib import contextmanager
from typing import Any, Iterator

_local = threading.local()

#: the ``random`` module's drawing functions (bound methods of its hidden global instance)
_ROUTED = ("random", "uniform", "triangular", "randint", "choice", "choices", "randrange",
           "sample", "shuffle", "normalvariate", "lognormvariate", "expovariate",
           "vonmisesvariate", "gammavariate", "gauss", "betavariate", "paretovariate",
           "weibullvariate", "getrandbits", "randbytes", "binomialvariate")


def _route() -> None:
    """Make the ``random`` module's drawing functions draw from the calling thread's active
    :class:`DeapRandom` when it has one (once per process; otherwise unchanged)."""
    if getattr(random, "_routed_by_neuroprune", False):
        return
    for name in _ROUTED:
        original = getattr(random, name, None)
        if original is None:
            continue

        @functools.wraps(original)
        def routed(*args: Any, _name: str = name, _original: Any = original, **kwargs: Any):
            own = getattr(_local, "rng", None)
            return (_original if own is None else getattr(own, _name))(*args, **kwargs)
        # pickled by reference, as ``random.<name>`` was (DEAP toolboxes may hold them)
        routed.__module__, routed.__qualname__ = "random", name
        setattr(random, name, routed)
    random._routed_by_neuroprune = True


_route()


class DeapRandom:
    """A ``random`` state that DEAP operators draw from inside :meth:`active`."""

    def __init__(self, seed: int):
        self.rng = random.Random(seed)

    @property
    def state(self) -> tuple:
        """The state to checkpoint (``random.Random.getstate``)."""
        return self.rng.getstate()

    @state.setter
    def state(self, value: tuple) -> None:
        self.rng.setstate(value)

    @contextmanager
    def active(self) -> Iterator[None]:
        """Within the block, this thread's ``random.*`` calls draw from this state."""
        previous = getattr(_local, "rng", None)
        _local.rng = self.rng
        try:
            yield
        finally:
            _local.rng = previous

    def random(self) -> float:
        """One uniform draw from this state (for crossover and mutation probabilities)."""
        return self.rng.random()


@contextmanager
def deap_random(seed: int) -> Iterator[DeapRandom]:
    """A fresh :class:`DeapRandom` from ``seed``, active for the block."""
    state = DeapRandom(seed)
    with state.active():
        yield state
