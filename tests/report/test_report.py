"""`neuroprune report` on runs of every kind and on tuning folders, finished or not, and on
bad input (one line, exit 2, nothing half-written)."""

import importlib.util
import json
import os
import shutil
from pathlib import Path

import pandas as pd
import pytest
import torch
import yaml

from neuroprune.cli import main

from helpers import REPO, run_cli

pytest.importorskip("matplotlib")
CONFIGS = REPO / "configs"
RUNS = {
    "mask_search": ["run", "quickstart", "--set", "method.population=4",
                    "--set", "method.generations=3", "--set", "method.search_epochs=1",
                    "--set", "training.epochs=2", "--set", "model.widths=[32]"],
    "mask_search_b": ["run", "quickstart", "--set", "method.population=4",
                      "--set", "method.generations=2", "--set", "method.search_epochs=1",
                      "--set", "training.epochs=2", "--set", "model.widths=[32]",
                      "--set", "sparsity.target=0.95", "--seed", "1"],
    "comparison": ["run", str(CONFIGS / "compare_digits.yaml"),
                   "--set", "comparison.sparsities=[0, 0.9, 0.97]",
                   "--set", "comparison.seeds=[0, 1]",
                   "--set", "comparison.methods=[random, snip]", "--set", "training.epochs=2",
                   "--set", "model.widths=[16]"],
    "activation_search": ["run", str(CONFIGS / "activation_digits.yaml"),
                          "--set", "activation.population=3", "--set", "activation.generations=2",
                          "--set", "activation.search_epochs=1", "--set", "training.epochs=2",
                          "--set", "model.widths=[16, 16, 16]",
                          "--set", "activation.strategies=[relu, gelu, random, ga, coevolution]"],
    "ensemble_search": ["run", str(CONFIGS / "ensemble_breast_cancer.yaml"),
                        "--set", "ensemble.generations=4", "--set", "ensemble.population=8",
                        "--set", "ensemble.pool=[knn3, tree_d3, logreg, gnb]"],
    "planted": ["run", str(CONFIGS / "planted_ci.yaml"), "--set", "planted.tasks=[relu, circle]",
                "--set", "planted.methods=[random, magnitude]", "--set", "planted.samples=300",
                "--set", "planted.seeds=[0, 1]", "--set", "training.epochs=1"],
    "neuroevolution": ["run", str(CONFIGS / "neat_ci.yaml"), "--set", "neuroevolution.population=4",
                       "--set", "neuroevolution.generations=2"],
    "rbm_connectivity": ["run", str(CONFIGS / "rbm_digits.yaml"), "--set", "rbm.epochs=2",
                         "--set", "rbm.eval_every=1", "--set", "rbm.ais_runs=8",
                         "--set", "rbm.ais_betas=100"],
    "private_training": ["run", str(CONFIGS / "private_digits.yaml"), "--set", "training.epochs=1",
                         "--set", "model.widths=[16]"],
    "tuning": ["tune", str(CONFIGS / "tune_quickstart.yaml"), "--n-trials", "5",
               "--set", "method.population=4", "--set", "method.generations=2",
               "--set", "training.epochs=2", "--set", "model.widths=[16]",
               "--set", "tune.pruner=none"],
}
if importlib.util.find_spec("opacus") is None:  # private training needs neuroprune[privacy]
    del RUNS["private_training"]
#: the figures each kind's report draws
FIGURES = {
    "mask_search": {"fitness.png", "learning_curve.png", "layers.png"},
    "comparison": {"accuracy_vs_sparsity.png", "accuracy_vs_compute.png", "accuracy_vs_flops.png"},
    "activation_search": {"functions.png", "strategies.png", "search.png"},
    "ensemble_search": {"fitness.png", "accuracy.png"},
    "planted": {"planted.png"},
    "neuroevolution": {"rewards.png", "topology_neuroprune_Track-v0.png",
                       "topology_CartPole-v1.png"},
    "rbm_connectivity": {"rbm_connectivity.png"},
    "private_training": {"accuracy_vs_epsilon.png"},
    "tuning": {"history.png", "intermediate.png", "importances.png"},
}
FIGURES = {k: v for k, v in FIGURES.items() if k in RUNS}


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    base = tmp_path_factory.mktemp("runs")
    out = {}
    for name, args in RUNS.items():
        out[name] = base / name
        assert main([*args, "--out", str(out[name]), "--no-progress"]) == 0, name
    return out


