"""MLflow: one MLflow run per run directory, nested runs for the cells of a sweep.

The tracking store is ``MLFLOW_TRACKING_URI`` when it is set (a team's server), otherwise a
SQLite store in ``<run>/mlruns/mlflow.db``, which ``mlflow ui --backend-store-uri
sqlite:///<run>/mlruns/mlflow.db`` opens (MLflow 3 keeps its plain-folder store in maintenance
mode and refuses it by default, so the one-file database takes its place). The experiment is
the config's name; a resumed run continues its MLflow run (found by the run directory tag).
Metrics are buffered and sent in batches, once per generation.
"""

from __future__ import annotations

import contextlib
import logging
import os
import time
from pathlib import Path

from ..errors import UserError
from .base import Tracker

RUN_DIR_TAG = "neuroprune.run_dir"
STATUS = {"complete": "FINISHED", "interrupted": "KILLED"}
MAX_BATCH, MAX_PARAM = 1000, 6000  # MLflow's limits per log_batch and per parameter value


@contextlib.contextmanager
def _quiet():
    """MLflow and alembic log INFO lines when they create a store's tables."""
    loggers = [logging.getLogger(n) for n in ("mlflow", "alembic")]
    levels = [lg.level for lg in loggers]
    for lg in loggers:
        lg.setLevel(logging.WARNING)
    try:
        yield
    finally:
        for lg, level in zip(loggers, levels):
            lg.setLevel(level)


class MLflowTracker(Tracker):
    name = "mlflow"
    requires = ("mlflow", "mlflow-skinny", "mlflow")

    def __init__(self, client, experiment_id: str, run_id: str, new: bool):
        self.client, self.experiment_id, self.run_id, self.new = (client, experiment_id,
                                                                  run_id, new)
        self._pending: list = []

    @classmethod
    def open(cls, run_dir: Path, experiment: str) -> "MLflowTracker":
        from mlflow import MlflowClient

        run_dir = Path(run_dir).resolve()
        uri, artifacts = os.environ.get("MLFLOW_TRACKING_URI"), None
        if not uri:
            store = run_dir / "mlruns"
            store.mkdir(parents=True, exist_ok=True)
            uri, artifacts = f"sqlite:///{store / 'mlflow.db'}", (store / "artifacts").as_uri()
        try:
            with _quiet():
                client = MlflowClient(tracking_uri=uri)
                exp = client.get_experiment_by_name(experiment)
                exp_id = (exp.experiment_id if exp is not None else
                          client.create_experiment(experiment, artifact_location=artifacts))
                return cls._run(client, exp_id, {RUN_DIR_TAG: str(run_dir)}, run_dir.name)
        except Exception as exc:
            raise UserError(f"cannot open MLflow tracking at {uri}: {type(exc).__name__}: "
                            f"{str(exc).splitlines()[0][:200] if str(exc) else ''}") from None

    @classmethod
    def _run(cls, client, exp_id: str, tags: dict[str, str], name: str) -> "MLflowTracker":
        """The run carrying ``tags`` (resumed: set RUNNING again), or a new one."""
        if not any("'" in v for v in tags.values()):
            where = " and ".join(f"tags.`{k}` = '{v}'" for k, v in tags.items())
            found = client.search_runs([exp_id], filter_string=where, max_results=1)
            if found:
                client.update_run(found[0].info.run_id, status="RUNNING")
                return cls(client, exp_id, found[0].info.run_id, new=False)
        run = client.create_run(exp_id, run_name=name, tags=tags)
        return cls(client, exp_id, run.info.run_id, new=True)

    def log_params(self, params: dict[str, str]) -> None:
        if not self.new:  # MLflow parameters cannot change; a resumed run keeps its own
            return
        from mlflow.entities import Param

        items = [Param(k[:250], v[:MAX_PARAM]) for k, v in params.items()]
        for i in range(0, len(items), 100):
            self.client.log_batch(self.run_id, params=items[i:i + 100])

    def log_scalars(self, scalars: dict[str, float], step: int) -> None:
        from mlflow.entities import Metric

        stamp = int(time.time() * 1000)
        self._pending += [Metric(k, float(v), stamp, step) for k, v in scalars.items()]

    def flush(self) -> None:
        pending, self._pending = self._pending, []
        for i in range(0, len(pending), MAX_BATCH):
            self.client.log_batch(self.run_id, metrics=pending[i:i + MAX_BATCH])

    def child(self, name: str) -> "MLflowTracker":
        return self._run(self.client, self.experiment_id,
                         {"mlflow.parentRunId": self.run_id, "neuroprune.child": name}, name)

    def close(self, status: str) -> None:
        self.flush()
        self.client.set_terminated(self.run_id, status=STATUS.get(status, "KILLED"))
