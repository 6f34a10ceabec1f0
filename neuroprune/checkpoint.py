"""Checkpoints as data: a search's state in tensors and plain Python values only.

A generation checkpoint (``checkpoints/gen_NNNN.pt``) is written with ``torch.save`` and read
with ``torch.load(weights_only=True)``, which builds tensors, numbers, strings, lists, tuples
and dicts and nothing else: a run folder received from someone else runs no code when it is
resumed (a pickle can call any function while it loads). The searches keep richer objects in
their state (DEAP's hall of fame and logbook, fitnesses, mask individuals, numpy numbers), so
:func:`encode` turns each into a tagged plain dict and :func:`decode` builds it back, exactly:
a resumed search draws and selects as the uninterrupted one does.

Checkpoints of version 1 (before this format) are pickles; they are refused with one line
unless code is trusted (``--trust-code``, or :func:`trusting` in Python).
"""

from __future__ import annotations

import contextlib
import contextvars
import operator
import pickle
from pathlib import Path
from typing import Any, Iterator

import numpy as np
import torch

#: the format written now; version 1 was a plain pickle of the state
CHECKPOINT_VERSION = 2
TAG = "__neuroprune_type__"

_TRUST: contextvars.ContextVar[bool] = contextvars.ContextVar("neuroprune_trust_code",
                                                              default=False)


@contextlib.contextmanager
def trusting(trust: bool = True) -> Iterator[None]:
    """Within the block, files that can run code when loaded (pickled checkpoints, joblib
    ensembles, factories named in mask files) are loaded: only for files you trust."""
    token = _TRUST.set(bool(trust))
    try:
        yield
    finally:
        _TRUST.reset(token)


def trusted() -> bool:
    """Whether the caller asked to trust code in files (see :func:`trusting`)."""
    return _TRUST.get()


#: functions a hall of fame may compare individuals with
_SIMILAR = {"eq": operator.eq, "is_": operator.is_}


def _fitness_classes() -> dict[str, type]:
    from .evolution.genome import FitnessMax, FitnessMulti
    return {"FitnessMax": FitnessMax, "FitnessMulti": FitnessMulti}


def encode(obj: Any) -> Any:
    """``obj`` as tensors and plain values that ``torch.load(weights_only=True)`` reads."""
    from deap import base, tools

    from .evolution.genome import MaskIndividual

    if isinstance(obj, np.generic):  # first: numpy's float64 is also a float
        return {TAG: "numpy.scalar", "dtype": obj.dtype.str, "value": obj.item()}
    if obj is None or isinstance(obj, (bool, int, float, str, torch.Tensor)):
        return obj
    if isinstance(obj, np.ndarray):
        return {TAG: "numpy.array", "data": torch.from_numpy(np.ascontiguousarray(obj).copy())}
    if isinstance(obj, tools.Logbook):
        return {TAG: "deap.Logbook", "records": [encode(r) for r in obj],
                "buffindex": obj.buffindex, "header": encode(obj.header),
                "log_header": obj.log_header, "columns_len": encode(obj.columns_len),
                "chapters": {k: encode(v) for k, v in obj.chapters.items()}}
    if isinstance(obj, tools.HallOfFame):
        name = next((k for k, f in _SIMILAR.items() if f is obj.similar), None)
        if name is None:
            raise TypeError(f"a checkpoint cannot hold a hall of fame comparing with "
                            f"{obj.similar!r}")
        return {TAG: "deap.HallOfFame", "maxsize": obj.maxsize, "similar": name,
                "items": [encode(i) for i in obj.items]}
    if isinstance(obj, base.Fitness):
        cls = type(obj).__name__
        if cls not in _fitness_classes():
            raise TypeError(f"a checkpoint cannot hold fitness class {cls}")
        return {TAG: "deap.Fitness", "class": cls,
                "values": obj.values if obj.valid else None}
    if isinstance(obj, MaskIndividual):
        s = obj.__getstate__()
        return {TAG: "MaskIndividual", "bits": s["bits"], "signal": s["signal"],
                "fitness": s["fitness"]}
    if isinstance(obj, tuple):
        return tuple(encode(v) for v in obj)
    if isinstance(obj, list):
        return [encode(v) for v in obj]
    if type(obj) is dict:
        if TAG in obj:
            raise TypeError(f"a checkpoint's dict cannot have the key {TAG}")
        return {k: encode(v) for k, v in obj.items()}
    raise TypeError(f"a checkpoint cannot hold a {type(obj).__module__}."
                    f"{type(obj).__qualname__}; add it to neuroprune.checkpoint.encode")


