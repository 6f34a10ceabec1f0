"""Nothing lost, nothing mixed: a run folder and its resume under faults.

Every test stands for one way a run folder or a resumed run could lose or mix data: a
changed config on resume, a damaged ledger, two writers, leftovers of a killed process,
Ctrl-C, SIGTERM or SIGKILL at any moment, broken files, a full disk. (A study's trials under
the same faults: tests/tuning/test_tune_faults.py.)
"""

import errno
import json
import os
import signal
import subprocess
import sys
import time

import pytest
import torch

from neuroprune.cli import main
from neuroprune.rundir import RunDir

from faults import (ENV, QUICK, STOPS, TINY, finished, killed_at_random,  # noqa: F401
                    start, unfinished, wait_for)
from helpers import REPO

def _err(capsys) -> str:
    err = capsys.readouterr().err.strip()
    assert "Traceback" not in err
    return err


def _one_error(capsys, needle: str) -> str:
    """The error line, the last of stderr (a run that began logs its engine above it)."""
    lines = _err(capsys).splitlines()
    assert [ln for ln in lines if "error" in ln] == lines[-1:], lines
    assert lines[-1].startswith("neuroprune: error:") and needle in lines[-1], lines
    return lines[-1]


def _snapshot(folder):
    return {p.relative_to(folder): p.read_bytes() for p in sorted(folder.rglob("*"))
            if p.is_file()}


# --------------------------------------------------------------- 1 / 12: resume keeps its config
@pytest.mark.parametrize("change,keys", [
    (["--set", "sparsity.target=0.5"], "sparsity.target"),
    (["--set", "method.population=8"], "method.population"),
    (["--seed", "5", "--set", "training.lr=0.05"], "seed, training.lr"),
])
def test_resume_refuses_a_changed_config_naming_the_keys(unfinished, capsys, change, keys):
    before = _snapshot(unfinished)
    assert main(["run", QUICK, "--resume", str(unfinished), *TINY, *change]) == 2
    _one_error(capsys, keys)
    assert _snapshot(unfinished) == before


def test_resume_with_another_config_file_is_refused(unfinished, capsys):
    before = _snapshot(unfinished)
    assert main(["run", str(REPO / "configs" / "activation_digits.yaml"), "--resume",
                 str(unfinished), "--no-progress"]) == 2
    _one_error(capsys, "kind")
    assert _snapshot(unfinished) == before


def test_resume_may_change_where_it_runs(unfinished, capsys):
    assert main(["run", QUICK, "--resume", str(unfinished), *TINY, "--backend",
                 "sequential"]) == 0
    assert RunDir(unfinished).is_complete()


# --------------------------------------------------------------- 3 / 7: damaged ledger and files
def test_a_damaged_ledger_line_in_the_middle_is_an_error_naming_it(unfinished, capsys):
    lines = (unfinished / "ledger.jsonl").read_text().splitlines(keepends=True)
    lines[1] = '{"generation": 1, "rows": [GARBAGE\n'
    (unfinished / "ledger.jsonl").write_text("".join(lines))
    before = _snapshot(unfinished)
    assert main(["resume", str(unfinished), "--no-progress"]) == 2
    _one_error(capsys, "ledger.jsonl line 2 is damaged")
    assert _snapshot(unfinished) == before


def test_only_a_torn_last_ledger_line_is_cut(tmp_path):
    rd = RunDir(tmp_path / "r")
    for g in range(2):
        rd.commit_generation(g, [{"generation": g, "index": 0, "fitness": 0.5}])
    with open(rd.ledger_path, "ab") as f:
        f.write(b'{"generation": 2, "rows": [{"gen')
    assert sorted(RunDir(rd.path).committed()) == [0, 1]
    rd.ledger_path.write_bytes(rd.ledger_path.read_bytes() + b"\n")  # now a whole line
    with pytest.raises(Exception, match="line 3 is damaged"):
        RunDir(rd.path).committed()


