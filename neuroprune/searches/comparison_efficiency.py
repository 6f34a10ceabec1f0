"""What the compact networks of a comparison cost: FLOPs, parameters and CPU latency per
method and target, and accuracy against FLOPs (for structured methods, whose budgets are
FLOPs)."""

from __future__ import annotations

import statistics
from typing import Any


def efficiency_table(rows: list[dict[str, Any]]) -> str:
    """Markdown: mean FLOPs per sample, parameters and batch-256 CPU latency of the compact
    networks per method and target ('' when no row has them)."""
    rows = [r for r in rows if r.get("flops") is not None]
    if not rows:
        return ""
    lines = ["| method | target | FLOPs / sample | params | CPU ms (batch 256) |",
             "| --- | --- | --- | --- | --- |"]
    for m in dict.fromkeys(r["method"] for r in rows):
        for s in sorted({r["sparsity"] for r in rows if r["method"] == m}):
            cell = [r for r in rows if r["method"] == m and r["sparsity"] == s]
            lat = [r["latency"] for r in cell if r.get("latency") is not None]
            lines.append(f"| {m} | {s:.0%} | {statistics.mean(r['flops'] for r in cell):,.0f} | "
                         f"{statistics.mean(r['params'] for r in cell):,.0f} | "
                         + (f"{1000 * statistics.mean(lat):.1f}" if lat else "-") + " |")
    return ("\nThe compact networks (pruned units removed), means over seeds:\n\n" +
            "\n".join(lines) + "\n")


def flops_figure(rows: list[dict[str, Any]]):
    """Test accuracy against the compact network's FLOPs, one colour per method (mean and
    standard deviation over seeds, one point per target); None without FLOPs."""
    import matplotlib.pyplot as plt

    rows = [r for r in rows if r.get("flops") is not None]
    if not rows:
        return None
    colours = plt.get_cmap("tab10").colors
    fig, ax = plt.subplots(figsize=(5.2, 3.6))
    for i, m in enumerate(dict.fromkeys(r["method"] for r in rows)):
        xs, ys, es = [], [], []
        for s in sorted({r["sparsity"] for r in rows if r["method"] == m}):
            cell = [r for r in rows if r["method"] == m and r["sparsity"] == s]
            acc = [r["test_accuracy"] for r in cell]
            xs.append(statistics.mean(r["flops"] for r in cell))
            ys.append(statistics.mean(acc))
            es.append(statistics.stdev(acc) if len(acc) > 1 else 0.0)
        ax.errorbar(xs, ys, yerr=es, fmt="o-", color=colours[i % len(colours)], capsize=3,
                    label=m)
    ax.set_xscale("log")
    ax.set_xlabel("FLOPs per sample of the compact network (log)")
    ax.set_ylabel("test accuracy")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    return fig
