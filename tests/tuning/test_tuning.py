import json
import os
import socket
import subprocess
import sys
import threading
import time
import urllib.request

import optuna
import pytest
from optuna.trial import TrialState

from neuroprune.cli import main
from neuroprune.config import load_config
from neuroprune.tuning.storage import open_storage, repair_journal
from neuroprune.tuning.tune import Tuner

from helpers import REPO

TQ = str(REPO / "configs" / "tune_quickstart.yaml")
FAST = ["method.population=4", "method.generations=2", "training.epochs=2",
        "model.widths=[16]", "tune.pruner=none"]


def _tuner(out, n_trials=3, plots="always", **kw):
    cfg = load_config(TQ, FAST + [f"tune.trial_plots={plots}"])
    return Tuner(cfg, out, n_trials=n_trials, **kw)


def test_tune_writes_complete_trials_with_run_dirs_and_mask_artifacts(tmp_path):
    summary = _tuner(tmp_path / "t", n_trials=3).run(progress=False)
    assert summary["trials"]["complete"] == 3
    study = optuna.load_study(study_name="tune_quickstart",
                              storage=open_storage(str(tmp_path / "t" / "optuna.journal")))
    trials = study.get_trials(states=(TrialState.COMPLETE,))
    assert len(trials) == 3
    for t in trials:
        assert (tmp_path / "t" / "trials" / f"trial_{t.number:04d}" / "summary.json").is_file()
        assert t.user_attrs["summary"]["sparsity"] == pytest.approx(0.95, abs=1e-3)
        assert t.value == t.user_attrs["summary"]["val_accuracy"]
        meta = optuna.artifacts.get_all_artifact_meta(t, storage=study._storage)
        assert sorted(m.filename for m in meta) == ["best_mask.safetensors", "fitness.png"]
    # continuing the study by name adds trials to it; these trials take well under
    # PLOT_AFTER_SECONDS, so by default (auto) they get their mask but no fitness plot
    _tuner(tmp_path / "t", n_trials=1, plots="auto").run(progress=False)
    trials = study.get_trials(states=(TrialState.COMPLETE,))
    assert len(trials) == 4
    meta = optuna.artifacts.get_all_artifact_meta(trials[-1], storage=study._storage)
    assert [m.filename for m in meta] == ["best_mask.safetensors"]
    trial_summary = (tmp_path / "t" / "trials" / "trial_0003" / "summary.json").read_text()
    assert "latency_b" not in trial_summary  # no timing unless an objective needs it


def test_multi_objective_reports_a_pareto_front(tmp_path):
    space = "tune.params={sparsity.target: {type: float, low: 0.8, high: 0.98}}"
    cfg = load_config(TQ, FAST + ["tune.objectives=[val_accuracy, sparsity]", space])
    summary = Tuner(cfg, tmp_path / "m", n_trials=3).run(progress=False)
    assert summary["pareto_front"] and all(len(p["values"]) == 2 for p in summary["pareto_front"])


def test_pruner_reports_are_made_per_generation(tmp_path):
    cfg = load_config(TQ, FAST + ["tune.pruner=median"])
    Tuner(cfg, tmp_path / "p", n_trials=3).run(progress=False)
    study = optuna.load_study(study_name="tune_quickstart",
                              storage=open_storage(str(tmp_path / "p" / "optuna.journal")))
    for t in study.trials:  # every generation, also one whose masks were all carried over
        assert set(t.intermediate_values) == {0, 1}


def test_four_processes_on_one_journal_lose_no_trial(tmp_path):
    out = tmp_path / "shared"
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    cmd = [sys.executable, "-m", "neuroprune", "tune", TQ, "--out", str(out), "--n-trials", "2",
           "--no-progress"] + [a for f in FAST for a in ("--set", f)]
    procs = [subprocess.Popen(cmd, env=env, cwd=REPO, stdout=subprocess.DEVNULL,
                              stderr=subprocess.PIPE, text=True) for _ in range(4)]
    for p in procs:
        _, err = p.communicate(timeout=600)
        assert p.returncode == 0, err
    study = optuna.load_study(study_name="tune_quickstart",
                              storage=open_storage(str(out / "optuna.journal")))
    assert len(study.get_trials(states=(TrialState.COMPLETE,))) == 8
    assert len({t.number for t in study.trials}) == len(study.trials) == 8
    dirs = {t.user_attrs["run_dir"] for t in study.trials}
    assert len(dirs) == 8


