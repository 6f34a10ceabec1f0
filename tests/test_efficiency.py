"""Latency measured with its spread, the speedup's interval, what was compacted; the run
folder's lock; the device option."""

from __future__ import annotations

import copy

import pytest
import torch
from torch import nn

from neuroprune.efficiency import (efficiency, median_interval, speedup, speedup_words,
                                   time_interleaved)


def _mlp(width: int) -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(nn.Flatten(), nn.Linear(64, width), nn.ReLU(), nn.Linear(width, 10))


def test_the_median_interval_is_the_binomial_order_statistics():
    assert median_interval([1.0] * 5) is None  # below 6 values no 95% interval exists
    values = [float(v) for v in range(1, 21)]  # n=20: ranks 6 and 15
    assert median_interval(values) == (6.0, 15.0)
    assert median_interval([3.0, 1.0, 2.0, 6.0, 5.0, 4.0]) == (1.0, 6.0)


def test_a_speedup_whose_interval_holds_one_is_no_speedup():
    assert speedup_words(1.02, (0.95, 1.1)) == "no speedup measurable (0.95-1.10x)"
    assert speedup_words(16.2, (0.4, 58.1)).startswith("no speedup measurable")
    assert speedup_words(2.0, (1.8, 2.3)) == "2.00x (1.80-2.30)"
    assert "no interval" in speedup_words(2.0, None)


def test_interleaved_rounds_tell_a_large_network_from_a_small_one():
    big = nn.Sequential(nn.Linear(512, 2048), nn.ReLU(), nn.Linear(2048, 2048))
    small = nn.Linear(512, 8)
    times = time_interleaved({"big": big, "small": small}, (512,), 64, min_rounds=6,
                             max_seconds=2.0)
    assert all(len(t.seconds) >= 6 for t in times.values())
    ratio, (low, high) = speedup(times["big"], times["small"])
    assert low > 1.0 and low <= ratio <= high  # ~1000x the FLOPs: measurable on any load
    q1, q3 = times["big"].iqr
    assert q1 <= times["big"].median <= q3


def test_an_unpruned_network_has_its_spread_and_interval_on_record():
    dense = _mlp(32)
    figures = efficiency(dense, copy.deepcopy(dense), (64,), latency_repeats=6)
    assert figures["deployed"] == "compact" and figures["compacted_with"].startswith(
        "torch-pruning")
    assert figures["flops_compact"] == figures["flops_dense"]  # nothing removed
    for b in (1, 256):
        q1, q3 = figures[f"latency_b{b}_compact_iqr"]
        assert q1 <= figures[f"latency_b{b}_compact"] <= q3
        assert figures[f"latency_b{b}_rounds"] >= 6
        low, high = figures[f"speedup_b{b}_ci"]
        assert low <= figures[f"speedup_b{b}"] <= high
    assert figures["latency"] == figures["latency_b256_compact"]
    assert figures["latency_rel_error"] >= 0


def _row(method, sparsity, seed, **kw):
    return {"method": method, "sparsity": sparsity, "seed": seed, "test_accuracy": 0.9,
            "flops": 1000.0, "params": 100.0, "latency": 0.002, "latency_q1": 0.0019,
            "latency_q3": 0.0022, "deployed": "compact", "compacted_with": "torch-pruning 1.6",
            "speedup": 1.0, "speedup_low": 0.8, "speedup_high": 1.3, **kw}


def test_the_comparison_table_says_what_was_compacted_and_when_nothing_was_measured():
    from neuroprune.report.comparison_efficiency import efficiency_table

    table = efficiency_table([
        _row("dense", 0.0, 0), _row("dense", 0.0, 1, speedup_low=0.5, speedup_high=1.1),
        _row("l1_filter", 0.5, 0, speedup=2.0, speedup_low=1.8, speedup_high=2.2),
        _row("magnitude", 0.9, 0, deployed="masked", compacted_with=None,
             compact_error="compaction needs the 'torch-pruning' package: pip install "
                           "'neuroprune[structured]'")])
    lines = {line.split(" | ")[0].strip("| "): line for line in table.splitlines()
             if line.startswith("| ") and "---" not in line}
    assert "compact (torch-pruning 1.6)" in lines["dense"]
    assert "no speedup measurable (0.50-1.30x)" in lines["dense"]  # union over seeds
    assert "2.00x (1.80-2.20)" in lines["l1_filter"]
    assert "masked (not compacted)" in lines["magnitude"]
    assert "2.00 (1.90-2.20)" in lines["dense"]  # ms with the quartiles
    assert "Not compacted: compaction needs the 'torch-pruning' package" in table


