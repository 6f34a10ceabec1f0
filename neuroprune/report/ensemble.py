"""Report of ensemble searches (CIF-E): fitness per generation, and the evolved ensemble's
test accuracy against the best single classifier and the whole-pool vote."""

from __future__ import annotations

from .document import Document
from .inputs import Run
from .style import integer_ticks, pyplot, styles


def label_base(run: Run) -> tuple[str, str, str]:
    e = run.config.get("ensemble") or {}
    return (e.get("algorithm", "?"), e.get("fusion", "?"),
            (run.config.get("data") or {}).get("dataset", "?"))


def label(run: Run, runs: list[Run]) -> str:
    """'umda, average on breast_cancer' (and the folder where two runs share that)."""
    text = "{}, {} on {}".format(*label_base(run))
    same = [r for r in runs if r is not run and label_base(r) == label_base(run)]
    return f"{text} ({run.name})" if same else text


def fitness_caption(runs: list[Run]) -> str:
    e = runs[0].config.get("ensemble") or {}
    terms = ["validation accuracy of the fused vote"]
    if e.get("diversity_weight"):
        terms.append(f"{e['diversity_weight']:g} × {e.get('diversity', 'diversity')}")
    if e.get("size_penalty"):
        terms.append(f"− {e['size_penalty']:g} × ensemble size")
    return " + ".join(terms).replace("+ −", "−")


def fitness_figure(doc: Document, runs: list[Run], names: list[str]) -> bool:
    """Best and mean fitness of the population per generation, one colour per run."""
    plt = pyplot()
    look = styles(names)
    fig, ax = plt.subplots(figsize=(6.5, 4))
    for r, n in zip(runs, names):
        gen = r.results.sort_values("generation")  # one row per generation: best, mean
        x, c = gen.generation.astype(float), look[n]["color"]
        ax.plot(x, gen["best"], color=c, marker="o", markersize=4,
                label="best" if len(runs) == 1 else n)
        ax.plot(x, gen["mean"], color=c, linestyle="--", label="mean" if len(runs) == 1 else None)
    ax.set(xlabel="generation", ylabel="fitness", title="Ensemble search: fitness per generation")
    integer_ticks(ax)
    ax.legend(loc="lower right")
    doc.figure("fitness", fig, f"Best (solid) and mean (dashed) fitness of the population per "
               f"generation; fitness = {fitness_caption(runs)} on the estimator's inner "
               f"validation split.")
    return True


def fitness(run: Run, doc: Document) -> bool:
    """One search's fitness per generation (a tuning trial's picture)."""
    return fitness_figure(doc, [run], [label(run, [run])])


def report(runs: list[Run], doc: Document) -> None:
    names = [label(r, runs) for r in runs]
    look = styles(names)
    doc.heading(f"Ensemble search ({len(runs)} run{'s' if len(runs) > 1 else ''})")
    rows = []
    for r, n in zip(runs, names):
        s = r.summary or {}
        single = (f"{s['best_single']} ({s['best_single_test_accuracy']:.4f})"
                  if "best_single" in s else None)
        rows.append([n, f"`{r.name}`", r.status, s.get("val_accuracy"), s.get("test_accuracy"),
                     single, s.get("pool_vote_test_accuracy"), ", ".join(s.get("selected", []))])
    doc.table(["run", "folder", "status", "val accuracy", "test accuracy",
               "best single (test)", "whole-pool vote (test)", "members"], rows)
    fitness_figure(doc, runs, names)
    done = [(r, n) for r, n in zip(runs, names) if r.finished]
    if not done:
        doc.para("No run is finished: the test accuracies come with the summary.")
        return
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(6.5, 0.6 * len(done) + 1.8))
    marks = (("test_accuracy", "o", "evolved ensemble"),
             ("best_single_test_accuracy", "s", "best single classifier"),
             ("pool_vote_test_accuracy", "^", "whole-pool vote"))
    for i, (r, n) in enumerate(done):
        values = [r.summary[key] for key, _, _ in marks]
        ax.plot([min(values), max(values)], [i, i], color="grey", linewidth=0.8, zorder=1)
        for j, (key, marker, what) in enumerate(marks):
            ax.plot([r.summary[key]], [i + 0.08 * (1 - j)], marker, color=look[n]["color"],
                    markerfacecolor="white" if j else look[n]["color"], markersize=8,
                    markeredgewidth=1.5, linestyle="", label=what if i == 0 else None)
    ax.set_yticks(range(len(done)), [n for _, n in done])
    ax.set_ylim(-0.6, len(done) - 0.4)
    ax.margins(x=0.08)
    ax.set(xlabel="test accuracy", title="The ensemble against its references")
    ax.legend(loc="best")
    doc.figure("accuracy", fig, "Test accuracy of the evolved ensemble (filled circle), of the "
               "best single classifier of the pool (chosen on the same validation split) and of "
               "a majority vote of the whole pool; one row per run.")