def _report(inputs, out, capsys=None):
    code = main(["report", *map(str, inputs), "--out", str(out)])
    return code, (capsys.readouterr() if capsys else None)


def _is_png(path):
    return path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and path.stat().st_size > 5000


@pytest.mark.parametrize("kind", list(FIGURES))
def test_report_of_each_kind_writes_its_figures_and_markdown(runs, tmp_path, kind):
    out = tmp_path / "report"
    assert _report([runs[kind]], out)[0] == 0
    written = {p.name for p in out.iterdir()}
    assert written == FIGURES[kind] | {"report.md"}
    assert all(_is_png(out / f) for f in FIGURES[kind])
    md = (out / "report.md").read_text()
    for figure in FIGURES[kind]:
        assert f"]({figure})" in md
    assert "unfinished" not in md


def test_report_as_a_new_user_runs_it(runs, tmp_path):
    """Every kind at once, through the installed command: no traceback, one section each."""
    out = tmp_path / "all"
    proc = run_cli("report", *(str(runs[k]) for k in FIGURES), "--out", str(out))
    assert proc.returncode == 0, proc.stderr
    assert "Traceback" not in proc.stderr
    md = (out / "report.md").read_text()
    for heading in ("## Mask search", "## Comparison", "## Activation search",
                    "## Ensemble search", "## Planted tickets", "## Tuning study",
                    "## Neuroevolution", "## RBM connectivity"):
        assert heading in md
    assert {"mask_search-fitness.png", "ensemble_search-fitness.png",
            "tuning-history.png"} <= {p.name for p in out.iterdir()}


def test_neuroevolution_report_gives_both_methods_over_the_seeds(runs, tmp_path):
    out = tmp_path / "report"
    assert _report([runs["neuroevolution"]], out)[0] == 0
    md = (out / "report.md").read_text()
    curves = pd.read_csv(runs["neuroevolution"] / "curves.csv")
    for env in ("neuroprune/Track-v0", "CartPole-v1"):
        for method in ("NEAT", "tabular Q-learning"):
            row = next(line for line in md.splitlines()
                       if f"| {env} | {method} |" in line)
            assert "| 2 |" in row  # two seeds
    finals = curves[curves.method == "neat"].groupby(["environment", "seed"]).reward.last()
    assert f"{finals['CartPole-v1'].mean():.2f} ± " in md


def test_rbm_report_tabulates_every_connectivity(runs, tmp_path):
    out = tmp_path / "report"
    assert _report([runs["rbm_connectivity"]], out)[0] == 0
    md = (out / "report.md").read_text()
    summary = json.loads((runs["rbm_connectivity"] / "summary.json").read_text())
    for v, s in summary["variants"].items():
        row = next(line for line in md.splitlines() if f"| {v} |" in line)
        assert f"{s['test_log_likelihood']:.4f}" in row
        assert f"{s['reconstruction_error']:.4f}" in row


def test_private_report_puts_dpsgd_and_lsg_against_epsilon(runs, tmp_path):
    if "private_training" not in RUNS:
        pytest.skip("needs neuroprune[privacy]")
    lsg = tmp_path / "lsg"
    assert main([*RUNS["private_training"], "--set", "training.privacy.method=lsg",
                 "--set", "training.privacy.epsilon=4", "--out", str(lsg), "--no-progress"]) == 0
    out = tmp_path / "report"
    assert _report([runs["private_training"], lsg], out)[0] == 0
    md = (out / "report.md").read_text()
    assert "| DP-SGD |" in md and "| LSG |" in md
    assert _is_png(out / "accuracy_vs_epsilon.png")
    eps = json.loads((lsg / "summary.json").read_text())["epsilon"]
    assert 3 < eps <= 4.0 and f"{eps:.4f}" in md


def test_mask_runs_side_by_side_name_method_and_sparsity(runs, tmp_path):
    out = tmp_path / "two"
    assert _report([runs["mask_search"], runs["mask_search_b"]], out)[0] == 0
    md = (out / "report.md").read_text()
    assert "kstarts, 90% sparse" in md and "kstarts, 95% sparse" in md
    assert _is_png(out / "accuracy_vs_sparsity.png")
    assert "No dense result" in md and "one seed per point" in md