def test_a_run_folder_is_locked_by_filelock_and_names_its_holder(tmp_path):
    import os

    from neuroprune.errors import UserError
    from neuroprune.rundir import HOLDER_NAME, LOCK_NAME, RunDir

    with RunDir(tmp_path / "r").locked():
        assert (tmp_path / "r" / LOCK_NAME).exists()
        with pytest.raises(UserError, match=f"in use by pid {os.getpid()} on "):
            with RunDir(tmp_path / "r").locked():
                pass
    assert not (tmp_path / "r").exists()  # refused or empty: nothing left behind
    (tmp_path / "s").mkdir()
    (tmp_path / "s" / "kept.txt").write_text("x")
    with RunDir(tmp_path / "s").locked():
        pass
    assert not (tmp_path / "s" / HOLDER_NAME).exists() and (tmp_path / "s" / "kept.txt").exists()
    with RunDir(tmp_path / "s").locked():  # free again once released
        pass


@pytest.mark.parametrize("device", ["cuda:7", "mps"])
def test_a_device_torch_cannot_see_is_one_line(device, capsys, tmp_path):
    from neuroprune.cli import main

    if device == "mps" and torch.backends.mps.is_available():
        pytest.skip("this machine has MPS")
    if device.startswith("cuda") and torch.cuda.device_count() > 7:
        pytest.skip("this machine has 8 GPUs")
    assert main(["run", "quickstart", "--device", device, "--out", str(tmp_path / "r")]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and f"device {device} requested" in err
    assert not (tmp_path / "r").exists()


def test_a_device_name_is_checked_where_the_config_is_read(capsys):
    from neuroprune.cli import main

    assert main(["config", "--set", "device=gpu"]) == 2
    assert "'gpu' is not a device; use cpu, cuda, cuda:N, mps or auto" in capsys.readouterr().err
    assert main(["config", "--set", "device=cuda:1"]) == 0  # a name torch knows


def test_figures_say_what_their_axes_hold(tmp_path, monkeypatch):
    import matplotlib.pyplot as plt
    import pandas as pd

    from neuroprune.report import planted as planted_report
    from neuroprune.report.document import Document
    from neuroprune.report.sweep import accuracy_figure
    from neuroprune.report.comparison import compute_figure

    # methods that spent the same compute: the axis starts at 0, so the 1% apart reads as such
    rows = [{"method": m, "sparsity": 0.9, "seed": s, "test_accuracy": 0.9, "network_epochs": 40}
            for m in ("random", "snip", "magnitude") for s in (0, 1)]
    fig = compute_figure(rows)
    low, high = fig.axes[0].get_xlim()
    assert low == 0 and high >= 40
    xs = [line.get_xdata()[0] for line in fig.axes[0].lines if len(line.get_xdata())]
    assert max(xs) - min(xs) <= 0.021 * 40
    plt.close(fig)
    # twenty methods: spread within ±2%, every point inside the axes, linear or log
    for spent in ((40,), (4, 400)):
        rows = [{"method": f"m{i}", "sparsity": 0.9, "seed": s, "test_accuracy": 0.5 + i / 50,
                 "network_epochs": spent[i % len(spent)]} for i in range(20) for s in (0, 1)]
        fig = compute_figure(rows)
        ax = fig.axes[0]
        points = [bars.lines[0].get_xydata()[0] for bars in ax.containers]
        assert len(points) == 20
        (left, right), (bottom, top) = ax.get_xlim(), ax.get_ylim()
        assert all(left < x < right and bottom < y < top for x, y in points)
        assert all(0.98 * min(spent) <= x <= 1.02 * max(spent) for x, _ in points)
        plt.close(fig)
    # the dense line counts seeds, not the cells of every method at sparsity 0
    cells = pd.DataFrame([{"method": m, "sparsity": s, "seed": seed, "test_accuracy": 0.9}
                          for m in ("random", "snip", "magnitude") for s in (0.0, 0.9)
                          for seed in (0, 1)])
    doc = Document(tmp_path)
    accuracy_figure(doc, cells)
    assert "mean of 2 seeds" in "\n".join(doc.lines)
    # a regression task's quality axis is R², a classification task's accuracy
    labels = []
    monkeypatch.setattr(Document, "figure", lambda self, name, fig, caption: labels.extend(
        ax.get_ylabel() for ax in fig.axes))
    planted = pd.DataFrame([{"task": t, "method": "random", "sparsity": s, "seed": 0,
                             "planted_sparsity": 0.95, "quality_trained": 0.5, "iou": 0.3}
                            for t in ("relu", "circle") for s in (0.9, 0.97)])
    planted_report.figure(Document(tmp_path), planted, "planted")
    assert labels == ["test R² after training", "test accuracy after training",  # row 1
                      "IoU with the planted mask", "IoU with the planted mask"]