def _dead_pid():
    p = subprocess.Popen([sys.executable, "-c", "pass"])
    p.wait()
    return p.pid


def test_trial_of_a_killed_process_is_failed_and_retried(tmp_path):
    out = tmp_path / "z"
    out.mkdir()
    storage = open_storage(str(out / "optuna.journal"))
    study = optuna.create_study(study_name="tune_quickstart", storage=storage,
                                direction="maximize")  # as the config says
    zombie = study.ask({"training.lr": optuna.distributions.FloatDistribution(0.02, 0.3, log=True)})
    zombie.set_user_attr("host", socket.gethostname())
    zombie.set_user_attr("pid", _dead_pid())
    zombie.set_user_attr("heartbeat", time.time())
    _tuner(out, n_trials=1).run(progress=False)
    trials = study.get_trials()
    assert trials[zombie.number].state == TrialState.FAIL
    retried = [t for t in trials if t.user_attrs.get("retried_from") == zombie.number]
    assert len(retried) == 1 and retried[0].state == TrialState.COMPLETE
    assert retried[0].params["training.lr"] == zombie.params["training.lr"]
    assert not study.get_trials(states=(TrialState.RUNNING,))


def test_torn_journal_line_and_stale_lock_are_handled(tmp_path):
    out = tmp_path / "j"
    _tuner(out, n_trials=1).run(progress=False)
    journal = out / "optuna.journal"
    with open(journal, "ab") as f:
        f.write(b'{"op_code": 5, "worker_id": "x", "trial_id": 0, "par')  # killed mid-append
    lock = journal.with_name(journal.name + ".lock")
    lock.write_text("")
    old = time.time() - 3600
    os.utime(lock, (old, old))  # left behind by a killed writer
    _tuner(out, n_trials=1).run(progress=False)
    assert journal.read_bytes().endswith(b"\n")
    study = optuna.load_study(study_name="tune_quickstart", storage=open_storage(str(journal)))
    assert len(study.get_trials(states=(TrialState.COMPLETE,))) == 2
    assert repair_journal(journal) is False


def test_unsafe_or_unreachable_storage_is_refused(tmp_path, capsys):
    base = ["tune", TQ, "--out", str(tmp_path / "s"), "--no-progress"]
    assert main(base + ["--storage", f"sqlite:///{tmp_path}/db.sqlite", "--n-jobs", "2"]) == 2
    assert "database is locked" in capsys.readouterr().err
    assert main(base + ["--storage", "postgresql://nobody@127.0.0.1:1/nodb"]) == 2
    assert "cannot open storage" in capsys.readouterr().err
    assert main(["tune", str(REPO / "configs" / "quickstart.yaml"), "--out",
                 str(tmp_path / "n")]) == 2
    assert "no 'tune:' section" in capsys.readouterr().err
    nope = "tune.params={training.nope: {type: float, low: 0, high: 1}}"
    assert main(base + ["--set", nope]) == 2
    assert "training.nope" in capsys.readouterr().err


