"""``neuroprune tune``: an Optuna study over any config values of a search.

Each trial is an ordinary search in ``<out>/trials/trial_NNNN`` with sampled config values.
It reports its best validation accuracy per generation (so Optuna's pruner can stop it), and
records its run directory, summary, best mask (as an Optuna artifact) and a markdown note
for the dashboard.

Stale trials. Trials are not exactly-once: a killed process leaves its trial RUNNING. One
mechanism handles that, the same for every storage: every trial carries a heartbeat (user
attributes ``heartbeat``, ``host``, ``pid``, refreshed from a background thread), and before
its first trial and after each trial every ``tune`` process fails the RUNNING trials whose
process is gone (same host: at once) or whose heartbeat is older than ``tune.stale_after``
(any host), with the public ``study.tell(number, state=FAIL)``, and enqueues each again with
the same parameters, up to ``tune.retry_failed`` times.

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

import contextlib
import copy
import logging
import os
import socket
import threading
import time
import warnings
from pathlib import Path
from typing import Any

from .._io import atomic_write_json
from ..config import RunConfig, load_config, to_dict
from ..errors import ConfigError, UserError
from ..progress import logs_above_bars
from ..rundir import RunDir
from ..searches.mask_search import Interrupted
from .dashboard import show_trial
from .storage import artifact_store, open_storage, redacted


#: what the trials of one batch must share: they train in one population
STRUCTURE = ("data", "model", "engine", "backend", "device", "ray", "kind")
STRUCTURE_TRAINING = ("optimizer", "batch_size", "loss")


def structure_key(cfg: RunConfig) -> str:
    """Equal for configs whose networks can train in one population (same data, model,
    optimiser kind, batch size, engine and backend); learning rate, momentum, weight decay,
    schedule, epochs, sparsity, method and seed may differ."""
    import json
    tree = to_dict(cfg)
    key = {k: tree[k] for k in STRUCTURE}
    key["training"] = {k: tree["training"][k] for k in STRUCTURE_TRAINING}
    key["exclude"] = tree["sparsity"]["exclude"]
    return json.dumps(key, sort_keys=True, default=str)


def set_value(tree: dict, dotted: str, value: Any) -> None:
    node = tree
    keys = dotted.split(".")
    for k in keys[:-1]:
        node = node.setdefault(k, {})
        if not isinstance(node, dict):
            raise ConfigError(f"tune.params: '{dotted}': '{k}' is a value, not a section")
    node[keys[-1]] = value


def trial_config(base: dict, values: dict[str, Any]) -> RunConfig:
    tree = copy.deepcopy(base)
    tree.pop("tune", None)
    for key, value in values.items():
        set_value(tree, key, value)
    return load_config(tree=tree)


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def is_stale(trial, now: float, stale_after: float, host: str) -> bool:
    """A RUNNING trial whose process is gone (same host) or whose heartbeat is too old."""
    attrs = trial.user_attrs
    if attrs.get("host") == host and attrs.get("pid") and not _pid_alive(attrs["pid"]):
        return True
    beat = attrs.get("heartbeat")
    if beat is None and trial.datetime_start is not None:
        beat = trial.datetime_start.timestamp()
    return beat is None or now - beat > stale_after


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


class _NoInterruptTraceback(logging.Filter):
    """Drops Optuna's "trial failed" traceback for a trial stopped by Ctrl-C: the command
    line says what happened, and the trial is run again."""

    def __init__(self):
        super().__init__()
        self.dropped: list[str] = []  # "Trial N failed": its second line goes too

    def filter(self, record: logging.LogRecord) -> bool:
        exc = record.exc_info[1] if record.exc_info else None
        if isinstance(exc, (KeyboardInterrupt, Interrupted)):
            self.dropped.append(record.getMessage().split(" failed")[0] + " failed with value")
            return False
        return not any(record.getMessage().startswith(d) for d in self.dropped)


@contextlib.contextmanager
def _quiet_interrupts():
    # the logger Optuna reports a failed trial with (a filter applies where records are made)
    logger, quiet = logging.getLogger("optuna.study._optimize"), _NoInterruptTraceback()
    logger.addFilter(quiet)
    try:
        yield
    finally:
        logger.removeFilter(quiet)


class Heartbeat:
    """Refreshes a trial's ``heartbeat`` user attribute until stopped."""

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


