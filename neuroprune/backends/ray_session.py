"""Joining Ray: the one place in neuroprune that calls ``ray.init``.

Which Ray a run uses, in this order:

1. ``--address`` / ``ray.address`` given: that cluster (``HOST:6379``, ``ray://HOST:10001``);
   ``local`` starts a private Ray on this machine, ``auto`` a cluster running on this node.
2. Inside a Ray job, or with ``RAY_ADDRESS`` set: the cluster the job runs in.
3. A cluster started with ``ray start`` on this node: that one.
4. Nothing found: a local Ray on this machine, said in one line.

An address is tried with a TCP connection first (a few seconds), since ``ray.init`` waits
minutes for a cluster that is not there. The resources a run asks for are checked against the
cluster before anything is written (:func:`plan_workers`).
"""

from __future__ import annotations

import math
import os
import socket
import sys
import threading
import time
from typing import Any, Callable

from ..errors import MissingDependencyError, UserError

#: seconds to wait for a TCP connection to a cluster's address
CONNECT_TIMEOUT_S = 5.0
# a Ray client's driver server that did not start in time: tries in all, and the pause between
CLIENT_INIT_TRIES = 3
CLIENT_RETRY_PAUSE_S = 2.0


def import_ray():
    try:
        import ray
    except ImportError:
        raise MissingDependencyError("ray", "ray", "the Ray backend") from None
    return ray


class ClusterLost(UserError):
    """Part of the Ray cluster went away mid-run (the head, or the only node that could run
    a shard): one line; the command line adds the resume command. Not bad input: exit 1."""

    exit_code = 1


def say(message: str) -> None:
    """One line on stderr, as the command line's own."""
    print(f"neuroprune: {message}", file=sys.stderr, flush=True)


def _host_port(address: str) -> tuple[str, int]:
    rest = address.split("://", 1)[-1].rstrip("/")
    host, _, port = rest.rpartition(":")
    if not host or not port.isdigit():
        raise UserError(f"Ray address {address!r} is not HOST:PORT or ray://HOST:PORT; give "
                        f"e.g. --address 10.0.0.1:6379 (or ray://HOST:10001, or auto)")
    return host.strip("[]"), int(port)


def reachable(address: str, timeout: float = CONNECT_TIMEOUT_S) -> bool:
    """A TCP connection to ``address`` opens within ``timeout`` seconds."""
    try:
        with socket.create_connection(_host_port(address), timeout=timeout):
            return True
    except (OSError, UserError):
        return False


def _running_on_this_node() -> str | None:
    """The address ``ray start`` last recorded on this node, if a cluster answers there."""
    try:
        from ray._private.utils import read_ray_address
        found = read_ray_address()
    except Exception:  # the file's place is Ray's business; a change means "none found"
        return None
    return found if found and reachable(found, 1.0) else None


def find_address(address: str | None) -> tuple[str | None, str]:
    """``(address for ray.init or None for a local Ray, where it came from)``."""
    if address and address.startswith(("http://", "https://")):
        raise UserError(f"--address {address} is the dashboard's (for `ray job submit`); give "
                        f"the cluster's HOST:6379 or ray://HOST:10001, or leave it out inside a "
                        f"Ray job")
    if address == "local":
        return None, "local"
    if address and address != "auto":
        return address, "--address"
    if os.environ.get("RAY_ADDRESS"):
        return os.environ["RAY_ADDRESS"], "RAY_ADDRESS (the Ray job or shell this runs in)"
    found = _running_on_this_node()
    if found:
        return found, "the cluster running on this node"
    if address == "auto":
        raise UserError("--address auto found no Ray cluster on this node; start one with "
                        "`ray start --head`, give its HOST:6379, or leave --address out to run "
                        "on a local Ray")
    return None, "local"