BROKEN = {
    "torn summary": lambda d: (d / "summary.json").write_text('{"status": "compl'),
    "summary not an object": lambda d: (d / "summary.json").write_text("[1, 2]"),
    "ledger line without generation": lambda d: (d / "ledger.jsonl").write_text(
        '{"rows": []}\n' + (d / "ledger.jsonl").read_text()),
    "binary ledger": lambda d: (d / "ledger.jsonl").write_bytes(os.urandom(300) + b"\n"),
    "foreign checkpoint": lambda d: torch.save({"generation": 99, "population": None},
                                               d / "checkpoints" / "gen_0099.pt"),
    "checkpoint of another kind": lambda d: torch.save([1, 2, 3],
                                                       d / "checkpoints" / "gen_0099.pt"),
}


@pytest.mark.parametrize("name", BROKEN)
def test_broken_files_in_a_run_folder_end_in_one_line(unfinished, capsys, name):
    BROKEN[name](unfinished)
    before = _snapshot(unfinished)
    assert main(["resume", str(unfinished), "--no-progress"]) == 2
    _one_error(capsys, str(unfinished))
    assert _snapshot(unfinished) == before


def test_every_checkpoint_corrupt_names_no_good_one(unfinished, capsys):
    for p in (unfinished / "checkpoints").glob("gen_*.pt"):
        p.write_bytes(b"\x00garbage")
    assert main(["resume", str(unfinished), "--no-progress"]) == 2
    err = _one_error(capsys, "is corrupt")
    assert "last good" not in err and "no checkpoint" in err


def test_a_newest_corrupt_checkpoint_names_the_last_good_one(unfinished, capsys):
    (unfinished / "checkpoints" / "gen_0002.pt").write_bytes(b"\x00garbage")
    (unfinished / "checkpoints" / "gen_0001.pt").write_bytes(b"\x00garbage")
    assert main(["resume", str(unfinished), "--no-progress"]) == 2
    err = _one_error(capsys, "gen_0002.pt is corrupt")
    assert "last good one is gen_0000.pt" in err


# --------------------------------------------------------------- 4 / 5: one writer, no leftovers
def test_a_second_writer_is_told_who_holds_the_run(unfinished, capsys):
    with RunDir(unfinished).locked():
        before = _snapshot(unfinished)
        assert main(["resume", str(unfinished), "--no-progress"]) == 2
        _one_error(capsys, f"is in use by pid {os.getpid()} on ")
        assert _snapshot(unfinished) == before


def test_the_lock_of_a_dead_process_is_taken_over(unfinished, capsys):
    (unfinished / ".lock").write_text("pid 999999 on elsewhere since 2020-01-01 00:00:00\n")
    assert main(["resume", str(unfinished), "--no-progress"]) == 0
    assert RunDir(unfinished).is_complete()


def test_two_runs_started_on_one_folder_one_is_refused(tmp_path):
    out = tmp_path / "same"
    cmd = [sys.executable, "-m", "neuroprune", "run", QUICK, "--out", str(out), *TINY]
    first = subprocess.Popen(cmd, env=ENV, cwd=REPO, stdout=subprocess.DEVNULL,
                             stderr=subprocess.PIPE, text=True)
    time.sleep(0.3)
    second = subprocess.Popen(cmd, env=ENV, cwd=REPO, stdout=subprocess.DEVNULL,
                              stderr=subprocess.PIPE, text=True)
    errs = [p.communicate(timeout=300)[1] for p in (first, second)]
    codes = sorted(p.returncode for p in (first, second))
    assert codes == [0, 2], errs
    refused = errs[[first.returncode, second.returncode].index(2)].strip()
    assert ("in use by pid" in refused or "already holds files" in refused), refused
    assert len(RunDir(out).committed()) == 4  # three generations and the final, once each


def test_a_trial_folder_has_one_writer(tmp_path):
    from neuroprune.config import load_config
    from neuroprune.errors import UserError
    from neuroprune.tuning.tune import Tuner

    cfg = load_config(REPO / "configs" / "tune_quickstart.yaml",
                      ["method.population=4", "method.generations=2", "training.epochs=1",
                       "model.widths=[16]", "tune.pruner=none"])
    out = tmp_path / "t"
    with RunDir(out / "trials" / "trial_0000").locked():
        with pytest.raises(UserError, match=f"trial_0000 is in use by pid {os.getpid()}"):
            Tuner(cfg, out, n_trials=1).run(progress=False)
    assert not (out / "trials" / "trial_0000" / "config.yaml").exists()


