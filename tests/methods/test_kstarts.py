import json
import os
import signal
import subprocess
import sys
import time

import pandas as pd
import pytest
import torch
from safetensors.torch import load_file

from neuroprune.config import load_config

from helpers import REPO, mask_search

QUICK = str(REPO / "configs" / "quickstart.yaml")


NO_LATENCY = "sparsity.latency_repeats=0"


def _cfg(*over):
    base = ["method.population=6", "method.generations=4", "method.search_epochs=1",
            "training.epochs=2", "model.widths=[48]", "device=cpu"]
    return load_config(QUICK, base + list(over))


def test_kstarts_elitism_keeps_best_fitness_and_every_mask_is_exact(tmp_path):
    summary = mask_search(_cfg()).run(tmp_path / "r", progress=False)
    df = pd.read_csv(tmp_path / "r" / "results.csv")
    search = df[df.generation != "final"].copy()
    search["generation"] = search.generation.astype(int)
    assert (search.sparsity.round(6) == round(summary["sparsity"], 6)).all()
    best = search.groupby("generation").fitness.max().cummax()
    assert summary["best_fitness"] == pytest.approx(best.iloc[-1])
    assert (best.diff().dropna() >= 0).all()
    assert len(search[search.generation == 0]) == 6
    assert summary["kept_weights"] == round(0.1 * summary["prunable_weights"]) or \
        summary["allocation"] == "erk"


def test_fitness_weights_select_what_they_say(tmp_path):
    cfg = _cfg("method.fitness={accuracy: 0, magnitude: 1, gradient: 0}",
               "method.generations=1")
    mask_search(cfg).run(tmp_path / "m", progress=False)
    df = pd.read_csv(tmp_path / "m" / "results.csv")
    gen0 = df[df.generation == "0"]
    ratio = gen0.fitness / gen0.magnitude
    assert ratio.std() < 1e-6  # fitness is magnitude over one run constant
    assert gen0.fitness.mean() == pytest.approx(1.0, rel=1e-6)


def test_same_seed_same_figures(tmp_path):
    # latency is a measurement, as the wall time is: left out of what must repeat
    a = mask_search(_cfg(NO_LATENCY)).run(tmp_path / "a", progress=False)
    b = mask_search(_cfg(NO_LATENCY)).run(tmp_path / "b", progress=False)
    drop = {"wall_seconds"}
    assert {k: v for k, v in a.items() if k not in drop} == \
        {k: v for k, v in b.items() if k not in drop}
    assert (tmp_path / "a" / "results.csv").read_text() == \
        (tmp_path / "b" / "results.csv").read_text()


def test_sequential_backend_gives_the_local_result(tmp_path):
    a = mask_search(_cfg("method.generations=2")).run(tmp_path / "a", progress=False)
    b = mask_search(_cfg("method.generations=2", "backend=sequential")).run(tmp_path / "b",
                                                                          progress=False)
    assert a["test_accuracy"] == pytest.approx(b["test_accuracy"], abs=1 / 360 + 1e-9)
    ra = pd.read_csv(tmp_path / "a" / "results.csv")
    rb = pd.read_csv(tmp_path / "b" / "results.csv")
    assert ra.fitness.dropna().values == pytest.approx(rb.fitness.dropna().values, rel=1e-4)


ENV = {**os.environ, "OMP_NUM_THREADS": "2"}


def _signal_after(out, checkpoint: str, sig, over):
    """Start ``neuroprune run`` into ``out``, send ``sig`` once ``checkpoint`` is written, and
    return the finished process with its stderr."""
    proc = subprocess.Popen([sys.executable, "-m", "neuroprune", "run", QUICK, "--out",
                             str(out), *over], env=ENV, cwd=REPO, stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE, text=True)
    target = out / "checkpoints" / checkpoint
    deadline = time.time() + 300
    while not target.exists() and proc.poll() is None and time.time() < deadline:
        time.sleep(0.01)
    proc.send_signal(sig)
    _, err = proc.communicate(timeout=300)
    return proc, err


def test_sigkill_then_resume_equals_uninterrupted_run(tmp_path):
    over = ["--set", NO_LATENCY, "--set", "method.population=12",
            "--set", "method.generations=8",
            "--set", "method.search_epochs=4", "--set", "training.epochs=3",
            "--device", "cpu", "--no-progress"]
    full = tmp_path / "full"
    subprocess.run([sys.executable, "-m", "neuroprune", "run", QUICK, "--out", str(full),
                    *over], check=True, env=ENV, cwd=REPO, capture_output=True)
    cut = tmp_path / "cut"
    _signal_after(cut, "gen_0002.pt", signal.SIGKILL, over)
    assert not (cut / "summary.json").exists(), "run finished before it could be killed"
    res = subprocess.run([sys.executable, "-m", "neuroprune", "resume", str(cut),
                          "--no-progress"], env=ENV, cwd=REPO, capture_output=True, text=True)
    assert res.returncode == 0, res.stderr
    assert "resuming from gen_" in res.stderr
    assert (cut / "results.csv").read_text() == (full / "results.csv").read_text()
    a = json.loads((full / "summary.json").read_text())
    b = json.loads((cut / "summary.json").read_text())
    for k in ("test_accuracy", "val_accuracy", "sparsity", "best_fitness", "layer_sparsity"):
        assert a[k] == b[k], k
    ma = load_file(str(full / "best_mask.safetensors"))
    mb = load_file(str(cut / "best_mask.safetensors"))
    assert all(torch.equal(ma[k], mb[k]) for k in ma)


