"""What the compact networks of a comparison cost: FLOPs, parameters and CPU latency per
method and target, and accuracy against FLOPs (for structured methods, whose budgets are
FLOPs)."""

from __future__ import annotations

import statistics
from typing import Any


def _known(value: Any) -> bool:
    return value is not None and value == value  # neither absent nor NaN (a CSV's blank)


def efficiency_table(rows: list[dict[str, Any]]) -> str:
    """Markdown: mean FLOPs per sample, parameters and batch-256 CPU latency of the compact
    networks per method and target, and how much faster than the dense network each ran
    (each cell's dense latency over its compact one, measured one after the other; '' when no
    row has them)."""
    rows = [r for r in rows if _known(r.get("flops"))]
    if not rows:
        return ""
    lines = ["| method | target | FLOPs / sample | params | CPU ms (batch 256) | speedup |",
             "| --- | --- | --- | --- | --- | --- |"]
    for m in dict.fromkeys(r["method"] for r in rows):
        for s in sorted({r["sparsity"] for r in rows if r["method"] == m}):
            cell = [r for r in rows if r["method"] == m and r["sparsity"] == s]
            lat = [r["latency"] for r in cell if _known(r.get("latency"))]
            gain = [r["latency_dense"] / r["latency"] for r in cell
                    if _known(r.get("latency")) and _known(r.get("latency_dense"))]
            lines.append(f"| {m} | {s:.0%} | {statistics.mean(r['flops'] for r in cell):,.0f} | "
                         f"{statistics.mean(r['params'] for r in cell):,.0f} | "
                         + (f"{1000 * statistics.mean(lat):.1f}" if lat else "-") + " | "
                         + (f"{statistics.mean(gain):.1f}x" if gain else "-") + " |")
    return ("\nThe compact networks (pruned units removed), means over seeds; speedup: the "
            "dense network's CPU latency over the compact one's, batch 256, measured one "
            "after the other in each cell:\n\n" + "\n".join(lines) + "\n")


def _si(value: float, _pos=None) -> str:
    """1500000 -> '1.5M'."""
    for scale, unit in ((1e9, "G"), (1e6, "M"), (1e3, "k")):
        if value >= scale:
            return f"{value / scale:g}{unit}"
    return f"{value:g}"


def flops_figure(rows: list[dict[str, Any]]):
    """Test accuracy against the compact network's FLOPs, one colour per method (mean and
    standard deviation over seeds, one point per target), the dense network's FLOPs dashed
    and, where cells at target 0 ran, its accuracy as a grey band; None without FLOPs."""
    import matplotlib
    import matplotlib.pyplot as plt

    rows = [r for r in rows if _known(r.get("flops"))]
    if not rows:
        return None
    colours = plt.get_cmap("tab10").colors
    markers = "osD^vP*Xhp"
    fig, ax = plt.subplots(figsize=(6.8, 3.9))
    dense = [r["flops_dense"] for r in rows if _known(r.get("flops_dense"))]
    if dense:
        ax.axvline(statistics.mean(dense), color="0.4", ls="--", lw=1)
        ax.annotate("dense", (statistics.mean(dense), 0.02), xycoords=("data", "axes fraction"),
                    rotation=90, ha="right", va="bottom", fontsize=8, color="0.3")
    # cells that removed nothing are the dense reference: a grey band, not a method
    ref = [r["test_accuracy"] for r in rows if r["sparsity"] == 0]
    if ref:
        mean, std = statistics.mean(ref), statistics.stdev(ref) if len(ref) > 1 else 0.0
        ax.axhline(mean, color="0.4", ls="--", lw=1, label=f"dense ({len(ref)} seed"
                   f"{'s' if len(ref) > 1 else ''})")
        ax.axhspan(mean - std, mean + std, color="0.85", alpha=0.6, lw=0)
    rows = [r for r in rows if r["sparsity"] != 0]
    n_seeds = len({r.get("seed") for r in rows})
    methods = list(dict.fromkeys(r["method"] for r in rows))
    for i, m in enumerate(methods):
        xs, ys, es = [], [], []
        for s in sorted({r["sparsity"] for r in rows if r["method"] == m}):
            cell = [r for r in rows if r["method"] == m and r["sparsity"] == s]
            acc = [r["test_accuracy"] for r in cell]
            # methods that land on one point (slimming without BatchNorm is l1_filter) are
            # set 1% apart, so that none hides another
            xs.append(statistics.mean(r["flops"] for r in cell) *
                      (1 + 0.01 * (i - (len(methods) - 1) / 2)))
            ys.append(statistics.mean(acc))
            es.append(statistics.stdev(acc) if len(acc) > 1 else 0.0)
        ax.errorbar(xs, ys, yerr=es, fmt=markers[i % len(markers)] + "-",
                    color=colours[i % len(colours)], capsize=3, label=m, ms=5, lw=1)
    ax.set_xscale("log")
    ax.xaxis.set_major_locator(matplotlib.ticker.LogLocator(subs=(1, 2, 5)))
    ax.xaxis.set_major_formatter(matplotlib.ticker.FuncFormatter(_si))
    ax.xaxis.set_minor_formatter(matplotlib.ticker.NullFormatter())
    ax.set_xlabel("FLOPs per sample of the compact network (log)")
    ax.set_ylabel("test accuracy")
    ax.set_title(f"Test accuracy against FLOPs (mean ± std over {n_seeds} seed"
                 f"{'s' if n_seeds > 1 else ''})", fontsize=10)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8, loc="center left", bbox_to_anchor=(1.01, 0.5), frameon=False)
    fig.tight_layout()
    return fig
