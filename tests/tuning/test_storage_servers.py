"""Studies on real servers (PostgreSQL, MariaDB through PyMySQL, Redis): several worker
processes on one study, one of them killed with SIGKILL mid-trial, the dashboard and export
reading the same study; bad URLs, missing drivers and unreachable servers."""

import json
import os
import signal
import subprocess
import sys
import time

import optuna
import pytest
from optuna.trial import TrialState

from neuroprune.cli import main
from neuroprune.tuning.storage import open_storage

from helpers import REPO, run_cli
from servers import SERVERS, dashboard, get_json

TQ = str(REPO / "configs" / "tune_quickstart.yaml")
FAST = ["method.population=4", "method.generations=2", "training.epochs=2",
        "model.widths=[16]", "tune.pruner=none"]
STUDY = "workers"


@pytest.fixture(params=sorted(SERVERS))
def server_url(request):
    with SERVERS[request.param]() as url:
        yield url


def _tune_args(url: str, out, n_trials: int) -> list[str]:
    return ["tune", TQ, "--storage", url, "--study", STUDY, "--out", str(out), "--n-trials",
            str(n_trials), "--no-progress"] + [a for f in FAST for a in ("--set", f)]


def _running_trial_of(url: str, pid: int, deadline: float):
    """Poll the study until process ``pid`` is inside a trial; return that trial."""
    storage = open_storage(url)
    while time.time() < deadline:
        try:
            study = optuna.load_study(study_name=STUDY, storage=storage)
        except KeyError:  # not created yet
            study = None
        for t in study.get_trials(states=(TrialState.RUNNING,)) if study else []:
            if t.user_attrs.get("pid") == pid:
                return t
        time.sleep(0.05)
    raise AssertionError(f"process {pid} started no trial in time")


def test_four_workers_one_killed_mid_trial_lose_and_repeat_nothing(server_url, tmp_path):
    out = tmp_path / "out"
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONUNBUFFERED": "1"}
    cmd = [sys.executable, "-m", "neuroprune"] + _tune_args(server_url, out, 2)
    workers = [subprocess.Popen(cmd, env=env, cwd=REPO, stdout=subprocess.DEVNULL,
                                stderr=subprocess.PIPE, text=True) for _ in range(4)]
    victim = workers[0]
    killed = _running_trial_of(server_url, victim.pid, time.time() + 120)
    victim.send_signal(signal.SIGKILL)
    victim.wait()
    for w in workers[1:]:
        _, err = w.communicate(timeout=300)
        assert w.returncode == 0, err
    # a later call recovers the trial if the others had finished before it was found dead
    later = run_cli(*_tune_args(server_url, out, 1))
    assert later.returncode == 0, later.stderr
    assert f"storage {server_url}" in later.stdout  # (these URLs carry no password)

    study = optuna.load_study(study_name=STUDY, storage=open_storage(server_url))
    trials = study.get_trials()
    by_state = {s: [t for t in trials if t.state == s] for s in TrialState}
    before_kill = [t for t in by_state[TrialState.COMPLETE] if t.user_attrs["pid"] == victim.pid]
    assert len(by_state[TrialState.COMPLETE]) == len(before_kill) + 3 * 2 + 1
    assert [t.number for t in by_state[TrialState.FAIL]] == [killed.number]
    assert not by_state[TrialState.RUNNING] and not by_state[TrialState.WAITING]
    params = [tuple(sorted(t.params.items())) for t in by_state[TrialState.COMPLETE]]
    assert len(set(params)) == len(params)  # every parameter set completed exactly once
    retried = [t for t in trials if t.user_attrs.get("retried_from") == killed.number]
    assert len(retried) == 1 and retried[0].state == TrialState.COMPLETE
    assert retried[0].params == killed.params
    assert len({t.user_attrs["run_dir"] for t in trials}) == len(trials)
    assert study.metric_names == ["val_accuracy"]

    # the dashboard and export read the same study
    with dashboard(server_url, "--artifacts", str(out / "artifacts")) as (base, _):
        (summary,) = get_json(f"{base}/api/studies")["study_summaries"]
        assert summary["study_name"] == STUDY
        detail = get_json(f"{base}/api/studies/{summary['study_id']}?after=0")
        assert sorted(t["state"] for t in detail["trials"]) == ["Complete"] * 7 + ["Fail"]
    best = tmp_path / "best.safetensors"
    exported = run_cli("export", "--storage", server_url, "--study", STUDY, "--out", str(best))
    assert exported.returncode == 0, exported.stderr
    assert best.is_file()


def test_unreachable_servers_and_bad_urls_are_one_line_errors(tmp_path, capsys):
    out = tmp_path / "never"
    for url, says in [("postgresql://postgres@127.0.0.1:1/nodb", "Connection refused"),
                      ("mysql+pymysql://root@127.0.0.1:1/nodb", "Connection refused"),
                      ("redis://127.0.0.1:1/0", "Connection refused"),
                      ("mysql://root@127.0.0.1/test", "mysql+pymysql://"),
                      ("postgres://u@h/db", "postgresql://"),
                      ("mongodb://127.0.0.1/x", "unknown storage URL"),
                      ("redis://u:secret@127.0.0.1:1/0", "u:***@")]:
        assert main(_tune_args(url, out, 1)) == 2, url
        err = capsys.readouterr().err
        assert says in err and len(err.strip().splitlines()) == 1, err
        assert "secret" not in err
        assert not out.exists()  # nothing written
        assert main(["dashboard", "--storage", url]) == 2
        assert main(["export", "--storage", url, "--study", STUDY, "--out",
                     str(out / "x.safetensors")]) == 2
        capsys.readouterr()


