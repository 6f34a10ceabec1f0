"""Report of tuning folders: every Optuna study in the folder's journal, drawn with Optuna's
own plotting functions (``optuna.visualization.matplotlib``): the Pareto front of a
multi-objective study, the optimisation history per objective, the intermediate values the
trials reported per generation, and the parameter importances once enough trials are
complete; and a table of trials. Running trials are listed; plots use the complete ones.
"""

from __future__ import annotations

import warnings
from typing import Any, Callable

from ..errors import MissingDependencyError, UserError
from .document import Document
from .inputs import StudyFolder
from .style import REFERENCE, integer_ticks, pyplot, styles

#: parameter importances need this many complete trials before they mean anything
MIN_TRIALS_FOR_IMPORTANCE = 5


def _optuna():
    try:
        import optuna
    except ImportError:
        raise MissingDependencyError("optuna", "tune", "reporting a tuning folder") from None
    return optuna


def load_studies(folder: StudyFolder) -> list:
    """Every study in the folder's journal, opened for reading (nothing is written)."""
    optuna = _optuna()
    from optuna.storages.journal import JournalFileBackend

    try:
        storage = optuna.storages.JournalStorage(JournalFileBackend(str(folder.journal)))
        names = optuna.get_all_study_names(storage)
    except Exception as exc:
        raise UserError(f"{folder.journal} is not a readable Optuna journal "
                        f"({type(exc).__name__})") from None
    if not names:
        raise UserError(f"{folder.journal} holds no study yet")
    return [optuna.load_study(study_name=n, storage=storage) for n in names]


def objective_names(study) -> list[str]:
    if study.metric_names:
        return list(study.metric_names)
    tune = (study.user_attrs.get("neuroprune_config") or {}).get("tune") or {}
    names = tune.get("objectives") or []
    if len(names) == len(study.directions):
        return list(names)
    return [f"objective {i}" for i in range(len(study.directions))]


def optuna_figure(doc: Document, name: str, draw: Callable[[], Any],
                  labels: tuple[str, str, str]) -> Any:
    """Save the figure of one of Optuna's plotting functions in the report's style (white
    background, ``labels``: title, x and y label); a plot Optuna cannot draw for this study
    (too few trials, one distinct value) is named instead of failing the report. Returns the
    axes, for plot-specific touches made before saving (``None`` when not drawn)."""
    import matplotlib

    plt = pyplot()
    with warnings.catch_warnings(), matplotlib.rc_context():  # Optuna switches the style
        warnings.simplefilter("ignore")
        try:
            ax = draw()
        except (ValueError, RuntimeError, ZeroDivisionError) as exc:
            plt.close("all")
            doc.para(f"({name}: Optuna could not draw it for this study: {exc})")
            return None
    ax = ax.flat[0] if hasattr(ax, "flat") else ax
    ax.set_facecolor("white")
    ax.grid(True, color="grey", alpha=0.3)
    for side, spine in ax.spines.items():
        spine.set_visible(side in ("left", "bottom"))
        spine.set_color("black")
    ax.tick_params(colors="black", labelcolor="black")
    title, xlabel, ylabel = labels
    ax.set_title("", loc="left")  # Optuna's own title
    ax.set_title(title, fontsize=11, color="black")
    ax.set_xlabel(xlabel, color="black", fontsize=10)
    ax.set_ylabel(ylabel, color="black", fontsize=10)
    ax.figure.set_size_inches(7, 4.5)
    return ax


def shown_legend(ax) -> None:
    """A legend of what is drawn (Optuna adds empty groups, infeasible trials), below the
    axes where it hides no point."""
    handles = [h for h in ax.collections if len(h.get_offsets())] + [
        line for line in ax.get_lines() if len(line.get_xdata())]
    ax.legend(handles=handles, loc="upper center", bbox_to_anchor=(0.5, -0.14),
              ncol=len(handles), frameon=False)


def trial_rows(study, names: list[str]) -> tuple[list[str], list[list]]:
    from optuna.trial import TrialState

    params = list(dict.fromkeys(p for t in study.trials for p in t.params))
    header = ["trial", "state", *names, *params, "val accuracy", "sparsity", "wall s",
              "run folder"]
    rows = []
    for t in study.trials:
        s = t.user_attrs.get("summary") or {}
        done = t.values and t.state == TrialState.COMPLETE  # a pruned trial's value: its last
        values = list(t.values) if done else [None] * len(names)  # report, not a result
        rows.append([t.number, t.state.name.lower(), *values,
                     *[t.params.get(p) for p in params], s.get("val_accuracy"),
                     s.get("sparsity"), s.get("wall_seconds"),
                     f"`{t.user_attrs['run_dir']}`" if t.user_attrs.get("run_dir") else None])
    return header, rows


