"""Experiment tracking: TensorBoard and MLflow get what the run directory records."""

import json
import warnings

import pandas as pd
import pytest

from neuroprune.rundir import RunDir
from neuroprune.tracking import Tracker, Tracking

from helpers import REPO, run_cli, run_without

QUICK = str(REPO / "configs" / "quickstart.yaml")
GENERATIONS, EPOCHS, POPULATION = 3, 2, 4
TINY = ["--set", f"method.population={POPULATION}", "--set", f"method.generations={GENERATIONS}",
        "--set", "method.search_epochs=1", "--set", f"training.epochs={EPOCHS}",
        "--set", "model.widths=[32]", "--no-progress"]


def test_quickstart_tensorboard_log_holds_generation_and_epoch_scalars(tmp_path):
    tbparse = pytest.importorskip("tbparse")
    out = tmp_path / "run"
    proc = run_cli("run", QUICK, "--out", str(out), *TINY, "--set", "logging=[tensorboard]")
    assert proc.returncode == 0, proc.stderr
    scalars = tbparse.SummaryReader(str(out / "tb")).scalars
    steps = scalars.groupby("tag").step.apply(sorted).to_dict()
    for tag in ("generation/evaluations", "population/best", "population/mean",
                "population/std"):
        assert steps[tag] == list(range(GENERATIONS)), tag
    for tag in ("generation/fitness_max", "generation/val_accuracy_max",
                "generation/val_accuracy_mean"):  # generations that evaluated something
        assert steps[tag][0] == 0 and set(steps[tag]) <= set(range(GENERATIONS)), tag
    for tag in ("curve/train_loss", "curve/val_loss", "curve/val_accuracy"):
        assert steps[tag] == list(range(1, EPOCHS + 1)), tag
    evaluations = len(pd.read_csv(out / "results.csv").query("generation != 'final'"))
    assert steps["eval/fitness"] == list(range(evaluations))
    curve = pd.read_csv(out / "learning_curve.csv")
    logged = scalars[scalars.tag == "curve/val_accuracy"].sort_values("step").value
    assert logged.tolist() == pytest.approx(curve.val_accuracy.tolist(), rel=1e-6)
    summary = json.loads((out / "summary.json").read_text())
    final = scalars[scalars.tag == "final/test_accuracy"].value.item()
    assert final == pytest.approx(summary["test_accuracy"], rel=1e-6)


def test_mlflow_run_holds_params_and_metrics(tmp_path, monkeypatch):
    pytest.importorskip("mlflow")
    from mlflow import MlflowClient

    from neuroprune.cli import main

    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    out = tmp_path / "run"
    assert main(["run", QUICK, "--out", str(out), *TINY, "--set", "logging=[mlflow]"]) == 0
    client = MlflowClient(tracking_uri=f"sqlite:///{out / 'mlruns' / 'mlflow.db'}")
    exp = client.get_experiment_by_name("quickstart")
    (run,) = client.search_runs([exp.experiment_id])
    assert run.info.status == "FINISHED" and run.info.run_name == "run"
    assert run.data.params["method.name"] == "kstarts"
    assert run.data.params["training.epochs"] == str(EPOCHS)
    history = client.get_metric_history(run.info.run_id, "population/best")
    assert sorted(m.step for m in history) == list(range(GENERATIONS))
    curve = client.get_metric_history(run.info.run_id, "curve/val_loss")
    assert sorted(m.step for m in curve) == list(range(1, EPOCHS + 1))
    summary = json.loads((out / "summary.json").read_text())
    assert run.data.metrics["summary/test_accuracy"] == pytest.approx(summary["test_accuracy"])


def test_mlflow_uses_the_tracking_uri_of_the_environment(tmp_path, monkeypatch):
    pytest.importorskip("mlflow")
    from mlflow import MlflowClient

    from neuroprune.cli import main

    uri = f"sqlite:///{tmp_path / 'team.db'}"
    monkeypatch.setenv("MLFLOW_TRACKING_URI", uri)
    out = tmp_path / "run"
    assert main(["run", QUICK, "--out", str(out), *TINY, "--set", "logging=[mlflow]"]) == 0
    assert not (out / "mlruns").exists()
    exp = MlflowClient(tracking_uri=uri).get_experiment_by_name("quickstart")
    assert len(MlflowClient(tracking_uri=uri).search_runs([exp.experiment_id])) == 1