def test_resume_removes_temporary_files_of_a_killed_process(unfinished):
    leftovers = [unfinished / ".results.csv.k2j4.tmp",
                 unfinished / "checkpoints" / ".gen_0003.pt.x9z.tmp"]
    for p in leftovers:
        p.write_bytes(b"half")
    assert main(["resume", str(unfinished), "--no-progress"]) == 0
    assert not any(p.exists() for p in leftovers)
    assert not list(unfinished.rglob("*.tmp"))


# --------------------------------------------------------------- 10: the file system
def test_a_full_disk_ends_in_one_line_and_the_run_resumes(tmp_path, capsys, monkeypatch):
    import neuroprune.rundir as rundir

    out = tmp_path / "full"
    real, calls = rundir.append_durably, []

    def fills_up(path, text):
        calls.append(path)
        if len(calls) > 2:
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), str(path))
        real(path, text)

    monkeypatch.setattr(rundir, "append_durably", fills_up)
    assert main(["run", QUICK, "--out", str(out), *TINY]) == 2
    _one_error(capsys, "No space left on device; free some space")
    assert not list(out.rglob("*.tmp"))
    monkeypatch.setattr(rundir, "append_durably", real)
    assert main(["resume", str(out), "--no-progress"]) == 0
    assert RunDir(out).is_complete()


def test_a_checkpoint_that_cannot_be_written_ends_in_one_line(tmp_path, capsys, monkeypatch):
    def enforce_fail(obj, f, *a, **k):  # what torch.save says when the disk is full
        raise RuntimeError("[enforce fail at inline_container.cc:672] . PytorchStreamWriter "
                           "failed writing file data/0: file write failed")

    monkeypatch.setattr("torch.save", enforce_fail)
    out = tmp_path / "ck"
    assert main(["run", QUICK, "--out", str(out), *TINY]) == 2
    _one_error(capsys, "gen_0000.pt: [enforce fail")
    assert not list(out.rglob("*.tmp"))


def test_an_export_that_cannot_be_written_ends_in_one_line(finished, tmp_path, capsys,
                                                          monkeypatch):
    def enforce_fail(obj, f, *a, **k):
        raise RuntimeError("[enforce fail at inline_container.cc:672] . file write failed")

    monkeypatch.setattr("torch.save", enforce_fail)
    out = tmp_path / "exp"
    out.mkdir()
    assert main(["export", str(finished), "--format", "prune", "--out",
                 str(out / "net.pt")]) == 2
    _one_error(capsys, "net.pt: [enforce fail")
    assert not list(out.iterdir())


@pytest.fixture
def read_only(tmp_path, monkeypatch):
    """A folder nothing can be written in: by its permissions, or (for root, whom
    permissions do not stop) by refusing every write below it as a read-only mount would."""
    import builtins
    import io

    ro = tmp_path / "ro"
    ro.mkdir()
    if os.geteuid() != 0:
        ro.chmod(0o555)
        yield ro
        ro.chmod(0o755)
        return

    def refuse(path):
        if str(os.path.abspath(path)).startswith(str(ro)):
            raise PermissionError(errno.EROFS, os.strerror(errno.EROFS), str(path))

    real_mkdir, real_open, real_os_open = os.mkdir, builtins.open, os.open

    def mkdir(path, *a, **k):
        refuse(path)
        return real_mkdir(path, *a, **k)

    def os_open(path, flags, *a, **k):
        if flags & (os.O_CREAT | os.O_WRONLY | os.O_RDWR):
            refuse(path)
        return real_os_open(path, flags, *a, **k)

    def open_(file, mode="r", *a, **k):
        if isinstance(file, (str, os.PathLike)) and any(c in mode for c in "wax+"):
            refuse(file)
        return real_open(file, mode, *a, **k)

    monkeypatch.setattr(os, "mkdir", mkdir)
    monkeypatch.setattr(os, "open", os_open)
    monkeypatch.setattr(builtins, "open", open_)
    monkeypatch.setattr(io, "open", open_)
    yield ro


