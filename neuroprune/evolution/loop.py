"""One evolution loop for every search that breeds generations: ask, evaluate, tell.

After evosax's ask/tell: an :class:`Algorithm` proposes what to evaluate (``ask``) and learns
from the evaluation (``tell``); :func:`evolve` owns everything around it, the same for every
search: the generation numbers, the hall of fame, the logbook, the progress bar, the record of
each generation (its ledger rows and its checkpoint, through a :class:`Recorder`) and resuming
from such a checkpoint.

A checkpoint is ``{"generation", "method", "logbook", "hof" (when kept), **algorithm.save(state)}``
and holds tensors, numbers and DEAP's hall of fame and logbook (which
:mod:`neuroprune.checkpoint` writes as data), so it loads with ``torch.load(weights_only=True)``.
A resumed run loads the algorithm's state and goes on at the next generation, drawing what
the uninterrupted run draws.
"""

from __future__ import annotations

import operator
from dataclasses import dataclass, field
from typing import Any, Callable, Protocol, Sequence

import numpy as np
from deap import tools
from tqdm.auto import tqdm

from ..progress import show_best


@dataclass
class Told:
    """What an algorithm learnt from one generation: the ledger ``rows`` of its evaluations,
    its ``record`` in the logbook (``best`` among them: the bar shows it) and the
    ``individuals`` (DEAP individuals with fitness) the hall of fame considers."""

    rows: list[dict[str, Any]]
    record: dict[str, Any]
    individuals: Sequence[Any] = ()


@dataclass
class Generation:
    """One finished generation, as recorded: its number, the ledger rows of its evaluations,
    its logbook line and the state to resume after it (a checkpoint)."""

    number: int
    rows: list[dict[str, Any]]
    record: dict[str, Any] = field(default_factory=dict)
    state: dict[str, Any] = field(default_factory=dict)


class Recorder(Protocol):
    """Where finished generations go (a run directory; see :class:`neuroprune.rundir.RunDir`)."""

    def record(self, generation: Generation) -> None:
        """Keep ``generation`` (once: a generation recorded again is ignored)."""


class CommitRecorder:
    """A :class:`Recorder` over a method context's ``commit(generation, rows, state)``."""

    def __init__(self, commit: Callable[[int, list[dict[str, Any]], dict[str, Any]], None]):
        self.commit = commit

    def record(self, generation: Generation) -> None:
        self.commit(generation.number, generation.rows, generation.state)


def recorder_of(commit: Callable | None) -> Recorder | None:
    """The recorder of a method context's ``commit`` (None: nothing is recorded)."""
    return None if commit is None else CommitRecorder(commit)


class Algorithm(Protocol):
    """A search that breeds generations. Its working state (``init``/``load``) may hold live
    objects; ``save`` turns it into tensors and numbers for a checkpoint."""

    name: str  # the method, written in each checkpoint; the progress bar's label
    generations: int  # generations in all, the first included
    hall_of_fame: int  # how many best individuals of all time to keep (0: none)

    def init(self) -> Any:
        """The state before the first generation."""

    def load(self, saved: dict[str, Any]) -> Any:
        """The state after the generation a checkpoint ``saved``."""

    def save(self, state: Any) -> dict[str, Any] | None:
        """``state`` as tensors and numbers (the checkpoint's entries besides the loop's);
        None: this algorithm does not resume, its generations are recorded without a
        checkpoint."""

    def ask(self, state: Any, generation: int, hof: tools.HallOfFame | None) -> Any:
        """What to evaluate in ``generation``."""

    def tell(self, state: Any, asked: Any, evaluated: Any, generation: int) -> Told:
        """Learn from the evaluation of ``asked`` (update ``state``)."""


@dataclass
class Evolution:
    """The end of :func:`evolve`: the algorithm's last state, the hall of fame (None when the
    algorithm keeps none) and the logbook."""

    state: Any
    hof: tools.HallOfFame | None
    logbook: tools.Logbook


def population_record(individuals: Sequence[Any], evals: int) -> dict[str, Any]:
    """A logbook line of a population: evaluations, best, mean and std of the fitness."""
    stats = tools.Statistics(lambda ind: ind.fitness.values[0])
    stats.register("best", np.max)
    stats.register("mean", np.mean)
    stats.register("std", np.std)
    return {"evals": evals, **stats.compile(individuals)}


def evolve(algorithm: Algorithm, evaluate: Callable[[Any, int], Any],
           recorder: Recorder | None = None, state: dict[str, Any] | None = None, *,
           progress: bool = True) -> Evolution:
    """Run ``algorithm`` to its last generation: each generation ``ask``, ``evaluate(asked,
    generation)``, ``tell``, then the hall of fame, the logbook, the bar and the record.
    ``state``: a checkpoint to resume from (the generation after it comes next)."""
    if state is None:
        work, start, logbook = algorithm.init(), 0, tools.Logbook()
        hof = tools.HallOfFame(algorithm.hall_of_fame, similar=operator.eq) \
            if algorithm.hall_of_fame else None
    else:
        work, start, logbook, hof = _resumed(algorithm, state)
    bar = tqdm(range(start, algorithm.generations), desc=algorithm.name, unit="gen",
               disable=not progress, initial=start, total=algorithm.generations)
    for g in bar:
        asked = algorithm.ask(work, g, hof)
        told = algorithm.tell(work, asked, evaluate(asked, g), g)
        if hof is not None:
            hof.update(told.individuals)
        logbook.record(gen=g, **told.record)
        show_best(bar, told.record["best"], told.rows)
        if recorder is not None:
            recorder.record(Generation(g, told.rows, {"gen": g, **told.record},
                                       _checkpoint(algorithm, work, g, hof, logbook)))
    return Evolution(work, hof, logbook)


def _checkpoint(algorithm: Algorithm, work: Any, g: int, hof, logbook) -> dict[str, Any]:
    """The state to resume after generation ``g`` (empty: the algorithm does not resume)."""
    own = algorithm.save(work)
    if own is None:
        return {}
    saved = {"generation": g, **own, "logbook": logbook, "method": algorithm.name}
    if hof is not None:
        saved["hof"] = hof
    return saved


def _resumed(algorithm: Algorithm, state: dict[str, Any]) -> tuple:
    """The algorithm's state, first generation, logbook and hall of fame after ``state``; a
    checkpoint that lacks what this algorithm needs is refused in one line."""
    from ..checkpoint import CHECKPOINT_VERSION
    from ..errors import UserError

    try:
        work = algorithm.load(state)
        hof = state["hof"] if algorithm.hall_of_fame else None
        return work, state["generation"] + 1, state["logbook"], hof
    except KeyError as exc:
        raise UserError(f"the checkpoint of generation {state.get('generation')} has no "
                        f"{exc.args[0]!r} for {algorithm.name} (checkpoint version "
                        f"{CHECKPOINT_VERSION}, written by another neuroprune or another "
                        f"method); resume it with the neuroprune that wrote it") from None
