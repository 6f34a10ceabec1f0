"""``neuroprune tune``: an Optuna study over any config values of a search.

Each trial is an ordinary search in ``<out>/trials/trial_NNNN`` with sampled config values.
It reports its best validation accuracy per generation (so Optuna's pruner can stop it), and
records its run directory, summary, best mask (as an Optuna artifact) and a markdown note
for the dashboard.

Stale trials (a killed process leaves its trial RUNNING) are failed and re-run by
:mod:`.heartbeat`; a study keeps its config as a run does (:mod:`.study`).
"""

from __future__ import annotations

import contextlib
import copy
import errno
import logging
import os
import signal
import threading
import time
import warnings
from pathlib import Path
from typing import Any

from .._io import WriteError, atomic_write_json
from ..config import RunConfig, load_config, to_dict
from ..errors import ConfigError, UserError
from ..progress import logs_above_bars
from ..rundir import FILES, RunDir
from ..searches.mask_search import Interrupted, Terminated, stop_signal
from . import study as recorded
from .dashboard import show_trial
from ..mirror import shown
from .heartbeat import Heartbeat, beat_interval, fail_trial, recover_stale_trials
from .storage import artifact_store, open_storage, redacted

__all__ = ["Tuner", "StudyStopped", "fail_trial", "recover_stale_trials"]


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


class StudyStopped(UserError):
    """A trial could not write its results (a full disk): the study stops, in one line, and
    the trial runs again first on the next call, as after Ctrl-C."""


#: ``tune.trial_plots: auto`` draws a trial's fitness plot when the trial ran this long
PLOT_AFTER_SECONDS = 2.0

#: what a full disk (or a file-size limit) looks like in an ``OSError``
DISK_FULL = (errno.ENOSPC, errno.EDQUOT, errno.EFBIG)


def write_failure(exc: BaseException, what: str = "a file") -> str | None:
    """What could not be written and why, if ``exc`` says a file could not be written."""
    if isinstance(exc, WriteError):
        return f"cannot write {exc.path}: {exc.reason}"
    if isinstance(exc, OSError) and exc.errno in DISK_FULL:
        return f"cannot write {exc.filename or what}: {exc.strerror}"
    return None


class _NoInterruptTraceback(logging.Filter):
    """Drops Optuna's "trial failed" traceback for a trial stopped by Ctrl-C or a full disk:
    the command line says what happened, and the trial is run again."""

    def __init__(self):
        super().__init__()
        self.dropped: list[str] = []  # "Trial N failed": its second line goes too

    def filter(self, record: logging.LogRecord) -> bool:
        exc = record.exc_info[1] if record.exc_info else None
        if isinstance(exc, (KeyboardInterrupt, Interrupted, StudyStopped)):
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