def test_a_missing_database_is_named(tmp_path, capsys):
    with SERVERS["postgresql"]() as url:
        assert main(_tune_args(url + "_gone", tmp_path / "o", 1)) == 2
        assert "does not exist" in capsys.readouterr().err


def test_a_missing_driver_names_the_extra_to_install(tmp_path):
    drivers = {"postgresql://postgres@127.0.0.1/test": "postgres",
               "mysql+pymysql://root@127.0.0.1/test": "mysql",
               "redis://127.0.0.1:6379/0": "redis"}
    code = ("import json, sys\n"
            "sys.modules.update(dict.fromkeys(['psycopg', 'psycopg2', 'pymysql', 'redis']))\n"
            "from neuroprune.cli import main\n"
            "for url in sys.argv[2:]:\n"
            "    args = [url if a == 'URL' else a for a in json.loads(sys.argv[1])]\n"
            "    print(main(args), flush=True)")
    args = json.dumps(_tune_args("URL", tmp_path / "o", 1))
    proc = subprocess.run([sys.executable, "-c", code, args, *drivers], capture_output=True,
                          text=True, cwd=REPO)
    assert proc.stdout.split() == ["2"] * len(drivers), proc.stderr
    errors = proc.stderr.strip().splitlines()
    assert len(errors) == len(drivers) and "Traceback" not in proc.stderr
    for line, extra in zip(errors, drivers.values()):
        assert line.endswith(f"pip install 'neuroprune[{extra}]'"), line
    assert not (tmp_path / "o").exists()


def test_ray_tune_trials_on_postgresql_all_land_and_are_pruned(tmp_path):
    pytest.importorskip("ray")
    with SERVERS["postgresql"]() as url:
        study = optuna.create_study(study_name=STUDY, storage=open_storage(url),
                                    direction="maximize")
        good, bad = 0.3, 1e-5  # bad: the network learns nothing, the median pruner stops it
        for lr in (good, good, bad, bad, bad):
            study.enqueue_trial({"training.lr": lr})
        args = _tune_args(url, tmp_path / "ray", 5) + [
            "--backend", "ray", "--set", "ray.max_concurrent_trials=2",
            "--set", "tune.pruner=median", "--set", "method.generations=3",
            "--set", "tune.params={training.lr: {type: float, low: 1.0e-6, high: 0.5, log: true}}"]
        proc = run_cli(*args)
        assert proc.returncode == 0, proc.stderr[-3000:]
        trials = study.get_trials()
        assert len(trials) == 5 and all(t.user_attrs.get("ray_trial_id") for t in trials)
        states = {t.number: t.state for t in trials}
        assert {states[0], states[1]} == {TrialState.COMPLETE}
        pruned = [t for t in trials if t.state == TrialState.PRUNED]
        assert pruned and all(t.params["training.lr"] == bad for t in pruned)
        assert set(states.values()) <= {TrialState.COMPLETE, TrialState.PRUNED}
        assert f"{len(pruned)} pruned" in proc.stdout


def test_of_two_processes_failing_one_stale_trial_exactly_one_wins(server_url):
    from neuroprune.tuning.tune import fail_trial

    first = optuna.create_study(study_name=STUDY, storage=open_storage(server_url))
    second = optuna.load_study(study_name=STUDY, storage=open_storage(server_url))  # apart
    stale = first.ask()
    second.get_trials()  # the second process has seen the trial RUNNING
    assert fail_trial(first, stale.number) is True
    assert fail_trial(second, stale.number) is False
    assert second.trials[stale.number].state == TrialState.FAIL


def test_a_trial_of_another_node_is_failed_only_once_its_heartbeat_is_stale(server_url):
    from neuroprune.tuning.tune import recover_stale_trials

    study = optuna.create_study(study_name=STUDY, storage=open_storage(server_url))
    beats = {"silent": time.time() - 1000, "beating": time.time()}
    trials = {}
    for name, beat in beats.items():
        trials[name] = study.ask({"x": optuna.distributions.FloatDistribution(0, 1)})
        for key, value in {"host": "another-node", "pid": 1, "heartbeat": beat}.items():
            trials[name].set_user_attr(key, value)
    assert recover_stale_trials(study, stale_after=120, retry=1) == [trials["silent"].number]
    assert study.trials[trials["beating"].number].state == TrialState.RUNNING
    (waiting,) = study.get_trials(states=(TrialState.WAITING,))
    assert waiting.user_attrs["retried_from"] == trials["silent"].number
    retry = study.ask()  # the next worker takes the re-run, with the same parameters
    assert retry.number == waiting.number
    assert retry.suggest_float("x", 0, 1) == trials["silent"].params["x"]
