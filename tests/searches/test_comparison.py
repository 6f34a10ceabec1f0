import pandas as pd

from neuroprune.cli import main
from neuroprune.config import load_config
from neuroprune.report.comparison import comparison_table
from neuroprune.searches.comparison import Comparison
from neuroprune.workbench import Workbench

from helpers import REPO


def _cfg():
    return load_config(REPO / "configs" / "compare_digits.yaml", [
        "comparison.sparsities=[0.9]", "comparison.seeds=[0, 1]",
        "comparison.methods=[random, {name: imp, rate: 0.7, round_epochs: 1}]",
        "training.epochs=2", "model.widths=[16]"])


def test_comparison_runs_every_cell_and_resumes_without_rerunning(tmp_path):
    out = tmp_path / "cmp"
    Comparison(Workbench.from_config(_cfg())).run(out, progress=False)
    df = pd.read_csv(out / "results.csv")
    assert len(df) == 4 and set(df.method) == {"random", "imp"}
    assert (df.actual_sparsity.round(3) == 0.9).all()
    table = (out / "comparison.md").read_text()
    assert "| random |" in table and "| imp |" in table and "±" in table
    stamp = (out / "cells" / "imp-s0.9-seed1" / "summary.json").stat().st_mtime_ns
    Comparison(Workbench.from_config(_cfg())).run(out, progress=False)
    assert (out / "cells" / "imp-s0.9-seed1" / "summary.json").stat().st_mtime_ns == stamp
    assert pd.read_csv(out / "results.csv").equals(df)


def test_comparison_table_means_over_seeds():
    rows = [{"method": "a", "sparsity": 0.9, "seed": s, "test_accuracy": acc, "wall_seconds": 1}
            for s, acc in enumerate([0.8, 0.9])]
    assert "0.8500 ± 0.0707" in comparison_table(rows)


def test_labelled_baselines_are_tested_against():
    from neuroprune.report.comparison import baseline_labels
    methods = ["snip", {"name": "dissipating_gradients", "label": "dg_paper"},
               {"name": "dissipating_gradients", "label": "dg_ramp"}, "random"]
    assert baseline_labels(methods) == ["random", "dg_paper", "dg_ramp"]
    rows = [{"method": m, "sparsity": 0.9, "seed": s, "test_accuracy": a + 0.01 * s,
             "wall_seconds": 1}
            for m, a in (("random", 0.8), ("dg_paper", 0.9), ("dg_ramp", 0.85), ("snip", 0.7))
            for s in range(3)]
    table = comparison_table(rows, None, baseline_labels(methods))
    assert "Against `dg_paper`" in table and "Against `dg_ramp`" in table
    assert "| snip | -0.2000" in table.split("Against `dg_paper`")[1]
    alone = [r for r in rows if r["method"] == "random"]
    assert "Against" not in comparison_table(alone, None, ["random"])  # nothing to test
    # the structured baseline, in a comparison of structured methods
    assert baseline_labels(["group_lasso", {"name": "l1_filter", "dense_epochs": 5}]) == [
        "l1_filter"]


def test_bad_method_in_comparison_is_refused_before_writing(tmp_path, capsys):
    out = tmp_path / "o"
    code = main(["run", str(REPO / "configs" / "compare_digits.yaml"), "--out", str(out),
                 "--set", "comparison.methods=[{name: imp, rat: 0.5}]"])
    assert code == 2 and "no parameter 'rat'" in capsys.readouterr().err
    assert not out.exists()


def test_the_flops_figure_draws_cells_that_removed_nothing_as_the_dense_band():
    from neuroprune.report.comparison_efficiency import flops_figure
    rows = [{"method": m, "sparsity": s, "seed": seed, "test_accuracy": 0.9 - s / 10,
             "flops": 1000 * (1 - s), "flops_dense": 1000}
            for m, s in (("dense", 0.0), ("l1_filter", 0.5), ("l1_filter", 0.75))
            for seed in range(3)]
    fig = flops_figure(rows)
    labels = fig.axes[0].get_legend_handles_labels()[1]
    assert labels == ["dense (3 seeds)", "l1_filter"]
