"""Report of mask-search runs: fitness and validation accuracy per generation, the final
training's learning curves, per-layer sparsity, and (for several finished runs) accuracy
against weights remaining per method."""

from __future__ import annotations

import pandas as pd

from .. import results
from ..rundir import FILES
from .document import Document
from .inputs import Run
from .style import band, integer_ticks, percent, pyplot, styles
from .sweep import accuracy_figure


def target_sparsity(run: Run) -> float:
    if run.summary and "sparsity" in run.summary:
        return float(run.summary["sparsity"])
    return float((run.config.get("sparsity") or {}).get("target", float("nan")))


def method_name(run: Run) -> str:
    return (run.summary or {}).get("method") or (run.config.get("method") or {}).get("name", "?")


def labels(runs: list[Run]) -> list[str]:
    """'kstarts, 90% sparse' per run; the seed, then a number, where that is not unique."""
    base = [f"{method_name(r)}, {percent(target_sparsity(r))} sparse" for r in runs]
    if len(set(base)) < len(base):
        base = [f"{b}, seed {r.config.get('seed', '?')}" for b, r in zip(base, runs)]
    if len(set(base)) < len(base):
        base = [f"{b} (#{i + 1})" for i, b in enumerate(base)]
    return base


def fitness_weights(run: Run) -> str:
    w = (run.config.get("method") or {}).get("fitness")
    if not isinstance(w, dict):
        return ""
    parts = [f"{w[k]:g} × {name}" for k, name in (("accuracy", "validation accuracy"),
                                                  ("magnitude", "magnitude"),
                                                  ("gradient", "gradient")) if w.get(k)]
    return " + ".join(parts) + ("; magnitude and gradient relative to the first generation's "
                                "mean" if len(parts) > 1 else "")


def has_fitness(run: Run) -> bool:
    """A weighted fitness besides the validation accuracy (K-starts; not IMP or DG rounds)."""
    return "fitness" in run.results or (run.path / FILES.logbook).is_file()


def val_per_generation(run: Run) -> pd.DataFrame:
    search = run.results[run.results.phase == "search"]
    g = search.groupby("generation").val_accuracy.agg(best="max", mean="mean", std="std")
    g = g.reset_index()
    g["best"] = g["best"].cummax()
    return g


def fitness_figure(doc: Document, runs: list[Run], names: list[str], name="fitness") -> bool:
    """Weighted fitness (population) beside validation accuracy (evaluated masks) per
    generation; False when no run has search generations (one-shot methods)."""
    searched = [(r, n) for r, n in zip(runs, names) if (r.results.phase == "search").any()]
    if not searched:
        return False
    plt = pyplot()
    with_fitness = any(has_fitness(r) for r, _ in searched)
    fig, axes = plt.subplots(1, 2 if with_fitness else 1, figsize=(11 if with_fitness else 6,
                                                                   4), squeeze=False)
    look = styles(names)
    single = len(searched) == 1
    one_each = all(r.results[r.results.phase == "search"].groupby("generation").size().max() == 1
                   for r, _ in searched)  # IMP and DG rounds: one network per generation
    spread = "each generation's value" if one_each else "mean ± std"
    panels = [("fitness", axes[0][0])] if with_fitness else []
    panels.append(("val", axes[0][-1]))
    for run, label in searched:
        color = look[label]["color"]
        for what, ax in panels:
            if what == "fitness" and not has_fitness(run):
                continue
            gen = (results.per_generation(run.results, run.path) if what == "fitness"
                   else val_per_generation(run))
            x = gen.generation.astype(float)
            ax.plot(x, gen["best"], color=color, marker="o", markersize=4,
                    label="best so far" if single else label)
            ax.plot(x, gen["mean"], color=color, linestyle="--",
                    label=spread if single else None)
            band(ax, x, gen["mean"], gen["std"].fillna(0), color)
    titles = {"fitness": ("Weighted fitness (whole population)", "fitness"),
              "val": ("Validation accuracy (masks evaluated)", "validation accuracy")}
    for what, ax in panels:
        ax.set_title(titles[what][0])
        ax.set_ylabel(titles[what][1])
        ax.set_xlabel("generation")
        integer_ticks(ax)
    if single:
        axes[0][0].legend()
    else:
        from matplotlib.lines import Line2D
        axes[0][0].legend(title="run", loc="best")
        axes[0][-1].legend(handles=[Line2D([], [], color="k", marker="o", markersize=4,
                                           label="best so far"),
                                    Line2D([], [], color="k", linestyle="--",
                                           label=spread)], loc="lower right")
    weights = {fitness_weights(r) for r, _ in searched} - {""}
    defined = (f" ({weights.pop()})" if len(weights) == 1 else
               " (fitness weights differ between runs)" if weights else "")
    right = ("validation accuracy of the one network each generation (round) trains, and "
             "the best so far." if one_each else "validation accuracy of the masks evaluated "
             "in each generation: best so far, and mean ± std.")
    caption = (f"Left: weighted fitness{defined} of the whole population per generation, "
               f"elites included: best, and mean ± std as a band. Right: {right}"
               if with_fitness else right[0].upper() + right[1:])
    doc.figure(name, fig, caption)
    return True


