"""Fresh, private study storages on the real servers of 127.0.0.1, for the storage tests.

Each context manager yields a storage URL nobody else uses (a new PostgreSQL or MariaDB
database, a Redis database claimed for the test) and removes it afterwards. A server that
is not running makes the test skip, with a reason naming it.
"""

import contextlib
import json
import os
import socket
import subprocess
import sys
import time
import urllib.request
import uuid

import pytest

from helpers import REPO

HOST = "127.0.0.1"
REDIS_CLAIM = "neuroprune-test-claim"


def _skip_unless_listening(name: str, port: int) -> None:
    with socket.socket() as s:
        s.settimeout(2)
        if s.connect_ex((HOST, port)) != 0:
            pytest.skip(f"{name} on {HOST}:{port} is not running")


def _unique(prefix: str) -> str:
    return f"{prefix}_{uuid.uuid4().hex[:12]}"


@contextlib.contextmanager
def postgres_database():
    """``postgresql://`` URL of a new database, dropped afterwards."""
    _skip_unless_listening("PostgreSQL", 5432)
    psycopg = pytest.importorskip("psycopg", reason="pip install 'neuroprune[postgres]'")
    name = _unique("np_test")
    with psycopg.connect(host=HOST, port=5432, user="postgres", dbname="postgres",
                         autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    try:
        yield f"postgresql://postgres@{HOST}:5432/{name}"
    finally:
        with psycopg.connect(host=HOST, port=5432, user="postgres", dbname="postgres",
                             autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@contextlib.contextmanager
def mysql_database():
    """``mysql+pymysql://`` URL of a new MariaDB database, dropped afterwards."""
    _skip_unless_listening("MariaDB", 3306)
    pymysql = pytest.importorskip("pymysql", reason="pip install 'neuroprune[mysql]'")
    name = _unique("np_test")
    conn = pymysql.connect(host=HOST, port=3306, user="root", password="", autocommit=True)
    try:
        with conn.cursor() as cur:
            cur.execute(f"CREATE DATABASE `{name}`")
        yield f"mysql+pymysql://root@{HOST}:3306/{name}"
    finally:
        with conn.cursor() as cur:
            cur.execute(f"DROP DATABASE IF EXISTS `{name}`")
        conn.close()


@contextlib.contextmanager
def redis_database():
    """``redis://`` URL of a Redis database (1-15) claimed for this test, flushed afterwards.

    The claim is a key set only if absent, with an expiry, so that test runs sharing one
    server never use the same database at once; a claimed database is emptied first.
    """
    _skip_unless_listening("Redis", 6379)
    redis = pytest.importorskip("redis", reason="pip install 'neuroprune[redis]'")
    token = uuid.uuid4().hex
    for db in range(1, 16):
        client = redis.Redis(host=HOST, port=6379, db=db)
        if client.set(REDIS_CLAIM, token, nx=True, ex=1800):
            break
        client.close()
    else:
        pytest.skip("Redis on 127.0.0.1:6379 has no free database (1-15) for this test")
    try:
        for key in client.scan_iter():
            if key != REDIS_CLAIM.encode():
                client.delete(key)
        yield f"redis://{HOST}:6379/{db}"
    finally:
        client.flushdb()
        client.close()


SERVERS = {"postgresql": postgres_database, "mysql": mysql_database, "redis": redis_database}


def free_port() -> int:
    with socket.socket() as s:
        s.bind((HOST, 0))
        return s.getsockname()[1]


@contextlib.contextmanager
def dashboard(storage: str, *extra: str):
    """``neuroprune dashboard`` on ``storage`` in a subprocess; yields (base URL, process).
    Its output goes to a file, not to a pipe nobody reads while it serves (a full pipe would
    block its request log and its exit)."""
    import tempfile
    port = free_port()
    log = tempfile.TemporaryFile("w+")
    proc = subprocess.Popen([sys.executable, "-m", "neuroprune", "dashboard", "--storage",
                             storage, "--port", str(port), *extra], cwd=REPO,
                            env={**os.environ, "PYTHONUNBUFFERED": "1"},
                            stdout=log, stderr=subprocess.STDOUT, text=True)

    def output() -> str:
        log.seek(0)
        return log.read()[-3000:]
    base = f"http://{HOST}:{port}"
    try:
        deadline = time.time() + 60
        while True:
            try:
                with urllib.request.urlopen(f"{base}/api/studies", timeout=2):
                    break
            except OSError:
                assert proc.poll() is None, output()
                assert time.time() < deadline, "the dashboard did not answer in 60 s"
                time.sleep(0.3)
        yield base, proc
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
            raise AssertionError(f"the dashboard did not stop on SIGTERM:\n{output()}")
        finally:
            log.close()


def get_json(url: str):
    with urllib.request.urlopen(url, timeout=10) as r:
        return json.loads(r.read())
