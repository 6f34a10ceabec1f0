"""Report of planted-ticket sweeps: per task, the quality after training and the recovery of
the planted connections (IoU) against the share of weights remaining, per method, with the
planted ticket's sparsity marked; :func:`tables` is a finished sweep's ``planted.md``."""

from __future__ import annotations

import statistics
from typing import Any

import pandas as pd

from .document import Document
from .inputs import Run
from .style import REFERENCE, percent, pyplot, styles, weights_remaining_axis
from .sweep import seeds_phrase

#: the planted tasks scored by R² (regression); the others by accuracy (neuroprune.planted)
REGRESSION = ("relu", "helix")


def table(rows: list[dict[str, Any]], oracle: dict[str, float] | None = None) -> str:
    """Per task: quality after training (and untrained) and IoU with the planted mask."""
    lines = ["Quality: accuracy (circle) or R^2 (relu, helix) on the test split, after the "
             "final training (untrained in brackets); IoU of kept connections with the planted "
             "mask. Means over seeds. `*` marks the planted sparsity.", ""]
    for t in dict.fromkeys(r["task"] for r in rows):
        rs = [r for r in rows if r["task"] == t]
        planted = rs[0]["planted_sparsity"]
        sps = sorted({r["sparsity"] for r in rs})
        head = [f"{s:.4%}" + ("*" if abs(s - planted) < 1e-6 else "") for s in sps]
        ceiling = f"; the planted mask scores {oracle[t]:.3f} untrained" if oracle else ""
        lines += [f"### {t} (planted ticket keeps {1 - planted:.3%} of the weights{ceiling})",
                  "",
                  "| method | " + " | ".join(head) + " |", "| --- |" + " --- |" * len(sps)]
        for m in dict.fromkeys(r["method"] for r in rs):
            cells = []
            for s in sps:
                c = [r for r in rs if r["method"] == m and r["sparsity"] == s]
                if not c:
                    cells.append("-")
                    continue
                q = statistics.mean(r["quality_trained"] for r in c)
                q0 = statistics.mean(r["quality_pruned"] for r in c)
                iou = statistics.mean(r["iou"] for r in c)
                cells.append(f"{q:.3f} ({q0:.2f}) IoU {iou:.2f}")
            lines.append(f"| {m} | " + " | ".join(cells) + " |")
        lines.append("")
    return "\n".join(lines)


def figure(doc: Document, rows: pd.DataFrame, name: str) -> None:
    plt = pyplot()
    tasks = list(dict.fromkeys(rows.task))
    look = styles(dict.fromkeys(rows.method))
    fig, axes = plt.subplots(2, len(tasks), figsize=(4.6 * len(tasks), 7), squeeze=False,
                             sharex="col")
    counts = []
    for col, task in enumerate(tasks):
        rs = rows[rows.task == task]
        planted = float(rs.planted_sparsity.iloc[0])
        quality = "R²" if task in REGRESSION else "accuracy"
        for row, (metric, ylabel) in enumerate((("quality_trained", f"test {quality} after "
                                                 "training"),
                                                ("iou", "IoU with the planted mask"))):
            ax = axes[row][col]
            agg = (rs.groupby(["method", "sparsity"], sort=False)[metric]
                   .agg(["mean", "std", "count"]).reset_index())
            counts.append(agg["count"])
            for method, g in agg.groupby("method", sort=False):
                g = g.sort_values("sparsity")
                ax.errorbar(1 - g.sparsity, g["mean"], yerr=g["std"].fillna(0), capsize=3,
                            label=method, linewidth=1.4, markersize=5, **look[method])
            ax.axvline(1 - planted, color=REFERENCE, linestyle=":", linewidth=1.2,
                       label=f"planted ticket ({percent(1 - planted)})")
            weights_remaining_axis(ax, list(1 - agg.sparsity))
            ax.set_ylabel(ylabel)
            if row == 0:
                ax.set_title(f"{task} (planted ticket keeps {percent(1 - planted)})")
                ax.set_xlabel("")
            ax.tick_params(axis="x", labelrotation=45)
    handles, texts = axes[0][0].get_legend_handles_labels()
    fig.tight_layout()
    fig.subplots_adjust(top=0.9)
    fig.legend(handles, [t.split(" (")[0] if t.startswith("planted") else t for t in texts],
               loc="upper center", ncol=min(6, len(texts)), bbox_to_anchor=(0.5, 1.0),
               frameon=False)
    doc.figure(name, fig, "Top: quality after the final training (accuracy for circle, R² "
               "for relu and helix) on the test split; bottom: IoU of the kept connections with "
               "the planted mask; both against the share of weights remaining (log scale), "
               f"{seeds_phrase(pd.concat(counts))}. Dotted: the planted ticket's sparsity. No "
               "dense baseline is drawn: the dense network hides the ticket (the planted mask "
               "alone scores 1.0).")


def _table(run: Run) -> str:
    oracle = (run.summary or {}).get("planted_mask_quality") if run.finished else None
    return table(run.results.to_dict("records"), oracle)


def tables(runs: list[Run]) -> str:
    """``planted.md``: :func:`table` of each run (with the planted mask's own untrained
    quality once the run is finished)."""
    return "\n".join(_table(run) for run in runs)


def report(runs: list[Run], doc: Document) -> None:
    for i, run in enumerate(runs):
        suffix = f"-{i + 1}" if len(runs) > 1 else ""
        state = "" if run.finished else " — unfinished, reported as far as it got"
        doc.heading(f"Planted tickets `{run.name}`{state}")
        figure(doc, run.results, f"planted{suffix}")
        doc.para(_table(run).rstrip("\n"))
