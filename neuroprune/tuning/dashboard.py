"""What optuna-dashboard shows of a trial beside its values and parameters: a markdown note
with the trial's summary, and its files as artifacts: the best mask (or activations) and the
fitness plot of its search.

Nothing here carries the test accuracy: a study chooses by validation, and a test figure
in view while choosing is a selection on the test split.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from ..rundir import FILES

#: files a trial's run directory may hold -> user attribute of their artifact id
ARTIFACTS = {FILES.best_mask: "best_mask_artifact",
             "best_activations.json": "best_activations_artifact",
             "ensemble.joblib": "ensemble_artifact",
             FILES.learned_mask: "learned_mask_artifact",
             "fitness.png": "fitness_plot_artifact"}
#: summary keys a note shows, with their names (never the test accuracy)
NOTE_ROWS = (("kind", "kind"), ("method", "method"), ("best_strategy", "best strategy"),
             ("sparsity", "sparsity"), ("val_accuracy", "validation accuracy"),
             ("val_log_likelihood", "validation log-likelihood (nats)"),
             ("val_reconstruction_error", "validation reconstruction error"),
             ("wall_seconds", "wall time (s)"))


def note(trial, summary: dict[str, Any], run_dir: Path, state: str) -> str:
    """The trial's markdown note: its state, summary and how to export it."""
    rows = "".join(f"| {name} | {summary[key]:.4f} |\n" if isinstance(summary[key], float)
                   else f"| {name} | {summary[key]} |\n"
                   for key, name in NOTE_ROWS if key in summary)
    table = f"| | |\n| --- | --- |\n{rows}\n" if rows else ""
    from ..mirror import shown

    return (f"## Trial {trial.number}: {state}\n\n{table}Run directory: `{shown(run_dir)}`\n\n"
            f"Export its network: `neuroprune export --storage STUDY_FOLDER --study "
            f"{trial.study.study_name} --trial {trial.number} --out trial_{trial.number}"
            f".safetensors`\n")


def show_trial(trial, run_dir: Path, summary: dict[str, Any], state: str,
               artifact_store, plot: bool = True) -> None:
    """Draw the trial's fitness plot (unless ``plot`` is False), upload its files as
    artifacts and save its note.

    The note needs optuna-dashboard and the plot matplotlib; without them the trial still
    gets its artifacts (Optuna's own).
    """
    from optuna.artifacts import upload_artifact

    if plot:
        fitness_plot(run_dir)
    for name, attr in ARTIFACTS.items():
        path = run_dir / name
        if path.is_file():
            artifact_id = upload_artifact(artifact_store=artifact_store, file_path=str(path),
                                          study_or_trial=trial)
            trial.set_user_attr(attr, artifact_id)
    try:
        from optuna_dashboard import save_note
    except ImportError:
        return
    save_note(trial, note(trial, summary, run_dir, state))


def fitness_plot(run_dir: Path) -> Path | None:
    """``<run_dir>/fitness.png`` as the report draws it; None without matplotlib or before
    the run has committed a generation."""
    from ..errors import MissingDependencyError, UserError
    from ..report import fitness_png

    try:
        # screen resolution, uncropped: a third of the time of the report's figure, for
        # a picture drawn after every trial
        return fitness_png(run_dir, dpi=100, tight=False)
    except (MissingDependencyError, UserError):
        return None


def exposure_warning(host: str) -> str | None:
    """What to say when the dashboard is served beyond this machine (``--host`` other than
    a loopback address): optuna-dashboard's API has no authentication, and anyone who can
    reach the port can read every study and delete it. None for a loopback host."""
    import ipaddress

    if host.strip().lower() == "localhost":
        return None
    try:
        if ipaddress.ip_address(host.strip("[]")).is_loopback:
            return None
    except ValueError:  # a host name: it may resolve to any interface
        pass
    return (f"--host {host} serves the dashboard beyond this machine, and optuna-dashboard's "
            f"API has no authentication: anyone who reaches its port can read, change "
            f"and delete the studies in this storage; serve it on 127.0.0.1 and use an SSH "
            f"tunnel, or put it behind an authenticating proxy")
