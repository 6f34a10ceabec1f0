"""The sweep runner (neuroprune/searches/sweep.py): both sweep kinds run their cells through
one loop in one Ray session; an interrupted sweep reads its finished cells back and resumes
the one it stopped in; a finished sweep draws the report ``neuroprune report`` draws."""

import pandas as pd
import pytest

from neuroprune.cli import main
from neuroprune.config import load_config
from neuroprune.searches import sweep
from neuroprune.searches.comparison import Comparison
from neuroprune.searches.mask_search import MaskSearch
from neuroprune.searches.planted_search import Planted
from neuroprune.workbench import Workbench

from helpers import REPO

COMPARISON = [str(REPO / "configs" / "compare_digits.yaml"), "--set", "comparison.sparsities=[0.9]",
              "--set", "comparison.seeds=[0, 1]", "--set", "comparison.methods=[random]",
              "--set", "training.epochs=1", "--set", "model.widths=[16]"]
PLANTED = [str(REPO / "configs" / "planted_ci.yaml"), "--set", "planted.tasks=[relu]",
           "--set", "planted.methods=[random]", "--set", "planted.samples=300",
           "--set", "training.epochs=1"]


def _comparison():
    overrides = [a for a in COMPARISON[1:] if a != "--set"]
    return Comparison(Workbench.from_config(load_config(COMPARISON[0], overrides)))


def _run(args, out):
    assert main(["run", *args, "--out", str(out), "--no-progress"]) == 0


def test_both_sweep_kinds_run_their_cells_through_one_loop_in_one_ray_session(tmp_path,
                                                                           monkeypatch):
    assert issubclass(Comparison, sweep.Sweep) and issubclass(Planted, sweep.Sweep)
    sessions, cells = [], []
    run_cell, shared_ray = sweep.run_cell, sweep.shared_ray
    monkeypatch.setattr(sweep, "run_cell", lambda cell, path, tracking=None: (
        cells.append(path.name), run_cell(cell, path, tracking))[1])
    monkeypatch.setattr(sweep, "shared_ray", lambda *args: (
        sessions.append(args), shared_ray(*args))[1])
    _run(COMPARISON, tmp_path / "cmp")
    _run(PLANTED, tmp_path / "planted")
    assert len(sessions) == 2  # one per sweep, not one per cell
    assert cells[:2] == ["random-s0.9-seed0", "random-s0.9-seed1"]
    assert len(cells) == 2 + 3 and all(c.startswith("relu-random-s") for c in cells[2:])
    assert len(pd.read_csv(tmp_path / "planted" / "results.csv")) == 3


def test_an_interrupted_sweep_reads_finished_cells_back_and_resumes_the_started_one(
        tmp_path, monkeypatch):
    calls, real = [], MaskSearch.run

    def stopping(self, path, **options):
        calls.append((path.name, options["resume"]))
        summary = real(self, path, **options)
        if len(calls) == 2:  # killed as the second cell ended, before it wrote its summary
            (path / "summary.json").unlink()
            raise KeyboardInterrupt
        return summary

    monkeypatch.setattr(MaskSearch, "run", stopping)
    out = tmp_path / "cmp"
    with pytest.raises(KeyboardInterrupt):
        _comparison().run(out, progress=False)
    assert len(pd.read_csv(out / "results.csv")) == 1  # a row per cell, as each cell ends
    assert not (out / "summary.json").exists()
    first = (out / "cells" / "random-s0.9-seed0" / "summary.json").stat().st_mtime_ns

    monkeypatch.setattr(MaskSearch, "run", lambda self, path, **options: (
        calls.append((path.name, options["resume"])), real(self, path, **options))[1])
    summary = _comparison().run(out, progress=False)
    assert calls[2:] == [("random-s0.9-seed1", True)]  # the finished cell is not run again
    assert (out / "cells" / "random-s0.9-seed0" / "summary.json").stat().st_mtime_ns == first
    assert summary["cells"] == 2
    whole = _comparison()
    whole.run(tmp_path / "whole", progress=False)
    keys = ["method", "sparsity", "seed", "test_accuracy", "val_accuracy", "kept_weights"]
    pd.testing.assert_frame_equal(pd.read_csv(out / "results.csv")[keys],
                                  pd.read_csv(tmp_path / "whole" / "results.csv")[keys])


@pytest.mark.parametrize("args, tables", [(COMPARISON, "comparison.md"),
                                          (PLANTED, "planted.md")])
def test_a_finished_sweep_draws_the_report_that_neuroprune_report_draws(tmp_path, args,
                                                                        tables):
    pytest.importorskip("matplotlib")
    run = tmp_path / "run"
    _run(args, run)
    assert main(["report", str(run), "--out", str(tmp_path / "rep")]) == 0
    drawn = sorted(p.name for p in (run / sweep.REPORT).iterdir())
    assert drawn == sorted(p.name for p in (tmp_path / "rep").iterdir())
    assert any(name.endswith(".png") for name in drawn)
    md = (run / sweep.REPORT / "report.md").read_text()
    assert md == (tmp_path / "rep" / "report.md").read_text()
    for line in (run / tables).read_text().splitlines():  # the tables are the report's
        assert line in md