def _free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_dashboard_serves_the_study_over_http(tmp_path):
    _tuner(tmp_path / "d", n_trials=2).run(progress=False)
    port = _free_port()
    log = open(tmp_path / "dashboard.log", "w")  # not a pipe nobody reads while it serves
    proc = subprocess.Popen([sys.executable, "-m", "neuroprune", "dashboard", "--storage",
                             str(tmp_path / "d"), "--host", "127.0.0.1", "--port", str(port)],
                            cwd=REPO, stdout=subprocess.DEVNULL, stderr=log, text=True)
    try:
        deadline, body = time.time() + 60, None
        while time.time() < deadline:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/api/studies",
                                            timeout=2) as r:
                    body = json.loads(r.read())
                break
            except OSError:
                assert proc.poll() is None, (tmp_path / "dashboard.log").read_text()
                time.sleep(0.3)
        assert body is not None, "dashboard did not answer"
        studies = body["study_summaries"]
        assert [s["study_name"] for s in studies] == ["tune_quickstart"]
        sid = studies[0]["study_id"]
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/api/studies/{sid}?after=0",
                                    timeout=5) as r:
            detail = json.loads(r.read())
        assert len(detail["trials"]) == 2
        assert all(t["state"] == "Complete" for t in detail["trials"])
        assert detail["objective_names"] == ["val_accuracy"]
        for t in detail["trials"]:  # a note with the summary, the fitness plot beside the mask
            assert f"## Trial {t['number']}: complete" in t["note"]["body"]
            assert "| validation accuracy |" in t["note"]["body"]
            assert {a["filename"] for a in t["artifacts"]} == {"best_mask.safetensors",
                                                               "fitness.png"}
        assert "test_accuracy" not in json.dumps(detail)  # nothing to select on the test split

        # SIGTERM stops it while it answers requests (its request handler swallows exceptions)
        stop = threading.Event()

        def ask():
            while not stop.is_set():
                try:
                    with urllib.request.urlopen(
                            f"http://127.0.0.1:{port}/api/studies/{sid}?after=0", timeout=2) as r:
                        r.read()
                except OSError:
                    pass
        askers = [threading.Thread(target=ask, daemon=True) for _ in range(3)]
        for t in askers:
            t.start()
        time.sleep(1.0)
        proc.terminate()
        assert proc.wait(timeout=10) == 143
        stop.set()
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.wait(timeout=10)


KIND_CONFIGS = {
    "activation_search": ("activation_digits.yaml", [
        "activation.population=2", "activation.generations=1", "activation.search_epochs=1",
        "activation.strategies=[relu, ga]", "training.epochs=1", "model.widths=[8, 8, 8]"],
        "best_activations.json"),
    "ensemble_search": ("ensemble_breast_cancer.yaml", [
        "ensemble.population=4", "ensemble.generations=2", "ensemble.pool=[knn3, gnb, tree]"],
        None),
    "private_training": ("private_digits.yaml", ["training.epochs=1", "model.widths=[16]"],
                         None),
    "neuroevolution": ("neat_ci.yaml", [
        "neuroevolution.environments=[CartPole-v1]", "neuroevolution.seeds=[0]",
        "neuroevolution.population=4", "neuroevolution.generations=2"],
        "best_genome_CartPole-v1.safetensors"),
    "rbm_connectivity": ("rbm_digits.yaml", [
        "rbm.epochs=2", "rbm.hidden=8", "rbm.full_hidden=2", "rbm.eval_every=1",
        "rbm.ais_runs=8", "rbm.ais_betas=100"], "learned_mask.safetensors"),
}
#: objectives of the kinds that have no val_accuracy
KIND_OBJECTIVES = {"neuroevolution": "[reward]", "rbm_connectivity": "[val_log_likelihood]"}


@pytest.mark.parametrize("kind", sorted(__import__("neuroprune.searches.registry",
                                                   fromlist=["KINDS"]).KINDS))
def test_tune_runs_the_kind_its_config_names(tmp_path, kind):
    """Every kind is tuned as that kind, or refused in one clear line (a test over the
    registry: a new kind must say which)."""
    from neuroprune.errors import ConfigError
    from neuroprune.searches.registry import KINDS
    cls = KINDS.load(kind)
    if kind == "mask_search":
        name, over, artifact = "tune_quickstart.yaml", FAST, "best_mask.safetensors"
    elif kind in KIND_CONFIGS:
        name, over, artifact = KIND_CONFIGS[kind]
    else:
        assert cls.not_tunable, f"kind {kind} is neither tunable nor says why"
        cfg = load_config(REPO / "configs" / "quickstart.yaml",
                          [f"kind={kind}", "tune={params: {training.lr: {type: float, "
                                           "low: 0.01, high: 0.1}}}"])
        with pytest.raises(ConfigError, match=f"kind {kind} cannot be tuned"):
            Tuner(cfg, tmp_path / "x")
        assert not (tmp_path / "x").exists()
        return
    objectives = KIND_OBJECTIVES.get(kind, "[val_accuracy]")
    cfg = load_config(REPO / "configs" / name, over + [
        "tune={params: {seed: {type: int, low: 0, high: 3}}, pruner: none, "
        f"objectives: {objectives}}}"])
    summary = Tuner(cfg, tmp_path / "t", n_trials=1).run(progress=False)
    assert summary["trials"]["complete"] == 1
    trial_dir = tmp_path / "t" / "trials" / "trial_0000"
    assert json.loads((trial_dir / "summary.json").read_text()).get("kind", "mask_search") == kind
    if artifact:
        assert (trial_dir / artifact).is_file()
    # the kinds whose network is a masked classifier keep it as the best mask; no other
    if kind in ("mask_search", "private_training"):
        assert (trial_dir / "best_mask.safetensors").is_file()
    else:
        assert not (trial_dir / "best_mask.safetensors").exists()