def connect(address: str | None = None) -> bool:
    """Join the Ray cluster :func:`find_address` names, or start a local Ray; True when this
    call started or joined Ray (the caller shuts it down), False when Ray was up already."""
    ray = import_ray()
    if ray.is_initialized():
        return False
    target, source = find_address(address)
    if target is None:
        if address != "local":
            say("no Ray cluster found (no --address, RAY_ADDRESS unset, none started on "
                 "this node): starting a local Ray on this machine")
        ray.init(address="local", log_to_driver=False, include_dashboard=False)
        return True
    if not target.startswith("ray://") and target != "auto" and not reachable(target):
        raise UserError(f"cannot reach the Ray cluster at {target} (from {source}) within "
                        f"{CONNECT_TIMEOUT_S:.0f} s; check the address and that the cluster "
                        f"is up (`ray status`)")
    if target.startswith("ray://") and not reachable(target):
        raise UserError(f"cannot reach the Ray client server at {target} within "
                        f"{CONNECT_TIMEOUT_S:.0f} s; check the address (port 10001 by "
                        f"default) and that the cluster is up")
    tries = CLIENT_INIT_TRIES if target.startswith("ray://") else 1
    for attempt in range(1, tries + 1):
        try:
            ray.init(address=target, log_to_driver=False)
            return True
        except Exception as exc:
            if attempt < tries and _transient_client_failure(exc):
                say(f"the Ray client server at {target} could not start this driver's "
                    f"server ({_reason(exc)}); trying again ({attempt}/{tries - 1})")
                _quiet_shutdown(ray)
                time.sleep(CLIENT_RETRY_PAUSE_S)
                continue
            raise UserError(f"cannot join the Ray cluster at {target} (from {source}): "
                            f"{_reason(exc)}") from None
    return True


def _reason(exc: BaseException) -> str:
    """One line for a failed ``ray.init``: the message's first line, and where Ray's client
    server sent back its own traceback, that traceback's last line (the cause)."""
    lines = [ln.strip() for ln in str(exc).splitlines() if ln.strip()]
    if not lines:
        return type(exc).__name__
    head, tail = lines[0].rstrip(":"), lines[-1]
    return (head if len(lines) == 1 else f"{head}: {tail}")[:240]


def _transient_client_failure(exc: BaseException) -> bool:
    """Ray's client server starts one server process per driver; on a loaded head that start
    can miss its deadline, and the next connection usually succeeds."""
    return isinstance(exc, ConnectionAbortedError) and "Initialization failure" in str(exc)


def _quiet_shutdown(ray) -> None:
    try:
        ray.shutdown()
    except Exception:  # a half-made client connection; nothing of ours to keep
        pass