def test_read_only_folders_end_in_one_line(finished, read_only, capsys):
    tq = str(REPO / "configs" / "tune_quickstart.yaml")
    for argv in (["run", QUICK, "--out", str(read_only / "run"), *TINY],
                 ["tune", tq, "--out", str(read_only / "tune"), "--n-trials", "1",
                  "--no-progress"],
                 ["export", str(finished), "--out", str(read_only / "m.safetensors")],
                 ["report", str(finished), "--out", str(read_only / "report")]):
        assert main(argv) == 2, argv
        _one_error(capsys, str(read_only))
    assert not list(read_only.iterdir())


# --------------------------------------------------------------- 9: meaningless runs
def test_a_sparsity_leaving_a_layer_without_weights_is_refused_and_few_is_warned(capsys):
    assert main(["run", QUICK, "--set", "sparsity.target=0.999999", "--set",
                 "sparsity.allocation=global", "--no-progress"]) == 2
    _one_error(capsys, "some layer would keep none")
    from neuroprune.config import load_config
    from neuroprune.workbench import Workbench
    with pytest.warns(UserWarning, match="accuracy near chance"):
        Workbench.from_config(load_config(QUICK, ["sparsity.target=0.9999",
                                                  "sparsity.allocation=global"])).check_sparsity()


@pytest.mark.parametrize("config", ["compare_structured_mnist", "compare_mnist", "planted_ci"])
def test_the_empty_layer_check_leaves_structured_budgets_and_sweeps_alone(config):
    from neuroprune.config import load_config
    from neuroprune.workbench import Workbench
    cfg = load_config(REPO / "configs" / f"{config}.yaml",
                      ["data.dataset=digits", "data.root=null", "device=cpu",
                       "sparsity.target=0.9999", "sparsity.allocation=global"]
                      if config != "compare_structured_mnist" else
                      ["data.dataset=digits", "data.root=null", "device=cpu",
                       "model={name: mlp, widths: [32]}", "sparsity.target=0.9"])
    Workbench.from_config(cfg).check_sparsity()  # no error


# --------------------------------------------------------------- 6: Ctrl-C and SIGTERM
@STOPS
def test_ctrl_c_during_the_final_training_stops_and_resume_finishes(tmp_path, stop, code):
    out = tmp_path / "final"
    args = ["run", QUICK, "--out", str(out), "--set", "method.population=4", "--set",
            "method.generations=2", "--set", "method.search_epochs=1", "--set",
            "training.epochs=400", "--set", "model.widths=[16]", "--no-progress",
            "--device", "cpu"]
    proc = start(args, out)
    wait_for(out / "checkpoints" / "gen_0001.pt", proc)  # the search is over
    time.sleep(0.5)
    proc.send_signal(stop)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == code, err
    assert "interrupted" in err and "Traceback" not in err
    assert not RunDir(out).is_complete()
    assert "final" not in RunDir(out).committed()
    config = out / "config.yaml"  # a quick final training for the test
    config.write_text(config.read_text().replace("\n  epochs: 400\n", "\n  epochs: 1\n"))
    assert main(["resume", str(out), "--no-progress"]) == 0
    assert RunDir(out).is_complete() and "final" in RunDir(out).committed()


@STOPS
def test_ctrl_c_in_resume_exits_130_and_the_next_resume_finishes(unfinished, tmp_path, stop,
                                                                  code):
    for g in (1, 2):  # back to after generation 0
        (unfinished / "checkpoints" / f"gen_{g:04d}.pt").unlink()
    lines = (unfinished / "ledger.jsonl").read_text().splitlines(keepends=True)
    (unfinished / "ledger.jsonl").write_text(lines[0])
    config = unfinished / "config.yaml"
    short = config.read_text()
    assert "\n  epochs: 1\n" in short
    config.write_text(short.replace("\n  epochs: 1\n", "\n  epochs: 400\n"))
    proc = start(["resume", str(unfinished), "--no-progress"], unfinished)
    wait_for(unfinished / "checkpoints" / "gen_0002.pt", proc)  # the search is over
    time.sleep(0.5)
    proc.send_signal(stop)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == code and "Traceback" not in err, err
    assert f"neuroprune resume {unfinished}" in err
    assert not RunDir(unfinished).is_complete()
    config.write_text(short)  # a quick final training for the test
    assert main(["resume", str(unfinished), "--no-progress"]) == 0
    assert sorted(RunDir(unfinished).committed(), key=str) == [0, 1, 2, "final"]


