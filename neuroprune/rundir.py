"""The run directory: what a user (and a resumed run) can rely on.

Layout::

    config.yaml              resolved config; which data ran as comments at its end
    factory.json             where a ``model.factory`` module was imported from (resume,
                             export, load_model)
    data.json                which data ran: files found, protocol used, split sizes
    ledger.jsonl             append-only: one committed line per generation (source of truth)
    results.csv              one row per evaluated individual, derived from the ledger
    checkpoints/gen_NNNN.pt  search state after each generation
    summary.json             best network's figures
    learning_curve.csv       final training: loss and validation accuracy per epoch
    best_mask.safetensors    masks (and trained weights) of the best network
    .lock, .lock.holder      who writes the run now (one writer at a time; see ``locked``)

Nothing below us is exactly-once (Ray retries, killed processes), so evaluations are keyed by
``(generation, index)``: a generation is committed once, and a second commit of the same
generation (a retry, a resumed run) is ignored rather than counted twice.

``results.csv`` grows by appending each committed generation's rows, so a long search pays per
generation for that generation only (rewriting the whole file every generation made
bookkeeping quadratic: 19 s for 200 generations of 256 networks). Because the ledger is
committed first, a crash can at worst cut the file's last rows; the first commit of every
process (a resumed run) rewrites it whole from the ledger, atomically.

What is recorded is also forwarded, as it is recorded, to the run's experiment trackers
(``tracking``, from the config's ``logging:`` list; see :mod:`neuroprune.tracking`).
"""

from __future__ import annotations

import contextlib
import json
import os
import time
import weakref
from pathlib import Path
from typing import TYPE_CHECKING, Any, Iterable, Iterator

import yaml

from ._io import (append_durably, atomic_write_csv, atomic_write_json, atomic_write_text,
                  csv_columns, csv_text)
from .errors import UserError
from .mirror import synced

if TYPE_CHECKING:
    from .evolution.loop import Generation
    from .tracking import Tracking


class RunFiles:
    """The name of every file of a run directory, in one place (``FILES.summary``)."""

    config = "config.yaml"
    factory = "factory.json"
    data = "data.json"
    ledger = "ledger.jsonl"
    results = "results.csv"
    checkpoints = "checkpoints"
    summary = "summary.json"
    curve = "learning_curve.csv"
    logbook = "logbook.csv"
    best_mask = "best_mask.safetensors"
    curves = "curves.csv"  # neuroevolution: reward against steps
    learned_mask = "learned_mask.safetensors"  # rbm_connectivity: the learned pattern
    trials = "trials.csv"  # tune: every trial
    trainer_choices = "trainer_choices.json"  # engine.trainer auto: what this run chose
    lock = ".lock"
    holder = ".lock.holder"

    @staticmethod
    def checkpoint(generation: int) -> str:
        """A generation's checkpoint, inside :attr:`checkpoints`."""
        return f"gen_{generation:04d}.pt"

    @staticmethod
    def genome(slug: str) -> str:
        """neuroevolution: the best genome of an environment (``slug``: its id, file-safe)."""
        return f"best_genome_{slug}.safetensors"


#: the file names of a run directory
FILES = RunFiles()
#: the first line of the data record at the end of ``config.yaml`` (YAML comments)
DATA_RAN = ("# which data ran (as data.json records it; the data section above is what was "
            "asked):")
#: the lock file of a run directory (see :meth:`RunDir.locked`)
LOCK_NAME = FILES.lock
#: who holds the lock (pid, host, since when), beside the lock file
HOLDER_NAME = FILES.holder
#: the files of the lock, which a fresh run folder may already hold
LOCK_FILES = (LOCK_NAME, HOLDER_NAME)
#: config keys a resumed run (or a continued study) may change: where and how it runs, not
#: what it computes
RESUME_MAY_CHANGE = ("device", "backend", "ray", "logging")


