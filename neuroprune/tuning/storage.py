"""Study storage: one URL names where a study lives, on one machine or across a cluster.

| ``--storage`` | Optuna storage | for | extra |
| --- | --- | --- | --- |
| ``PATH`` or ``journal:///PATH`` | journal file | one machine, or a shared file system | |
| ``postgresql://USER@HOST:5432/DB`` | ``RDBStorage`` | a cluster | ``postgres`` |
| ``mysql+pymysql://USER:PASSWORD@HOST:3306/DB`` | ``RDBStorage`` | a cluster | ``mysql`` |
| ``redis://HOST:6379/DB`` | journal in Redis (``JournalRedisBackend``) | a cluster | ``redis`` |
| ``sqlite:///FILE`` | ``RDBStorage`` | one writing process only | |

SQLite with several writers gives "database is locked" and can hand one trial to two
workers, so it is refused with ``n_jobs > 1`` or Ray. Stale trials of killed workers are
handled by the tuner (``tune.recover_stale_trials``), the same way for every storage; no
storage is opened with Optuna's own heartbeat, so that one mechanism alone decides.

A bad URL, a missing driver (with the extra to install) or an unreachable server is a
:class:`UserError` raised before anything is written. Artifacts (best masks) go to a
file-system artifact store: ``artifacts`` beside a journal or SQLite file, else
``<tune --out folder>/artifacts``.
"""

from __future__ import annotations

import contextlib
import os
import warnings
from pathlib import Path

from ..errors import MissingDependencyError, UserError

# URL scheme -> (driver module, pip package, neuroprune extra, server name)
SERVER_SCHEMES = {
    "postgresql": ("psycopg", "psycopg", "postgres", "PostgreSQL"),
    "postgresql+psycopg": ("psycopg", "psycopg", "postgres", "PostgreSQL"),
    "postgresql+psycopg2": ("psycopg2", "psycopg2-binary", "postgres", "PostgreSQL"),
    "mysql+pymysql": ("pymysql", "pymysql", "mysql", "MySQL"),
    "redis": ("redis", "redis", "redis", "Redis"),
    "rediss": ("redis", "redis", "redis", "Redis"),
}
# schemes people write that need another spelling here
RESPELL = {"postgres": "postgresql://", "mysql": "mysql+pymysql://",
           "mariadb": "mysql+pymysql://", "mariadb+pymysql": "mysql+pymysql://"}
SCHEMES_HELP = ("a journal file path, postgresql://USER@HOST/DB, "
                "mysql+pymysql://USER:PASSWORD@HOST/DB, redis://HOST:6379/DB or sqlite:///FILE")


def _optuna():
    try:
        import optuna
    except ImportError:
        raise MissingDependencyError("optuna", "tune", "tuning") from None
    return optuna


def journal_path(url: str) -> Path | None:
    """The journal file that ``url`` names, or None for any other storage."""
    if url.startswith("journal:///"):
        return Path(url[len("journal://"):])
    if url.startswith("journal:"):
        return Path(url[len("journal:"):])
    if "://" not in url:
        return Path(url)
    return None


def is_database_url(url: str) -> bool:
    """``url`` names an Optuna storage (a database server, SQLite, a journal), not a file
    system (``s3://``, ``file://``: a tune kept at a URI)."""
    scheme = url_scheme(url) if "://" in url else ""
    return (scheme in SERVER_SCHEMES or scheme in RESPELL or scheme.startswith("sqlite")
            or scheme.startswith("journal") or url.startswith("journal:"))


def url_scheme(url: str) -> str:
    """The scheme of a storage URL, lower case (``postgresql``, ``redis``, ...)."""
    return url.split("://", 1)[0].lower()


def redacted(url: str) -> str:
    """``url`` with its password replaced by ``***``, for messages."""
    if "://" not in url or "@" not in url:
        return url
    scheme, rest = url.split("://", 1)
    credentials, host = rest.rsplit("@", 1)
    if ":" not in credentials:
        return url
    return f"{scheme}://{credentials.split(':', 1)[0]}:***@{host}"


