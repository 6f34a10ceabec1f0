"""A study keeps its config as a run does; trials killed before their first heartbeat, a full
disk in tune and export, a resume that fails (issue 33: D1, D2, D10-D12, D17, D18).

Every case ends in one line and exit code 2 with nothing written or changed, or survives the
fault with the study's trials neither lost nor run twice.
"""

import contextlib
import errno
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import optuna
import pytest
import yaml
from optuna.trial import TrialState

from neuroprune.cli import main
from neuroprune.rundir import RunDir
from neuroprune.tuning.storage import open_storage

from helpers import REPO

TQ = str(REPO / "configs" / "tune_quickstart.yaml")
QUICK = str(REPO / "configs" / "quickstart.yaml")
FAST = ["--set", "method.population=3", "--set", "method.generations=1", "--set",
        "training.epochs=1", "--set", "model.widths=[8]", "--set", "tune.pruner=none",
        "--set", "tune.sampler=random", "--no-progress", "--device", "cpu"]
ENV = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONUNBUFFERED": "1"}


def _study(out, name="tune_quickstart"):
    return optuna.load_study(study_name=name, storage=open_storage(str(out / "optuna.journal")))


def _snapshot(folder: Path) -> dict:
    return {p.relative_to(folder): p.read_bytes() for p in sorted(folder.rglob("*"))
            if p.is_file() and p.name != ".lock"}


def _one_line(capsys, *needles: str) -> str:
    err = capsys.readouterr().err.strip()
    assert "Traceback" not in err, err
    lines = [ln for ln in err.splitlines() if ln.strip()]
    assert len([ln for ln in lines if "error" in ln]) == 1, lines
    assert lines[-1].startswith("neuroprune: error:"), lines
    for needle in needles:
        assert needle in lines[-1], lines[-1]
    return lines[-1]


def _no_trial_lost_or_twice(study) -> None:
    """Every failed trial is run again once with its parameters, and completes; nothing
    completes twice or is left running."""
    trials = study.get_trials()
    assert {t.state for t in trials} <= {TrialState.COMPLETE, TrialState.FAIL}, trials
    for f in (t for t in trials if t.state == TrialState.FAIL):
        again = [t for t in trials if f.number in (t.user_attrs.get("retried_from"),
                                                   t.user_attrs.get("interrupted_from"))]
        assert len(again) == 1 and f.params.items() <= again[0].params.items(), f.number
        assert again[0].state == TrialState.COMPLETE
    done = [tuple(sorted(t.params.items())) for t in trials if t.state == TrialState.COMPLETE]
    assert len(done) == len(set(done))


# ------------------------------------------------------ D1, D2: a study keeps its config
@pytest.fixture(scope="module")
def studied(tmp_path_factory):
    """A study of two complete trials."""
    out = tmp_path_factory.mktemp("studied") / "t"
    assert main(["tune", TQ, "--out", str(out), "--n-trials", "2", *FAST]) == 0
    return out


@pytest.mark.parametrize("change,keys", [
    (["--set", "sparsity.target=0.5"], "sparsity.target"),
    (["--set", "tune.objectives=[val_accuracy,sparsity]"], "tune.objectives"),
    ("space", "tune.params.training.lr.high"),
    (["--seed", "3", "--set", "training.epochs=2"], "seed, training.epochs"),
])
def test_a_study_continued_with_another_config_is_refused_naming_the_keys(studied, capsys,
                                                                          tmp_path, change,
                                                                          keys):
    config = TQ
    if change == "space":  # another search space, in a config file of the same name
        config, change = tmp_path / "tune_quickstart.yaml", []
        config.write_text(Path(TQ).read_text().replace("high: 0.3", "high: 0.5"))
    before = _snapshot(studied)
    assert main(["tune", str(config), "--out", str(studied), "--n-trials", "1", *FAST,
                 *change]) == 2
    _one_line(capsys, keys, "--force-new-study")
    assert _snapshot(studied) == before  # the journal too: the record is not overwritten
    assert len(_study(studied).trials) == 2