def test_sigterm_mid_generation_drops_it_whole_and_resume_gives_the_same_run(tmp_path,
                                                                           finished):
    """SIGTERM during a search generation: the generations before it committed, that one
    dropped whole, an "interrupted" summary, exit 143; resume ends where the uncut run did."""
    out = tmp_path / "term"
    slow = [a.replace("method.search_epochs=1", "method.search_epochs=200") for a in TINY]
    proc = start(["run", QUICK, "--out", str(out), *slow], out)
    wait_for(out / "checkpoints" / "gen_0000.pt", proc)
    proc.send_signal(signal.SIGTERM)  # in generation 1's (or 2's) training
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 143 and "Traceback" not in err, err
    assert f"neuroprune resume {out}" in err
    summary = json.loads((out / "summary.json").read_text())
    last = summary["last_generation"]
    assert summary["status"] == "interrupted" and last in (0, 1)  # of three
    assert sorted(RunDir(out).committed(), key=str) == list(range(last + 1))
    assert len(RunDir(out).checkpoints()) == last + 1
    config = out / "config.yaml"  # the remaining generations quick, as in the finished run
    config.write_text(config.read_text().replace("search_epochs: 200", "search_epochs: 1"))
    assert main(["resume", str(out), "--no-progress"]) == 0
    assert sorted(RunDir(out).committed(), key=str) == [0, 1, 2, "final"]
    assert not list(out.rglob("*.tmp"))


# --------------------------------------------------------------- SIGKILL at random moments
def test_sigkill_at_random_moments_in_run_and_resume_changes_nothing(tmp_path):
    import random

    from safetensors.torch import load_file

    over = ["--set", "method.population=8", "--set", "method.generations=8", "--set",
            "method.search_epochs=3", "--set", "training.epochs=3", "--set",
            "model.widths=[16]", "--device", "cpu", "--no-progress",
            "--set", "sparsity.latency_repeats=0",  # latency is measured, as wall time is
            # two runs compared to the bit: on a busy machine auto may measure again and
            # choose another trainer for the second (the trainers agree to float rounding);
            # a run's own resume keeps its choices (tests/engine/test_engine.py)
            "--set", "engine.trainer=stacked"]
    full = tmp_path / "full"
    ref = subprocess.run([sys.executable, "-m", "neuroprune", "run", QUICK, "--out", str(full),
                          *over], env=ENV, cwd=REPO, capture_output=True, text=True)
    assert ref.returncode == 0, ref.stderr
    cut, rng, kills = tmp_path / "cut", random.Random(20), 0
    step = json.loads((full / "summary.json").read_text())["wall_seconds"] / 9  # a generation
    while not RunDir(cut).is_complete():
        assert kills < 12, "the run never finished"
        started = (cut / "config.yaml").is_file()  # else killed before writing anything
        args = ["resume", str(cut), "--no-progress"] if started else \
            ["run", QUICK, "--out", str(cut), *over]
        if kills >= 3:  # enough: let it finish
            assert killed_at_random(args, rng, 600, 600) is False
            continue
        done = [int(p.stem[4:]) for p in RunDir(cut).checkpoints()]
        # somewhere in the next generation (or the final training, after the last one)
        after = cut / "checkpoints" / f"gen_{max(done) + 1:04d}.pt" if done else \
            cut / "config.yaml"
        after = after if not done or max(done) < 7 else None
        kills += killed_at_random(args, rng, 0.0, step, after=after)
    assert kills >= 3
    assert (cut / "results.csv").read_bytes() == (full / "results.csv").read_bytes()
    assert (cut / "ledger.jsonl").read_bytes() == (full / "ledger.jsonl").read_bytes()
    a, b = (json.loads((d / "summary.json").read_text()) for d in (full, cut))
    for k in ("test_accuracy", "val_accuracy", "sparsity", "best_fitness", "layer_sparsity",
              "kept_weights"):
        assert a[k] == b[k], k
    ma, mb = (load_file(str(d / "best_mask.safetensors")) for d in (full, cut))
    assert ma.keys() == mb.keys() and all(torch.equal(ma[k], mb[k]) for k in ma)
    assert not list(cut.rglob("*.tmp"))


