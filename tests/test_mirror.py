"""A run directory at a URI (here pyarrow's file:// file system: what works offline; s3://
and gs:// go through the same pyarrow calls): copied there at every committed generation,
resumed from there, refused in one line where it cannot be written."""

import json
import os
import signal
import subprocess
import sys
import time

import pytest

pytest.importorskip("pyarrow")

from neuroprune.cli import main  # noqa: E402

from helpers import REPO, assert_same_run  # noqa: E402

TINY = ["--set", "method.population=4", "--set", "method.generations=3", "--set",
        "method.search_epochs=150", "--set", "training.epochs=1", "--set", "model.widths=[16]",
        "--set", "sparsity.latency_repeats=0", "--device", "cpu", "--no-progress"]


def test_a_run_at_a_uri_is_copied_there_each_generation_and_resumes_from_there(tmp_path,
                                                                             monkeypatch):
    remote = tmp_path / "bucket" / "runs" / "k"
    uri = f"file://{remote}"
    work = tmp_path / "machine1"
    work.mkdir()
    env = {**os.environ, "PYTHONPATH": str(REPO), "OMP_NUM_THREADS": "1"}
    proc = subprocess.Popen([sys.executable, "-m", "neuroprune", "run",
                             str(REPO / "configs" / "quickstart.yaml"), *TINY, "--out", uri],
                            cwd=work, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True)
    try:
        deadline = time.time() + 120
        # a committed generation reaches the URI while the run goes on
        while not (remote / "checkpoints" / "gen_0000.pt").exists():
            assert proc.poll() is None and time.time() < deadline, proc.communicate()
            time.sleep(0.1)
        assert (remote / "ledger.jsonl").read_text().count("\n") >= 1
        proc.send_signal(signal.SIGTERM)
        _, err = proc.communicate(timeout=120)
    finally:
        proc.kill()
    assert proc.returncode == 143, err[-2000:]
    assert f"neuroprune resume {uri}" in err
    summary = json.loads((remote / "summary.json").read_text())
    assert summary["status"] == "interrupted" and summary["resume"] == f"neuroprune resume {uri}"
    assert not list(remote.rglob(".lock*"))  # the lock stays on the machine that ran it

    monkeypatch.chdir(tmp_path / "bucket")  # another machine: no staging copy here
    assert main(["resume", uri, "--no-progress"]) == 0
    local = tmp_path / "local"
    assert main(["run", str(REPO / "configs" / "quickstart.yaml"), *TINY, "--out",
                 str(local)]) == 0
    assert_same_run(local, remote)
    assert (remote / "results.csv").read_text() == (local / "results.csv").read_text()
    # old checkpoints pruned in staging are pruned at the URI too
    assert sorted(p.name for p in (remote / "checkpoints").iterdir()) == sorted(
        p.name for p in (local / "checkpoints").iterdir())