def test_ctrl_c_finishes_the_generation_writes_best_so_far_and_resumes(tmp_path):
    over = ["--set", "method.population=12", "--set", "method.generations=8",
            "--set", "method.search_epochs=4", "--set", "training.epochs=2",
            "--device", "cpu", "--no-progress"]
    out = tmp_path / "int"
    proc, err = _signal_after(out, "gen_0001.pt", signal.SIGINT, over)
    assert proc.returncode == 130
    assert f"neuroprune resume {out}" in err and "Traceback" not in err
    summary = json.loads((out / "summary.json").read_text())
    assert summary["status"] == "interrupted"
    last = summary["last_generation"]
    assert last < 7 and (out / "checkpoints" / f"gen_{last:04d}.pt").is_file()
    assert not (out / "checkpoints" / f"gen_{last + 1:04d}.pt").exists()
    assert summary["best_so_far"]["fitness"] > 0
    res = subprocess.run([sys.executable, "-m", "neuroprune", "resume", str(out),
                          "--no-progress"], env=ENV, cwd=REPO, capture_output=True, text=True)
    assert res.returncode == 0, res.stderr
    assert json.loads((out / "summary.json").read_text())["status"] == "complete"


def test_corrupt_checkpoint_is_reported_with_the_last_good_one(tmp_path, capsys):
    from neuroprune.cli import main
    out = tmp_path / "c"
    assert main(["run", QUICK, "--out", str(out), "--no-progress", "--set",
                 "method.population=4", "--set", "method.generations=3", "--set",
                 "method.search_epochs=1", "--set", "training.epochs=1"]) == 0
    (out / "summary.json").unlink()  # pretend it stopped before the end
    (out / "checkpoints" / "gen_0002.pt").write_bytes(b"\x00garbage")
    assert main(["resume", str(out), "--no-progress"]) == 2
    err = capsys.readouterr().err
    assert "gen_0002.pt is corrupt" in err and "gen_0001.pt" in err
    (out / "checkpoints" / "gen_0002.pt").unlink()  # as the message says
    assert main(["resume", str(out), "--no-progress"]) == 0
    assert json.loads((out / "summary.json").read_text())["status"] == "complete"


def test_paper_kstarts_keeps_the_fittest_of_k_and_trains_on_from_its_weights(tmp_path):
    cfg = _cfg("method.variant=paper", "method.fitness={accuracy: 0, magnitude: 1, gradient: 0}")
    search = mask_search(cfg)
    with search.bench.evaluator() as ev:
        ctx = search.context(ev)
        found = search.method.find(ctx)
    assert not found.from_init and found.info["variant"] == "paper"
    assert not torch.equal(found.init["1.weight"], ctx.init["1.weight"])  # no rewinding
    summary = mask_search(cfg).run(tmp_path / "p", progress=False)
    df = pd.read_csv(tmp_path / "p" / "results.csv")
    gen0 = df[df.generation == "0"].reset_index(drop=True)
    assert len(gen0) == 6 and summary["winner"] == int(gen0.fitness.idxmax())
    assert gen0.fitness.tolist() == pytest.approx((gen0.magnitude / gen0.magnitude.mean())
                                                  .tolist())  # magnitude only, no accuracy
    # compute on the record: k masks x search epochs, then the winner's final epochs
    assert summary["compute"]["search_network_epochs"] == 6 * 1
    assert summary["compute"]["network_epochs"] == 6 * 1 + 2
    assert summary["compute"]["training_flops"] > 0


def test_paper_kstarts_refuses_an_accuracy_fitness():
    from neuroprune.errors import ConfigError
    with pytest.raises(ConfigError, match="fitness.accuracy to 0"):
        _cfg("method.variant=paper")


def test_kstarts_then_dg_prunes_the_winner_further(tmp_path):
    cfg = _cfg("method.name=kstarts_dg", "method.combination=kstarts_then_dg",
               "method.variant=paper", "method.fitness={accuracy: 0, magnitude: 1, gradient: 1}",
               "method.dg_epochs=2", "sparsity.allocation=global")
    search = mask_search(cfg)
    with search.bench.evaluator() as ev:
        ctx = search.context(ev)
        found = search.method.find(ctx)
    assert found.info["kstarts_sparsity"] == pytest.approx(0.8, abs=1e-3)  # twice the weights
    assert int(found.bits.sum()) == ctx.layout.kept and not found.from_init