def _two_trials(tmp_path, kind, params, objectives):
    name, over, _ = KIND_CONFIGS[kind]
    cfg = load_config(REPO / "configs" / name, over + [
        f"tune={{params: {params}, pruner: none, objectives: {objectives}}}"])
    summary = Tuner(cfg, tmp_path / "t", n_trials=2).run(progress=False)
    assert summary["trials"]["complete"] == 2
    return summary


def test_neat_tuning_maximises_the_reward_it_reports(tmp_path):
    """Two trials over NEAT's population: each trial's value is its run's NEAT reward, and
    the best trial is the one with the highest."""
    summary = _two_trials(tmp_path, "neuroevolution", "{neuroevolution.population: {type: int, "
                          "low: 3, high: 6}}", "[reward]")
    rewards = [json.loads((tmp_path / "t" / "trials" / f"trial_{i:04d}" / "summary.json")
                          .read_text())["reward"] for i in range(2)]
    assert summary["best"]["value"] == pytest.approx(max(rewards))
    assert all(r > 0 for r in rewards)  # CartPole pays 1 per step kept up


def test_private_tuning_trades_accuracy_against_epsilon(tmp_path):
    pytest.importorskip("opacus")
    summary = _two_trials(tmp_path, "private_training", "{training.privacy.epsilon: {type: "
                          "float, low: 0.5, high: 8, log: true}}", "[val_accuracy, epsilon]")
    front = summary["pareto_front"]
    assert front and all(0 < t["values"][1] <= 8.0 for t in front)


def test_rbm_tuning_optimises_the_validation_log_likelihood(tmp_path, capsys):
    """`neuroprune tune` of the shipped RBM config, two tiny trials: each trial's value is
    the validation log-likelihood of its learned RBM, never the test split's."""
    name, over, _ = KIND_CONFIGS["rbm_connectivity"]
    sets = [a for o in over for a in ("--set", o)]
    out = tmp_path / "t"
    assert main(["tune", str(REPO / "configs" / name), *sets, "--n-trials", "2",
                 "--out", str(out), "--no-progress"]) == 0
    study = optuna.load_study(study_name="rbm_digits",
                              storage=open_storage(str(out / "optuna.journal")))
    trials = study.get_trials(states=(TrialState.COMPLETE,))
    assert len(trials) == 2 and study.metric_names == ["val_log_likelihood"]
    for t in trials:
        run = json.loads((out / "trials" / f"trial_{t.number:04d}" / "summary.json")
                         .read_text())
        learned = run["variants"]["learned"]
        assert run["objective_variant"] == "learned"
        assert t.value == learned["val_log_likelihood"] == run["val_log_likelihood"]
        assert t.value != learned["test_log_likelihood"]
        assert t.user_attrs["summary"]["val_log_likelihood"] == t.value
        assert not any("test" in k for k in t.user_attrs["summary"])  # none in the dashboard
        assert set(t.params) == {"rbm.lr", "rbm.strength_lr"}


def test_the_rbm_objective_never_reads_the_test_split(tmp_path, monkeypatch):
    """Test images made meaningless change every test figure of a trial and not its
    objective: the test split never feeds what the study optimises."""
    import neuroprune.searches.rbm_connectivity as rbm
    name, over, _ = KIND_CONFIGS["rbm_connectivity"]
    values = {}
    real = rbm.binarised
    for garbled in (False, True):
        def splits(bench, garbled=garbled):
            train, val, test = real(bench)
            return train, val, (1 - test if garbled else test)
        monkeypatch.setattr(rbm, "binarised", splits)
        cfg = load_config(REPO / "configs" / name, over + ["tune.n_trials=1"])
        out = tmp_path / f"t{int(garbled)}"
        Tuner(cfg, out).run(progress=False)
        trial = json.loads((out / "trials" / "trial_0000" / "summary.json").read_text())
        values[garbled] = (trial["val_log_likelihood"],
                           trial["variants"]["learned"]["test_log_likelihood"])
    assert values[True][0] == values[False][0]
    assert values[True][1] != values[False][1]


