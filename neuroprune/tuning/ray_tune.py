"""Ray Tune runs the Optuna trials of a study in parallel, on a cluster.

Ray Tune's own Optuna searcher ignores Optuna's pruners and keeps the study inside the driver.
Here every Ray Tune trial instead joins the study in the shared storage and runs exactly one
Optuna trial (``study.optimize(n_trials=1)``), or with ``--batch N`` one batch of N Optuna
trials trained as one population on the Ray trial's resources (a GPU, say): the study stays
complete and
resumable in its storage (the dashboard reads it live), Optuna's pruner acts on the per
generation reports, and Ray Tune provides placement (CPUs, fractional GPUs per trial), the
concurrency limit, retries of failed trials and experiment restore.

The storage must be reachable from every node: a PostgreSQL, MySQL or Redis URL, or a journal
file on a shared file system (SQLite is refused: several writers). An Optuna trial whose
Ray worker died is failed and re-run by a later trial once it is stale
(``tune.recover_stale_trials``: at once on the same node, after ``tune.stale_after`` elsewhere).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from ..backends.ray_session import connect, import_ray
from ..errors import UserError
from .storage import open_storage
from .tune import StudyStopped, Tuner, recover_stale_trials


class NoTrialCompleted(UserError):
    """Tuning on Ray in which no trial completed (nor was pruned): one line with the first
    trial's error; the exit code is that error's own when it was bad input (2), else 1."""

    def __init__(self, message: str, exit_code: int = 1):
        super().__init__(message)
        self.exit_code = exit_code


def first_error(errors: list[BaseException], failed: int) -> NoTrialCompleted:
    """The :class:`NoTrialCompleted` to raise for the trials' ``errors`` (what Ray Tune
    kept: the trial's own exception wrapped in a ``RayTaskError``, or its text)."""
    if not errors:
        return NoTrialCompleted(f"no trial completed: {failed} failed inside their Ray Tune "
                                f"trials (see the workers' logs)")
    cause = getattr(errors[0], "cause", None)  # a RayTaskError: the trial's own exception
    if cause is not None:
        text = str(cause).strip()
        line = f"{type(cause).__name__}: {text.splitlines()[0] if text else ''}"
    else:  # only the text is left: a traceback, whose last line names the error
        line = (str(errors[0]).strip().splitlines() or [type(errors[0]).__name__])[-1]
    return NoTrialCompleted(
        f"no trial completed; the first error ({len(errors)} trial(s) failed): {line[:300]}",
        cause.exit_code if isinstance(cause, UserError) else 1)


def ray_trial(config: dict[str, Any], tuner: "RayTuner") -> None:
    """The Ray Tune trainable. It is small: the tuner, with its workbench and data, reaches it
    through the object store (``tune.with_parameters``), once per node, instead of inside
    every trial's function (which Ray refuses above 95 MiB)."""
    tuner._ray_trial(config)


