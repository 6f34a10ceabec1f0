"""``neuroprune report``: PNG plots and a markdown summary of one or more runs.

* ``fitness.png``: best and mean fitness per generation, with the spread (one line per run);
* ``layers.png``: per-layer sparsity of each run's best mask;
* ``accuracy_vs_sparsity.png``: test accuracy against sparsity per method (comparison runs and
  sets of single runs), mean with std over seeds;
* ``report.md``: the key numbers of every run, with the plots.
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from . import results
from ._io import atomic_write, atomic_write_text
from .errors import MissingDependencyError, UserError


def _plt():
    try:
        import matplotlib
    except ImportError:
        raise MissingDependencyError("matplotlib", "plots", "neuroprune report") from None
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from cycler import cycler
    plt.rcParams["axes.prop_cycle"] = cycler(color=plt.get_cmap("tab20").colors)
    return plt


def _save(fig, path: Path) -> None:
    atomic_write(path, lambda tmp: fig.savefig(tmp, dpi=120, bbox_inches="tight", format="png"))


def make_report(run_dirs: list[str | Path], out: str | Path) -> Path:
    plt = _plt()
    out = Path(out)
    runs = [Path(r) for r in run_dirs]
    for r in runs:
        if not (r / "results.csv").is_file():
            raise UserError(f"{r} is not a neuroprune run directory (no results.csv)")
    out.mkdir(parents=True, exist_ok=True)
    lines = ["# neuroprune report", ""]
    single = [r for r in runs if not _is_comparison(r)]
    comps = [r for r in runs if _is_comparison(r)]

    if single:
        fig, ax = plt.subplots(figsize=(6, 4))
        drawn = False
        for r in single:
            gen = results.per_generation(results.load(r), r)
            if gen.empty:
                continue
            ax.plot(gen.generation, gen.best, marker="o", label=f"{r.name} best")
            ax.plot(gen.generation, gen["mean"], linestyle="--", label=f"{r.name} mean")
            ax.fill_between(gen.generation, gen["mean"] - gen["std"].fillna(0),
                            gen["mean"] + gen["std"].fillna(0), alpha=0.2)
            drawn = True
        if drawn:
            ax.set_xlabel("generation")
            ax.set_ylabel("fitness")
            ax.set_title("Fitness per generation")
            ax.legend(fontsize=7)
            _save(fig, out / "fitness.png")
            lines += ["![fitness](fitness.png)", ""]
        plt.close(fig)

        fig, ax = plt.subplots(figsize=(6, 4))
        width = 0.8 / len(single)
        for i, r in enumerate(single):
            layer = results.summary(r).get("layer_sparsity", {})
            xs = range(len(layer))
            ax.bar([x + i * width for x in xs], list(layer.values()), width=width, label=r.name)
            ax.set_xticks(list(xs), list(layer), rotation=30, fontsize=7)
        ax.set_ylabel("sparsity")
        ax.set_ylim(0, 1)
        ax.set_title("Per-layer sparsity of the best mask")
        ax.legend(fontsize=7)
        _save(fig, out / "layers.png")
        plt.close(fig)
        lines += ["![layers](layers.png)", "", "| run | method | sparsity | test accuracy | "
                  "val accuracy | seed | wall s | device |", "| --- |" + " --- |" * 7]
        for r in single:
            s = results.summary(r)
            lines.append(f"| {r.name} | {s['method']} | {s['sparsity']:.4f} | "
                         f"{s['test_accuracy']:.4f} | {s['val_accuracy']:.4f} | {s['seed']} | "
                         f"{s['wall_seconds']:.1f} | {s['device']} |")
        lines.append("")

    table = pd.concat([results.load(r) for r in comps], ignore_index=True) if comps else None
    if table is None and len(single) > 1:
        table = pd.DataFrame([{"method": results.summary(r)["method"],
                               "sparsity": results.summary(r)["sparsity"],
                               "test_accuracy": results.summary(r)["test_accuracy"]}
                              for r in single])
    if table is not None and not table.empty:
        fig, ax = plt.subplots(figsize=(6, 4))
        agg = table.groupby(["method", "sparsity"]).test_accuracy.agg(["mean", "std"]).reset_index()
        for method, g in agg.groupby("method", sort=False):
            ax.errorbar(g.sparsity, g["mean"], yerr=g["std"].fillna(0), marker="o",
                        capsize=3, label=method)
        ax.set_xlabel("sparsity")
        ax.set_ylabel("test accuracy")
        ax.set_title("Test accuracy against sparsity")
        ax.legend(fontsize=7)
        _save(fig, out / "accuracy_vs_sparsity.png")
        plt.close(fig)
        lines += ["![accuracy vs sparsity](accuracy_vs_sparsity.png)", ""]
        for r in comps:
            lines += [f"## {r.name}", "", (r / "comparison.md").read_text(), ""]
    atomic_write_text(out / "report.md", "\n".join(lines) + "\n")
    return out / "report.md"


def _is_comparison(run: Path) -> bool:
    return (run / "comparison.md").is_file()