class RunDir:
    """A run directory on disk (created on first write, never half-written)."""

    def __init__(self, path: str | Path, tracking: "Tracking | None" = None):
        self.path = Path(path)
        if self.path.exists() and not self.path.is_dir():
            raise UserError(f"output path {self.path} is a file; choose a folder with --out")
        self.tracking = tracking
        if tracking is not None:  # a run that ends without a summary (pruned, crashed)
            weakref.finalize(self, tracking.close, "unfinished")
        self.ledger_path = self.path / FILES.ledger
        self.ckpt_dir = self.path / FILES.checkpoints
        self._done: dict[int | str, list[dict[str, Any]]] | None = None  # ledger, in memory
        self._columns: list[str] | None = None  # results.csv header as written
        #: the best row recorded by this process: fitness (or accuracy), accuracy, generation
        self.best_so_far: dict[str, Any] = {}
        self.last_generation: int | str | None = None  # the last generation recorded here

    @contextlib.contextmanager
    def locked(self) -> Iterator["RunDir"]:
        """Hold the run directory's lock (``.lock``) while writing it: one writer per run
        directory. The lock is the operating system's (``filelock``: ``flock`` on POSIX,
        ``msvcrt`` on Windows), so a killed holder's lock is free at once and a stale lock
        file is simply reused. Who holds it is written beside it (``.lock.holder``), since a
        locked file cannot be read on Windows."""
        import socket

        from filelock import FileLock, Timeout

        created = not self.path.exists()
        self.create()
        holder_path = self.path / HOLDER_NAME
        lock = FileLock(self.path / LOCK_NAME, timeout=0)
        try:
            lock.acquire()
        except Timeout:
            try:
                holder = holder_path.read_text("utf-8", "replace").strip()
            except OSError:
                holder = ""
            raise UserError(f"{self.path} is in use by {holder or 'another process'}; wait "
                            f"until it ends (or stop it), or choose another folder") from None
        except OSError as exc:
            raise UserError(f"cannot write in {self.path}: {exc.strerror}; give a folder you "
                            f"can write to") from None
        try:
            holder_path.write_text(f"pid {os.getpid()} on {socket.gethostname()} since "
                                   f"{time.strftime('%Y-%m-%d %H:%M:%S')}\n", "utf-8")
            yield self
        finally:
            holder_path.unlink(missing_ok=True)
            lock.release()
            if created and {p.name for p in self.path.iterdir()} <= set(LOCK_FILES):
                for name in LOCK_FILES:  # refused before writing anything: leave nothing
                    (self.path / name).unlink(missing_ok=True)
                self.path.rmdir()

    def create(self) -> "RunDir":
        try:
            self.path.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise UserError(f"cannot create run directory {self.path}: {exc.strerror}") from None
        return self

    # ---------------------------------------------------------------- config / summary
    def write_config(self, config: dict[str, Any]) -> None:
        atomic_write_text(self.path / FILES.config, yaml.safe_dump(config, sort_keys=False))
        factory = (config.get("model") or {}).get("factory")
        folder = factory_folder(factory) if factory else None
        if folder:  # a resume reads config.yaml from here, not from beside the user's config
            atomic_write_json(self.path / FILES.factory, {"factory": factory,
                                                           "folder": folder})
        self._track("config", config)

    def write_data_record(self, record: dict[str, Any]) -> None:
        """``data.json`` beside ``config.yaml``: which data ran (files found, protocol used,
        split sizes), where the config may say only ``protocol: auto``; the same record ends
        ``config.yaml`` as comments, which loading, validation and ``resume`` skip."""
        atomic_write_json(self.path / FILES.data, record)
        config = self.path / FILES.config
        if config.is_file():
            asked = config.read_text(encoding="utf-8").split(DATA_RAN)[0].rstrip("\n")
            ran = yaml.safe_dump(record, sort_keys=False, default_flow_style=None, width=96)
            atomic_write_text(config, f"{asked}\n{DATA_RAN}\n"
                              + "".join(f"#   {line}\n" for line in ran.splitlines()))

    def write_summary(self, summary: dict[str, Any]) -> None:
        atomic_write_json(self.path / FILES.summary, summary)
        self._track("summary", summary)
        synced(self.path)

    def _track(self, record: str, *args: Any) -> None:
        if self.tracking is not None:
            getattr(self.tracking, record)(*args)

    def child_tracking(self, name: str) -> "Tracking | None":
        """The trackers of a sweep's cell ``name`` (nested runs), if this run has any."""
        return None if self.tracking is None else self.tracking.child(name)

    def is_complete(self) -> bool:
        """A finished run: its summary exists and is not an interrupted run's best-so-far."""
        if not (self.path / FILES.summary).is_file():
            return False
        return self.read_summary().get("status", "complete") == "complete"

    def read_summary(self) -> dict[str, Any]:
        path = self.path / FILES.summary
        try:
            summary = json.loads(path.read_text(encoding="utf-8"))
        except (json.JSONDecodeError, UnicodeDecodeError):
            summary = None
        if not isinstance(summary, dict):
            raise UserError(f"{path} is not a JSON object (damaged or not written by "
                            f"neuroprune); delete it to resume the run")
        return summary

    # ---------------------------------------------------------------- ledger
    def committed(self) -> dict[int | str, list[dict[str, Any]]]:
        """Committed generations -> rows. A torn last line (a crash mid-append, without its
        newline) was never committed and is ignored; any other unreadable line is an error
        naming it, since skipping it would silently drop a generation."""
        out: dict[int, list[dict[str, Any]]] = {}
        if not self.ledger_path.exists():
            return out
        data = self.ledger_path.read_bytes()
        lines = data.split(b"\n")
        for number, line in enumerate(lines, 1):
            if not line.strip():
                continue
            entry = _ledger_entry(line)
            if entry is None:
                if number == len(lines):  # no newline after it: torn by a crash
                    continue
                raise UserError(
                    f"{self.ledger_path} line {number} is damaged (not a ledger entry with "
                    f"'generation' and 'rows'); restore the file, or delete that line and "
                    f"every later one to re-run those generations on resume")
            out.setdefault(entry["generation"], entry["rows"])
        return out

    def commit_generation(self, generation: int | str, rows: Iterable[dict[str, Any]]) -> bool:
        """Append a generation's rows once; False if it was committed already.

        ``generation`` is the search generation, or ``"final"`` for the final training.
        """
        self.create()
        if self._done is None:  # first commit of this process: trust only the ledger
            self._done = self.committed()
            if self._done:
                self.write_results(self._done)
            self._track("resume", self._done)
        done = self._done
        if generation in done:
            return False
        rows = list(rows)
        keys = {(r["generation"], r["index"]) for r in rows}
        if len(keys) != len(rows):
            raise ValueError(f"generation {generation} has duplicate (generation, index) rows")
        self._truncate_torn_tail()
        entry = json.dumps({"generation": generation, "rows": rows})
        append_durably(self.ledger_path, entry + "\n")
        last = _sorts_last(generation, done)
        done[generation] = rows
        if not (last and self._append_results(rows)):
            self.write_results(done)
        self._track("generation", generation, rows)
        return True

    def _append_results(self, rows: list[dict[str, Any]]) -> bool:
        """Append rows under the existing header; False when a rewrite is needed instead."""
        path = self.path / FILES.results
        if self._columns is None or not path.is_file():
            return False
        if any(k not in self._columns for r in rows for k in r):
            return False  # a new column: the header changes
        append_durably(path, csv_text(rows, self._columns, header=False))
        return True

    def _truncate_torn_tail(self) -> None:
        """Cut a torn last line, so the next entry starts on a line of its own. Called before
        every append: it reads the last byte, and the whole file only when that is torn."""
        if not self.ledger_path.exists():
            return
        with open(self.ledger_path, "r+b") as f:
            if f.seek(0, os.SEEK_END) == 0:
                return
            f.seek(-1, os.SEEK_END)
            if f.read(1) == b"\n":
                return
            f.seek(0)
            data = f.read()
            f.truncate(data.rfind(b"\n") + 1)

    def write_results(self, generations: dict[int, list[dict[str, Any]]] | None = None) -> None:
        """Rewrite ``results.csv`` whole (atomically) from the given or the committed ledger."""
        gens = self.committed() if generations is None else generations
        rows = [r for g in sorted(gens, key=_order_key) for r in gens[g]]
        self._columns = csv_columns(rows)
        atomic_write_csv(self.path / FILES.results, rows, self._columns)

    def write_curve(self, rows: list[dict[str, Any]]) -> None:
        """The final training's learning curve, one row per epoch: ``learning_curve.csv``
        (epoch, train_loss, val_loss, val_accuracy)."""
        atomic_write_csv(self.path / FILES.curve, rows)
        self._track("curve", rows)

    def write_logbook(self, records: list[dict[str, Any]]) -> None:
        """Population statistics per generation (elites included): ``logbook.csv``."""
        atomic_write_csv(self.path / FILES.logbook, records)
        self._track("logbook", records)

    # ---------------------------------------------------------------- the recorder
    def record(self, generation: "Generation") -> None:
        """A finished generation (a :class:`~neuroprune.evolution.loop.Recorder`): its rows
        in the ledger once, its checkpoint, the logbook so far, the best so far."""
        self.commit_generation(generation.number, generation.rows)
        self.save_checkpoint(generation.number, generation.state)
        if generation.state.get("logbook") is not None:
            self.write_logbook(list(generation.state["logbook"]))
        for r in generation.rows:
            score = r.get("fitness", r.get("val_accuracy"))
            if score is not None and score >= self.best_so_far.get("fitness", score):
                self.best_so_far.update(fitness=score, val_accuracy=r.get("val_accuracy"),
                                        generation=generation.number)
        self.last_generation = generation.number

    def write_interrupted(self, method: str, seed: int, **fields: Any) -> None:
        """The summary of a run stopped between generations: ``status: interrupted``, the last
        generation recorded, the best so far and ``fields``."""
        self.write_summary({"status": "interrupted", "method": method,
                            "last_generation": self.last_generation, "seed": seed,
                            "best_so_far": dict(self.best_so_far), **fields})

    def write_best_mask(self, mask: Any, metadata: dict[str, Any],
                        weights: dict[str, Any] | None = None) -> Path:
        """The best network's masks, metadata and trained weights: ``best_mask.safetensors``."""
        from .masks import save_mask

        path = self.path / FILES.best_mask
        save_mask(path, mask, metadata, weights=weights)
        return path

    # ---------------------------------------------------------------- checkpoints
    def save_checkpoint(self, generation: int, state: dict[str, Any], keep: int = 3) -> Path:
        """Write generation's state atomically; only the newest ``keep`` are kept."""
        from .checkpoint import save_checkpoint

        path = self.ckpt_dir / FILES.checkpoint(generation)
        save_checkpoint(path, state)
        for old in self.checkpoints()[:-keep]:
            old.unlink(missing_ok=True)
        synced(self.path)  # a committed generation reaches a run kept at a URI
        return path

    def checkpoints(self) -> list[Path]:
        if not self.ckpt_dir.exists():
            return []
        return sorted(p for p in self.ckpt_dir.glob("gen_*.pt") if p.stem[4:].isdigit())

    def load_last_checkpoint(self) -> tuple[dict[str, Any] | None, Path | None]:
        """The newest checkpoint, which must be readable and of a generation the ledger
        holds; otherwise a :class:`UserError` naming it and the newest good one, if any."""
        paths = self.checkpoints()
        if not paths:
            return None, None
        committed = self.committed()
        problems = {}
        for path in reversed(paths):
            state, problem = _read_checkpoint(path, committed)
            if problem is None and not problems:
                return state, path
            if problem is None:
                newest, why = next(iter(problems.items()))
                raise UserError(f"checkpoint {newest} {why}; the last good one is {path.name}: "
                                f"delete the newer ones to resume from there")
            problems[path] = problem
        newest, why = next(iter(problems.items()))
        raise UserError(f"checkpoint {newest} {why}, and no checkpoint in {self.ckpt_dir} is "
                        f"usable; delete the checkpoints folder and ledger.jsonl to start over")

    def remove_temp_files(self) -> list[Path]:
        """Delete the temporary files of atomic writes a killed process left behind (only
        safe while this process holds the run's lock)."""
        if not self.path.is_dir():
            return []
        found = [p for p in self.path.rglob(".*.tmp") if p.is_file()]
        for p in found:
            p.unlink(missing_ok=True)
        return found


