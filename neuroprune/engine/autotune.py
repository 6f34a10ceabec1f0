"""``engine.trainer: auto``: the fastest trainer for a population, measured, then remembered.

Which trainer is fastest depends on the model, the batch, the population and the machine: a
stacked population of MLPs beats training them one after another, while on a CPU P grouped
convolutions can be slower than P separate ones (LeNet-5 at P=32), and at high sparsity and
width the sparse trainer wins. So ``auto`` measures,
the way ``torch.backends.cudnn.benchmark`` picks a kernel: at the first population of a kind
it trains the first chunk of networks with every trainer that can run it (stacked,
per-network, and sparse for a fully connected network with an element mask and no hooks) on
a short and a longer run of training batches, after a warm-up, in alternating rounds. The
difference gives each trainer's cost per step, the rest its setup (stacking, optimiser,
evaluation); the trainer with the least predicted time for the task's steps runs it. Stacked
stays unless another is clearly faster (``MARGIN``), so noise does not flip the choice.
A measurement costs a few short trainings with each trainer; while that is more than the
training of its kind so far in the process (``BUDGET``), the default trainer runs and the
measurement waits: a search whose one-epoch generations are each too short to pay for it
measures at its second or third generation, and keeps the choice from then on.

The choice is remembered per architecture, input, batch size, optimiser, precision, device,
chunk of networks, mask density and thread count, in this process and in a file
(``$NEUROPRUNE_CACHE_DIR``, else ``$XDG_CACHE_HOME/neuroprune``, else
``~/.cache/neuroprune``; ``trainer_choices.json``, written under a file lock), so a resumed
run, and every process of a machine, trains with the trainer the first measurement chose. The
trainers give one network the same result (to float rounding, as a different chunking would):
the choice changes the time, not what is found.

A measurement taken while other work competed for this process's cores is marked
``disturbed`` (:func:`disturbed`): it decides for the process that took it, and the next
process measures again; the first undisturbed measurement is kept for good. So a choice made
on a busy machine does not outlive the load. A run keeps the choices it made in its own
folder (:func:`run_choices`), so that a resumed run trains with the trainers it started
with, whatever the machine's cache says by then: the resumed run equals the uninterrupted
one to the last bit.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import statistics
import time
from contextvars import ContextVar
from dataclasses import replace
from pathlib import Path
from typing import Any

import torch
from torch import nn

from .._io import WriteError, atomic_write_json
from ..data import DataSplits
from ..errors import UserError
from ..masks import Layout
from ..models import ModelSpec
from .dropout import template
from .memory import free_memory, human
from .settings import EngineConfig, TrainSettings, steps_per_run
from .task import EvalTask, PopulationResult
from .trainers import PerNetworkTrainer, StackedTrainer, Trainer, estimate

#: another trainer replaces the stacked one only when its median round is this much faster
MARGIN = 1.1
#: training batches of the short and the long measured run, and rounds of both per trainer
#: (after one warm-up each)
SHORT, LONG, ROUNDS = 2, 6, 2
#: a measurement is put off while it would cost more than this share of the training of
#: its kind so far in the process (this task's included) and more than ``FLOOR`` seconds: it
#: is remembered, one measurement serving every later generation and run, so a search whose
#: first generation is too short to pay for it measures once its generations have
BUDGET, FLOOR = 1.0, 2.0

#: with one thread, a measurement during which the process ran less than this share of the
#: time is ``disturbed``
CPU_SHARE = 0.8

_CHOICES: dict[str, dict[str, Any]] = {}
#: the choices file of the run this thread trains for (see :func:`run_choices`)
_RUN_FILE: ContextVar[Path | None] = ContextVar("neuroprune_run_choices", default=None)
#: keys this process measured itself (a disturbed record from elsewhere is measured again)
_MEASURED_HERE: set[str] = set()
#: per key: training steps this process has run so far, and a put-off measurement's cost
_STEPS_SEEN: dict[str, int] = {}
_PUT_OFF: dict[str, tuple[float, float]] = {}  # key -> (measurement s, default trainer s/step)


def cache_file() -> Path:
    """Where the measured choices are kept."""
    from .._system import cache_root
    return cache_root() / "trainer_choices.json"


def _read(path: Path) -> dict[str, Any]:
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def disturbed(cpu_seconds: float, wall_seconds: float, device: torch.device) -> bool:
    """Whether a CPU measurement of ``wall_seconds`` shared its cores with other work. With
    one thread, the process got less than ``CPU_SHARE`` of a core while it measured; with
    more, the machine's one-minute load exceeded its cores by more than half a core (the
    process's own threads count among the load). GPU timings are not judged."""
    if device.type != "cpu" or wall_seconds <= 0:
        return False
    if torch.get_num_threads() == 1:
        return cpu_seconds < CPU_SHARE * wall_seconds
    try:
        load = os.getloadavg()[0]
    except (AttributeError, OSError):  # no load average on this platform
        return False
    return load > (os.cpu_count() or 1) + 0.5


