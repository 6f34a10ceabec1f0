"""Study storage: Optuna's journal file by default, any Optuna storage URL on request.

* ``PATH`` (anything without ``://``) or ``journal:///PATH``: journal file storage, safe with
  several writing processes on one file system; optuna-dashboard opens it directly.
* ``sqlite:///PATH``: one writing process only (several writers give "database is locked" and
  can hand one trial to two workers), so it is refused with ``n_jobs > 1`` or Ray.
* ``postgresql://...``, ``mysql://...``: for a cluster.

Artifacts (best masks) go to a file-system artifact store in ``<storage folder>/artifacts``.
"""

from __future__ import annotations

import os
from pathlib import Path

from ..errors import MissingDependencyError, UserError


def _optuna():
    try:
        import optuna
    except ImportError:
        raise MissingDependencyError("optuna", "tune", "tuning") from None
    return optuna


def journal_path(url: str) -> Path | None:
    if url.startswith("journal:///"):
        return Path(url[len("journal://"):])
    if url.startswith("journal:"):
        return Path(url[len("journal:"):])
    if "://" not in url:
        return Path(url)
    return None


def repair_journal(path: Path) -> bool:
    """Cut a torn last line (a writer killed mid-append) under the journal's lock.

    Optuna skips a torn last line when reading, but the next append would glue a new record
    onto it and corrupt the file for every later reader. Returns True if something was cut.
    """
    from optuna.storages.journal import JournalFileOpenLock

    if not path.is_file() or path.stat().st_size == 0:
        return False
    lock = JournalFileOpenLock(str(path))
    lock.acquire()
    try:
        data = path.read_bytes()
        if data.endswith(b"\n"):
            return False
        with open(path, "r+b") as f:
            f.truncate(data.rfind(b"\n") + 1)
        return True
    finally:
        lock.release()


def open_storage(url: str, writers: int = 1):
    """An Optuna storage for ``url``; clear errors for unreachable or unsafe storages."""
    optuna = _optuna()
    jpath = journal_path(url)
    if jpath is not None:
        from optuna.storages.journal import JournalFileBackend, JournalFileOpenLock

        if jpath.is_dir():
            raise UserError(f"storage {jpath} is a folder; give a journal file path")
        try:
            jpath.parent.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise UserError(f"cannot create storage folder {jpath.parent}: {exc.strerror}") from None
        repair_journal(jpath)
        backend = JournalFileBackend(str(jpath), lock_obj=JournalFileOpenLock(str(jpath)))
        return optuna.storages.JournalStorage(backend)
    if url.startswith("sqlite:") and writers > 1:
        raise UserError("SQLite storage with several writers gives 'database is locked' and can "
                        "run one trial twice; use the journal file (the default) or PostgreSQL")
    try:
        return optuna.storages.RDBStorage(url, heartbeat_interval=60, grace_period=180)
    except Exception as exc:  # unreachable server, bad URL, missing driver
        raise UserError(f"cannot open storage {url}: {type(exc).__name__}: "
                        f"{str(exc).splitlines()[0][:200]}") from None


def artifact_dir(url: str, out: Path | None = None) -> Path:
    jpath = journal_path(url)
    if jpath is not None:
        return jpath.parent / "artifacts"
    if url.startswith("sqlite:///"):
        return Path(url[len("sqlite:///"):]).parent / "artifacts"
    return (out or Path(os.getcwd())) / "artifacts"


def artifact_store(url: str, out: Path | None = None):
    from optuna.artifacts import FileSystemArtifactStore

    path = artifact_dir(url, out)
    path.mkdir(parents=True, exist_ok=True)
    return FileSystemArtifactStore(str(path))