def _read_checkpoint(path: Path, committed: dict) -> tuple[Any, str | None]:
    """``(state, None)``, or ``(None, why path cannot be resumed from)``. A pickled checkpoint
    (version 1) is refused unless code is trusted: it could run anything as it loads."""
    from .checkpoint import (CHECKPOINT_VERSION, UnknownCheckpointVersion, UntrustedCheckpoint,
                             load_checkpoint)

    try:
        state = load_checkpoint(path)
    except UntrustedCheckpoint:
        raise UserError(f"checkpoint {path} is of version 1 (a pickle, which runs code as it "
                        f"loads; this neuroprune writes version {CHECKPOINT_VERSION}): resume "
                        f"with --trust-code only if you trust who wrote it") from None
    except UnknownCheckpointVersion as exc:
        raise UserError(f"checkpoint {path} is of version {exc.version} and this neuroprune "
                        f"reads version {CHECKPOINT_VERSION}: resume it with the neuroprune "
                        f"that wrote it") from None
    except Exception as exc:
        return None, f"is corrupt ({type(exc).__name__})"
    generation = state.get("generation") if isinstance(state, dict) else None
    if generation != int(path.stem.split("_")[-1]) or generation not in committed:
        return None, (f"does not belong to this run (its generation {generation} is not "
                      f"committed in ledger.jsonl)")
    return state, None