def test_comparison_cells_are_nested_tensorboard_runs(tmp_path):
    tbparse = pytest.importorskip("tbparse")
    from neuroprune.cli import main

    out = tmp_path / "cmp"
    assert main(["run", str(REPO / "configs" / "compare_digits.yaml"), "--out", str(out),
                 "--no-progress", "--set", "comparison.sparsities=[0.9]",
                 "--set", "comparison.seeds=[0]", "--set", "comparison.methods=[random, snip]",
                 "--set", "training.epochs=2", "--set", "model.widths=[16]",
                 "--set", "logging=[tensorboard]"]) == 0
    scalars = tbparse.SummaryReader(str(out / "tb"), extra_columns={"dir_name"}).scalars
    curves = scalars[scalars.tag == "curve/val_accuracy"]
    assert set(curves.dir_name) == {"random-s0.9-seed0", "snip-s0.9-seed0"}
    assert set(scalars[scalars.dir_name == ""].tag) == {
        "summary/cells", "summary/wall_seconds", "summary/network_epochs",
        "summary/trained_network_epochs", "summary/cell_wall_seconds"}


class Recorder(Tracker):
    """A tracker that keeps what it gets, to check the records without a tool."""

    name = "recorder"

    def __init__(self, log):
        self.log = log

    def log_params(self, params):
        self.log.append(("params", params))

    def log_scalars(self, scalars, step):
        self.log += [(tag, step, value) for tag, value in scalars.items()]

    def child(self, name):
        return Recorder(self.log)

    def close(self, status):
        self.log.append(("closed", status))


def _rows(generation, n):
    return [{"generation": generation, "index": i, "fitness": 0.5 + i, "val_accuracy": 0.1 * i,
             "formula": "x"} for i in range(n)]


def test_a_resumed_run_continues_the_steps_and_logs_each_generation_once(tmp_path):
    log = []
    first = RunDir(tmp_path, Tracking(lambda: [Recorder(log)]))
    for g in (0, 1):
        first.commit_generation(g, _rows(g, 3))
        first.write_logbook([{"gen": k, "best": 1.0, "mean": 0.5} for k in range(g + 1)])
    second = RunDir(tmp_path, Tracking(lambda: [Recorder(log)]))  # a resumed process
    second.commit_generation(1, _rows(1, 3))  # a retried generation: not logged again
    second.commit_generation(2, _rows(2, 2))
    second.write_logbook([{"gen": k, "best": 1.0, "mean": 0.5} for k in range(3)])
    second.write_summary({"status": "complete", "test_accuracy": 0.9, "method": "m"})
    steps = [s for tag, s, *_ in log if tag == "eval/fitness"]
    assert steps == list(range(8))
    assert [s for tag, s, *_ in log if tag == "population/best"] == [0, 1, 2]
    assert [s for tag, s, *_ in log if tag == "generation/fitness_max"] == [0, 1, 2]
    assert not any(tag.startswith("eval/formula") for tag, *_ in log)
    assert ("summary/test_accuracy", 0, 0.9) in log and log[-1] == ("closed", "complete")


def test_named_generations_go_to_nested_runs():
    log, nested = [], {}

    class Nesting(Recorder):
        def child(self, name):
            nested[name] = []
            return Recorder(nested[name])

    tracking = Tracking(lambda: [Nesting(log)])
    tracking.generation("ga:0", _rows("ga:0", 2))
    tracking.generation("ga:1", _rows("ga:1", 2))
    tracking.generation("final", [{"generation": "final", "index": 0, "strategy": "ga",
                                   "val_accuracy": 0.8}])
    assert [s for tag, s, *_ in nested["ga"] if tag == "generation/val_accuracy_max"] == [0, 1]
    assert ("final/val_accuracy", 0, 0.8) in nested["ga"] and not log


def test_a_failing_tracker_is_dropped_with_a_warning_and_the_run_goes_on(tmp_path):
    class Broken(Recorder):
        def log_scalars(self, scalars, step):
            raise ConnectionError("tracking server gone")

    log = []
    rd = RunDir(tmp_path, Tracking(lambda: [Broken([]), Recorder(log)]))
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        rd.commit_generation(0, _rows(0, 2))
        rd.commit_generation(1, _rows(1, 2))
    assert len(caught) == 1 and "recorder logging stopped" in str(caught[0].message)
    assert [s for tag, s, *_ in log if tag == "eval/fitness"] == [0, 1, 2, 3]
    assert len(pd.read_csv(tmp_path / "results.csv")) == 4


def test_a_run_without_summary_closes_its_trackers_as_unfinished(tmp_path):
    log = []
    rd = RunDir(tmp_path, Tracking(lambda: [Recorder(log)]))
    rd.commit_generation(0, _rows(0, 1))
    del rd
    assert log[-1] == ("closed", "unfinished")


def test_missing_tracker_package_gives_an_install_hint(tmp_path):
    proc = run_without("mlflow", "run", QUICK, "--set", "logging=[mlflow]", "--out",
                       str(tmp_path / "o"))
    assert proc.returncode == 2, proc.stderr
    assert "pip install 'neuroprune[mlflow]'" in proc.stderr and "Traceback" not in proc.stderr
    assert not (tmp_path / "o").exists()
