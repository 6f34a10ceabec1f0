"""``neuroprune report``: PNG figures and a ``report.md`` for runs of every kind and for
tuning folders, finished or not.

One section per kind of input (mixed inputs get one each; their file names then start with
the kind), written by the reporter registered for that kind in :data:`REPORTERS`:

* ``mask_search`` (:mod:`.mask`): fitness beside validation accuracy per generation, the final
  training's learning curves, per-layer sparsity, accuracy against weights remaining, the
  class-relevant channels that ``neuroprune explain`` found;
* ``comparison`` (:mod:`.comparison`): accuracy against weights remaining per method with the
  dense baseline, and the mean ± std table;
* ``activation_search`` (:mod:`.activation`): the evolved functions drawn beside ReLU, the
  strategies' accuracies and their search;
* ``ensemble_search`` (:mod:`.ensemble`): fitness per generation, the ensemble against the best
  single classifier and the whole-pool vote;
* ``planted`` (:mod:`.planted`): quality and recovery of the planted ticket per task;
* ``neuroevolution`` (:mod:`.neuroevolution`): reward against environment steps for NEAT and
  Q-learning (mean ± std over seeds), the best evolved topology per environment;
* ``rbm_connectivity`` (:mod:`.rbm`): log-likelihood and reconstruction error per epoch for
  each connectivity;
* ``private_training`` (:mod:`.private`): accuracy against the privacy spent (epsilon), one
  point per run, DP-SGD and LSG apart;
* ``tuning`` (:mod:`.tuning`): Optuna's own plots (Pareto front, history, intermediate values,
  parameter importances) and a table of trials.

A comparison or planted sweep draws its own report into ``report/`` of its run folder when it
ends, where ``neuroprune report RUN`` writes it by default, and writes its tables
(:func:`tables`) beside it.

The report is built in a temporary folder beside ``out`` and moved into place only when every
file is written, so bad input or a failure leaves nothing half-written.
"""

from __future__ import annotations

import importlib
import os
import shutil
import tempfile
from pathlib import Path
from types import ModuleType
from typing import Sequence

from ..errors import UserError
from ..registry import Registry
from ..searches.registry import KINDS
from .document import Document
from .inputs import open_input

def _kind_reporters() -> dict[str, tuple[str, str]]:
    """Each run kind's ``Kind.reporter``."""
    return {name: (KINDS.load(name).reporter, KINDS.help(name)) for name in KINDS}


#: input kind -> function(inputs, document) writing its section: each run kind's reporter
#: (its ``Kind.reporter``), and tuning folders'
REPORTERS = Registry("report kind", "kind", {
    "tuning": ("neuroprune.report.tuning:report", "Optuna studies of `neuroprune tune`"),
}, first=_kind_reporters)


def make_report(inputs: Sequence[str | Path], out: str | Path) -> Path:
    """Write the report of ``inputs`` (run or tuning folders) into ``out``; its report.md."""
    opened = [open_input(p) for p in inputs]
    out = Path(out)
    if out.exists() and not out.is_dir():
        raise UserError(f"--out {out} is a file; give a folder")
    groups: dict[str, list] = {}
    for item in opened:
        groups.setdefault(item.kind, []).append(item)
    tmp = _scratch_folder(out)
    try:
        doc = Document(tmp)
        doc.heading("neuroprune report", 1)
        doc.para("Inputs: " + ", ".join(f"`{i.path}` ({i.kind}"
                                        f"{'' if getattr(i, 'finished', True) else ', unfinished'})"
                                        for i in opened) + ".")
        for kind, items in groups.items():
            section = doc.section(f"{kind}-" if len(groups) > 1 else "")
            REPORTERS.load(kind)(items, section)
        (tmp / "report.md").write_text(doc.markdown(), encoding="utf-8")
        _move_into(tmp, out)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return out / "report.md"


def fitness_png(run_dir: str | Path, dpi: int = 150, tight: bool = True) -> Path | None:
    """Draw ``<run_dir>/fitness.png``: a run's fitness per generation, as its kind's report
    draws it (the picture a tuning trial shows in the dashboard). None for kinds without one
    (each reporter module may offer ``fitness(run, document)``). ``dpi`` and ``tight``: as
    :func:`.style.save` writes it."""
    run = open_input(run_dir)
    draw = getattr(_reporter_module(run.kind), "fitness", None)
    if draw is None or not draw(run, Document(run.path, dpi=dpi, tight=tight)):
        return None
    return run.path / "fitness.png"


def tables(run_dir: str | Path) -> str:
    """The markdown tables of the run at ``run_dir``, as its kind's report writes them (a
    reporter module may offer ``tables(runs)``: the sweeps' ``comparison.md`` and
    ``planted.md``); '' for kinds without."""
    run = open_input(run_dir)
    write = getattr(_reporter_module(run.kind), "tables", None)
    return "" if write is None else write([run])


def _reporter_module(kind: str) -> ModuleType | None:
    if kind not in REPORTERS:
        return None
    return importlib.import_module(REPORTERS[kind].target.partition(":")[0])


def _scratch_folder(out: Path) -> Path:
    try:
        out.parent.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}.", suffix=".tmp", dir=out.parent))
        umask = os.umask(0)
        os.umask(umask)
        tmp.chmod(0o777 & ~umask)  # mkdtemp makes 0700; give the folder the usual permissions
        return tmp
    except OSError as exc:
        raise UserError(f"cannot write the report to {out}: {exc.strerror}") from None


def _move_into(tmp: Path, out: Path) -> None:
    """A new ``out`` is the finished folder renamed; into an existing one (an earlier report),
    each file is moved in with an atomic rename, replacing its older version."""
    try:
        if not out.exists():
            os.replace(tmp, out)
            return
        for f in sorted(tmp.iterdir()):
            os.replace(f, out / f.name)
        tmp.rmdir()
    except OSError as exc:
        raise UserError(f"cannot write the report to {out}: {exc.strerror}") from None