def _ledger_entry(line: bytes) -> dict[str, Any] | None:
    """A ledger line as ``{"generation": ..., "rows": [...]}``, or None if it is not one."""
    try:
        entry = json.loads(line.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError):
        return None
    if (not isinstance(entry, dict) or not isinstance(entry.get("generation"), (int, str))
            or isinstance(entry["generation"], bool) or not isinstance(entry.get("rows"), list)
            or not all(isinstance(r, dict) and _row_types(r) for r in entry["rows"])):
        return None
    return entry


def _row_types(row: dict[str, Any]) -> bool:
    """A row's index is a whole number and its fitness and accuracy are numbers (or null)."""
    def number(v: Any) -> bool:
        return v is None or (isinstance(v, (int, float)) and not isinstance(v, bool))

    index = row.get("index", 0)
    return (isinstance(index, int) and not isinstance(index, bool)
            and number(row.get("fitness")) and number(row.get("val_accuracy")))


def _order_key(generation: int | str):
    """results.csv order: search generations by number, then named ones (``"final"``,
    ``"ga:3"``) in commit order."""
    return (isinstance(generation, str), generation if isinstance(generation, int) else 0)


def _sorts_last(generation: int | str, done: dict) -> bool:
    """Would ``generation`` come after every committed one in results.csv order?"""
    if isinstance(generation, str):
        return True
    return all(isinstance(g, int) and g < generation for g in done)


def factory_folder(factory: str) -> str | None:
    """The import-path folder that ``factory``'s module (``module:function``, imported by the
    time a run writes its config) was loaded from: for a module beside the config, that
    config's folder (recorded so that ``resume`` can put it on the path again)."""
    import sys

    name = factory.split(":")[0]
    file = getattr(sys.modules.get(name), "__file__", None)
    if not file:
        return None
    path = Path(file).resolve()
    root = path.parent.parent if path.name == "__init__.py" else path.parent
    for _ in name.split(".")[1:]:
        root = root.parent
    return str(root)


def factory_folder_of_run(run_dir: str | Path) -> None:
    """A run whose ``model.factory`` module sat beside its config resumes, exports and loads
    without PYTHONPATH: the folder recorded in ``factory.json`` goes on the import path as
    ``run`` put it."""
    from .config import factory_folder_on_path

    try:
        folder = json.loads((Path(run_dir) / FILES.factory).read_text(encoding="utf-8"))["folder"]
    except (OSError, ValueError, KeyError, TypeError):
        return  # none recorded: the factory imports from the path as it is, or says why not
    if isinstance(folder, str) and Path(folder).is_dir():
        factory_folder_on_path(Path(folder) / FILES.config)