def server_of(url: str) -> str:
    """The server kind a URL talks to (``PostgreSQL``, ``MySQL``, ``Redis``, ``SQLite``)."""
    scheme = url_scheme(url)
    return SERVER_SCHEMES[scheme][3] if scheme in SERVER_SCHEMES else "SQLite"


def check_url(url: str, writers: int = 1) -> None:
    """Refuse a storage URL that cannot work: unknown scheme, missing driver, SQLite with
    several writers. Journal file paths always pass."""
    if journal_path(url) is not None:
        return
    scheme = url_scheme(url)
    if scheme in RESPELL:
        raise UserError(f"storage URL {redacted(url)}: write it as {RESPELL[scheme]}...")
    if scheme == "sqlite":
        if writers > 1:
            raise UserError("SQLite storage with several writers gives 'database is locked' "
                            "and can run one trial twice; use the journal file (the default), "
                            "PostgreSQL or Redis")
        return
    if scheme not in SERVER_SCHEMES:
        raise UserError(f"unknown storage URL {redacted(url)}; give {SCHEMES_HELP}")
    module, package, extra, server = SERVER_SCHEMES[scheme]
    if scheme == "postgresql" and _importable("psycopg2"):
        return  # psycopg 3 is preferred, psycopg2 serves too
    if not _importable(module):
        raise MissingDependencyError(package, extra, f"{server} storage")


def _importable(module: str) -> bool:
    try:
        __import__(module)
    except ImportError:
        return False
    return True


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


def _journal_file_storage(path: Path):
    optuna = _optuna()
    from optuna.storages.journal import JournalFileBackend, JournalFileOpenLock

    if path.is_dir():
        raise UserError(f"storage {path} is a folder; give a journal file path")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise UserError(f"cannot create storage folder {path.parent}: {exc.strerror}") from None
    check_journal(path)
    repair_journal(path)
    backend = JournalFileBackend(str(path), lock_obj=JournalFileOpenLock(str(path)))
    try:
        return optuna.storages.JournalStorage(backend)
    except (UnicodeDecodeError, ValueError, KeyError, TypeError, AttributeError) as exc:
        raise UserError(f"{path} is a damaged Optuna journal ({type(exc).__name__}: "
                        f"{_first_line(exc)}); restore it, or give --storage a new path") \
            from None


#: how every record of an Optuna journal file begins
JOURNAL_RECORD = b'{"op_code":'


def check_journal(path: Path) -> None:
    """Refuse, before anything reads or repairs it, a file that is not an Optuna journal
    (random bytes, another format): repairing would cut it at its last newline."""
    if not path.is_file() or path.stat().st_size == 0:
        return
    with open(path, "rb") as f:
        head = f.read(len(JOURNAL_RECORD))
    if head != JOURNAL_RECORD:
        raise UserError(f"{path} is not an Optuna journal file (its first record does not "
                        f"begin with {JOURNAL_RECORD.decode()}); give --storage the journal "
                        f"`neuroprune tune` wrote, or a new path")


# Optuna creates its tables on the first open of a database; several workers started at once
# on a new database would race there ("already exists"), so creation is serialised.
SCHEMA_LOCK = {"postgresql": "SELECT pg_advisory_lock(74201)",
               "mysql": "SELECT GET_LOCK('neuroprune_optuna_tables', 120)"}


@contextlib.contextmanager
def _schema_lock(url: str, engine_kwargs: dict):
    """Hold a server-side lock (released with its connection) while Optuna creates tables."""
    import sqlalchemy

    engine = sqlalchemy.create_engine(url, **engine_kwargs)
    try:
        with engine.connect() as conn:
            conn.execute(sqlalchemy.text(SCHEMA_LOCK[engine.dialect.name]))
            yield
    finally:
        engine.dispose()