def curve_figure(doc: Document, runs: list[Run], names: list[str], name="learning_curve"):
    """Loss and validation accuracy per epoch of each run's final training."""
    curves = [(c, n) for r, n in zip(runs, names) if (c := results.curve(r.path)) is not None]
    if not curves:
        return False
    plt = pyplot()
    look = styles(names)
    fig, (loss, acc) = plt.subplots(1, 2, figsize=(11, 4))
    for c, label in curves:
        color = look[label]["color"]
        if "train_loss" in c:
            loss.plot(c.epoch, c.train_loss, color=color)
        if "val_loss" in c:
            loss.plot(c.epoch, c.val_loss, color=color, linestyle="--")
        if "val_accuracy" in c:
            acc.plot(c.epoch, c.val_accuracy, color=color, marker="o", markersize=3,
                     label=label)
    loss.set(title="Loss", xlabel="epoch", ylabel="cross-entropy loss")
    acc.set(title="Validation accuracy", xlabel="epoch", ylabel="validation accuracy")
    for ax in (loss, acc):
        integer_ticks(ax)
    from matplotlib.lines import Line2D
    loss.legend(handles=[Line2D([], [], color="k", label="training"),
                         Line2D([], [], color="k", linestyle="--", label="validation")])
    if len(curves) > 1:
        acc.legend(title="run")
    doc.figure(name, fig, "Final training of the best mask: training loss (solid) and "
               "validation loss (dashed) per epoch, and validation accuracy per epoch.")
    return True


def layers_figure(doc: Document, runs: list[Run], names: list[str], name="layers") -> bool:
    done = [(r.summary["layer_sparsity"], n) for r, n in zip(runs, names)
            if r.summary and r.summary.get("layer_sparsity")]
    if not done:
        return False
    plt = pyplot()
    look = styles(names)
    layers = list(dict.fromkeys(k for ls, _ in done for k in ls))
    width = 0.8 / len(done)
    fig, ax = plt.subplots(figsize=(max(5.0, 1.2 * len(layers) + 2), 3.8))
    for i, (ls, label) in enumerate(done):
        xs = [j + (i - (len(done) - 1) / 2) * width for j in range(len(layers))]
        values = [100 * ls.get(k, float("nan")) for k in layers]
        bars = ax.bar(xs, values, width=width * 0.95, color=look[label]["color"], label=label)
        if len(done) <= 3:
            ax.bar_label(bars, fmt="%.1f", fontsize=7, padding=1)
    ax.set_xticks(range(len(layers)), layers, rotation=30 if len(layers) > 6 else 0)
    ax.set(ylabel="weights pruned (%)", ylim=(0, 105), xlabel="prunable parameter",
           title="Per-layer sparsity of the best mask")
    ax.grid(axis="x", visible=False)
    if len(done) > 1:
        ax.legend(loc="lower left", bbox_to_anchor=(0, 1.08), ncol=min(3, len(done)),
                  frameon=False)
    else:
        ax.set_title(f"Per-layer sparsity of the best mask ({done[0][1]})")
    doc.figure(name, fig, "Share of each prunable layer's weights that the best mask removes "
               "(the allocation spreads the global budget over the layers).")
    return True


#: multi-label runs: the summary's figures beside the (subset) test accuracy, and headings
MULTILABEL_COLUMNS = {"test_hamming_loss": "test Hamming loss", "test_micro_f1": "test micro-F1"}


def run_table(doc: Document, runs: list[Run], names: list[str]) -> None:
    multilabel = any("test_hamming_loss" in (r.summary or {}) for r in runs)
    extra = list(MULTILABEL_COLUMNS) if multilabel else []
    rows = []
    for r, label in zip(runs, names):
        s = r.summary or {}
        search = r.results[r.results.phase == "search"]
        state = (r.status if r.finished else
                 f"{r.status} ({r.committed_generations()} generation(s) committed)")
        best_val = search.val_accuracy.max() if "val_accuracy" in search else None
        rows.append([label, f"`{r.name}`", state, s.get("sparsity", target_sparsity(r)),
                     s.get("val_accuracy", best_val), s.get("test_accuracy"),
                     *(s.get(k) for k in extra),
                     r.config.get("seed"), s.get("wall_seconds"), s.get("device")])
    doc.table(["run", "folder", "status", "sparsity", "val accuracy", "test accuracy",
               *(MULTILABEL_COLUMNS[k] for k in extra), "seed", "wall s", "device"], rows)
    if multilabel:
        doc.para("Multi-label runs: the accuracy is the subset accuracy (every label of a "
                 "sample right); the Hamming loss is the share of wrong labels, micro-F1 the "
                 "F1 over all labels together.")
    if not all(r.finished for r in runs):
        doc.para("Unfinished runs are reported as far as they got: their validation accuracy "
                 "is the best of the masks evaluated so far, and they have no test accuracy.")
    efficiency_table(doc, runs, names)


