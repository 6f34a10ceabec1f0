"""Trainings shared by a sweep's cells: the same results, fewer trainings, a cache that
survives damage."""

import json

import pandas as pd
import pytest
import torch
from safetensors.torch import load_file

from neuroprune.config import load_config
from neuroprune.engine import EvalTask, LearningCurve
from neuroprune.engine.memo import Memoised, task_key
from neuroprune.searches.comparison import Comparison
from neuroprune.workbench import Workbench

pytest.importorskip("torch_pruning")

TREE = {"kind": "comparison", "data": {"dataset": "digits"}, "device": "cpu",
        "model": {"name": "conv2", "width": 0.125, "widths": [16], "batch_norm": True},
        "sparsity": {"structure": "channel", "budget": "flops", "latency_repeats": 0},
        "training": {"epochs": 1, "batch_size": 128},
        "comparison": {"methods": [{"name": "l1_filter", "dense_epochs": 2},
                                   {"name": "ispasp", "dense_epochs": 2},
                                   {"name": "group_lasso", "dense_epochs": 2,
                                    "strengths": [0.001, 0.01]}],
                       "sparsities": [0.5, 0.75]}}


class Counting(Memoised):
    """Counts the trainings that reach the backend."""

    trained: list[int] = []

    def __init__(self, inner, folder, context):
        super().__init__(_Count(inner, self.trained), folder, context)


class _Count:
    def __init__(self, inner, log):
        self.inner, self.log = inner, log
        self.name, self.device = inner.name, inner.device

    def evaluate(self, task):
        self.log.append(len(task) * task.epochs)
        return self.inner.evaluate(task)

    def describe(self):
        return self.inner.describe()

    def close(self):
        self.inner.close()


def _compare(out, reuse):
    tree = json.loads(json.dumps(TREE))
    tree["comparison"]["reuse"] = reuse
    summary = Comparison(Workbench.from_config(load_config(tree=tree))).run(
        out, progress=False, log=lambda _: None)
    return summary, pd.read_csv(out / "results.csv")


def test_a_comparison_that_reuses_trainings_gives_the_same_cells_for_less(tmp_path):
    plain, rows = _compare(tmp_path / "plain", reuse=False)
    shared, rows_shared = _compare(tmp_path / "shared", reuse=True)
    keys = ["method", "sparsity", "seed", "test_accuracy", "val_accuracy", "actual_sparsity",
            "kept_weights", "network_epochs", "flops", "params"]
    pd.testing.assert_frame_equal(rows[keys], rows_shared[keys])
    for cell in (tmp_path / "plain" / "cells").iterdir():
        a = load_file(cell / "best_mask.safetensors")
        b = load_file(tmp_path / "shared" / "cells" / cell.name / "best_mask.safetensors")
        assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a), cell.name
    # one dense training (l1_filter's, read by ispasp and by both sparsities) and one
    # regularised population (two strengths) per seed, instead of one per cell
    assert plain["trained_network_epochs"] == plain["network_epochs"]
    assert plain["cell_wall_seconds"] == pytest.approx(rows.wall_seconds.sum(), abs=0.01)
    dense = 2 * (2 + 2 + 2 * 2)  # two sparsities of l1_filter, ispasp, group_lasso
    assert shared["network_epochs"] - shared["trained_network_epochs"] == dense - 2 - 4
    reused = rows_shared.set_index(["method", "sparsity"])["reused_network_epochs"]
    assert reused[("l1_filter", 0.5)] == 0 and reused[("l1_filter", 0.75)] == 2
    assert reused[("ispasp", 0.5)] == 2 and reused[("group_lasso", 0.75)] == 4
    assert not (tmp_path / "shared" / "memo").exists()  # a cache, gone once all cells are done
    assert "took less wall time" in (tmp_path / "shared" / "comparison.md").read_text()


def _bench():
    tree = {**TREE, "kind": "mask_search", "comparison": None,
            "method": {"name": "l1_filter"}}
    return Workbench.from_config(load_config(tree=tree))


def test_only_unpruned_trainings_with_known_hooks_are_kept_and_damage_is_retrained(tmp_path):
    bench = _bench()
    init = bench.init_state()
    Counting.trained = []
    with Counting(bench._backend(), tmp_path, bench.memo_context()) as ev:
        dense = EvalTask(masks=None, size=2, init=init, epochs=1, keep_weights=True)
        first = ev.evaluate(dense)
        again = ev.evaluate(EvalTask(masks=None, size=2, init=init, epochs=1,
                                     keep_weights=True))
        assert Counting.trained == [2] and ev.reused_network_epochs == 2
        for k, v in first.weights.items():
            assert torch.equal(v, again.weights[k]), k
        assert torch.equal(first.metrics["val_accuracy"], again.metrics["val_accuracy"])

        # another init, another seed, another length: other trainings
        other = {k: v + 1e-3 if v.is_floating_point() else v for k, v in init.items()}
        for task in (EvalTask(masks=None, size=2, init=other, epochs=1, keep_weights=True),
                     EvalTask(masks=None, size=2, init=init, epochs=1, keep_weights=True,
                              data_seed=1),
                     EvalTask(masks=None, size=2, init=init, epochs=2, keep_weights=True)):
            ev.evaluate(task)
        assert len(Counting.trained) == 4

        # pruned networks and hooks that do not say what they are are never kept
        n = bench.layout.numel
        pruned = torch.ones(1, n, dtype=torch.bool)
        pruned[0, :3] = False
        assert task_key(EvalTask(masks=pruned, init=init), ev.context) is None
        assert task_key(EvalTask(masks=None, size=1, init=init, hooks=(LearningCurve(),)),
                        ev.context) is None
        files = sorted(tmp_path.glob("*.pt"))
        assert len(files) == 4

        # a damaged entry is trained again and rewritten
        key = task_key(dense, ev.context)
        (tmp_path / f"{key}.pt").write_bytes(b"not a torch file")
        ev.evaluate(dense)
        assert len(Counting.trained) == 5
        ev.evaluate(dense)
        assert len(Counting.trained) == 5


def test_a_training_in_another_world_is_another_key():
    bench = _bench()
    task = EvalTask(masks=None, size=1, init=bench.init_state())
    key = task_key(task, bench.memo_context())
    assert key == task_key(task, _bench().memo_context())
    lr = _bench()
    lr.config = lr.config.model_copy(update={"training": lr.config.training.model_copy(
        update={"lr": 0.2})})
    epochs = _bench()
    epochs.config = epochs.config.model_copy(update={"training": epochs.config.training
                                                     .model_copy(update={"epochs": 7})})
    assert task_key(task, lr.memo_context()) != key
    assert task_key(task, epochs.memo_context()) == key  # the task says how long it trains