@pytest.mark.parametrize("objective", ["test_log_likelihood", "test_accuracy"])
def test_tuning_on_a_test_figure_is_refused(tmp_path, objective):
    from neuroprune.errors import ConfigError
    with pytest.raises(ConfigError, match=f"{objective} cannot be a tuning objective.*use "
                                          f"{objective.replace('test_', 'val_')}"):
        cfg = load_config(REPO / "configs" / "rbm_digits.yaml",
                          [f"tune.objectives=[{objective}]"])
        Tuner(cfg, tmp_path / "x")
    assert not (tmp_path / "x").exists()


def test_a_kind_without_an_objective_says_which_it_has(tmp_path):
    from neuroprune.errors import ConfigError
    cfg = load_config(REPO / "configs" / "rbm_digits.yaml", ["tune.objectives=[val_accuracy]"])
    with pytest.raises(ConfigError, match="no objective val_accuracy; choose from "
                                          "val_log_likelihood, val_reconstruction_error"):
        Tuner(cfg, tmp_path / "x")


def _replayed(tmp_path, name, batch, params):
    cfg = load_config(TQ, FAST)
    tuner = Tuner(cfg, tmp_path / name, n_trials=len(params), batch=batch)
    study = tuner._study(open_storage(str(tmp_path / name / "optuna.journal")))
    for p in params:
        study.enqueue_trial(p)
    tuner.run(progress=False)
    trials = sorted(study.get_trials(states=(TrialState.COMPLETE,)), key=lambda t: t.number)
    return trials


def test_a_batch_of_trials_gives_the_unbatched_results(tmp_path):
    """The same proposals, replayed: trained as one population, each trial scores what it
    scores alone (float rounding aside), with its own run folder and artifacts."""
    params = [{"training.lr": lr, "method.fitness.magnitude": m, "method.fitness.gradient": g,
               "method.mutation_rate": r}
              for lr, m, g, r in ((0.05, 0.1, 0.0, 0.05), (0.2, 0.5, 0.3, 0.1),
                                  (0.1, 0.0, 0.8, 0.02), (0.03, 0.9, 0.1, 0.15))]
    alone = _replayed(tmp_path, "alone", 1, params)
    together = _replayed(tmp_path, "together", 4, params)
    assert [t.params for t in alone] == [t.params for t in together]
    for a, b in zip(alone, together):
        assert b.value == pytest.approx(a.value, abs=2e-3)
        run = tmp_path / "together" / "trials" / f"trial_{b.number:04d}"
        assert (run / "best_mask.safetensors").is_file() and (run / "summary.json").is_file()
        assert b.user_attrs["best_mask_artifact"]


def test_a_pruned_trial_leaves_its_batch_and_the_others_finish(tmp_path):
    cfg = load_config(TQ, ["method.population=4", "method.generations=3", "training.epochs=1",
                           "model.widths=[32]", "sparsity.target=0.8", "method.search_epochs=2",
                           "tune.pruner=median",
                           "tune.params={training.lr: {type: float, low: 1e-6, high: 0.3, "
                           "log: true}}"])
    tuner = Tuner(cfg, tmp_path / "p", n_trials=6, batch=3)
    study = tuner._study(open_storage(str(tmp_path / "p" / "optuna.journal")))
    for lr in (0.1, 0.1, 0.1, 0.1, 1e-6, 1e-6):  # the second batch: two cannot learn
        study.enqueue_trial({"training.lr": lr})
    tuner.run(progress=False)
    states = [t.state for t in sorted(study.trials, key=lambda t: t.number)]
    assert states[:4] == [TrialState.COMPLETE] * 4  # the good one of the batch finished
    assert states[4:] == [TrialState.PRUNED] * 2


def _running_trials_of(journal, pid, deadline):
    """Poll the study until process ``pid`` has a trial RUNNING; return its trials."""
    storage = open_storage(str(journal))
    while time.time() < deadline:
        try:
            study = optuna.load_study(study_name="tune_quickstart", storage=storage)
        except KeyError:  # not created yet
            study = None
        mine = [t for t in (study.get_trials(states=(TrialState.RUNNING,)) if study else [])
                if t.user_attrs.get("pid") == pid]
        if mine:
            return mine
        time.sleep(0.05)
    raise AssertionError(f"process {pid} started no trial in time")