class Tuner:
    """A study over ``cfg.tune.params``; validated (every key, every range) before it starts."""

    def __init__(self, cfg: RunConfig, out: Path, storage: str | None = None,
                 study_name: str | None = None, n_trials: int | None = None, n_jobs: int = 1,
                 batch: int = 1, new_study: bool = False):
        if cfg.tune is None:
            raise ConfigError("this config has no 'tune:' section "
                              "(see configs/tune_quickstart.yaml)")
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
        # the method as given: a trial that samples method.name takes the new one's defaults
        self.base["method"] = cfg.method.model_dump(mode="json")
        self.out = Path(out)
        if self.out.exists() and not self.out.is_dir():
            raise UserError(f"--out {self.out} is a file; give a folder")
        self.storage_url = storage or str(self.out / "optuna.journal")
        self.study_name = study_name or cfg.name
        self.new_study = new_study  # --force-new-study: keep an existing one aside, start afresh
        self.replaced: str | None = None  # the name the replaced study is kept under
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
        self._beats: dict[int, Heartbeat] = {}  # of the trials this process has asked
        self._threads: list[threading.Thread] = []  # of the batch being trained
        self._sharing = 1  # trials trained together now (a batch group shares its time)
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
        """Load the study, refusing one recorded with another config (nothing is written
        then), or create it and record its config; name its objectives for the dashboard."""
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

        def load():
            return optuna.load_study(study_name=self.study_name, storage=storage,
                                     sampler=sampler, pruner=pruner)
        try:
            study = load()
        except KeyError:  # a new study
            study = None
        if study is not None and self.new_study:
            recover_stale_trials(study, self.tune.stale_after, retry=0)
            self.replaced = recorded.replace_study(study, storage, self.out, self.trial_dir)
            study = None
        self.new_study = False  # once: workers and later calls of this tuner continue it
        if study is None:
            try:
                study = optuna.create_study(storage=storage, study_name=self.study_name,
                                            directions=self.tune.directions, sampler=sampler,
                                            pruner=pruner)
            except optuna.exceptions.DuplicatedStudyError:  # a rival created it meanwhile
                study = load()
            else:
                recorded.record(study, self.base, self.tune)
        self._check_study(study)
        if study.metric_names is None:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
                study.set_metric_names(list(self.tune.objectives))
        return study

    def _check_study(self, study) -> None:
        """Refuse to continue ``study`` with another config (one line naming the keys); a
        study recorded in part (by an earlier version) gets the missing part recorded."""
        recorded.wait_for_record(study)
        keys = recorded.differences(study, self.base, self.tune)
        if keys:
            raise recorded.refusal(self.study_name, self.storage_url, keys)
        for attr, value in ((recorded.CONFIG_ATTR, self.base),
                            (recorded.TUNE_ATTR, recorded.kept_tune(self.tune))):
            if attr not in study.user_attrs:
                study.set_user_attr(attr, value)

    def trial_dir(self, number: int) -> Path:
        """``<out>/trials/trial_NNNN``; for a study not named after the config,
        ``<out>/trials/<study>/trial_NNNN``, so that two studies never share a folder."""
        trials = self.out / "trials"
        if self.study_name != self.cfg.name:
            trials = trials / recorded.trial_folder_name(self.study_name)
        return trials / f"trial_{number:04d}"

    def _recover_after_trial(self, study, trial) -> None:
        """``study.optimize`` callback: pick up trials of workers that died meanwhile."""
        recover_stale_trials(study, self.tune.stale_after, self.tune.retry_failed)

    def objective(self, trial) -> float | tuple[float, ...]:
        cfg = self.trial_config(trial)
        with self._beating(trial):  # host, pid and heartbeat from now until it is told
            return self.run_trial(trial, cfg)

    @contextlib.contextmanager
    def _beating(self, trial):
        """Keep ``trial``'s heartbeat while it is this process's (asked, not yet told)."""
        trial.set_user_attr("run_dir", shown(self.trial_dir(trial.number)))  # (at a URI: there)
        self._beats[trial.number] = Heartbeat(trial, beat_interval(self.tune.stale_after))
        try:
            yield
        finally:
            self._beats.pop(trial.number).stop()

    def trial_config(self, trial) -> RunConfig:
        """The trial's config: the base config with the sampled values (and no latency
        timing unless ``tune.trial_latency`` or a latency objective asks for it)."""
        values = {k: spec.sample(trial, k) for k, spec in self.tune.params.items()}
        timed = self.tune.trial_latency or "latency" in self.tune.objectives
        fixed = {} if timed or "sparsity" not in self.base else {"sparsity.latency_repeats": 0}
        return trial_config(self.base, {**fixed, **values})

    def run_trial(self, trial, cfg: RunConfig,
                  evaluator=None) -> float | tuple[float, ...]:
        """Run the trial's kind into its run directory and return its objectives
        (``evaluator``: a batch member to train through)."""
        import optuna

        from ..searches.kinds import prepare

        kind = prepare(self.bench.derive(cfg, evaluator=evaluator))
        run_dir = self.trial_dir(trial.number)
        self._running.add(trial.number)
        beat = self._beats.get(trial.number)
        own_beat = beat is None  # a trial asked elsewhere (a caller of this method)
        if own_beat:
            trial.set_user_attr("run_dir", shown(run_dir))
            beat = Heartbeat(trial, beat_interval(self.tune.stale_after))
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

        resume = kind.resumable and (run_dir / FILES.config).exists()
        started = time.perf_counter()

        def plot() -> bool:  # (trials trained as one population share its time)
            mode = self.tune.trial_plots
            took = (time.perf_counter() - started) / self._sharing
            return mode == "always" or (mode == "auto" and took >= PLOT_AFTER_SECONDS)
        stopped = False  # stays in _running: retry_interrupted enqueues it again
        try:
            with RunDir(run_dir).locked() as rd:  # one writer per trial folder
                if resume:
                    rd.remove_temp_files()
                summary = kind.run(run_dir, progress=self.trial_bars,
                                   on_generation=on_generation, resume=resume,
                                   log=lambda _: None)
            keep = ("val_accuracy", "sparsity", "wall_seconds", "method", "device", "kind",
                    "best_strategy", *self.tune.objectives)  # never a test figure: the
            # dashboard shows it while choosing (test_* objectives are refused)
            brief = {"kind": cfg.kind, **{k: summary[k] for k in keep if k in summary}}
            trial.set_user_attr("summary", brief)
            show_trial(trial, run_dir, brief, "complete", self.artifacts, plot())
        except optuna.TrialPruned as pruned:  # the dashboard shows how far it got
            show_trial(trial, run_dir, {"kind": cfg.kind}, str(pruned), self.artifacts,
                       plot())
            raise
        except (KeyboardInterrupt, Interrupted):
            stopped = True
            raise
        except Exception as exc:
            # a full disk is not the trial's fault: stop, and run it again on the next call
            what = write_failure(exc, f"a file of trial {trial.number}")
            if what is None:
                raise
            stopped = True
            raise StudyStopped(
                f"{what}; free some space, then run the same command again: the study "
                f"'{self.study_name}' is kept and trial {trial.number} runs again first") \
                from None
        finally:
            if own_beat:
                beat.stop()
            if not stopped:
                self._running.discard(trial.number)
        result = tuple(float(summary[o]) for o in self.tune.objectives)
        return result[0] if single else result

    def run(self, progress: bool = True) -> dict[str, Any]:
        import optuna

        if not progress:
            optuna.logging.set_verbosity(optuna.logging.WARNING)
        storage = open_storage(self.storage_url, writers=self.n_jobs)  # before any write
        study = self._study(storage)  # refuses another config before anything is written
        self.out.mkdir(parents=True, exist_ok=True)
        self.artifacts = artifact_store(self.storage_url, self.out)
        recover_stale_trials(study, self.tune.stale_after, self.tune.retry_failed)
        # One bar per trial (its search's own, with fitness and validation accuracy); with
        # parallel or batched trials none. Optuna's trial lines are written above the bars.
        self.trial_bars = progress and self.n_jobs == 1 and self.batch == 1
        with logs_above_bars():
            try:
                self._optimize(study)
            except (KeyboardInterrupt, Interrupted) as exc:
                self.retry_interrupted(study)
                raise (Terminated() if stop_signal(exc) == signal.SIGTERM
                       else KeyboardInterrupt()) from None
            except Exception as exc:  # a full disk: the trials it stopped run again first
                what = write_failure(exc)
                if what is None and not isinstance(exc, StudyStopped):
                    raise
                self.retry_interrupted(study)
                if isinstance(exc, StudyStopped):
                    raise
                raise StudyStopped(f"{what}; free some space, then run the same command "
                                   f"again: the study '{self.study_name}' is kept") from None
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
            try:
                fail_trial(study, number)
                t = study.get_trials(deepcopy=False)[number]
                if t.state == TrialState.FAIL:
                    attrs = {k: t.user_attrs[k] for k in ("retried_from", "retries")
                             if k in t.user_attrs}
                    study.enqueue_trial(t.params, user_attrs={"interrupted_from": t.number,
                                                              **attrs})
                    again.append(number)
            except OSError:  # the storage is on the full disk: the trial stays RUNNING, and
                pass  # the next call fails and re-runs it as a dead process's
        self._running.clear()
        return again

    def run_batch(self, study, size: int) -> int:
        """Ask ``size`` trials at once, train those that share a structure as one population
        (:mod:`.batch`), and tell the study each trial's outcome; returns ``size``."""
        import optuna
        from optuna.trial import TrialState

        asked, beats = [], contextlib.ExitStack()
        with beats:
            for _ in range(size):
                trial = study.ask()
                try:
                    cfg = self.trial_config(trial)
                except ConfigError as exc:  # a sampled combination the config refuses
                    study.tell(trial, state=TrialState.FAIL)
                    optuna.logging.get_logger("optuna").warning(f"trial {trial.number}: {exc}")
                    continue
                # host, pid and heartbeat at once (until it is told): a process killed now
                # leaves a trial that the next call recognises as its
                beats.enter_context(self._beating(trial))
                asked.append((trial, cfg))
            self._train_batch(study, asked)
        return size

    def _train_batch(self, study, asked: list) -> None:
        """Train the asked trials (grouped by structure) and tell the study each outcome;
        a trial stopped by a full disk is told by :meth:`retry_interrupted` instead."""
        from optuna.trial import TrialState

        from .batch import BatchEvaluator

        groups: dict[str, list] = {}
        for trial, cfg in asked:
            groups.setdefault(structure_key(cfg), []).append((trial, cfg))
        outcomes: dict[int, tuple] = {}
        for members in groups.values():
            self._sharing = len(members)
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
            self._sharing = 1
        stopped = [v for state, v in outcomes.values() if state == "stopped"]
        for trial, _ in asked:
            state, values = outcomes[trial.number]
            if state == "stopped":
                continue
            if state == TrialState.COMPLETE:
                study.tell(trial, values)
            else:
                study.tell(trial, state=state)
            self._recover_after_trial(study, trial)
        if stopped:
            raise stopped[0]

    def _batch_trial(self, trial, cfg: RunConfig, member, outcomes: dict) -> None:
        """One trial of a batch, in its own thread; its outcome goes to ``outcomes``."""
        import optuna
        from optuna.trial import TrialState

        try:
            outcomes[trial.number] = (TrialState.COMPLETE, self.run_trial(trial, cfg, member))
        except optuna.TrialPruned:
            outcomes[trial.number] = (TrialState.PRUNED, None)
        except StudyStopped as exc:
            outcomes[trial.number] = ("stopped", exc)
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
        if self.replaced:
            summary["replaced"] = self.replaced
        if counts["complete"]:
            if len(self.tune.objectives) == 1:
                bt = study.best_trial
                summary["best"] = {"number": bt.number, "value": bt.value, "params": bt.params,
                                   "run_dir": bt.user_attrs.get("run_dir")}
            else:
                summary["pareto_front"] = [
                    {"number": t.number, "values": t.values, "params": t.params,
                     "run_dir": t.user_attrs.get("run_dir")} for t in study.best_trials]
        atomic_write_json(self.out / FILES.summary, summary)
        try:
            study.trials_dataframe().to_csv(self.out / FILES.trials, index=False)
        except Exception:
            pass
        return summary
