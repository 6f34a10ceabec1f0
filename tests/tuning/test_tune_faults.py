"""Tuning under faults: Ctrl-C and SIGTERM in a trial, SIGKILL at random moments, a continued
study (nothing lost, nothing run twice)."""

import json
import random
import time

import pytest

from neuroprune.cli import main

from faults import STOPS, killed_at_random, start, wait_for
from helpers import REPO


@STOPS
@pytest.mark.parametrize("batch", [1, 2])
def test_ctrl_c_in_tune_exits_130_and_the_next_call_retries_the_trial(tmp_path, batch, stop,
                                                                      code):
    import optuna
    from optuna.trial import TrialState

    from neuroprune.tuning.storage import open_storage

    out = tmp_path / "tune"
    tq = str(REPO / "configs" / "tune_quickstart.yaml")
    fast = ["--set", "method.population=4", "--set", "method.generations=2", "--set",
            "training.epochs=100", "--set", "model.widths=[16]", "--set", "tune.pruner=none",
            "--batch", str(batch), "--no-progress"]
    proc = start(["tune", tq, "--out", str(out), "--n-trials", "3", *fast], out)
    wait_for(out / "trials" / f"trial_{batch - 1:04d}" / "checkpoints" / "gen_0001.pt", proc)
    time.sleep(0.3)  # in the final training
    proc.send_signal(stop)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == code, err
    assert "Traceback" not in err and "interrupted" in err
    study = optuna.load_study(study_name="tune_quickstart",
                              storage=open_storage(str(out / "optuna.journal")))
    stopped = study.trials[:batch]
    assert all(t.state == TrialState.FAIL for t in stopped)
    waiting = study.get_trials(states=(TrialState.WAITING,))
    assert [t.system_attrs["fixed_params"] for t in waiting] == [t.params for t in stopped]
    assert not study.get_trials(states=(TrialState.RUNNING,))
    quick = fast  # a continued study keeps its config
    assert main(["tune", tq, "--out", str(out), "--n-trials", str(batch), *quick]) == 0
    again = study.trials[batch:]
    assert [t.state for t in again] == [TrialState.COMPLETE] * batch
    assert [t.params for t in again] == [t.params for t in stopped]


def test_a_continued_study_samples_new_parameters(tmp_path):
    import optuna
    from optuna.trial import TrialState

    from neuroprune.config import load_config
    from neuroprune.tuning.storage import open_storage
    from neuroprune.tuning.tune import Tuner

    cfg = load_config(REPO / "configs" / "tune_quickstart.yaml",
                      ["method.population=3", "method.generations=1", "training.epochs=1",
                       "model.widths=[8]", "tune.pruner=none", "tune.sampler=random"])
    out = tmp_path / "t"
    for _ in range(2):
        Tuner(cfg, out, n_trials=2).run(progress=False)
    study = optuna.load_study(study_name="tune_quickstart",
                              storage=open_storage(str(out / "optuna.journal")))
    params = [tuple(sorted(t.params.items()))
              for t in study.get_trials(states=(TrialState.COMPLETE,))]
    assert len(params) == 4 and len(set(params)) == 4


def test_sigkill_at_random_moments_in_tune_loses_and_repeats_no_trial(tmp_path):
    import optuna
    from optuna.trial import TrialState

    from neuroprune.tuning.storage import open_storage

    out, rng = tmp_path / "tune", random.Random(7)
    tq = str(REPO / "configs" / "tune_quickstart.yaml")
    fast = ["--set", "method.population=4", "--set", "method.generations=2", "--set",
            "training.epochs=2", "--set", "model.widths=[16]", "--set", "tune.pruner=none",
            "--set", "tune.sampler=random", "--no-progress"]
    tune = ["tune", tq, "--out", str(out), *fast]
    kills = sum(killed_at_random(tune + ["--n-trials", "6"], rng, 0.0, 1.0,
                                  after=out / "trials") for _ in range(3))
    assert kills >= 2
    storage = open_storage(str(out / "optuna.journal"))
    study = optuna.load_study(study_name="tune_quickstart", storage=storage)
    waiting = len(study.get_trials(states=(TrialState.RUNNING, TrialState.WAITING)))
    assert main(tune + ["--n-trials", str(waiting + 1)]) == 0
    trials = optuna.load_study(study_name="tune_quickstart", storage=storage).trials
    assert {t.state for t in trials} <= {TrialState.COMPLETE, TrialState.FAIL}
    failed = [t for t in trials if t.state == TrialState.FAIL]
    for f in failed:  # each killed trial is run again once, with its parameters
        again = [t for t in trials if t.user_attrs.get("retried_from") == f.number]
        assert len(again) == 1 and again[0].params == f.params, f.number
    complete = [t for t in trials if t.state == TrialState.COMPLETE]
    params = [tuple(sorted(t.params.items())) for t in complete]
    assert len(set(params)) == len(params)  # nothing completed twice
    dirs = [t.user_attrs["run_dir"] for t in trials]
    assert len(set(dirs)) == len(dirs)
    for t in complete:  # each result is its own run folder's
        summary = json.loads((REPO / t.user_attrs["run_dir"]).joinpath("summary.json")
                             .read_text())
        assert t.value == summary["val_accuracy"]