def test_batches_of_two_processes_one_killed_lose_and_repeat_nothing(tmp_path):
    """Two ``tune --batch 2`` processes on one journal; one is killed mid-batch. Its
    trials are failed and re-run once each with their parameters; no trial is lost or
    completed twice."""
    out = tmp_path / "b"
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    fast = [a for f in FAST + ["method.generations=3"] for a in ("--set", f)]
    cmd = [sys.executable, "-m", "neuroprune", "tune", TQ, "--out", str(out), "--batch", "2",
           "--no-progress"] + fast
    victim, survivor = [subprocess.Popen(cmd + ["--n-trials", "4"], env=env, cwd=REPO,
                                         stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                                         text=True) for _ in range(2)]
    killed = _running_trials_of(out / "optuna.journal", victim.pid, time.time() + 300)
    victim.kill()
    victim.wait()
    killed_at = time.time()
    _, err = survivor.communicate(timeout=600)
    assert survivor.returncode == 0, err
    # A trial the victim asked but had not yet marked (no pid, no heartbeat) is stale two
    # heartbeat intervals after its start: start the later call after that.
    from neuroprune.tuning.heartbeat import beat_interval
    time.sleep(max(0.0, killed_at + 2 * beat_interval(120.0) + 1 - time.time()))
    later = subprocess.run(cmd + ["--n-trials", "2"], env=env, cwd=REPO, capture_output=True,
                           text=True, timeout=600)  # picks up whatever is still stale
    assert later.returncode == 0, later.stderr

    study = optuna.load_study(study_name="tune_quickstart",
                              storage=open_storage(str(out / "optuna.journal")))
    trials = study.get_trials()
    by_state = {s: [t for t in trials if t.state == s] for s in TrialState}
    assert not by_state[TrialState.RUNNING] and not by_state[TrialState.WAITING]
    failed = {t.number for t in by_state[TrialState.FAIL]}
    assert failed and failed >= {t.number for t in killed}
    # (a trial killed between its ask and its first heartbeat has no pid yet)
    assert all(t.user_attrs.get("pid", victim.pid) == victim.pid
               for t in by_state[TrialState.FAIL])
    for number in failed:  # each re-run exactly once, with its parameters, and completed
        (retry,) = [t for t in trials if t.user_attrs.get("retried_from") == number]
        assert retry.state == TrialState.COMPLETE
        # with the parameters it had drawn (one killed while drawing them had only some:
        # the retry draws the rest)
        assert trials[number].params.items() <= retry.params.items()
    params = [tuple(sorted(t.params.items())) for t in by_state[TrialState.COMPLETE]]
    assert len(set(params)) == len(params)  # no parameter set completed twice
    # every trial that got a run folder has its own (one killed before it had none)
    folders = [t.user_attrs["run_dir"] for t in trials if "run_dir" in t.user_attrs]
    assert len(set(folders)) == len(folders)
    assert all("run_dir" in t.user_attrs for t in by_state[TrialState.COMPLETE])
    survivor_done = [t for t in by_state[TrialState.COMPLETE]
                     if t.user_attrs["pid"] == survivor.pid]
    assert len(survivor_done) == 4


@pytest.mark.parametrize("pruner", ["hyperband", "successive_halving"])
def test_hyperband_and_successive_halving_judge_the_generation_reports(tmp_path, pruner):
    cfg = load_config(TQ, FAST + [f"tune.pruner={pruner}"])
    assert type(cfg.tune.make_pruner()).__name__ == {
        "hyperband": "HyperbandPruner", "successive_halving": "SuccessiveHalvingPruner"}[pruner]
    Tuner(cfg, tmp_path / pruner, n_trials=3).run(progress=False)
    study = optuna.load_study(study_name="tune_quickstart",
                              storage=open_storage(str(tmp_path / pruner / "optuna.journal")))
    assert {t.state for t in study.trials} <= {TrialState.COMPLETE, TrialState.PRUNED}
    assert all(t.intermediate_values for t in study.trials)
    with pytest.raises(Exception, match="tune.pruner"):
        load_config(TQ, ["tune.pruner=asha"])