def test_comparison_report_draws_the_dense_baseline_and_states_the_seeds(runs, tmp_path):
    out = tmp_path / "c"
    assert _report([runs["comparison"]], out)[0] == 0
    md = (out / "report.md").read_text()
    assert "mean ± std over n = 2 seeds" in md
    assert "Dashed: the dense network (sparsity 0)" in md
    assert "| random |" in md and "| snip |" in md
    assert "the final network of every method gets the same epochs" in md


def test_comparison_report_states_an_equal_budget(runs, tmp_path):
    run = _copy(runs["comparison"], tmp_path)
    cfg = yaml.safe_load((run / "config.yaml").read_text())
    cfg["comparison"]["budget"] = 2
    (run / "config.yaml").write_text(yaml.safe_dump(cfg))
    out = tmp_path / "r"
    assert _report([run], out)[0] == 0
    md = (out / "report.md").read_text()
    assert "every cell trains for 2 network-epochs in all" in md
    assert "![accuracy_vs_compute](accuracy_vs_compute.png)" in md


def _copy(run, tmp_path, name="copy"):
    dst = tmp_path / name
    shutil.copytree(run, dst, ignore=shutil.ignore_patterns("report"))
    return dst


def test_unfinished_mask_run_is_reported_as_far_as_it_got(runs, tmp_path):
    run = _copy(runs["mask_search"], tmp_path)
    for name in ("summary.json", "best_mask.safetensors", "learning_curve.csv"):
        (run / name).unlink()
    df = pd.read_csv(run / "results.csv")
    df[df.generation != "final"].to_csv(run / "results.csv", index=False)
    out = tmp_path / "r"
    assert _report([run], out)[0] == 0
    md = (out / "report.md").read_text()
    assert "unfinished (3 generation(s) committed)" in md
    assert {p.name for p in out.iterdir()} == {"fitness.png", "report.md"}


def test_interrupted_run_is_reported_as_interrupted(runs, tmp_path):
    run = _copy(runs["mask_search"], tmp_path)
    (run / "summary.json").write_text('{"status": "interrupted", "method": "kstarts", '
                                      '"last_generation": 1}')
    out = tmp_path / "r"
    assert _report([run], out)[0] == 0
    assert "interrupted (3 generation(s) committed)" in (out / "report.md").read_text()


def test_unfinished_comparison_counts_the_cells_done(runs, tmp_path):
    run = _copy(runs["comparison"], tmp_path)
    (run / "summary.json").unlink()
    df = pd.read_csv(run / "results.csv")
    df.iloc[:9].to_csv(run / "results.csv", index=False)  # snip at 90%: one seed of two
    out = tmp_path / "r"
    assert _report([run], out)[0] == 0
    md = (out / "report.md").read_text()
    assert "**unfinished**: 9 of 12 cells done" in md
    assert "n = 1–2 seeds per point" in md


def test_unfinished_activation_search_draws_its_best_candidates_so_far(runs, tmp_path):
    run = _copy(runs["activation_search"], tmp_path)
    (run / "summary.json").unlink()
    df = pd.read_csv(run / "results.csv")
    df[df.generation != "final"].to_csv(run / "results.csv", index=False)
    out = tmp_path / "r"
    assert _report([run], out)[0] == 0
    assert {p.name for p in out.iterdir()} == {"functions.png", "search.png", "report.md"}
    assert "best candidate evaluated so far" in (out / "report.md").read_text()


def test_unfinished_study_lists_running_trials(runs, tmp_path):
    import optuna

    from neuroprune.tuning.storage import open_storage

    run = _copy(runs["tuning"], tmp_path)
    study = optuna.load_study(study_name="tune_quickstart",
                              storage=open_storage(str(run / "optuna.journal")))
    study.ask()  # a trial still running (or of a killed process)
    out = tmp_path / "r"
    assert _report([run], out)[0] == 0
    md = (out / "report.md").read_text()
    assert "5 complete, 1 running" in md and "| 5 | running |" in md
    assert "val_accuracy (maximize)" in md


def test_readable_formulas_read_back_to_the_same_function():
    from deap import gp

    from neuroprune.activations.expr import compile_formula, readable
    from neuroprune.activations.gp import primitive_set
    from neuroprune.evolution.random_state import deap_random
    from neuroprune.report.activation import compile_expr, parse_readable

    pset = primitive_set()
    x = torch.linspace(-4, 4, 101)
    with deap_random(0):
        trees = [gp.PrimitiveTree(gp.genHalfAndHalf(pset, 1, 5)) for _ in range(200)]
    for tree in trees:
        prefix = str(tree)
        want = compile_formula(prefix)(x)
        got = compile_expr(parse_readable(readable(prefix)))(x)
        assert torch.allclose(got.broadcast_to(x.shape), want.broadcast_to(x.shape),
                              equal_nan=True), prefix
    with pytest.raises(ValueError):
        parse_readable("__import__('os')")