class RayTuner(Tuner):
    """A :class:`Tuner` whose trials are Ray Tune trials."""

    def __init__(self, *args: Any, **kwargs: Any):
        super().__init__(*args, **kwargs)
        # Ray places the trial; inside it the search runs on the trial's own resources.
        self.base["backend"] = "local"
        #: ``tune --out URI``: trials write under :attr:`out` on their node (the staging
        #: folder) and send their folder and artifacts to this URI; Ray Tune keeps its
        #: experiment at ``URI/ray_results``
        self.uri: str | None = None

    def _ray_trial(self, config: dict[str, Any]) -> None:
        if self.uri is None:
            return self._ray_trial_here(config)
        from ..mirror import Mirror

        # on this node: the trial's folder and artifacts, sent to the URI at every committed
        # generation and at the end (a fresh mirror sends only what this trial wrote)
        with Mirror(self.uri, self.out).active():
            self._ray_trial_here(config)

    def _ray_trial_here(self, config: dict[str, Any]) -> None:
        import optuna
        from ray import tune

        from .storage import artifact_store

        optuna.logging.set_verbosity(optuna.logging.WARNING)
        storage = open_storage(self.storage_url, writers=2)
        self.artifacts = artifact_store(self.storage_url, self.out)
        study = self._study(storage, seed=None)  # no shared seed: workers must not collide
        recover_stale_trials(study, self.tune.stale_after, self.tune.retry_failed)
        try:
            if self.batch > 1:  # a batch of Optuna trials per Ray Tune trial (per GPU actor)
                self.run_batch(study, self.batch)
            else:
                study.optimize(self.objective, n_trials=1, catch=())
        except StudyStopped:  # a full disk: its trials run again, not counted as retries
            self.retry_interrupted(study)
            raise
        mine = [t for t in study.get_trials(deepcopy=False)
                if t.user_attrs.get("ray_trial_id") == tune.get_context().get_trial_id()]
        last = mine[-1] if mine else None
        tune.report({"optuna_trial": last.number if last else -1,
                     "state": last.state.name if last else "NONE",
                     "value": (last.values or [float("nan")])[0] if last else float("nan")})

    def run_trial(self, trial, cfg, evaluator=None):
        try:
            from ray import tune
            trial.set_user_attr("ray_trial_id", tune.get_context().get_trial_id())
        except Exception:
            pass
        return super().run_trial(trial, cfg, evaluator)

    @staticmethod
    def _unfinished_experiment(exp_dir: Path) -> Path | None:
        """The newest experiment folder whose driver stopped before all trials ended."""
        import json

        from ray import tune

        if not exp_dir.exists():
            return None
        for path in sorted(exp_dir.glob("*/"), key=lambda p: p.stat().st_mtime, reverse=True):
            if not tune.Tuner.can_restore(str(path)):
                continue
            states = []
            for f in path.glob("experiment_state-*.json"):
                try:
                    data = json.loads(f.read_text())
                    states += [json.loads(t[0])["status"] if isinstance(t, list)
                               else t.get("status") for t in data.get("trial_data", [])]
                except Exception:
                    return path  # unreadable state: let Ray decide
            if any(st not in ("TERMINATED", "ERROR") for st in states):
                return path
            return None
        return None

    def run(self, progress: bool = True) -> dict[str, Any]:
        ray = import_ray()
        from ray import tune

        storage = open_storage(self.storage_url, writers=2)  # refuses SQLite; before writing
        self.out.mkdir(parents=True, exist_ok=True)
        study = self._study(storage)  # create it once, here
        recover_stale_trials(study, self.tune.stale_after, self.tune.retry_failed)
        ended = self._ended(study)
        rc = self.cfg.ray
        owns = connect(rc.address)
        try:
            trainable = tune.with_resources(tune.with_parameters(ray_trial, tuner=self),
                                            {"cpu": rc.trial_cpus, "gpu": rc.trial_gpus})
            exp_dir = (self.out / "ray_results").resolve()
            # at a URI, Ray Tune keeps its experiment there; a driver that died mid-way
            # leaves its trials to the study's stale-trial recovery instead of a restore
            unfinished = None if self.uri else self._unfinished_experiment(exp_dir)
            if unfinished is not None:  # a driver died mid-experiment: carry it on
                tuner = tune.Tuner.restore(str(unfinished), trainable, resume_errored=True)
            else:  # a new experiment; its trials join the same study
                runs = len(list(exp_dir.glob("*/"))) if exp_dir.exists() else 0
                name = f"{self.study_name}-{runs}"
                tuner = tune.Tuner(
                    trainable,
                    tune_config=tune.TuneConfig(num_samples=-(-self.n_trials // self.batch),
                                                max_concurrent_trials=rc.max_concurrent_trials),
                    run_config=tune.RunConfig(
                        name=name, verbose=1 if progress else 0,
                        storage_path=f"{self.uri}/ray_results" if self.uri else str(exp_dir),
                        failure_config=tune.FailureConfig(max_failures=rc.max_failures)))
            grid = tuner.fit()
        finally:
            if owns:
                ray.shutdown()
        study = self._study(storage)
        summary = self.summarise(study)
        if self._ended(study) == ended:  # a "successful" tuning with nothing in it is none
            raise first_error(grid.errors, summary["trials"]["fail"])
        return summary

    @staticmethod
    def _ended(study) -> int:
        """Trials of ``study`` that completed or were pruned (that is, did not fail)."""
        from optuna.trial import TrialState
        return len(study.get_trials(deepcopy=False,
                                    states=(TrialState.COMPLETE, TrialState.PRUNED)))