def decode(obj: Any) -> Any:
    """The inverse of :func:`encode`."""
    if isinstance(obj, tuple):
        return tuple(decode(v) for v in obj)
    if isinstance(obj, list):
        return [decode(v) for v in obj]
    if not isinstance(obj, dict):
        return obj
    kind = obj.get(TAG)
    if kind is None:
        return {k: decode(v) for k, v in obj.items()}
    return _DECODERS[kind](obj)


def _logbook(d: dict):
    from deap import tools

    book = tools.Logbook()
    book.extend(decode(d["records"]))
    book.buffindex, book.header = d["buffindex"], decode(d["header"])
    book.log_header, book.columns_len = d["log_header"], decode(d["columns_len"])
    for k, v in d["chapters"].items():
        book.chapters[k] = decode(v)
    return book


def _hall_of_fame(d: dict):
    from deap import tools

    hof = tools.HallOfFame(d["maxsize"], similar=_SIMILAR[d["similar"]])
    hof.items = [decode(i) for i in d["items"]]
    hof.keys = [i.fitness for i in reversed(hof.items)]  # sorted ascending, as DEAP keeps them
    return hof


def _fitness(d: dict):
    fit = _fitness_classes()[d["class"]]()
    if d["values"] is not None:
        fit.values = tuple(d["values"])
    return fit


def _individual(d: dict):
    from .evolution.genome import MaskIndividual

    ind = MaskIndividual.__new__(MaskIndividual)
    ind.__setstate__({"bits": d["bits"], "signal": d["signal"],
                      "fitness": None if d["fitness"] is None else tuple(d["fitness"])})
    return ind


_DECODERS = {
    "numpy.scalar": lambda d: np.dtype(d["dtype"]).type(d["value"]),
    "numpy.array": lambda d: d["data"].numpy(),
    "deap.Logbook": _logbook,
    "deap.HallOfFame": _hall_of_fame,
    "deap.Fitness": _fitness,
    "MaskIndividual": _individual,
}


def save_checkpoint(path: str | Path, state: dict[str, Any]) -> None:
    """Write ``state`` atomically as a checkpoint of :data:`CHECKPOINT_VERSION`."""
    from ._io import atomic_torch_save
    atomic_torch_save(path, {"checkpoint_version": CHECKPOINT_VERSION, "state": encode(state)})


class UntrustedCheckpoint(Exception):
    """A checkpoint that would run code when loaded (a pickle of version 1)."""


class UnknownCheckpointVersion(Exception):
    """A checkpoint of a format this neuroprune does not read (written by a newer one)."""

    def __init__(self, version: Any):
        super().__init__(f"checkpoint version {version!r}")
        self.version = version


def load_checkpoint(path: str | Path, trust: bool | None = None) -> Any:
    """The state saved by :func:`save_checkpoint` (or a plain one of version 1). A pickled
    checkpoint of version 1 raises :class:`UntrustedCheckpoint` unless ``trust`` (default:
    :func:`trusted`); any other damage raises what ``torch.load`` raises."""
    trust = trusted() if trust is None else trust
    try:
        blob = torch.load(path, weights_only=True)
    except pickle.UnpicklingError as exc:
        # a pickle of objects outside the allowlist ("Unsupported global", or "unsupported
        # GLOBAL x whose module is blocked"); anything else is damage
        if "unsupported global" not in str(exc).lower():
            raise
        if not trust:
            raise UntrustedCheckpoint(str(exc)) from None
        return torch.load(path, weights_only=False)
    if isinstance(blob, dict) and "checkpoint_version" in blob:
        if blob["checkpoint_version"] != CHECKPOINT_VERSION:
            raise UnknownCheckpointVersion(blob["checkpoint_version"])
        return decode(blob["state"])
    return blob  # version 1 of plain values only: nothing in it was pickled code