def _valid(record: Any) -> bool:
    """A record of this format: every trainer's ``setup`` and ``step`` seconds (records of
    skipped measurements stay in the process)."""
    costs = record.get("costs") if isinstance(record, dict) else None
    return isinstance(costs, dict) and bool(costs) and all(
        isinstance(c, dict) and {"setup", "step"} <= set(c) for c in costs.values())


@contextlib.contextmanager
def run_choices(path: str | Path):
    """Within this block, trainers choose for a run whose choices are kept in ``path``: a
    choice recorded there is taken as it is (no measurement, whatever the machine's cache
    holds), a new one is recorded there."""
    token = _RUN_FILE.set(Path(path))
    try:
        yield
    finally:
        _RUN_FILE.reset(token)


def _keep_for_run(key: str, record: dict[str, Any]) -> None:
    path = _RUN_FILE.get()
    if path is None:
        return
    table = _read(path)  # the run folder has one writer (its lock): no lock of our own
    if key in table and not (_valid(record) and not _valid(table[key])):
        return  # kept, unless a measurement replaces a put-off one
    table[key] = record
    try:
        atomic_write_json(path, table)
    except (OSError, WriteError):  # a run folder that cannot take it: the machine's cache rules
        pass


def _run_record(key: str) -> dict[str, Any] | None:
    path = _RUN_FILE.get()
    got = _read(path).get(key) if path is not None else None
    skipped = isinstance(got, dict) and "costs" in got and got["costs"] is None
    return got if _valid(got) or skipped else None  # skipped: the default trainer ran


def remembered(key: str) -> dict[str, Any] | None:
    """The choice measured for ``key`` in this process or kept in the cache file."""
    if key not in _CHOICES:
        got = _read(cache_file()).get(key)
        if _valid(got):
            _CHOICES[key] = got
    return _CHOICES.get(key)


def remember(key: str, record: dict[str, Any]) -> dict[str, Any]:
    """Keep ``record`` for ``key``; an undisturbed record another process wrote first wins
    (so every process of a machine trains with one choice), a disturbed one is replaced. A
    cache that cannot be written only costs a measurement in the next process."""
    from filelock import FileLock, Timeout

    path = cache_file()
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        with FileLock(str(path) + ".lock", timeout=30):
            table = _read(path)
            if _valid(table.get(key)) and not table[key].get("disturbed"):
                record = table[key]
            table[key] = record
            atomic_write_json(path, table)
    except (OSError, Timeout, WriteError):
        pass
    _CHOICES[key] = record
    return record


def predicted(costs: dict[str, dict[str, float]], steps: int) -> dict[str, float]:
    """Each trainer's predicted seconds for ``steps`` training steps from its measured
    ``setup`` and ``step`` seconds."""
    return {n: c["setup"] + steps * c["step"] for n, c in costs.items()}