def test_a_study_continues_where_only_the_running_changes(studied, tmp_path):
    out = tmp_path / "t"
    shutil.copytree(studied, out)
    assert main(["tune", TQ, "--out", str(out), "--n-trials", "1", *FAST, "--set",
                 "tune.sampler=tpe", "--backend", "sequential", "--set",
                 "tune.stale_after=60"]) == 0
    study = _study(out)
    assert [t.state for t in study.trials] == [TrialState.COMPLETE] * 3
    assert study.user_attrs["neuroprune_config"]["backend"] == "local"  # as first recorded


def test_force_new_study_starts_afresh_and_keeps_the_old_one(studied, tmp_path, capsys):
    out = tmp_path / "t"
    shutil.copytree(studied, out)
    old = {t.number: t.params for t in _study(out).trials}
    assert main(["tune", TQ, "--out", str(out), "--n-trials", "1", *FAST, "--set",
                 "sparsity.target=0.5", "--force-new-study"]) == 0
    assert "started afresh; the old one is kept as" in capsys.readouterr().out
    storage = open_storage(str(out / "optuna.journal"))
    names = [s.study_name for s in optuna.get_all_study_summaries(storage)]
    kept = [n for n in names if n.startswith("tune_quickstart-replaced-")]
    assert sorted(names) == sorted(["tune_quickstart", *kept]) and len(kept) == 1
    new = _study(out)
    assert len(new.trials) == 1 and new.trials[0].state == TrialState.COMPLETE
    assert new.user_attrs["neuroprune_config"]["sparsity"]["target"] == 0.5
    assert (out / "trials" / "trial_0000" / "summary.json").is_file()  # the new trial's
    was = optuna.load_study(study_name=kept[0], storage=storage)
    assert {t.number: t.params for t in was.trials} == old
    assert was.user_attrs["neuroprune_config"]["sparsity"]["target"] == 0.95
    for t in was.trials:  # its folders moved with it, and say so
        folder = Path(t.user_attrs["run_dir"])
        assert folder.parent == out / "trials" / kept[0] and (folder / "summary.json").is_file()
    # the kept study continues under its own name too, in its own folder
    assert main(["tune", TQ, "--out", str(out), "--n-trials", "1", *FAST,
                 "--study", kept[0]]) == 0
    again = optuna.load_study(study_name=kept[0], storage=storage).trials[-1]
    assert Path(again.user_attrs["run_dir"]) == out / "trials" / kept[0] / "trial_0002"


def test_another_study_in_the_same_folder_never_shares_trial_folders(studied, tmp_path):
    out = tmp_path / "t"
    shutil.copytree(studied, out)
    before = _snapshot(out / "trials")
    assert main(["tune", TQ, "--out", str(out), "--n-trials", "1", *FAST, "--set",
                 "sparsity.target=0.5", "--study", "other"]) == 0
    trial = _study(out, "other").trials[0]
    assert trial.state == TrialState.COMPLETE
    assert Path(trial.user_attrs["run_dir"]) == out / "trials" / "other" / "trial_0000"
    after = _snapshot(out / "trials")
    assert {k: v for k, v in after.items() if k.parts[0] != "other"} == before


# ------------------------------------------------------ D12: killed between ask and heartbeat
ASK_AND_DIE = """
import os, signal, sys
import optuna
from neuroprune.tuning.storage import open_storage
study = optuna.load_study(study_name="tune_quickstart", storage=open_storage(sys.argv[1]))
study.enqueue_trial({"training.lr": 0.1}) if len(sys.argv) > 2 else None
trial = study.ask()
trial.suggest_float("training.lr", 0.02, 0.3, log=True)
os.kill(os.getpid(), signal.SIGKILL)  # after the ask, before any heartbeat
"""