class Tuner:
    """A study over ``cfg.tune.params``; validated (every key, every range) before it starts."""

    def __init__(self, cfg: RunConfig, out: Path, storage: str | None = None,
                 study_name: str | None = None, n_trials: int | None = None, n_jobs: int = 1,
                 batch: int = 1):
        if cfg.tune is None:
            raise ConfigError("this config has no 'tune:' section (see configs/tune_quickstart.yaml)")
        from ..searches.registry import KINDS
        from ..tracking import check_loggers
        check_loggers(cfg.logging)  # every trial logs into its own folder with these
        kind = KINDS.load(cfg.kind)
        if not kind.objectives:
            raise ConfigError(f"kind {cfg.kind} cannot be tuned: {kind.not_tunable}")
        bad = [o for o in cfg.tune.objectives if o not in kind.objectives]
        if bad:
            raise ConfigError(f"tune.objectives: a {cfg.kind} run has no objective "
                              f"{', '.join(bad)}; choose from {', '.join(kind.objectives)}")
        if "latency" in cfg.tune.objectives and cfg.sparsity.latency_repeats == 0:
            raise ConfigError("tune.objectives: latency needs sparsity.latency_repeats > 0")
        self.cfg, self.tune = cfg, cfg.tune
        self.base = {k: v for k, v in to_dict(cfg).items() if k != "tune"}
        self.out = Path(out)
        if self.out.exists() and not self.out.is_dir():
            raise UserError(f"--out {self.out} is a file; give a folder")
        self.storage_url = storage or str(self.out / "optuna.journal")
        self.study_name = study_name or cfg.name
        self.n_trials = n_trials or self.tune.n_trials
        self.n_jobs = n_jobs
        if batch < 1:
            raise UserError(f"--batch must be at least 1, got {batch}")
        if batch > 1 and n_jobs > 1:
            raise UserError("--batch and --n-jobs cannot be combined: a batch already trains "
                            "its trials together; run several processes on one storage "
                            "instead")
        self.batch = batch
        self.trial_bars = False  # set by run()
        self._running: set[int] = set()  # trials this process runs now
        self._threads: list[threading.Thread] = []  # of the batch being trained
        for point in self.tune.points():  # every key exists, takes its range, and together
            try:
                trial_config(self.base, point)
            except ConfigError as exc:
                where = (f"tune.params.{next(iter(point))}" if len(point) == 1 else
                         "tune.params: " + ", ".join(f"{k}={v}" for k, v in point.items()))
                raise ConfigError(f"{where}: {exc}") from None
        if len(self.tune.objectives) > 1 and self.tune.pruner != "none":
            self.tune = self.tune.model_copy(update={"pruner": "none"})  # Optuna: single only
        from ..workbench import Workbench
        self.bench = Workbench.from_config(cfg).check_sparsity()  # data loaded once

    def _sampler_seed(self, storage) -> int:
        """The config seed mixed with this process and the study's size, so that several
        workers on one study, or a continued study, never draw the same parameters."""
        import numpy as np
        import optuna

        try:
            done = len(optuna.load_study(study_name=self.study_name, storage=storage)
                       .get_trials(deepcopy=False))
        except KeyError:  # a new study
            done = 0
        return int(np.random.SeedSequence([self.cfg.seed, os.getpid(), done]).generate_state(1)[0])

    def _study(self, storage, seed: int | None | str = "config"):
        """Create or load the study; name its objectives for the dashboard."""
        import optuna

        seed = self._sampler_seed(storage) if seed == "config" else seed
        # trials asked together are proposed with the others still pending: TPE assumes
        # the worst for them (the constant liar), so that a batch spreads out
        liar = self.batch > 1 or self.n_jobs > 1
        sampler = {"tpe": lambda: optuna.samplers.TPESampler(seed=seed, constant_liar=liar),
                   "random": lambda: optuna.samplers.RandomSampler(seed=seed),
                   "qmc": lambda: optuna.samplers.QMCSampler(seed=seed),
                   "nsga2": lambda: optuna.samplers.NSGAIISampler(seed=seed)}[self.tune.sampler]()
        pruner = self.tune.make_pruner()
        study = optuna.create_study(storage=storage, study_name=self.study_name,
                                    directions=self.tune.directions, sampler=sampler,
                                    pruner=pruner, load_if_exists=True)
        if study.metric_names is None:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
                study.set_metric_names(list(self.tune.objectives))
        return study

    def _recover_after_trial(self, study, trial) -> None:
        """``study.optimize`` callback: pick up trials of workers that died meanwhile."""
        recover_stale_trials(study, self.tune.stale_after, self.tune.retry_failed)

    def objective(self, trial) -> float | tuple[float, ...]:
        return self.run_trial(trial, self.trial_config(trial))

    def trial_config(self, trial) -> RunConfig:
        """The trial's config: the base config with the sampled values."""
        values = {k: spec.sample(trial, k) for k, spec in self.tune.params.items()}
        return trial_config(self.base, values)

    def run_trial(self, trial, cfg: RunConfig,
                  evaluator=None) -> float | tuple[float, ...]:
        """Run the trial's kind into its run directory and return its objectives
        (``evaluator``: a batch member to train through)."""
        import optuna

        from ..searches.kinds import prepare

        kind = prepare(self.bench.derive(cfg, evaluator=evaluator))
        run_dir = self.out / "trials" / f"trial_{trial.number:04d}"
        self._running.add(trial.number)
        trial.set_user_attr("run_dir", str(run_dir))
        beat = Heartbeat(trial, min(15.0, self.tune.stale_after / 4))
        best = [float("-inf")]
        single = len(self.tune.objectives) == 1

        def on_generation(generation, rows):
            beat.beat()
            accs = [r["val_accuracy"] for r in rows if "val_accuracy" in r]
            best[0] = max([best[0], *accs])
            if best[0] == float("-inf") or not single or not isinstance(generation, int):
                return  # (a generation of unchanged masks still reports the best so far)
            trial.report(best[0], generation)
            if trial.should_prune():
                raise optuna.TrialPruned(f"pruned at generation {generation}")

        resume = kind.resumable and (run_dir / "config.yaml").exists()
        stopped = False
        try:
            with RunDir(run_dir).locked() as rd:  # one writer per trial folder
                if resume:
                    rd.remove_temp_files()
                summary = kind.run(run_dir, progress=self.trial_bars,
                                   on_generation=on_generation, resume=resume,
                                   log=lambda _: None)
        except optuna.TrialPruned as pruned:  # the dashboard shows how far it got
            show_trial(trial, run_dir, {"kind": cfg.kind}, str(pruned), self.artifacts)
            raise
        except (KeyboardInterrupt, Interrupted):
            stopped = True  # stays in _running: retry_interrupted enqueues it again
            raise
        finally:
            beat.stop()
            if not stopped:
                self._running.discard(trial.number)
        keep = ("val_accuracy", "sparsity", "wall_seconds", "method", "device", "kind",
                "best_strategy")  # never test_accuracy: the dashboard shows it while choosing
        shown = {"kind": cfg.kind, **{k: summary[k] for k in keep if k in summary}}
        trial.set_user_attr("summary", shown)
        show_trial(trial, run_dir, shown, "complete", self.artifacts)
        result = tuple(float(summary[o]) for o in self.tune.objectives)
        return result[0] if single else result

    def run(self, progress: bool = True) -> dict[str, Any]:
        import optuna

        if not progress:
            optuna.logging.set_verbosity(optuna.logging.WARNING)
        storage = open_storage(self.storage_url, writers=self.n_jobs)  # before any write
        self.out.mkdir(parents=True, exist_ok=True)
        self.artifacts = artifact_store(self.storage_url, self.out)
        study = self._study(storage)
        recover_stale_trials(study, self.tune.stale_after, self.tune.retry_failed)
        study.set_user_attr("neuroprune_config", self.base)
        # One bar per trial (its search's own, with fitness and validation accuracy); with
        # parallel or batched trials none. Optuna's trial lines are written above the bars.
        self.trial_bars = progress and self.n_jobs == 1 and self.batch == 1
        with logs_above_bars():
            try:
                self._optimize(study)
            except (KeyboardInterrupt, Interrupted):
                self.retry_interrupted(study)
                raise KeyboardInterrupt from None
        return self.summarise(study)

    def _optimize(self, study) -> None:
        if self.batch > 1:
            done = 0
            while done < self.n_trials:
                done += self.run_batch(study, min(self.batch, self.n_trials - done))
                recover_stale_trials(study, self.tune.stale_after, self.tune.retry_failed)
        else:
            with _quiet_interrupts():
                study.optimize(self.objective, n_trials=self.n_trials, n_jobs=self.n_jobs,
                               callbacks=[self._recover_after_trial])

    @property
    def busy(self) -> bool:
        """Trials of a batch still train in their threads (after Ctrl-C: they cannot be
        stopped midway, and the process must end without waiting for them)."""
        return any(t.is_alive() for t in self._threads)

    def retry_interrupted(self, study) -> list[int]:
        """Fail the trials that Ctrl-C stopped (Optuna has failed those it was running) and
        enqueue each again with its parameters, so that the next call runs them. An
        interruption is not the trial's fault: it does not count as one of its retries."""
        from optuna.trial import TrialState

        again = []
        for number in sorted(self._running):
            fail_trial(study, number)
            t = study.get_trials(deepcopy=False)[number]
            if t.state == TrialState.FAIL:
                attrs = {k: t.user_attrs[k] for k in ("retried_from", "retries")
                         if k in t.user_attrs}
                study.enqueue_trial(t.params, user_attrs={"interrupted_from": t.number,
                                                          **attrs})
                again.append(number)
        self._running.clear()
        return again

    def run_batch(self, study, size: int) -> int:
        """Ask ``size`` trials at once, train those that share a structure as one population
        (:mod:`.batch`), and tell the study each trial's outcome; returns ``size``."""
        import optuna
        from optuna.trial import TrialState

        from .batch import BatchEvaluator

        asked = []
        for _ in range(size):
            trial = study.ask()
            try:
                asked.append((trial, self.trial_config(trial)))
            except ConfigError as exc:  # a sampled combination the config refuses
                study.tell(trial, state=TrialState.FAIL)
                optuna.logging.get_logger("optuna").warning(f"trial {trial.number}: {exc}")
        groups: dict[str, list] = {}
        for trial, cfg in asked:
            groups.setdefault(structure_key(cfg), []).append((trial, cfg))
        outcomes: dict[int, tuple] = {}
        for members in groups.values():
            bench = self.bench.derive(members[0][1])
            with bench.evaluator() as inner:
                batch = BatchEvaluator(inner)
                threads = [threading.Thread(target=self._batch_trial, daemon=True,
                                            args=(trial, cfg, batch.member(cfg.training),
                                                  outcomes))
                           for trial, cfg in members]
                self._threads = threads
                for t in threads:
                    t.start()
                for t in threads:
                    t.join()
        for trial, _ in asked:
            state, values = outcomes[trial.number]
            if state == TrialState.COMPLETE:
                study.tell(trial, values)
            else:
                study.tell(trial, state=state)
            self._recover_after_trial(study, trial)
        return size

    def _batch_trial(self, trial, cfg: RunConfig, member, outcomes: dict) -> None:
        """One trial of a batch, in its own thread; its outcome goes to ``outcomes``."""
        import optuna
        from optuna.trial import TrialState

        try:
            outcomes[trial.number] = (TrialState.COMPLETE, self.run_trial(trial, cfg, member))
        except optuna.TrialPruned:
            outcomes[trial.number] = (TrialState.PRUNED, None)
        except Exception as exc:  # as study.optimize does: the trial fails, the study goes on
            optuna.logging.get_logger("optuna").warning(
                f"trial {trial.number} failed: {type(exc).__name__}: {exc}")
            outcomes[trial.number] = (TrialState.FAIL, None)
        finally:
            member.close()  # the batch goes on without this trial

    def summarise(self, study) -> dict[str, Any]:
        from optuna.trial import TrialState

        counts = {s.name.lower(): len(study.get_trials(deepcopy=False, states=(s,)))
                  for s in TrialState}
        summary: dict[str, Any] = {"study": study.study_name,
                                   "storage": redacted(self.storage_url),  # no password
                                   "objectives": self.tune.objectives, "trials": counts}
        if counts["complete"]:
            if len(self.tune.objectives) == 1:
                bt = study.best_trial
                summary["best"] = {"number": bt.number, "value": bt.value, "params": bt.params,
                                   "run_dir": bt.user_attrs.get("run_dir")}
            else:
                summary["pareto_front"] = [
                    {"number": t.number, "values": t.values, "params": t.params,
                     "run_dir": t.user_attrs.get("run_dir")} for t in study.best_trials]
        atomic_write_json(self.out / "summary.json", summary)
        try:
            study.trials_dataframe().to_csv(self.out / "trials.csv", index=False)
        except Exception:
            pass
        return summary
