"""Report of activation searches: each strategy's evolved functions drawn on [-4, 4] beside
ReLU (one panel per layer role), the strategies' validation and test accuracy, and the search
per generation.

An unfinished search has no winners yet: its functions are the best candidates evaluated so
far, read back from the readable formulas of ``results.csv``.
"""

from __future__ import annotations

import re

import torch

from ..activations.expr import BINARY, UNARY, compile_expr, compile_formula
from ..errors import UserError
from .activation_replicates import report as replicates
from .document import Document
from .inputs import Run
from .style import REFERENCE, X_RANGE, Y_CLIP, band, integer_ticks, pyplot, styles

OPERATORS = {"+": "add", "-": "sub", "*": "mul", "/": "div"}
TOKEN = re.compile(r"-?\d+(?:\.\d*)?(?:e[-+]?\d+)?|[A-Za-z_]\w*|[()+*/,-]")


def parse_readable(text: str):
    """The expression of a readable formula (``x * sigmoid(1.5 * x)``, as ``results.csv``
    writes them), in the nested form :func:`~neuroprune.activations.expr.compile_expr`
    takes. Only primitives, ``x`` and numbers are accepted."""
    tokens = TOKEN.findall(text)
    if "".join(tokens) != re.sub(r"\s+", "", text):
        raise ValueError(f"unreadable formula {text!r}")
    pos = 0

    def take(expected: str | None = None) -> str:
        nonlocal pos
        if pos >= len(tokens) or (expected is not None and tokens[pos] != expected):
            raise ValueError(f"unreadable formula {text!r}")
        pos += 1
        return tokens[pos - 1]

    def expr():
        left = atom()
        if pos < len(tokens) and tokens[pos] in OPERATORS:
            return (OPERATORS[take()], left, atom())
        return left

    def atom():
        tok = take()
        if tok == "(":
            inner = expr()
            take(")")
            return inner
        if tok == "x":
            return "x"
        if tok[0].isdigit() or tok[0] == "-" and len(tok) > 1:
            return float(tok)
        if tok not in UNARY and tok not in BINARY:
            raise ValueError(f"unknown primitive {tok!r} in {text!r}")
        take("(")
        args = [expr()]
        while pos < len(tokens) and tokens[pos] == ",":
            take(",")
            args.append(expr())
        take(")")
        if len(args) != (1 if tok in UNARY else 2):
            raise ValueError(f"{tok} takes {1 if tok in UNARY else 2} argument(s) in {text!r}")
        return (tok, *args)

    out = expr()
    if pos != len(tokens):
        raise ValueError(f"trailing text in formula {text!r}")
    return out


ROLE_ORDER = ("first", "middle", "last")


def roles(run: Run) -> list[str]:
    """The layer roles of the run's formulas, first to last."""
    found = [c[2:] for c in run.results.columns if c.startswith("f_")]
    return sorted(found, key=lambda r: ROLE_ORDER.index(r) if r in ROLE_ORDER else len(found))


def winners(run: Run) -> dict[str, dict]:
    """strategy -> {functions: role -> torch function, formulas, val, test}."""
    out = {}
    if run.finished:
        for s, st in run.summary["strategies"].items():
            out[s] = {"functions": {r: compile_formula(f) for r, f in st["prefix"].items()},
                      "formulas": st["functions"], "val": st["val_accuracy"],
                      "test": st.get("test_accuracy"), "paper": st.get("paper_test_accuracy"),
                      "search": st.get("search_fitness", st.get("search_val_accuracy"))}
        return out
    search = run.results[run.results.phase == "search"]
    for s, g in search.groupby("strategy", sort=False):
        best = g.loc[g.val_accuracy.idxmax()]
        formulas = {r: best[f"f_{r}"] for r in roles(run)}
        try:
            functions = {r: compile_expr(parse_readable(f)) for r, f in formulas.items()}
        except ValueError as exc:
            raise UserError(f"{run.path}/results.csv: {exc}") from None
        out[s] = {"functions": functions, "formulas": formulas, "val": None, "test": None,
                  "paper": None, "search": float(best.val_accuracy)}
    return out


def functions_figure(doc: Document, run: Run, found: dict, look: dict, name: str) -> None:
    plt = pyplot()
    role_names = roles(run)
    fig, axes = plt.subplots(1, len(role_names), figsize=(4.2 * len(role_names), 3.8),
                             squeeze=False, sharey=True)
    x = torch.linspace(*X_RANGE, 401)
    clipped = False
    relu = found.get("relu", {}).get("val")
    for ax, role in zip(axes[0], role_names):
        ax.plot(x, torch.relu(x), color=REFERENCE, linestyle="--", linewidth=1.2,
                label="ReLU" + (f" (val {relu:.3f})" if relu is not None else ""))
        for s, w in found.items():
            if s == "relu":
                continue
            with torch.no_grad():
                y = w["functions"][role](x).broadcast_to(x.shape)
            clipped |= bool((y.abs() > Y_CLIP).any())
            score = w["val"] if w["val"] is not None else w["search"]
            ax.plot(x, y, color=look[s]["color"], linewidth=1.6,
                    label=f"{s} (val {score:.3f})")
        ax.set(title=f"{role} hidden layer", xlabel="x", xlim=X_RANGE, ylim=(-Y_CLIP, Y_CLIP))
        ax.axhline(0, color="grey", linewidth=0.6)
    axes[0][0].set_ylabel("activation f(x)")
    handles, texts = axes[0][0].get_legend_handles_labels()
    fig.tight_layout()
    fig.subplots_adjust(top=0.8)
    fig.legend(handles, texts, loc="upper center", ncol=min(6, len(texts)),
               bbox_to_anchor=(0.5, 1.0), frameon=False)
    which = ("each strategy's winner after the final training (validation accuracy in the "
             "legend)" if run.finished else "the best candidate evaluated so far per strategy "
             "(search validation accuracy in the legend; the run is unfinished)")
    clip = f"; the y axis is cut at ±{Y_CLIP:g}" if clipped else ""
    doc.figure(name, fig, f"Evolved activation functions, one panel per hidden-layer role: "
               f"{which}, beside ReLU (dashed), on x in [{X_RANGE[0]:g}, {X_RANGE[1]:g}]{clip}.")