def study_section(doc: Document, study, folder: StudyFolder, suffix: str) -> None:
    optuna = _optuna()
    from optuna.trial import TrialState
    from optuna.visualization import matplotlib as ovm

    names = objective_names(study)
    complete = study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))
    order = (TrialState.COMPLETE, TrialState.PRUNED, TrialState.FAIL, TrialState.RUNNING,
             TrialState.WAITING)
    counts = {s.name.lower(): len(study.get_trials(deepcopy=False, states=(s,))) for s in order}
    doc.heading(f"Tuning study `{study.study_name}` (`{folder.name}`)")
    directions = ", ".join(f"{n} ({d.name.lower()})" for n, d in zip(names, study.directions))
    doc.para(f"Objectives: {directions}. Trials: " +
             ", ".join(f"{v} {k}" for k, v in counts.items() if v) + ".")
    header, rows = trial_rows(study, names)
    doc.table(header, rows)
    if not complete:
        doc.para("No complete trial yet: nothing to plot.")
        return
    multi = len(names) > 1
    if multi:
        ax = optuna_figure(doc, f"pareto{suffix}", lambda: ovm.plot_pareto_front(
            study, target_names=names), (f"Pareto front of {names[0]} and {names[1]}"
                                         if len(names) == 2 else "Pareto front", *names[:2]))
        if ax is not None:
            for dots, label in zip(ax.collections, ("dominated trial", "Pareto-optimal trial")):
                dots.set_label(label)
            shown_legend(ax)
            doc.figure(f"pareto{suffix}", ax.figure, f"The complete trials by "
                       f"{' and '.join(names)}; the Pareto-optimal ones highlighted "
                       f"(Optuna's plot_pareto_front).")
    for i, objective in enumerate(names):
        name = f"history-{objective}{suffix}" if multi else f"history{suffix}"
        target = (lambda t, i=i: t.values[i]) if multi else None
        ax = optuna_figure(doc, name, lambda target=target, objective=objective:
                           ovm.plot_optimization_history(study, target=target,
                                                         target_name=objective),
                           (f"Optimisation history of {objective}", "trial", objective))
        if ax is not None:
            for line in ax.get_lines():  # the best-so-far line
                line.set(color=REFERENCE, linewidth=1.2, alpha=1.0, label="best so far")
            for dots in ax.collections:
                dots.set_label("complete trial")
            integer_ticks(ax)
            shown_legend(ax)
            doc.figure(name, ax.figure, f"{objective} of each complete trial (dots) and the "
                       f"best so far (line; Optuna's plot_optimization_history).")
    if any(t.intermediate_values for t in study.trials):
        name = f"intermediate{suffix}"
        ax = optuna_figure(doc, name, lambda: ovm.plot_intermediate_values(study),
                           ("Values reported per generation", "generation",
                            "best validation accuracy so far"))
        if ax is not None:
            states = {f"Trial{t.number}": t.state.name.lower() for t in study.trials}
            look = styles(states)
            for line in ax.get_lines():
                key = line.get_label()
                line.set(color=look.get(key, {}).get("color", "grey"),
                         linestyle="-" if states.get(key) == "complete" else ":",
                         label=f"trial {key[5:]} ({states.get(key, '?')})", alpha=1.0)
            steps = [s for t in study.trials for s in t.intermediate_values]
            ax.set_xlim(min(steps) - 0.3, max(max(steps), min(steps) + 1) + 0.3)
            integer_ticks(ax)
            ax.legend(loc="center left", bbox_to_anchor=(1.01, 0.5), fontsize=7)
            doc.figure(name, ax.figure, "The best validation accuracy so far that each trial "
                       "reported per generation, which the pruner judges; dotted: trials "
                       "that did not complete (Optuna's plot_intermediate_values).")
    if len(complete) >= MIN_TRIALS_FOR_IMPORTANCE:
        name = f"importances{suffix}"
        target = (lambda t: t.values[0]) if multi else None
        evaluator = optuna.importance.FanovaImportanceEvaluator(seed=0)
        ax = optuna_figure(doc, name, lambda: ovm.plot_param_importances(
            study, evaluator=evaluator, target=target, target_name=names[0]),
            (f"Parameter importances for {names[0]}", "importance (fANOVA)", "parameter"))
        if ax is not None:
            if ax.get_legend() is not None:
                ax.get_legend().remove()
            doc.figure(name, ax.figure, f"Importance of each tuned parameter for {names[0]} "
                       f"(fANOVA over {len(complete)} complete trials; Optuna's "
                       f"plot_param_importances).")
    else:
        doc.para(f"Parameter importances are drawn from {MIN_TRIALS_FOR_IMPORTANCE} complete "
                 f"trials on; this study has {len(complete)}.")


def report(folders: list[StudyFolder], doc: Document) -> None:
    sections = [(f, s) for f in folders for s in load_studies(f)]
    for i, (folder, study) in enumerate(sections):
        study_section(doc, study, folder, f"-{i + 1}" if len(sections) > 1 else "")
