"""Atomic file writes (a reader never sees a half-written file where it expects a whole one)
and bounded YAML reading (a file from elsewhere cannot make a reader hang or overflow)."""

from __future__ import annotations

import errno
import json
import os
import tempfile
from pathlib import Path
from typing import Any, Callable

import yaml


from .errors import UserError


class WriteError(UserError):
    """A file could not be written (a full disk, mostly): one line naming it and why."""

    def __init__(self, path: str | os.PathLike, reason: str):
        self.path, self.reason = str(path), reason
        super().__init__(f"cannot write {path}: {reason}; if the disk is full, free some space "
                         f"and run the command again (a run continues with `neuroprune "
                         f"resume`)")


def _disk_full(folder: str | os.PathLike) -> bool:
    try:
        return os.statvfs(folder).f_bavail == 0
    except OSError:
        return False


def _failed_write(exc: Exception, folder: str | os.PathLike) -> str | None:
    """Why a writer library could not write its file, else None (not a write failure).
    Libraries say it in their own words (torch: "unexpected pos 64 vs 0"), so a full disk is
    recognised by the disk itself; safetensors says "I/O error"."""
    text = str(exc).strip()
    if _disk_full(folder):
        return os.strerror(errno.ENOSPC)
    if type(exc).__name__ == "SafetensorError" and ("I/O error" in text or "os error" in text):
        return text.splitlines()[0].removeprefix("Error while serializing: ")[:200]
    return None


