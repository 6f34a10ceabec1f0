"""The run directory's results.csv: appended per generation, always what the ledger says."""

from neuroprune._io import atomic_write_csv
from neuroprune.rundir import RunDir


def _rows(gen, n=3, **extra):
    return [{"generation": gen, "index": i, "fitness": 0.1 * i + (gen if isinstance(gen, int)
                                                                else 0), **extra}
            for i in range(n)]


def _from_ledger(rd, tmp_path):
    """results.csv as a whole rewrite from the ledger gives it."""
    gens = rd.committed()
    ints = sorted(g for g in gens if isinstance(g, int))
    rows = [r for g in ints + [g for g in gens if isinstance(g, str)] for r in gens[g]]
    atomic_write_csv(tmp_path / "expected.csv", rows)
    return (tmp_path / "expected.csv").read_text()


def test_appended_results_equal_a_rewrite_from_the_ledger(tmp_path):
    rd = RunDir(tmp_path / "run")
    commits = [(0, _rows(0)), (1, _rows(1)), (3, _rows(3)),
               (2, _rows(2)),  # out of order: rows still sorted by generation
               (4, _rows(4, note="new column")),  # the header grows
               ("final", _rows("final", 1, test_accuracy=0.9))]
    for gen, rows in commits:
        assert rd.commit_generation(gen, rows)
        assert (rd.path / "results.csv").read_text() == _from_ledger(rd, tmp_path), gen
    assert not rd.commit_generation(1, _rows(1, 5))  # a retry is not counted twice
    text = (rd.path / "results.csv").read_text()
    assert text == _from_ledger(rd, tmp_path)
    lines = text.splitlines()
    assert lines[0] == "generation,index,fitness,note,test_accuracy"
    assert [ln.split(",")[0] for ln in lines[1:]] == ["0"] * 3 + ["1"] * 3 + ["2"] * 3 + \
        ["3"] * 3 + ["4"] * 3 + ["final"]


def test_results_cut_by_a_crash_are_rebuilt_by_the_next_process(tmp_path):
    rd = RunDir(tmp_path / "run")
    for g in range(3):
        rd.commit_generation(g, _rows(g))
    path = rd.path / "results.csv"
    whole = path.read_text()
    path.write_text(whole[:len(whole) - 7])  # a crash in the middle of an append
    resumed = RunDir(tmp_path / "run")  # as a resumed run opens it
    assert not resumed.commit_generation(2, _rows(2))  # already in the ledger
    assert path.read_text() == whole
    resumed.commit_generation(3, _rows(3))
    assert path.read_text() == _from_ledger(resumed, tmp_path)


def test_a_torn_ledger_line_is_cut_before_the_next_commit(tmp_path):
    rd = RunDir(tmp_path / "run")
    rd.commit_generation(0, _rows(0))
    with open(rd.ledger_path, "a", encoding="utf-8") as f:
        f.write('{"generation": 1, "rows": [{"gen')  # a writer killed mid-append
    resumed = RunDir(tmp_path / "run")
    assert sorted(resumed.committed()) == [0]
    assert resumed.commit_generation(1, _rows(1))
    lines = rd.ledger_path.read_text().splitlines()
    assert len(lines) == 2 and '"gen' not in lines[1][-10:]
    assert sorted(RunDir(tmp_path / "run").committed()) == [0, 1]
    assert (rd.path / "results.csv").read_text() == _from_ledger(resumed, tmp_path)