def _server_storage(url: str):
    """An RDB or Redis journal storage; the first read happens here, so an unreachable
    server fails now."""
    optuna = _optuna()
    scheme = url_scheme(url)
    if scheme in ("redis", "rediss"):
        from optuna.storages.journal import JournalRedisBackend

        with warnings.catch_warnings():  # experimental in Optuna 5, and tested here
            warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
            backend = JournalRedisBackend(url)
        return optuna.storages.JournalStorage(backend)
    if scheme == "sqlite":
        return optuna.storages.RDBStorage(url)
    engine_kwargs: dict = {"pool_pre_ping": True}  # a restarted server does not break a worker
    if scheme.startswith("postgresql"):
        engine_kwargs["connect_args"] = {"connect_timeout": 10}
        if scheme == "postgresql":  # whatever SQLAlchemy's default driver is
            driver = "psycopg" if _importable("psycopg") else "psycopg2"
            url = f"postgresql+{driver}://" + url.split("://", 1)[1]
    with _schema_lock(url, engine_kwargs):
        return optuna.storages.RDBStorage(url, engine_kwargs=engine_kwargs)


def _first_line(exc: Exception) -> str:
    cause = exc
    while cause.__cause__ is not None or cause.__context__ is not None:
        cause = cause.__cause__ or cause.__context__
    lines = [ln.strip() for ln in str(cause).splitlines() if ln.strip()]
    return (lines[0] if lines else type(cause).__name__)[:200]


def open_storage(url: str, writers: int = 1):
    """An Optuna storage for ``url``; a :class:`UserError` for an unsafe, malformed or
    unreachable one. ``writers`` is how many processes or threads will write at once."""
    jpath = journal_path(url)
    if jpath is not None:
        return _journal_file_storage(jpath)
    check_url(url, writers)
    try:
        return _server_storage(url)
    except Exception as exc:  # unreachable server, unknown database, bad host or port
        raise UserError(f"cannot open storage {redacted(url)} ({server_of(url)}): "
                        f"{_first_line(exc)}; check that the server runs and the URL "
                        f"is right") from None


def existing_storage(url: str) -> str:
    """``url`` for reading a study that must exist already: a folder holding
    ``optuna.journal`` becomes that file, and a missing journal file is refused."""
    jpath = journal_path(url)
    if jpath is None:
        return url
    if jpath.is_dir():
        jpath = jpath / "optuna.journal"
    if not jpath.is_file():
        raise UserError(f"no study storage at {jpath}; run `neuroprune tune` first or give "
                        f"--storage the journal file or a server URL")
    return str(jpath)


def existing_artifacts(url: str, folder: str | None = None) -> Path | None:
    """The artifacts folder of a study being read: ``folder`` (which must exist), else the
    one beside a journal or SQLite file if there is one. A server URL does not say where
    its tuner wrote artifacts, so without ``folder`` it has none."""
    if folder is not None:
        if not Path(folder).is_dir():
            raise UserError(f"--artifacts {folder} is not a folder; give <tune --out>/artifacts")
        return Path(folder)
    if journal_path(url) is None and not url.startswith("sqlite:///"):
        return None
    path = artifact_dir(url)
    return path if path.is_dir() else None


def artifact_dir(url: str, out: Path | None = None) -> Path:
    """Where the study's artifacts live: beside a journal or SQLite file, else ``out``."""
    jpath = journal_path(url)
    if jpath is not None:
        return jpath.parent / "artifacts"
    if url.startswith("sqlite:///"):
        return Path(url[len("sqlite:///"):]).parent / "artifacts"
    return (out or Path(os.getcwd())) / "artifacts"


def artifact_store(url: str, out: Path | None = None):
    """A file-system artifact store in :func:`artifact_dir` (created if missing)."""
    from optuna.artifacts import FileSystemArtifactStore

    path = artifact_dir(url, out)
    path.mkdir(parents=True, exist_ok=True)
    return FileSystemArtifactStore(str(path))
