"""A study keeps its config, as a run does.

The trials of one study compare only if they share everything but the sampled values: the
base config (data, model, sparsity, training, method, seed, ...), the search space
(``tune.params``) and the objectives with their directions. The ``tune`` call that creates a
study records these as the study's user attributes; a later call that continues the study
compares its own and refuses other values in one line naming the keys, before a trial is
asked and without touching the record (``run --resume`` refuses a changed config the same
way). What may change is where and how trials run (device, backend, ray, logging), how many
run now, and how they are proposed, pruned and recovered.

``--force-new-study`` starts the name afresh: the old study is kept in the same storage as
``NAME-replaced-YYYYmmdd-HHMMSS`` (its unfinished trials failed), and its trial folders move
to ``trials/NAME-replaced-.../``, so that nothing of it is lost or mixed into the new one.
"""

from __future__ import annotations

import copy
import datetime as _dt
import shutil
import time
import warnings
from pathlib import Path
from typing import Any, Callable

from ..config import changed_keys, saved_tree
from ..errors import UserError
from ..rundir import RESUME_MAY_CHANGE
from .storage import redacted

#: the study's base config (no ``tune`` section), as recorded by the tuner that created it
CONFIG_ATTR = "neuroprune_config"
#: the study's search space and objectives (``tune`` without what may change)
TUNE_ATTR = "neuroprune_tune"
#: ``tune`` keys a continued study may change
TUNE_MAY_CHANGE = ("n_trials", "sampler", "pruner", "stale_after", "retry_failed",
                   "trial_latency", "trial_plots")


def kept_config(base: dict[str, Any]) -> dict[str, Any]:
    """What of a base config a continued study must keep (not its name: a label), as this
    version writes it (one recorded by an earlier version holds every kind's section)."""
    return {k: v for k, v in saved_tree(base).items()
            if k not in (*RESUME_MAY_CHANGE, "name", "tune")}


def kept_tune(tune) -> dict[str, Any]:
    """What of a ``tune`` section a continued study must keep: params and objectives."""
    return {k: v for k, v in tune.model_dump(mode="json").items() if k not in TUNE_MAY_CHANGE}


def differences(study, base: dict[str, Any], tune) -> list[str]:
    """The dotted keys in which ``base`` and ``tune`` differ from what ``study`` recorded (a
    study without a record, made elsewhere, is compared by its objectives' names and
    directions only)."""
    attrs = study.user_attrs
    keys = []
    if isinstance(attrs.get(CONFIG_ATTR), dict):
        keys += changed_keys(kept_config(attrs[CONFIG_ATTR]), kept_config(base))
    if isinstance(attrs.get(TUNE_ATTR), dict):
        keys += [f"tune.{k}" for k in changed_keys(attrs[TUNE_ATTR], kept_tune(tune))]
    elif study.metric_names is not None and list(study.metric_names) != list(tune.objectives):
        keys.append("tune.objectives")
    if "tune.objectives" not in keys and \
            [d.name.lower() for d in study.directions] != list(tune.directions):
        keys.append("tune.objectives (directions)")
    return keys


def refusal(study_name: str, storage: str, keys: list[str]) -> UserError:
    shown = ", ".join(keys[:8]) + (f" and {len(keys) - 8} more" if len(keys) > 8 else "")
    return UserError(
        f"study '{study_name}' in {redacted(storage)} was run with other values of {shown}; a "
        f"continued study keeps its config (only {', '.join(RESUME_MAY_CHANGE)} and "
        f"tune.{', tune.'.join(TUNE_MAY_CHANGE)} may change): drop those changes, or start "
        f"over with --force-new-study or another --study name")


def record(study, base: dict[str, Any], tune) -> None:
    """Record what the study's trials share (by the process that created it)."""
    study.set_user_attr(CONFIG_ATTR, base)
    study.set_user_attr(TUNE_ATTR, kept_tune(tune))


def wait_for_record(study, timeout: float = 10.0) -> None:
    """A study created a moment ago by another process may not hold its record yet; wait
    for it a little (a study that has trials or metric names was created long ago)."""
    deadline = time.time() + timeout
    while (CONFIG_ATTR not in study.user_attrs and not study.get_trials(deepcopy=False)
           and study.metric_names is None and time.time() < deadline):
        time.sleep(0.2)


def trial_folder_name(study_name: str) -> str:
    """A study name usable as a folder name."""
    return "".join(c if c.isalnum() or c in "._-" else "_" for c in study_name)[:100]


def replace_study(study, storage, out: Path, folder_of: Callable[[int], Path]) -> str:
    """Keep ``study`` as ``NAME-replaced-STAMP`` (unfinished trials failed, trial folders
    ``folder_of(number)`` moved under ``out/trials/NAME-replaced-STAMP``) and delete it under
    its own name; returns the name it is kept under. Refused while a trial of it runs."""
    import optuna
    from optuna.trial import TrialState

    running = study.get_trials(deepcopy=False, states=(TrialState.RUNNING,))
    if running:
        raise UserError(f"study '{study.study_name}' has {len(running)} running trial(s) "
                        f"({', '.join(str(t.number) for t in running[:5])}) of another tune "
                        f"process; stop it (or wait until it ends) before --force-new-study")
    stamp = _dt.datetime.now().strftime("%Y%m%d-%H%M%S")
    kept = f"{study.study_name}-replaced-{stamp}"
    folder = Path(out) / "trials" / trial_folder_name(kept)
    copy_of = optuna.create_study(storage=storage, study_name=kept, directions=study.directions)
    for key, value in study.user_attrs.items():
        copy_of.set_user_attr(key, value)
    if study.metric_names is not None:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
            copy_of.set_metric_names(list(study.metric_names))
    now = _dt.datetime.now()
    for trial in study.get_trials(deepcopy=False):
        t = copy.deepcopy(trial)
        run_dir = folder_of(t.number)  # where a new trial of that number would run
        if run_dir.is_dir():
            folder.mkdir(parents=True, exist_ok=True)
            shutil.move(run_dir, folder / run_dir.name)
            t.set_user_attr("run_dir", str(folder / run_dir.name))
        if not t.state.is_finished():  # waiting: it would never run under the old name
            t.state, t.datetime_complete = TrialState.FAIL, now
            t.datetime_start = t.datetime_start or now
        storage.create_new_trial(copy_of._study_id, template_trial=t)
    optuna.delete_study(study_name=study.study_name, storage=storage)
    return kept
