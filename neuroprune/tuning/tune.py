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

import copy
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
from .dashboard import show_trial
from .storage import artifact_store, open_storage, redacted


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
                 study_name: str | None = None, n_trials: int | None = None, n_jobs: int = 1):
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
        self.cfg, self.tune = cfg, cfg.tune
        self.base = {k: v for k, v in to_dict(cfg).items() if k != "tune"}
        self.out = Path(out)
        if self.out.exists() and not self.out.is_dir():
            raise UserError(f"--out {self.out} is a file; give a folder")
        self.storage_url = storage or str(self.out / "optuna.journal")
        self.study_name = study_name or cfg.name
        self.n_trials = n_trials or self.tune.n_trials
        self.n_jobs = n_jobs
        self.trial_bars = False  # set by run()
        for key, spec in self.tune.params.items():  # every key exists and takes its range
            for value in ([spec.low, spec.high] if spec.type != "categorical" else spec.choices):
                value = int(value) if spec.type == "int" else value
                try:
                    trial_config(self.base, {key: value})
                except ConfigError as exc:
                    raise ConfigError(f"tune.params.{key}: {exc}") from None
        if len(self.tune.objectives) > 1 and self.tune.pruner != "none":
            self.tune = self.tune.model_copy(update={"pruner": "none"})  # Optuna: single only
        from ..workbench import Workbench
        self.bench = Workbench.from_config(cfg)  # data loaded once, shared by every trial

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
        sampler = {"tpe": lambda: optuna.samplers.TPESampler(seed=seed),
                   "random": lambda: optuna.samplers.RandomSampler(seed=seed),
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
        import optuna

        from ..searches.kinds import prepare

        values = {k: spec.sample(trial, k) for k, spec in self.tune.params.items()}
        cfg = trial_config(self.base, values)
        kind = prepare(self.bench.derive(cfg))
        run_dir = self.out / "trials" / f"trial_{trial.number:04d}"
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

        try:
            summary = kind.run(run_dir, progress=self.trial_bars, on_generation=on_generation,
                               resume=kind.resumable and (run_dir / "config.yaml").exists())
        except optuna.TrialPruned as pruned:  # the dashboard shows how far it got
            show_trial(trial, run_dir, {"kind": cfg.kind}, str(pruned), self.artifacts)
            raise
        finally:
            beat.stop()
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
        # parallel trials none. Optuna's trial lines are written above the bars.
        self.trial_bars = progress and self.n_jobs == 1
        with logs_above_bars():
            study.optimize(self.objective, n_trials=self.n_trials, n_jobs=self.n_jobs,
                           callbacks=[self._recover_after_trial])
        return self.summarise(study)

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