def _bad_inputs(tmp_path, runs):
    empty = tmp_path / "empty"
    empty.mkdir()
    afile = tmp_path / "afile.txt"
    afile.write_text("x")
    corrupt = _copy(runs["mask_search"], tmp_path, "corrupt")
    (corrupt / "results.csv").write_bytes(b"\x00\xff\xfe garbage \x00\n\x01,\x02\n")
    columns = _copy(runs["ensemble_search"], tmp_path, "columns")
    (columns / "results.csv").write_text("a,b\n1,2\n")
    fresh = tmp_path / "fresh"
    fresh.mkdir()
    shutil.copy(runs["mask_search"] / "config.yaml", fresh / "config.yaml")
    config = _copy(runs["mask_search"], tmp_path, "badyaml")
    (config / "config.yaml").write_text("kind: [unclosed\n")
    return [
        ("missing", [tmp_path / "nope"], "does not exist"),
        ("a file", [afile], "is a file"),
        ("empty folder", [empty], "is not a neuroprune run folder"),
        ("corrupt csv", [corrupt], "is not a readable CSV file"),
        ("missing columns", [columns], "lacks the column(s) generation, best, mean"),
        ("no results yet", [fresh], "has no results yet"),
        ("bad config", [config], "is not valid YAML"),
        ("one bad among good", [runs["comparison"], empty], "is not a neuroprune run folder"),
    ]


def test_bad_input_is_one_line_exit_2_and_writes_nothing(runs, tmp_path, capsys):
    for name, inputs, needle in _bad_inputs(tmp_path, runs):
        out = tmp_path / f"out-{name.replace(' ', '_')}"
        code, cap = _report(inputs, out, capsys)
        err = cap.err.strip()
        assert code == 2, name
        assert len(err.splitlines()) == 1 and err.startswith("neuroprune: error:"), name
        assert needle in err, (name, err)
        assert not out.exists(), name
    assert not list(tmp_path.glob(".out-*"))  # no scratch folder left behind


def test_bad_output_paths(runs, tmp_path, capsys):
    afile = tmp_path / "afile"
    afile.write_text("x")
    code, cap = _report([runs["ensemble_search"]], afile, capsys)
    assert code == 2 and "is a file" in cap.err and afile.read_text() == "x"
    code, cap = _report([runs["ensemble_search"]], afile / "sub", capsys)
    assert code == 2 and "cannot write the report" in cap.err
    locked = tmp_path / "locked"  # read-only; root writes anywhere but in /sys
    locked.mkdir()
    locked.chmod(0o500)
    target = Path("/sys/neuroprune-report") if os.geteuid() == 0 else locked / "r"
    try:
        code, cap = _report([runs["ensemble_search"]], target, capsys)
    finally:
        locked.chmod(0o700)
    assert code == 2 and f"cannot write the report to {target}" in cap.err
    assert not target.exists() and not list(locked.iterdir())


def test_a_failure_mid_report_leaves_nothing_half_written(runs, tmp_path, monkeypatch):
    import neuroprune.report.mask as mask

    def broken(*args):
        raise RuntimeError("disk full")

    monkeypatch.setattr(mask, "layers_figure", broken)  # after fitness.png is written
    out = tmp_path / "r"
    with pytest.raises(RuntimeError, match="disk full"):
        main(["report", str(runs["mask_search"]), "--out", str(out)])
    assert not out.exists() and list(tmp_path.iterdir()) == []


def test_a_new_report_replaces_the_files_of_an_earlier_one_and_keeps_others(runs, tmp_path):
    out = tmp_path / "r"
    out.mkdir()
    (out / "notes.txt").write_text("mine")
    (out / "report.md").write_text("old")
    assert _report([runs["ensemble_search"]], out)[0] == 0
    assert (out / "notes.txt").read_text() == "mine"
    assert (out / "report.md").read_text().startswith("# neuroprune report")
    assert not list(tmp_path.glob(".r.*"))