def atomic_write(path: str | os.PathLike, write: Callable[[str], None]) -> None:
    """Call ``write(tmp_path)`` then rename the temporary file onto ``path``.

    The temporary file lies in the same folder, so the rename is atomic on POSIX. A writer
    library's report of a failed write becomes a :class:`WriteError`; an ``OSError`` stays
    one (the command line says it in one line by its errno).
    """
    path = Path(path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
    except FileExistsError:  # a part of the folder path is a file
        raise NotADirectoryError(errno.ENOTDIR, os.strerror(errno.ENOTDIR),
                                 str(path.parent)) from None
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    umask = os.umask(0)
    os.umask(umask)
    try:
        try:
            write(tmp)
        except UserError:
            raise
        except OSError as exc:  # name the file (ONNX's writer does not)
            if exc.filename is not None or exc.errno is None:
                raise
            raise OSError(exc.errno, exc.strerror, str(path)) from None
        except Exception as exc:
            reason = _failed_write(exc, path.parent)
            if reason is None:
                raise
            raise WriteError(path, reason) from None
        # mkstemp makes 0600, and a writer may recreate the file (safetensors does): give the
        # file the usual permissions once it is written, so others on a shared disk can read it
        os.chmod(tmp, 0o666 & ~umask)
        with open(tmp, "rb") as f:
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def atomic_torch_save(path: str | os.PathLike, obj: Any) -> None:
    """``torch.save`` atomically. torch reports a failed write (a full disk) as a
    ``RuntimeError`` from its zip writer; it becomes a one-line :class:`UserError`."""
    import torch

    def write(tmp: str) -> None:
        try:
            torch.save(obj, tmp)
        except RuntimeError as exc:
            reason = _failed_write(exc, Path(path).parent) or str(exc).splitlines()[0][:200]
            raise WriteError(path, reason) from None

    atomic_write(path, write)


def atomic_write_text(path: str | os.PathLike, text: str) -> None:
    def write(tmp: str) -> None:
        with open(tmp, "w", encoding="utf-8") as f:
            f.write(text)

    atomic_write(path, write)


def append_durably(path: str | os.PathLike, text: str) -> None:
    """Append ``text`` and wait until it is on disk (for append-only logs; a crash can at
    worst cut the last line, which their readers handle)."""
    with open(path, "a", encoding="utf-8", newline="") as f:
        f.write(text)
        f.flush()
        os.fsync(f.fileno())


def atomic_write_json(path: str | os.PathLike, obj: Any) -> None:
    atomic_write_text(path, json.dumps(obj, indent=2, sort_keys=True, default=str) + "\n")


def csv_columns(rows: list[dict[str, Any]]) -> list[str]:
    """Every key of ``rows`` in first-seen order."""
    columns: dict[str, None] = {}
    for r in rows:
        columns.update(dict.fromkeys(r))
    return list(columns)


def csv_text(rows: list[dict[str, Any]], columns: list[str], header: bool = True) -> str:
    """Rows as CSV text under ``columns``; missing cells empty, unknown keys dropped."""
    import csv
    import io

    buf = io.StringIO()
    w = csv.DictWriter(buf, fieldnames=columns, lineterminator="\n", extrasaction="ignore")
    if header:
        w.writeheader()
    w.writerows(rows)
    return buf.getvalue()


def atomic_write_csv(path: str | os.PathLike, rows: list[dict[str, Any]],
                     columns: list[str] | None = None) -> None:
    """Rows as CSV (columns: given, or every key in first-seen order); missing cells empty."""
    atomic_write_text(path, csv_text(rows, csv_columns(rows) if columns is None else columns))


#: deepest nesting of lists and mappings a YAML document may have (configs nest a few levels)
YAML_MAX_DEPTH = 64
#: most values a YAML document may expand to, aliases counted at every use (configs hold
#: hundreds; an "alias bomb" of nine nested aliases expands to hundreds of millions)
YAML_MAX_VALUES = 100_000


class YAMLLimitError(yaml.YAMLError):
    """A YAML document beyond :data:`YAML_MAX_DEPTH` or :data:`YAML_MAX_VALUES`; the message
    completes "the document ..."."""


def _yaml_loader():
    class BoundedLoader(yaml.SafeLoader):
        """``yaml.SafeLoader`` that refuses deep nesting while composing the document."""

        depth = 0

        def compose_node(self, parent, index):
            self.depth += 1
            try:
                if self.depth > YAML_MAX_DEPTH:
                    raise YAMLLimitError(f"nests lists or mappings more than "
                                         f"{YAML_MAX_DEPTH} levels deep")
                return super().compose_node(parent, index)
            finally:
                self.depth -= 1

    return BoundedLoader


def _check_expansion(node) -> None:
    """Refuse a document whose aliases expand to too many values or too deep a nesting, or
    refer to themselves. Shared nodes are measured once (values and height), so the check
    stays linear in the document."""
    measured: dict[int, tuple[int, int]] = {}  # id -> (values, height)
    active: set[int] = set()

    def measure(n, level: int) -> tuple[int, int]:
        if level > YAML_MAX_DEPTH:
            raise YAMLLimitError(f"nests lists or mappings more than {YAML_MAX_DEPTH} levels "
                                 f"deep (through aliases)")
        if id(n) in measured:
            values, height = measured[id(n)]
            if level + height > YAML_MAX_DEPTH:
                raise YAMLLimitError(f"nests lists or mappings more than {YAML_MAX_DEPTH} "
                                     f"levels deep (through aliases)")
            return values, height
        if id(n) in active:
            raise YAMLLimitError("holds an alias that refers to itself")
        children = ([c for kv in n.value for c in kv] if isinstance(n, yaml.MappingNode) else
                    n.value if isinstance(n, yaml.SequenceNode) else [])
        active.add(id(n))
        values, height = 1, 0
        for c in children:
            v, h = measure(c, level + 1)
            values, height = min(values + v, YAML_MAX_VALUES + 1), max(height, h + 1)
        active.discard(id(n))
        if values > YAML_MAX_VALUES:
            raise YAMLLimitError(f"expands to more than {YAML_MAX_VALUES:,} values (aliases "
                                 f"repeated inside aliases?)")
        measured[id(n)] = (values, height)
        return values, height

    measure(node, 0)


def load_yaml(text: str):
    """``yaml.safe_load(text)`` within :data:`YAML_MAX_DEPTH` and :data:`YAML_MAX_VALUES`;
    beyond them a :class:`YAMLLimitError` saying which limit."""
    loader = _yaml_loader()(text)
    try:
        node = loader.get_single_node()
        if node is None:
            return None
        _check_expansion(node)
        return loader.construct_document(node)
    finally:
        loader.dispose()