def accuracy_figure(doc: Document, found: dict, look: dict, name: str) -> None:
    plt = pyplot()
    order = sorted(found, key=lambda s: found[s]["val"])
    fig, ax = plt.subplots(figsize=(6.5, 0.45 * len(order) + 1.6))
    for i, s in enumerate(order):
        c = look[s]["color"]
        ax.plot([found[s]["val"]], [i + 0.12], "o", color=c, markersize=7)
        if found[s]["test"] is not None:
            ax.plot([found[s]["test"]], [i - 0.12], "s", color=c, markerfacecolor="white",
                    markersize=7, markeredgewidth=1.5)
    ax.set_yticks(range(len(order)), order)
    ax.set(xlabel="accuracy", title="Each strategy's winner after the final training")
    from matplotlib.lines import Line2D
    ax.legend(handles=[Line2D([], [], marker="o", color="k", linestyle="", label="validation"),
                       Line2D([], [], marker="s", color="k", markerfacecolor="white",
                              linestyle="", label="test")], loc="lower right")
    doc.figure(name, fig, "Validation accuracy (filled; it picks each strategy's winner) and "
               "test accuracy (open; looked at once) of every strategy's final network.")


def search_figure(doc: Document, run: Run, look: dict, name: str) -> bool:
    """One panel per searched strategy (overlaid bands would hide each other)."""
    search = run.results[(run.results.phase == "search") & (run.results.val_accuracy >= 0)]
    if search.empty:  # (diverged candidates carry -1 and are left out)
        return False
    plt = pyplot()
    strategies = list(dict.fromkeys(search.strategy))
    fig, axes = plt.subplots(1, len(strategies), figsize=(3.6 * len(strategies) + 0.8, 3.6),
                             squeeze=False, sharey=True)
    for ax, s in zip(axes[0], strategies):
        gen = (search[search.strategy == s].groupby("generation").val_accuracy
               .agg(["max", "mean", "std"]).reset_index())
        x, c = gen.generation.astype(float), look[s]["color"]
        ax.plot(x, gen["max"].cummax(), color=c, marker="o", markersize=4, label="best so far")
        ax.plot(x, gen["mean"], color=c, linestyle="--", label="mean ± std")
        band(ax, x, gen["mean"], gen["std"].fillna(0), c)
        ax.set(title=s, xlabel="generation")
        integer_ticks(ax)
    axes[0][0].set_ylabel("validation accuracy")
    axes[0][0].legend(loc="best")
    doc.figure(name, fig, "The search, one panel per strategy: validation accuracy of the "
               "candidates scored in each generation (short training): best so far, and mean "
               "± std (dashed, band); diverged candidates left out.")
    return True


def fitness(run: Run, doc: Document) -> bool:
    """One search's validation accuracy per generation (a tuning trial's picture)."""
    strategies = dict.fromkeys(run.results.strategy.dropna())
    return search_figure(doc, run, styles(["relu", *strategies]), "fitness")


def report(runs: list[Run], doc: Document) -> None:
    """Replicated searches (same config, several seeds) as one section each; any other run
    on its own."""
    runs = replicates(runs, doc) if len(runs) > 1 else runs
    for i, run in enumerate(runs):
        suffix = f"-{i + 1}" if len(runs) > 1 else ""
        state = "" if run.finished else " — unfinished, reported as far as it got"
        doc.heading(f"Activation search `{run.name}`{state}")
        found = winners(run)
        look = styles(["relu", *found])
        rows = [[s, w["val"], w["test"], w["paper"], w["search"],
                 *[f"`{w['formulas'][r]}`" for r in roles(run)]] for s, w in found.items()]
        doc.table(["strategy", "val accuracy", "held-out test", "paper score (best test "
                   "over epochs)", "search fitness", *roles(run)], rows)
        if run.finished:
            doc.para(f"Best by validation: **{run.summary['best_strategy']}**.")
        if found:
            functions_figure(doc, run, found, look, f"functions{suffix}")
        if run.finished:
            accuracy_figure(doc, found, look, f"strategies{suffix}")
        search_figure(doc, run, look, f"search{suffix}")
