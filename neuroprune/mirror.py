"""A run directory kept at a URI (``s3://``, ``gs://``, ``hdfs://``, ``file://``: any file
system pyarrow opens), for runs whose results must outlive the machine that ran them (a Ray
job's driver, a preemptible node).

The run writes its folder locally, in a staging folder (:func:`staging_dir`), as it always
does; every committed generation (its checkpoint) and every summary copies what changed to
the URI, and the end of the run copies the rest. ``neuroprune resume URI`` copies the folder
back into staging first. One writer per URI: the lock is the staging folder's, so two
machines resuming the same URI at once are not kept apart.
"""

from __future__ import annotations

import contextlib
import contextvars
import threading
import uuid
from pathlib import Path
from typing import Iterator

from .errors import MissingDependencyError, UserError

_ACTIVE: contextvars.ContextVar["Mirror | None"] = contextvars.ContextVar("mirror",
                                                                          default=None)
#: the mirror the process's main flow holds, for threads that do not inherit its context
#: (``tune --n-jobs``: Optuna runs trials in a thread pool)
_PROCESS: list["Mirror"] = []


def _current() -> "Mirror | None":
    return _ACTIVE.get() or (_PROCESS[-1] if _PROCESS else None)


def is_uri(text: str | None) -> bool:
    """``text`` names a file system by scheme (``s3://b/x``), not a local path."""
    scheme, sep, _ = (text or "").partition("://")
    return bool(sep) and scheme.isalnum() and len(scheme) > 1  # C:// is a drive


def staging_dir(uri: str) -> Path:
    """The local folder a run at ``uri`` is written in: ``runs/staged/SCHEME/PATH``."""
    scheme, _, rest = uri.partition("://")
    return Path("runs") / "staged" / scheme / rest.strip("/")


class Mirror:
    """The folder ``local`` copied to ``uri``."""

    def __init__(self, uri: str, local: Path):
        try:
            import pyarrow.fs as pafs
        except ImportError:
            raise MissingDependencyError("pyarrow", "ray", "a run directory at a URI") from None
        try:
            self.fs, self.root = pafs.FileSystem.from_uri(uri)
        except Exception as exc:  # an unknown scheme, a malformed URI, no credentials
            raise UserError(f"--out {uri} is no file system pyarrow can open "
                            f"({str(exc).splitlines()[0][:160]}); give a folder, or an "
                            f"s3://, gs://, hdfs:// or file:// URI") from None
        self.uri, self.local = uri.rstrip("/"), Path(local)
        self._sent: dict[str, tuple[int, int]] = {}  # relative path -> (size, mtime_ns)
        self._lock = threading.Lock()  # trials of one tune push from several threads

    def remote_files(self) -> list[str]:
        """Paths of the files at the URI, relative to it."""
        import pyarrow.fs as pafs
        info = self.fs.get_file_info(self.root)
        if info.type == pafs.FileType.NotFound:
            return []
        if info.type != pafs.FileType.Directory:
            raise UserError(f"--out {self.uri} is a file; give a folder")
        found = self.fs.get_file_info(pafs.FileSelector(self.root, recursive=True))
        return [f.path[len(self.root):].lstrip("/") for f in found
                if f.type == pafs.FileType.File]

    def check_writable(self) -> None:
        """A file can be made and removed at the URI: one line otherwise, before the run."""
        probe = f"{self.root}/.write-check-{uuid.uuid4().hex}"
        try:
            self.fs.create_dir(self.root, recursive=True)
            with self.fs.open_output_stream(probe) as f:
                f.write(b"")
            self.fs.delete_file(probe)
        except Exception as exc:
            raise UserError(f"cannot write at {self.uri}: {str(exc).splitlines()[0][:200]}; "
                            f"give a URI you can write to") from None

    def push(self) -> None:
        """Copy to the URI what changed locally since the last push, and remove there what
        is gone here (old checkpoints). A failed copy ends the run in one line (what was
        committed stays in the staging folder, and resume from it works)."""
        try:
            with self._lock:
                self._push()
        except OSError as exc:  # pyarrow's I/O errors are OSErrors
            raise UserError(f"cannot copy the run to {self.uri}: "
                            f"{str(exc).splitlines()[0][:200]}; the run so far is in "
                            f"{self.local.absolute()} (`neuroprune resume` continues it "
                            f"there)") from None

    def _push(self) -> None:
        seen = {}
        for path in sorted(p for p in self.local.rglob("*") if p.is_file()):
            rel = path.relative_to(self.local).as_posix()
            if rel.startswith(".lock") or ".tmp" in path.name:
                continue  # the lock is this machine's; a temp file is half-written
            st = path.stat()
            seen[rel] = (st.st_size, st.st_mtime_ns)
            if self._sent.get(rel) != seen[rel]:
                self.fs.create_dir(f"{self.root}/{Path(rel).parent.as_posix()}".rstrip("/."),
                                   recursive=True)
                with path.open("rb") as src, self.fs.open_output_stream(
                        f"{self.root}/{rel}") as dst:
                    dst.write(src.read())
        for rel in set(self._sent) - set(seen):
            with contextlib.suppress(FileNotFoundError, OSError):
                self.fs.delete_file(f"{self.root}/{rel}")
        self._sent = seen

    def pull(self) -> None:
        """Copy the folder at the URI into :attr:`local` (what a resume continues)."""
        import pyarrow.fs as pafs
        files = self.remote_files()
        if not files:
            raise UserError(f"{self.uri} holds no run directory (nothing there)")
        self.local.mkdir(parents=True, exist_ok=True)
        pafs.copy_files(self.root, str(self.local.resolve()), source_filesystem=self.fs,
                        destination_filesystem=pafs.LocalFileSystem())
        self._sent = {p.relative_to(self.local).as_posix(): (p.stat().st_size,
                                                            p.stat().st_mtime_ns)
                      for p in self.local.rglob("*") if p.is_file()}

    @contextlib.contextmanager
    def active(self) -> Iterator["Mirror"]:
        """While inside, run directories under :attr:`local` push at every commit; at the
        end (finished, stopped or failed) what is left is pushed."""
        token = _ACTIVE.set(self)
        _PROCESS.append(self)
        try:
            yield self
        finally:
            _ACTIVE.reset(token)
            _PROCESS.remove(self)
            self.push()


def shown(path: Path) -> str:
    """Where a user finds the run directory ``path``: its place at the URI when mirrored."""
    mirror = _current()
    if mirror is not None:
        try:
            rel = Path(path).resolve().relative_to(mirror.local.resolve()).as_posix()
        except ValueError:
            return str(path)
        return mirror.uri if rel == "." else f"{mirror.uri}/{rel}"
    return str(path)


def synced(path: Path) -> None:
    """Called after a run directory at ``path`` committed: push it if it is mirrored."""
    mirror = _current()
    if mirror is None:
        return
    try:
        Path(path).resolve().relative_to(mirror.local.resolve())
    except ValueError:
        return
    mirror.push()