# ------------------------------------------- every method: stopped after a commit, resumed
class _Stop(Exception):
    pass


def _element(method, **params):
    return {"data": {"dataset": "digits"}, "device": "cpu", "seed": 1,
            "model": {"name": "mlp", "widths": [16]},
            "sparsity": {"target": 0.8, "latency_repeats": 0},
            "training": {"epochs": 1, "batch_size": 128}, "method": {"name": method, **params}}


def _structured(method, **params):
    return {"data": {"dataset": "digits"}, "device": "cpu", "seed": 1,
            "model": {"name": "conv2", "width": 0.125, "widths": [16], "batch_norm": True},
            "sparsity": {"target": 0.5, "structure": "channel", "budget": "flops",
                         "latency_repeats": 0},
            "training": {"epochs": 1, "batch_size": 128}, "method": {"name": method, **params}}


# every method that commits generations before its final training, in each of its shapes
COMMITTING = {
    "kstarts_ga": _element("kstarts", population=4, generations=2, search_epochs=1),
    "kstarts_paper": _element("kstarts", variant="paper", population=3, search_epochs=1,
                              fitness={"accuracy": 0.0, "magnitude": 1.0}),
    "kstarts_then_dg": _element("kstarts_dg", population=4, generations=2, search_epochs=1,
                                dg_epochs=2),
    "dg_seeds_kstarts": _element("kstarts_dg", combination="dg_seeds_kstarts", population=4,
                                 generations=2, search_epochs=1, dg_epochs=1),
    "dg_fraction": _element("dissipating_gradients", rule="fraction", epochs=2),
    "dg_ramp": _element("dissipating_gradients", epochs=2),
    "imp": _element("imp", rate=0.6, round_epochs=1),
    "magnitude_retrain": _element("magnitude_retrain"),
    "group_lasso": _structured("group_lasso", dense_epochs=1, strengths=[0.001, 0.01]),
    "l1_filter": _structured("l1_filter", dense_epochs=1),
    "stressednets": _structured("stressednets", generations=3, offspring=2),
}


@pytest.mark.parametrize("name", sorted(COMMITTING))
def test_a_run_stopped_after_a_commit_resumes_to_the_same_result_and_counts_once(tmp_path,
                                                                                  name):
    from safetensors.torch import load_file

    from neuroprune.config import load_config
    from neuroprune.searches.mask_search import MaskSearch
    from neuroprune.workbench import Workbench

    def search():
        return MaskSearch(Workbench.from_config(load_config(tree=COMMITTING[name])))

    whole = search().run(tmp_path / "whole", progress=False, log=lambda _: None)

    def stop(generation, rows):
        raise _Stop(generation)

    with pytest.raises(_Stop):
        search().run(tmp_path / "cut", progress=False, log=lambda _: None, on_generation=stop)
    assert RunDir(tmp_path / "cut").checkpoints() and not RunDir(tmp_path / "cut").is_complete()
    resumed = search().run(tmp_path / "cut", progress=False, resume=True, log=lambda _: None)
    for key in ("test_accuracy", "val_accuracy", "sparsity", "kept_weights", "compute"):
        assert resumed[key] == whole[key], key
    a, b = (load_file(p / "best_mask.safetensors") for p in (tmp_path / "whole",
                                                              tmp_path / "cut"))
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    rows = [ln for ln in (tmp_path / "cut" / "results.csv").read_text().splitlines()]
    assert len(rows) == len(set(rows))  # a generation committed again is kept once