def choose(seconds: dict[str, float]) -> str:
    """The trainer to use given each one's (predicted) seconds: the fastest, except that the
    stacked trainer stays unless the fastest beats it by ``MARGIN``."""
    fastest = min(seconds, key=seconds.get)
    if "stacked" in seconds and seconds["stacked"] <= MARGIN * seconds[fastest]:
        return "stacked"
    return fastest


class AutoTrainer:
    """``engine.trainer: auto``: runs each task with the fastest of the trainers that can run
    it, measured once per kind of task (see the module's docstring)."""

    name = "auto"

    def __init__(self, spec, data, settings, layout=None, device="cpu", engine=None,
                 augment=(), stackable: bool = True):
        cls = StackedTrainer if stackable else PerNetworkTrainer
        self.default = cls(spec, data, settings, layout, device, engine, augment)
        self.spec, self.settings, self.layout = spec, settings, layout
        self.engine, self.augment, self.stackable = self.default.engine, augment, stackable
        self.device = self.default.device
        self.data = self.default.data  # on the device: the other trainers share it
        self.footprint = self.default.footprint
        self._trainers: dict[str, Any] = {self.default.name: self.default}
        self.chosen: dict[str, Any] | None = None  # the last measured (or remembered) choice

    # ------------------------------------------------------------------ protocol
    def describe(self) -> str:
        text = self.default.describe()
        if not self.stackable:
            return text + " (two networks do not fit at once)"
        if self.chosen is not None:
            return f"{self._trainer(self.chosen['choice']).describe()} ({self._why()})"
        return (f"{text}, or whichever trainer is faster for this population: measured on "
                f"its first chunk (engine.trainer: auto)")

    def run(self, task: EvalTask) -> PopulationResult:
        name = self.pick(task)
        return self._trainer(name).run(task)

    # ------------------------------------------------------------------ choice
    def candidates(self, task: EvalTask) -> list[str]:
        """The trainers that can run ``task`` with the results the default one gives."""
        names = ["stacked", "per_network"] if self.stackable else ["per_network"]
        if self._sparse_fits(task):
            names.append("sparse")
        return names

    def _sparse_fits(self, task: EvalTask) -> bool:
        e = self.engine
        if (task.masks is None or task.hooks or task.activations is not None
                or task.network_settings or self.augment or self.layout is None
                or e.precision not in ("fp32", "fp64") or e.sparse_regrow
                or e.sparse_neuron_prune or self.default.settings_hooks):
            return False
        try:
            sparse = self._trainer("sparse")
            sparse.check(task.slice(0, min(len(task), 1)))
        except (UserError, MemoryError):
            return False
        return True

    def key(self, task: EvalTask, chunk: int, names: list[str]) -> str:
        s, e = self.settings, self.engine
        density = ("dense" if task.masks is None else
                   f"{float(task.masks[:chunk].float().mean()):.3f}")
        return "|".join([self.spec.describe(), _shape_digest(self.default.template,
                                                             self.spec.options),
                         "x".join(map(str, self.data.input_shape)),
                         f"classes={self.data.num_classes}", f"batch={s.batch_size}",
                         s.optimizer, e.precision, str(self.device), f"chunk={chunk}",
                         f"density={density}", f"threads={torch.get_num_threads()}",
                         f"torch={torch.__version__}", ",".join(names)])

    def pick(self, task: EvalTask) -> str:
        """The trainer for ``task``: measured the first time a kind of task comes."""
        if len(task) == 0:
            return self.default.name
        names = self.candidates(task)
        if len(names) == 1:
            return names[0]
        chunk = min(len(task), getattr(self.default, "chunk_size", 1))
        key = self.key(task, chunk, names)
        steps = steps_per_run(len(self.data.train_y), self.settings.batch_size, task.epochs)
        chunks = -(-len(task) // chunk)  # the task's steps, every chunk's
        _STEPS_SEEN[key] = _STEPS_SEEN.get(key, 0) + steps * chunks
        pinned = _run_record(key)  # what this run chose before it was interrupted
        record = pinned or remembered(key)
        stale = not pinned and record is not None and record.get("disturbed") \
            and key not in _MEASURED_HERE
        put_off = record is not None and record.get("costs") is None
        if put_off and key in _PUT_OFF:  # worth measuring now that more training has come?
            cost, per_step = _PUT_OFF[key]
            put_off = _affordable(cost, per_step, _STEPS_SEEN[key])
        if record is None or stale or put_off or \
                set(record.get("costs") or names) != set(names):
            _MEASURED_HERE.add(key)
            cpu, wall = time.process_time(), time.perf_counter()
            costs = self.measure(task.slice(0, chunk), names, _STEPS_SEEN[key], key)
            cpu, wall = time.process_time() - cpu, time.perf_counter() - wall
            if costs is None:  # too dear to measure yet: the default trainer, this process
                record = _CHOICES.setdefault(key, {"costs": None})
            else:
                _PUT_OFF.pop(key, None)
                record = remember(key, {"costs": costs,
                                        "disturbed": disturbed(cpu, wall, self.device),
                                        "measured": time.strftime("%Y-%m-%dT%H:%M:%S")})
        if pinned is None or not _valid(pinned):
            _keep_for_run(key, record)
        if record["costs"] is None:
            self.chosen = {"choice": self.default.name, "seconds": {}, "steps": steps}
        else:
            seconds = predicted(record["costs"], steps)
            self.chosen = {"choice": choose(seconds), "seconds": seconds, "steps": steps,
                           "disturbed": bool(record.get("disturbed"))}
        return self.chosen["choice"]

    def measure(self, task: EvalTask, names: list[str], steps: int | None = None,
                key: str | None = None) -> dict[str, dict[str, float]] | None:
        """Each trainer's ``setup`` and per-``step`` seconds on ``task``: the medians over
        ``ROUNDS`` alternating rounds of a ``SHORT`` and a ``LONG`` run of training batches
        (each with one batch of validation), after a warm-up. None when the measurement
        would cost more than ``BUDGET`` of ``steps`` training steps (the training of this
        kind so far, judged by the default trainer's warm-up) and more than ``FLOOR``
        seconds: the default trainer runs the task, and the measurement waits (under
        ``key``) until enough training has come to pay for it."""
        bs = self.settings.batch_size
        short = _probe(self.data, SHORT * bs, bs)
        long = _probe(self.data, LONG * bs, bs)
        n_short = steps_per_run(len(short.train_y), bs, 1)
        n_long = steps_per_run(len(long.train_y), bs, 1)
        probe = replace(task, epochs=1, test=False, keep_weights=False, hooks=())
        names = [self.default.name] + [n for n in names if n != self.default.name]
        for i, name in enumerate(names):  # warm-up: allocations, kernels
            warm = self._timed(self._trainer(name), probe, short)
            if i == 0 and steps is not None:
                cost = warm * len(names) * (1 + ROUNDS * (n_short + n_long) / n_short)
                if not _affordable(cost, warm / n_short, steps):
                    if key is not None:
                        _PUT_OFF[key] = (cost, warm / n_short)
                    return None
        per_step: dict[str, list[float]] = {n: [] for n in names}
        setup: dict[str, list[float]] = {n: [] for n in names}
        for _ in range(ROUNDS):
            for name in names:
                a = self._timed(self._trainer(name), probe, short)
                b = self._timed(self._trainer(name), probe, long)
                step = max(b - a, 0.0) / max(n_long - n_short, 1)
                per_step[name].append(step)
                setup[name].append(max(a - n_short * step, 0.0))
        return {n: {"setup": statistics.median(setup[n]), "step": statistics.median(per_step[n])}
                for n in names}

    def _timed(self, trainer, task: EvalTask, data) -> float:
        full = trainer.data
        trainer.data = data
        try:
            if self.device.type == "cuda":
                torch.cuda.synchronize(self.device)
            t0 = time.perf_counter()
            trainer.run(task)
            if self.device.type == "cuda":
                torch.cuda.synchronize(self.device)
            return time.perf_counter() - t0
        finally:
            trainer.data = full

    def _trainer(self, name: str):
        if name not in self._trainers:
            from .sparse import SparseTrainer
            cls = {"stacked": StackedTrainer, "per_network": PerNetworkTrainer,
                   "sparse": SparseTrainer}[name]
            self._trainers[name] = cls(self.spec, self.data, self.settings, self.layout,
                                       self.device, self.engine, self.augment)
        return self._trainers[name]

    def _why(self) -> str:
        seconds = self.chosen.get("seconds", {})
        parts = ", ".join(f"{n} {v:.2f} s" for n, v in sorted(seconds.items(),
                                                                   key=lambda kv: kv[1]))
        busy = "; the machine was busy: measured again next run" \
            if self.chosen.get("disturbed") else ""
        return (f"auto: measured, predicted for {self.chosen['steps']} steps: {parts}{busy}"
                if parts else "auto")


def _affordable(cost: float, per_step: float, steps: int) -> bool:
    """Whether a measurement of ``cost`` seconds is worth ``steps`` training steps of
    ``per_step`` seconds (``BUDGET``), or is cheap anyway (``FLOOR``)."""
    return cost <= max(FLOOR, BUDGET * per_step * steps)


def _shape_digest(template: nn.Module, options: dict[str, Any]) -> str:
    """A short digest of the network's parameter and buffer shapes and its options: two
    widths of one architecture (or two instances of one Python class) are different
    networks to time."""
    shapes = [(k, list(v.shape)) for k, v in (*template.named_parameters(),
                                              *template.named_buffers())]
    text = json.dumps([shapes, options], sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:12]


def _probe(data, train: int, batch: int):
    """The first ``train`` training samples and one batch of validation and test."""
    return replace(data, train_x=data.train_x[:train], train_y=data.train_y[:train],
                   val_x=data.val_x[:batch], val_y=data.val_y[:batch],
                   test_x=data.test_x[:batch], test_y=data.test_y[:batch])


def make_trainer(spec: ModelSpec, data: DataSplits, settings: TrainSettings,
                 layout: Layout | None, device: str | torch.device = "cpu",
                 engine: EngineConfig | None = None, augment: tuple[str, ...] = ()) -> Trainer:
    """The configured trainer. ``engine.trainer: auto`` trains one network at a time when two
    do not fit in the device's free memory, and otherwise whichever of the stacked,
    per-network and sparse trainers is fastest for the population, measured once and
    remembered (:class:`~neuroprune.engine.autotune.AutoTrainer`)."""
    engine = engine or EngineConfig()
    if engine.trainer == "sparse":  # its memory grows with the kept weights, not the shape
        from .sparse import SparseTrainer
        return SparseTrainer(spec, data, settings, layout, device, engine, augment)
    need = estimate(template(spec), data, settings, layout).training
    free = free_memory(torch.device(device))
    if need > 0.9 * free:
        raise UserError(f"one network of {spec.describe()} needs about {human(need)} to train "
                        f"at batch size {settings.batch_size}, but {device} has {human(free)} "
                        f"free; lower training.batch_size or use a smaller model, or for a "
                        f"sparse fully connected network engine.trainer: sparse")
    if engine.trainer == "auto":
        return AutoTrainer(spec, data, settings, layout, device, engine, augment,
                           stackable=2 * need <= 0.8 * free)
    cls = StackedTrainer if engine.trainer == "stacked" else PerNetworkTrainer
    return cls(spec, data, settings, layout, device, engine, augment)
