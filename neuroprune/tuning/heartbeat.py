"""Stale trials: a killed process leaves its trial RUNNING; here it is failed and run again.

Trials are not exactly-once. One mechanism handles that, the same for every storage: every
trial carries a heartbeat (user attributes ``host``, ``pid`` and ``heartbeat``, written as
soon as its parameters are sampled and refreshed from a background thread until it is
told), and
before its first trial and after each trial every ``tune`` process fails the RUNNING trials
whose process is gone (same host: at once), whose heartbeat is older than
``tune.stale_after`` (any host), or that have no heartbeat at all two heartbeat intervals
after their start (killed between Optuna's ask and the tuner's first write), with the public
``study.tell(number, state=FAIL)``, and enqueues each again with the same parameters, up to
``tune.retry_failed`` times.

Why not Optuna's own heartbeat (``RDBStorage(heartbeat_interval=..., grace_period=...)`` with
``RetryFailedTrialCallback``): in Optuna 5 only ``RDBStorage`` implements it. The journal
storages (the default file, Redis) have none, so ours would be needed beside it, and two
mechanisms racing on one trial is how a trial gets re-run twice. Ours also fails a trial of
a dead process on the same host at once instead of after a grace period. ``study.tell`` to
FAIL is atomic in every storage (a row lock in PostgreSQL and MySQL; the journal rejects a
second finish of one trial), so when several processes find the same stale trial, exactly
one wins, and only the winner enqueues the re-run.
"""

from __future__ import annotations

import os
import socket
import threading
import time


def beat_interval(stale_after: float) -> float:
    """Seconds between two heartbeats of a trial."""
    return min(15.0, stale_after / 4)


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def is_stale(trial, now: float, stale_after: float, host: str) -> bool:
    """A RUNNING trial whose process is gone (same host), whose heartbeat is too old, or
    that never had one (its first follows the ask at once) two intervals after its start."""
    attrs = trial.user_attrs
    if attrs.get("host") == host and attrs.get("pid") and not _pid_alive(attrs["pid"]):
        return True
    beat = attrs.get("heartbeat")
    if beat is None:
        start = trial.datetime_start
        return start is None or now - start.timestamp() > 2 * beat_interval(stale_after)
    return now - beat > stale_after


def fail_trial(study, number: int) -> bool:
    """Tell trial ``number`` FAIL; False if another process finished it first."""
    from optuna.exceptions import UpdateFinishedTrialError
    from optuna.trial import TrialState

    try:
        study.tell(number, state=TrialState.FAIL)
    except (UpdateFinishedTrialError, ValueError):  # finished meanwhile, by it or a rival
        return False
    return True


def recover_stale_trials(study, stale_after: float, retry: int) -> list[int]:
    """Fail the stale RUNNING trials of ``study``; re-enqueue each up to ``retry`` times.

    Returns the numbers of the trials this call failed (not those a rival failed first).
    """
    import optuna
    from optuna.trial import TrialState

    host, now, failed = socket.gethostname(), time.time(), []
    for t in study.get_trials(deepcopy=False, states=(TrialState.RUNNING,)):
        if not is_stale(t, now, stale_after, host) or not fail_trial(study, t.number):
            continue
        failed.append(t.number)
        tries = int(t.user_attrs.get("retries", 0))
        if tries < retry:
            study.enqueue_trial(t.params, user_attrs={"retried_from": t.number,
                                                      "retries": tries + 1})
    if failed:
        optuna.logging.get_logger("optuna").warning(
            f"failed {len(failed)} stale RUNNING trial(s) {failed} left by a dead process")
    return failed


class Heartbeat:
    """Writes a trial's ``host`` and ``pid`` and refreshes its ``heartbeat`` user attribute
    until stopped."""

    def __init__(self, trial, interval: float):
        self.trial, self.interval = trial, interval
        self._stop = threading.Event()
        trial.set_user_attr("host", socket.gethostname())
        trial.set_user_attr("pid", os.getpid())
        self.beat()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def beat(self) -> None:
        self.trial.set_user_attr("heartbeat", time.time())

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            try:
                self.beat()
            except Exception:  # storage briefly unavailable: the next beat retries
                pass

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=5)