def test_a_pruned_trial_shows_how_far_it_got(tmp_path):
    from optuna_dashboard import get_note

    from neuroprune.tuning.dashboard import show_trial
    from neuroprune.tuning.storage import artifact_store

    storage = open_storage(str(tmp_path / "optuna.journal"))
    study = optuna.create_study(study_name="s", storage=storage)
    trial = study.ask()
    run_dir = tmp_path / "trials" / "trial_0000"
    show_trial(trial, run_dir, {"kind": "mask_search"}, "pruned at generation 1",
               artifact_store(str(tmp_path / "optuna.journal")))
    body = get_note(trial)
    assert body.startswith("## Trial 0: pruned at generation 1") and str(run_dir) in body
    assert "--study s --trial 0" in body


BARS = """
import sys, optuna
from neuroprune.config import load_config
from neuroprune.tuning.space import TuneConfig
from neuroprune.tuning.tune import Tuner

class PruneTheSecondTrial(optuna.pruners.BasePruner):
    def prune(self, study, trial):  # at its first report, while its bar is open
        return trial.number == 1 and trial.last_step is not None

TuneConfig.make_pruner = lambda self: PruneTheSecondTrial()
cfg = load_config(sys.argv[1], sys.argv[3:])
Tuner(cfg, sys.argv[2], n_trials=2).run(progress=True)
"""


def _line_starts(err: str, needle: str) -> bool:
    """Every ``needle`` in ``err`` starts a line (after a newline, or a bar lifted by '\\r')."""
    starts = [i for i in range(len(err)) if err.startswith(needle, i)]
    return bool(starts) and all(i == 0 or err[i - 1] in "\r\n" for i in starts)


def test_each_trial_has_a_bar_with_fitness_and_validation_accuracy(tmp_path):
    over = [f for f in FAST if f != "tune.pruner=none"] + ["method.generations=3"]
    proc = subprocess.run([sys.executable, "-c", BARS, TQ, str(tmp_path / "b"), *over],
                          cwd=REPO, capture_output=True, timeout=600)
    err = proc.stderr.decode()  # bytes: keep the bars' carriage returns
    assert proc.returncode == 0, err
    assert "Trial 1 pruned" in err and "Trial 0 finished" in err
    assert err.count("fitness=") >= 2 and "val_acc=" in err
    assert _line_starts(err, "[I ")


MID_BAR = """
import sys, optuna
from tqdm import tqdm
from neuroprune.progress import logs_above_bars

with logs_above_bars():
    bar = tqdm(total=3, desc="search", file=sys.stderr)
    bar.update(1)
    optuna.logging.get_logger("optuna").warning("a line from optuna")
    bar.update(2)
    bar.close()
"""


def test_optuna_lines_logged_while_a_bar_is_open_do_not_tear_it():
    proc = subprocess.run([sys.executable, "-c", MID_BAR], cwd=REPO, capture_output=True,
                          timeout=120)
    err = proc.stderr.decode()
    assert proc.returncode == 0, err
    assert "a line from optuna\n" in err and _line_starts(err, "[W ")
    assert "| 1/3 [" in err.split("a line from optuna")[1]  # the bar is drawn again below


def test_efficiency_objectives_are_named_for_the_dashboard(tmp_path):
    pytest.importorskip("torch_pruning")
    cfg = load_config(TQ, FAST + ["tune.objectives=[val_accuracy, flops, params, latency]",
                                  "tune.pruner=none"])
    Tuner(cfg, tmp_path / "e", n_trials=1).run(progress=False)
    study = optuna.load_study(study_name="tune_quickstart",
                              storage=open_storage(str(tmp_path / "e" / "optuna.journal")))
    assert study.metric_names == ["val_accuracy", "flops", "params", "latency"]
    assert [d.name for d in study.directions] == ["MAXIMIZE"] + ["MINIMIZE"] * 3
    flops, params, latency = study.trials[0].values[1:]
    assert flops > 0 and params > 0 and latency > 0
    bad = load_config(TQ, FAST + ["tune.objectives=[latency]", "sparsity.latency_repeats=0"])
    with pytest.raises(Exception, match="latency_repeats"):
        Tuner(bad, tmp_path / "b", n_trials=1)