def test_a_trial_killed_between_ask_and_its_first_heartbeat_is_failed_by_its_age(studied,
                                                                                 tmp_path):
    out = tmp_path / "t"
    shutil.copytree(studied, out)
    proc = subprocess.run([sys.executable, "-c", ASK_AND_DIE, str(out / "optuna.journal")],
                          env=ENV, cwd=REPO, capture_output=True, text=True)
    assert proc.returncode == -signal.SIGKILL, proc.stderr
    dead = _study(out).trials[-1]
    assert dead.state == TrialState.RUNNING and "heartbeat" not in dead.user_attrs
    stale = ["--set", "tune.stale_after=2"]  # two heartbeat intervals: 1 s without one
    time.sleep(1.2)
    assert main(["tune", TQ, "--out", str(out), "--n-trials", "1", *FAST, *stale]) == 0
    study = _study(out)
    assert study.trials[dead.number].state == TrialState.FAIL
    _no_trial_lost_or_twice(study)
    assert len(study.trials) == 4  # two, the dead one, its re-run


def test_a_tune_process_killed_as_its_trial_shows_up_running_loses_nothing(studied, tmp_path):
    """A real ``tune`` process, SIGKILLed the moment its trial is RUNNING in the journal
    (before or just after its first heartbeat): the next call fails and re-runs it."""
    out = tmp_path / "t"
    shutil.copytree(studied, out)
    stale = ["--set", "tune.stale_after=2"]
    proc = subprocess.Popen([sys.executable, "-m", "neuroprune", "tune", TQ, "--out", str(out),
                             "--n-trials", "1", *FAST, *stale], env=ENV, cwd=REPO,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    journal, deadline, seen = out / "optuna.journal", time.time() + 300, 0
    size = journal.stat().st_size
    while proc.poll() is None and time.time() < deadline:
        if journal.stat().st_size != size:  # something appended: read it
            size = journal.stat().st_size
            running = _study(out).get_trials(states=(TrialState.RUNNING,))
            if running:
                proc.kill()
                seen = running[0].number
                break
        time.sleep(0.01)
    proc.wait()
    assert seen == 2, "the trial never showed up RUNNING before the process ended"
    assert _study(out).trials[seen].state == TrialState.RUNNING
    time.sleep(1.2)  # a trial without a heartbeat is failed 1 s after its start
    assert main(["tune", TQ, "--out", str(out), "--n-trials", "1", *FAST, *stale]) == 0
    study = _study(out)
    assert study.trials[seen].state == TrialState.FAIL
    _no_trial_lost_or_twice(study)
    assert len(study.get_trials(states=(TrialState.COMPLETE,))) == 3


# ------------------------------------------------------ D17, D18: a full disk, for real
@contextlib.contextmanager
def _small_disk(path: Path, size: str):
    """A real file system of ``size`` bytes at ``path`` (tmpfs; needs root)."""
    path.mkdir(parents=True)
    if os.geteuid() != 0:
        pytest.skip("a small tmpfs needs root")
    proc = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(path)],
                          capture_output=True, text=True)
    if proc.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {proc.stderr.strip()}")
    try:
        yield path
    finally:
        subprocess.run(["umount", "-l", str(path)], check=True)


def _fill(disk: Path) -> Path:
    """Fill ``disk`` up; the filler file is returned (delete it to free the space)."""
    filler = disk / "filler"
    fd = os.open(filler, os.O_WRONLY | os.O_CREAT)
    try:
        while True:
            os.write(fd, b"\0" * 4096)
    except OSError as exc:
        assert exc.errno == errno.ENOSPC
    finally:
        os.close(fd)
    return filler