def _ms(s: dict, key: str) -> str:
    """'2.10 (1.95-2.31)': median ms with its quartiles, '' when not measured."""
    median = s.get(key)
    if median is None:
        return ""
    q = s.get(f"{key}_iqr")
    return f"{1000 * median:.3f}" + (f" ({1000 * q[0]:.3f}-{1000 * q[1]:.3f})" if q else "")


def efficiency_table(doc: Document, runs: list[Run], names: list[str]) -> None:
    """Parameters, FLOPs and CPU latency (median and quartiles) of the dense, masked and
    compact networks, and the deployed network's speedup with its 95% interval."""
    from ..efficiency import speedup_words

    rows, missing = [], set()
    for r, label in zip(runs, names):
        s = r.summary or {}
        if "params_dense" not in s:
            continue
        if "params_compact" not in s and s.get("compact_error"):
            missing.add(s["compact_error"])
        for net in ("dense", "masked", "compact"):
            if f"params_{net}" in s:
                deployed = net == s.get("deployed", "compact" if "params_compact" in s
                                        else "masked")
                what = (f"compact ({s['compacted_with']})" if net == "compact"
                        and s.get("compacted_with") else net)
                rows.append([label, what + (" *" if deployed else ""), s[f"params_{net}"],
                             s.get(f"flops_{net}"),
                             *[_ms(s, f"latency_b{b}_{net}") for b in (1, 256)],
                             speedup_words(s.get("speedup_b256"), s.get("speedup_b256_ci"))
                             if deployed and "speedup_b256" in s else "",
                             s.get("effective_sparsity") if net == "compact" else None])
    if rows:
        doc.table(["run", "network", "params", "FLOPs / sample", "CPU ms, batch 1 (quartiles)",
                   "CPU ms, batch 256 (quartiles)", "speedup, batch 256 (95% interval)",
                   "effective sparsity"], rows)
        doc.para("Masked: the dense tensors with the pruned entries zero (its parameters and "
                 "FLOPs count the kept weights). Compact: pruned neurons and channels, and the "
                 "units the mask leaves dead, removed (by the package named). * the network "
                 "one would deploy, whose figures are the tuning objectives. Latency: median "
                 "of interleaved timing rounds and its quartiles; speedup: the dense network's "
                 "time over the deployed one's, median and 95% interval over rounds. "
                 "Effective sparsity counts the weights of dead units as removed.")
    for error in sorted(missing):
        doc.para(f"Not compacted: {error}.")


def explain_section(doc: Document, runs: list[Run], names: list[str]) -> None:
    """The class-relevant channels of the runs that `neuroprune explain` has explained."""
    found = [(r, n) for r, n in zip(runs, names)
             if (r.path / "explain" / "explain.json").is_file()]
    if not found:
        return
    doc.heading("Class-relevant channels", 3)
    for i, (run, label) in enumerate(found):
        folder = run.path / "explain"
        info = results.read_json(folder / "explain.json")
        doc.para(f"{label}: layer `{info.get('layer')}` ({info.get('channels')} channels), "
                 f"at most {info.get('k')} per class by l1-sparse selection (`neuroprune "
                 f"explain`); the selected channels alone classify "
                 f"{info.get('selection_accuracy', float('nan')):.1%} of the test split.")
        doc.table(["class", "relevant channels (most relevant first)"],
                  [[c["class"], ", ".join(map(str, c["channels"]))]
                   for c in info.get("classes", [])])
        captions = {"classes.png": "per class, each relevant channel's mean activation map "
                                   "over the class's test images that excite it most, over "
                                   "their mean image",
                    "explanations.png": "test images with the channels that supported "
                                        "their prediction"}
        for figure, caption in captions.items():
            if (folder / figure).is_file():
                doc.copy(folder / figure, f"explain_{i}_{figure[:-4]}", f"{label}: {caption}")


def fitness(run: Run, doc: Document) -> bool:
    """One run's fitness beside its validation accuracy (a tuning trial's picture)."""
    return fitness_figure(doc, [run], labels([run]))


def report(runs: list[Run], doc: Document) -> None:
    names = labels(runs)
    doc.heading(f"Mask search ({len(runs)} run{'s' if len(runs) > 1 else ''})")
    run_table(doc, runs, names)
    if not fitness_figure(doc, runs, names):
        doc.para("No search generations to plot: these methods find their mask in one shot.")
    curve_figure(doc, runs, names)
    layers_figure(doc, runs, names)
    explain_section(doc, runs, names)
    finished = [r for r in runs if r.finished and "test_accuracy" in r.summary]
    if len(finished) > 1:
        cells = pd.DataFrame({"method": [method_name(r) for r in finished],
                              "sparsity": [float((r.config.get("sparsity") or {}).get(
                                  "target", r.summary["sparsity"])) for r in finished],
                              "seed": [r.config.get("seed") for r in finished],
                              "test_accuracy": [r.summary["test_accuracy"] for r in finished]})
        accuracy_figure(doc, cells)
