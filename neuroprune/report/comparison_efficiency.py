"""What the compact networks of a comparison cost: FLOPs, parameters and CPU latency per
method and target, and accuracy against FLOPs (for structured methods, whose budgets are
FLOPs), from the rows of its ``results.csv``."""

from __future__ import annotations

import statistics
from typing import Any


def _known(value: Any) -> bool:
    return value is not None and value == value  # neither absent nor NaN (a CSV's blank)


def _deployed(cell: list[dict[str, Any]]) -> str:
    """'compact (torch-pruning 1.6.0)' or 'masked (not compacted)' for a cell's rows."""
    words = set()
    for r in cell:
        if r.get("deployed") == "masked":
            words.add("masked (not compacted)")
        elif _known(r.get("compacted_with")):
            words.add(f"compact ({r['compacted_with']})")
        else:
            words.add("compact")
    return ", ".join(sorted(words))


def _latency(cell: list[dict[str, Any]]) -> str:
    """Mean of the seeds' median ms with the range of their quartiles: '2.1 (1.9-2.4)'."""
    lat = [r["latency"] for r in cell if _known(r.get("latency"))]
    if not lat:
        return "-"
    q = [(r["latency_q1"], r["latency_q3"]) for r in cell
         if _known(r.get("latency_q1")) and _known(r.get("latency_q3"))]
    spread = (f" ({1000 * min(a for a, _ in q):.2f}-{1000 * max(b for _, b in q):.2f})"
              if q else "")
    return f"{1000 * statistics.mean(lat):.2f}{spread}"


def _speedup(cell: list[dict[str, Any]]) -> str:
    """The seeds' median speedup with the union of their 95% intervals; 'no speedup
    measurable' where that holds 1; '-' for rows measured before intervals were kept."""
    from ..efficiency import speedup_words

    got = [r for r in cell if _known(r.get("speedup"))]
    if not got:
        return "-"
    ratio = statistics.median(r["speedup"] for r in got)
    if not all(_known(r.get("speedup_low")) for r in got):
        return speedup_words(ratio, None)
    return speedup_words(ratio, (min(r["speedup_low"] for r in got),
                                 max(r["speedup_high"] for r in got)))


def efficiency_table(rows: list[dict[str, Any]]) -> str:
    """Markdown: mean FLOPs per sample, parameters and batch-256 CPU latency of the deployed
    networks per method and target (compact, or masked where nothing compacted them, said in
    a column and in a line), and their speedup over the dense network with its 95% interval
    ('no speedup measurable' where the interval holds 1); '' when no row has figures."""
    rows = [r for r in rows if _known(r.get("flops"))]
    if not rows:
        return ""
    lines = ["| method | target | network | FLOPs / sample | params | CPU ms, batch 256 "
             "(quartiles) | speedup (95% interval) |",
             "| --- | --- | --- | --- | --- | --- | --- |"]
    for m in dict.fromkeys(r["method"] for r in rows):
        for s in sorted({r["sparsity"] for r in rows if r["method"] == m}):
            cell = [r for r in rows if r["method"] == m and r["sparsity"] == s]
            lines.append(f"| {m} | {s:.0%} | {_deployed(cell)} | "
                         f"{statistics.mean(r['flops'] for r in cell):,.0f} | "
                         f"{statistics.mean(r['params'] for r in cell):,.0f} | "
                         f"{_latency(cell)} | {_speedup(cell)} |")
    notes = ["Means over seeds. Network: what the figures are of: *compact* is the network "
             "with its pruned units removed (and by what), *masked* the dense network with "
             "its pruned weights zero (FLOPs and parameters of the kept weights). Latency: "
             "the CPU median of a forward pass, with the lowest and highest quartile over "
             "seeds; speedup: the dense network's time over this one's, timed in alternating "
             "rounds, median and 95% interval over rounds (the union over seeds)."]
    errors = {r.get("compact_error") for r in rows if r.get("deployed") == "masked"}
    errors = {e for e in errors if _known(e)}
    if errors:
        notes.append("Not compacted: " + "; ".join(sorted(errors)) + ".")
    return "\n" + " ".join(notes) + "\n\n" + "\n".join(lines) + "\n"


def _si(value: float, _pos=None) -> str:
    """1500000 -> '1.5M'."""
    for scale, unit in ((1e9, "G"), (1e6, "M"), (1e3, "k")):
        if value >= scale:
            return f"{value / scale:g}{unit}"
    return f"{value:g}"


def flops_figure(rows: list[dict[str, Any]]):
    """Test accuracy against the deployed (compact) network's FLOPs, one colour per method
    (mean and standard deviation over seeds, one point per target), the dense network's
    FLOPs dashed and, where cells at target 0 ran, its accuracy as a grey band; None without
    FLOPs."""
    import matplotlib
    import matplotlib.pyplot as plt

    rows = [r for r in rows if _known(r.get("flops"))]
    if not rows:
        return None
    fig, ax = plt.subplots(figsize=(6.8, 3.9))
    _dense_reference(ax, rows)
    rows = [r for r in rows if r["sparsity"] != 0]
    n_seeds = len({r.get("seed") for r in rows})
    _method_lines(ax, rows)
    ax.set_xscale("log")
    ax.xaxis.set_major_locator(matplotlib.ticker.LogLocator(subs=(1, 2, 5)))
    ax.xaxis.set_major_formatter(matplotlib.ticker.FuncFormatter(_si))
    ax.xaxis.set_minor_formatter(matplotlib.ticker.NullFormatter())
    ax.set_xlabel("FLOPs per sample of the deployed network (log)")
    ax.set_ylabel("test accuracy")
    ax.set_title(f"Test accuracy against FLOPs (mean ± std over {n_seeds} seed"
                 f"{'s' if n_seeds > 1 else ''})", fontsize=10)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8, loc="center left", bbox_to_anchor=(1.01, 0.5), frameon=False)
    fig.tight_layout()
    return fig


def _dense_reference(ax, rows: list[dict[str, Any]]) -> None:
    """The dense network's FLOPs dashed, and the accuracy of cells at target 0 as a band."""
    dense = [r["flops_dense"] for r in rows if _known(r.get("flops_dense"))]
    if dense:
        ax.axvline(statistics.mean(dense), color="0.4", ls="--", lw=1)
        ax.annotate("dense", (statistics.mean(dense), 0.02), xycoords=("data", "axes fraction"),
                    rotation=90, ha="right", va="bottom", fontsize=8, color="0.3")
    # cells that removed nothing are the dense reference: a grey band, not a method
    ref = [r for r in rows if r["sparsity"] == 0]
    if ref:
        acc = [r["test_accuracy"] for r in ref]
        mean, std = statistics.mean(acc), statistics.stdev(acc) if len(acc) > 1 else 0.0
        # every method's cell at target 0 is the same dense network: count seeds, not cells
        seeds = len({r.get("seed") for r in ref})
        ax.axhline(mean, color="0.4", ls="--", lw=1, label=f"dense ({seeds} seed"
                   f"{'s' if seeds > 1 else ''})")
        ax.axhspan(mean - std, mean + std, color="0.85", alpha=0.6, lw=0)


def _method_lines(ax, rows: list[dict[str, Any]]) -> None:
    """A line per method through its targets (sparsity 0 left out)."""
    import matplotlib.pyplot as plt

    colours = plt.get_cmap("tab10").colors
    markers = "osD^vP*Xhp"
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