def plan_workers(num_workers: int | str, cpus_per_worker: int,
                 gpus_per_worker: float | None, ask: bool = True) -> tuple[int, float]:
    """``(actors, GPUs per actor)`` for the cluster Ray is connected to.

    ``auto``: one actor per ``gpus_per_worker`` GPUs (a fraction packs several on a GPU), or
    per ``cpus_per_worker`` CPUs without GPUs. A count larger than the cluster holds asks the
    autoscaler for the nodes (the actors start as they join; ``ask=False`` only checks).
    Asking for more GPUs per actor than the cluster has, with no count to scale to, is
    refused."""
    ray = import_ray()
    res = ray.cluster_resources()
    gpus, cpus = float(res.get("GPU", 0)), int(res.get("CPU", 0))
    if gpus_per_worker is None:
        gpus_per_worker = 1.0 if gpus else 0.0
    if num_workers == "auto":
        if gpus_per_worker > gpus + 1e-9:
            raise UserError(f"ray.gpus_per_worker={gpus_per_worker:g} but the Ray cluster has "
                            f"{gpus:g} GPUs; lower it (0 runs on CPUs), add GPU nodes, or set "
                            f"ray.num_workers to a count the autoscaler should provide")
        fit = math.floor(gpus / gpus_per_worker + 1e-9) if gpus_per_worker else \
            cpus // cpus_per_worker
        return max(1, min(fit, max(1, cpus // cpus_per_worker))), gpus_per_worker
    fit = min(math.floor(gpus / gpus_per_worker + 1e-9) if gpus_per_worker else num_workers,
              cpus // cpus_per_worker)
    if num_workers > fit and ask:
        from ray.autoscaler.sdk import request_resources
        bundle = {"CPU": cpus_per_worker, **({"GPU": gpus_per_worker} if gpus_per_worker
                                             else {})}
        request_resources(bundles=[bundle] * num_workers)
        say(f"ray.num_workers={num_workers} but the cluster holds {fit} such workers now: "
             f"asked Ray's autoscaler for nodes; the workers start as they join (without an "
             f"autoscaler the run waits for them)")
    return num_workers, gpus_per_worker


def check_writable(path: str) -> None:
    """Every alive node of the cluster can create files in the folder ``path`` (absolute):
    Tune trials write their run folders there from whichever node runs them."""
    ray = import_ray()
    from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

    def probe(folder: str) -> str | None:
        import os as _os
        import socket as _socket
        import tempfile
        try:
            _os.makedirs(folder, exist_ok=True)
            with tempfile.NamedTemporaryFile(dir=folder, prefix=".write-check-"):
                pass
        except OSError as exc:
            return f"{_socket.gethostname()}: {exc.strerror or exc}"
        return None

    remote = ray.remote(num_cpus=0)(probe)
    nodes = [n["NodeID"] for n in ray.nodes() if n.get("Alive")]
    refs = [remote.options(scheduling_strategy=NodeAffinitySchedulingStrategy(n, soft=False))
            .remote(path) for n in nodes]
    failed = [e for e in ray.get(refs, timeout=120) if e]
    if failed:
        raise UserError(f"{path} cannot be written on every node of the Ray cluster "
                        f"({failed[0]}); give --out a folder every node can write, e.g. a "
                        f"shared file system mounted at the same path")


class HeadWatch:
    """Watches the cluster's address while a run goes on; if it stops answering for
    ``grace`` seconds, says in one line that the cluster went away and how to continue,
    and ends the process (Ray's own client would otherwise wait or abort without a word)."""

    def __init__(self, address: str, resume: str, grace: float = 20.0,
                 on_lost: Callable[[], Any] | None = None):
        self.address, self.resume, self.grace = address, resume, grace
        self.on_lost = on_lost or (lambda: os._exit(1))
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        lost_since = None
        while not self._stop.wait(2.0):
            if reachable(self.address, 2.0):
                lost_since = None
                continue
            import time
            lost_since = lost_since or time.time()
            if time.time() - lost_since >= self.grace:
                say(f"error: the Ray cluster at {self.address} went away (head node lost); "
                     f"finished generations are saved. Continue with: {self.resume}")
                self.on_lost()
                return

    def __enter__(self):
        self._thread.start()
        return self

    def __exit__(self, *exc):
        self._stop.set()


def gcs_address() -> str | None:
    """The address of the cluster Ray is connected to (None for a Ray client)."""
    ray = import_ray()
    try:
        return ray.get_runtime_context().gcs_address
    except Exception:
        return None


def watched_address(address: str | None) -> str | None:
    """What :class:`HeadWatch` should watch for a run that joined with ``address``: the
    cluster's GCS, or for a Ray client (``ray://``) the client server it talks to (the GCS's
    port may be closed to a machine outside the cluster)."""
    target = address if address not in (None, "auto", "local") else \
        os.environ.get("RAY_ADDRESS")
    if target and target.startswith("ray://"):
        return target
    return gcs_address()


class RaySession:
    """Context: Ray joined (or started) once for a run of many searches or trials, shut down
    at the end if this context started it."""

    def __init__(self, active: bool, address: str | None = None):
        self.active, self.address, self.owned = active, address, False

    def __enter__(self):
        if self.active:
            self.owned = connect(self.address)
        return self

    def __exit__(self, *exc):
        if self.owned:
            import ray
            ray.shutdown()