@pytest.mark.parametrize("where,batch", [("artifacts", 1), ("artifacts", 2), ("trials", 1)])
def test_a_full_disk_in_tune_stops_in_one_line_and_the_trial_runs_again(studied, tmp_path,
                                                                        capsys, where, batch):
    """``artifacts``: the disk fills once the trial has trained (its mask is uploaded);
    ``trials``: before it writes anything. The study is intact, the trial runs again first."""
    out = tmp_path / "t"
    shutil.copytree(studied, out)
    with _small_disk(tmp_path / "disk", "4m") as disk:
        moved = disk / where
        shutil.copytree(out / where, moved)
        shutil.rmtree(out / where)
        (out / where).symlink_to(moved)
        filler = _fill(disk)
        args = ["tune", TQ, "--out", str(out), "--n-trials", str(batch), "--batch", str(batch),
                *FAST]
        assert main(args) == 2
        _one_line(capsys, "No space left on device", "free some space", "runs again first")
        study = _study(out)
        stopped = study.trials[2:2 + batch]
        assert [t.state for t in stopped] == [TrialState.FAIL] * batch
        waiting = study.get_trials(states=(TrialState.WAITING,))
        assert [t.system_attrs["fixed_params"] for t in waiting] == [t.params for t in stopped]
        if where == "artifacts":  # it had trained
            assert all((Path(t.user_attrs["run_dir"]) / "summary.json").is_file()
                       for t in stopped)
        assert not list(moved.rglob("*.tmp"))
        filler.unlink()  # space again
        assert main(args) == 0
    study = _study(out)
    _no_trial_lost_or_twice(study)
    assert len(study.get_trials(states=(TrialState.COMPLETE,))) == 2 + batch


@pytest.fixture(scope="module")
def finished(tmp_path_factory):
    out = tmp_path_factory.mktemp("finished") / "run"
    assert main(["run", QUICK, "--out", str(out), "--set", "method.population=3", "--set",
                 "method.generations=1", "--set", "training.epochs=1", "--set",
                 "model.widths=[16]", "--no-progress", "--device", "cpu"]) == 0
    return out


@pytest.mark.parametrize("fmt", ["safetensors", "compact", "onnx", "prune", "sparse",
                                 "state_dict"])
def test_a_full_disk_in_export_is_one_line_and_leaves_nothing(finished, tmp_path, capsys,
                                                              fmt):
    with _small_disk(tmp_path / "disk", "64k") as disk:
        _fill(disk)
        before = sorted(p.name for p in disk.iterdir())
        assert main(["export", str(finished), "--format", fmt, "--out",
                     str(disk / "net.out")]) == 2
        _one_line(capsys, "net.out", "No space left on device")
        assert sorted(p.name for p in disk.iterdir()) == before


# ------------------------------------------------------ D10, D11: resume
def test_a_runs_own_config_resumes_it(finished, tmp_path):
    shutil.copytree(finished, tmp_path / "int")
    (tmp_path / "int" / "summary.json").unlink()  # as an interrupted run leaves it
    assert main(["run", str(tmp_path / "int" / "config.yaml"), "--resume",
                 str(tmp_path / "int"), "--no-progress"]) == 0
    assert RunDir(tmp_path / "int").is_complete()


def test_every_shipped_config_reads_back_as_written():
    from neuroprune.config import changed_keys, load_config, to_dict

    for path in sorted((REPO / "configs").glob("*.yaml")):
        written = yaml.safe_load(yaml.safe_dump(to_dict(load_config(path)), sort_keys=False))
        assert changed_keys(written, to_dict(load_config(tree=written))) == [], path.name


def test_a_resume_that_fails_leaves_the_run_as_it_was(tmp_path, capsys):
    out = tmp_path / "cmp"
    cmp = ["--set", "kind=comparison", "--set", "comparison.methods=[kstarts]", "--set",
           "comparison.sparsities=[0.9]", "--set", "method.population=3", "--set",
           "method.generations=2", "--set", "method.search_epochs=1", "--set",
           "training.epochs=1", "--set", "model.widths=[8]", "--no-progress",
           "--device", "cpu"]
    assert main(["run", QUICK, "--out", str(out), *cmp]) == 0
    (out / "summary.json").unlink()
    cell = next((out / "cells").iterdir())
    (cell / "summary.json").unlink()
    for ckpt in RunDir(cell).checkpoints():
        ckpt.write_bytes(b"not a checkpoint")
    before = _snapshot(out)
    assert main(["run", QUICK, "--resume", str(out), *cmp, "--backend", "sequential"]) == 2
    _one_line(capsys, "corrupt")
    assert _snapshot(out) == before  # config.yaml still says backend: local