@pytest.mark.parametrize("out, says", [
    ("file://{tmp}/file/run", "cannot write at file://{tmp}/file/run: "),
    ("nosuchfs://bucket/run", "--out nosuchfs://bucket/run is no file system pyarrow can "
                              "open"),
])
def test_a_uri_that_cannot_be_written_is_one_line_before_the_run(tmp_path, monkeypatch,
                                                                 capsys, out, says):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "file").write_text("a file, not a folder")
    out, says = out.format(tmp=tmp_path), says.format(tmp=tmp_path)
    assert main(["run", "quickstart", "--out", out, "--no-progress"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith(f"neuroprune: error: {says}"), err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["file"]  # nothing written


def test_tune_out_at_a_uri_that_cannot_be_opened_is_refused_in_one_line(tmp_path, capsys):
    assert main(["tune", "tune_quickstart", "--out", "nosuchscheme://bucket/tune"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "no file system pyarrow can open" in err[0], err


def test_a_uri_without_pyarrow_gives_the_install_hint(tmp_path):
    from helpers import run_without
    proc = run_without("pyarrow", "run", "quickstart", "--out", f"file://{tmp_path}/run")
    assert proc.returncode == 2 and proc.stderr.strip() == (
        "neuroprune: error: a run directory at a URI needs the 'pyarrow' package: pip install "
        "'neuroprune[ray]'")
    assert not list(tmp_path.iterdir())


def test_a_copy_that_fails_is_one_line_naming_where_the_run_is(tmp_path):
    from neuroprune.errors import UserError
    from neuroprune.mirror import Mirror
    (tmp_path / "staged").mkdir()
    (tmp_path / "staged" / "ledger.jsonl").write_text("{}\n")
    (tmp_path / "file").write_text("a file, not a folder")
    mirror = Mirror(f"file://{tmp_path}/file/run", tmp_path / "staged")
    with pytest.raises(UserError, match=r"^cannot copy the run to file://.*/file/run: .*; the "
                       r"run so far is in .*/staged \(`neuroprune resume` continues it"):
        mirror.push()


TUNE = [str(REPO / "configs" / "tune_quickstart.yaml"), "--set", "method.population=4",
        "--set", "method.generations=2", "--set", "training.epochs=1", "--set",
        "model.widths=[16]", "--set", "tune.pruner=none", "--device", "cpu", "--no-progress"]


def test_tune_at_a_uri_keeps_trials_and_artifacts_there_and_continues(tmp_path, monkeypatch,
                                                                      capsys):
    remote = tmp_path / "bucket" / "tune"
    uri = f"file://{remote}"
    (tmp_path / "m1").mkdir()
    monkeypatch.chdir(tmp_path / "m1")
    assert main(["tune", *TUNE, "--n-trials", "1", "--out", uri]) == 0
    printed = capsys.readouterr().out
    assert f"trials, artifacts and study at {uri}" in printed
    assert f"storage {uri}/optuna.journal" in printed
    assert (remote / "optuna.journal").is_file()
    import optuna

    from neuroprune.tuning.storage import open_storage
    trials = optuna.load_study(study_name="tune_quickstart", storage=open_storage(
        str(remote / "optuna.journal"))).get_trials()
    assert [t.user_attrs["run_dir"] for t in trials] == [f"{uri}/trials/trial_0000"]
    assert len(list((remote / "trials").rglob("summary.json"))) == 1
    assert any(p.is_file() for p in (remote / "artifacts").rglob("*"))
    (tmp_path / "m2").mkdir()
    monkeypatch.chdir(tmp_path / "m2")  # another machine continues the study from the URI
    assert main(["tune", *TUNE, "--n-trials", "1", "--out", uri]) == 0
    assert len(list((remote / "trials").rglob("summary.json"))) == 2
    assert "2 complete" in capsys.readouterr().out
    (tmp_path / "m3").mkdir()
    monkeypatch.chdir(tmp_path / "m3")  # no staging copy: the mask comes from the URI
    import shutil
    for m in ("m1", "m2"):
        shutil.rmtree(tmp_path / m)
    assert main(["export", "--storage", f"{uri}/optuna.journal", "--study", "tune_quickstart",
                 "--trial", "1", "--out", "m.safetensors"]) == 0, capsys.readouterr().err
    assert (tmp_path / "m3" / "m.safetensors").stat().st_size > 0


def test_tune_at_an_unwritable_uri_is_refused_in_one_line(tmp_path, monkeypatch, capsys):
    (tmp_path / "file").write_text("x")
    monkeypatch.chdir(tmp_path)
    assert main(["tune", *TUNE, "--n-trials", "1", "--out",
                 f"file://{tmp_path / 'file' / 'tune'}"]) == 2
    err = capsys.readouterr().err
    assert "cannot write at" in err and len(err.strip().splitlines()) == 1
    assert not (tmp_path / "runs" / "staged" / "file").exists() or not any(
        (tmp_path / "runs" / "staged").rglob("*.journal"))


def test_dashboard_artifacts_at_an_empty_uri_is_refused_in_one_line(tmp_path, capsys):
    pytest.importorskip("optuna_dashboard")
    assert main(["dashboard", "--storage", str(tmp_path / "optuna.journal"), "--artifacts",
                 f"file://{tmp_path / 'nothing'}"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "holds no artifacts" in err[0], err


def test_a_commit_in_another_thread_reaches_the_uri(tmp_path):
    """Optuna runs ``tune --n-jobs`` trials in a thread pool, which does not inherit the
    mirror's context: a run folder committed there is sent all the same."""
    import threading

    from neuroprune.mirror import Mirror, synced
    local = tmp_path / "staged"
    (local / "trials" / "t0").mkdir(parents=True)
    (local / "trials" / "t0" / "summary.json").write_text("{}")
    remote = tmp_path / "bucket"
    with Mirror(f"file://{remote}", local).active():
        worker = threading.Thread(target=synced, args=(local / "trials" / "t0",))
        worker.start()
        worker.join()
        assert (remote / "trials" / "t0" / "summary.json").is_file()  # before the end


def test_database_urls_are_not_taken_for_a_tune_at_a_uri():
    from neuroprune.tuning.storage import is_database_url
    for url in ("redis://127.0.0.1:6379/1", "postgresql://u@h/db", "postgres://u@h/db",
                "mysql+pymysql://u@h/db", "mariadb://u@h/db", "sqlite:///s.db",
                "journal:///runs/t/optuna.journal"):
        assert is_database_url(url), url
    for url in ("file:///b/t/optuna.journal", "s3://b/t/optuna.journal", "gs://b/t"):
        assert not is_database_url(url), url
