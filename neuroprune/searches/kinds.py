"""The base of the kinds of run a config can ask for (``kind:``).

A kind is one file: its module under :mod:`neuroprune.searches` holds its :class:`Kind`
subclass, which owns its config section (``section``, validated by ``Config``), its run, the
columns of its results table (checked by ``neuroprune report``), the reporter that draws it,
the lines the command line prints and its default run name; one line in
:data:`~neuroprune.searches.registry.KINDS` registers it.

A kind is *prepared* from a workbench (data loaded, model checked, every method of a sweep
validated), so bad input ends before anything is written; it then runs into a run directory,
returns its summary, and says which lines the command line prints. The tuner runs the same
kinds: ``objectives`` are the summary keys a study may optimise (empty: not tunable, and
``not_tunable`` says why).
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, ClassVar

from ..errors import UserError
from ..rundir import FILES

if TYPE_CHECKING:
    from pydantic import BaseModel

    from ..config import RunConfig
    from ..workbench import Workbench

Log = Callable[[str], None]
OnGeneration = Callable[[int, list[dict[str, Any]]], None]


class Kind:
    """Base of every kind."""

    name: ClassVar[str]
    #: the config key of the kind's own section (None: it has none)
    section: ClassVar[str | None] = None
    #: the class validating that section
    Config: ClassVar[type[BaseModel] | None] = None
    #: the table its rows are read from by ``neuroprune report`` (None: summary.json, one row)
    table: ClassVar[str | None] = FILES.results
    #: columns that table must hold
    columns: ClassVar[tuple[str, ...]] = ()
    #: "module:function(inputs, document)" drawing its runs in ``neuroprune report``
    reporter: ClassVar[str] = ""
    resumable: ClassVar[bool] = True
    objectives: ClassVar[tuple[str, ...]] = ()
    not_tunable: ClassVar[str] = ""
    #: for a kind whose networks are no layered classifier (a NEAT genome, an RBM): its
    #: files, what they hold and how to read them, which ``neuroprune export`` and
    #: ``load_model`` say instead of failing on a missing or foreign ``best_mask``
    network_files: ClassVar[str] = ""

    def __init__(self, bench: Workbench):
        self.bench = bench

    def run(self, out: Path, *, progress: bool = True, resume: bool = False,
            log: Log = print, on_generation: OnGeneration | None = None) -> dict[str, Any]:
        raise NotImplementedError

    def lines(self, summary: dict[str, Any], out: Path) -> list[str]:
        """What the command line prints when the run is done."""
        return [f"run directory: {out}"]

    @classmethod
    def run_name(cls, cfg: RunConfig) -> str:
        """The run folder's name (before its timestamp) when ``--out`` is not given."""
        return cfg.name


def prepare(bench: Workbench, resume: bool = False) -> Kind:
    """The kind ``bench.config.kind`` asks for, prepared without writing anything."""
    from ..tracking import check_loggers
    from .registry import KINDS
    check_loggers(bench.config.logging)
    kind = KINDS.load(bench.config.kind)(bench)
    if resume and not kind.resumable:
        article = "an" if kind.name[0] in "aeiou" else "a"
        raise UserError(f"{article} {kind.name} run cannot be resumed; start it again with a "
                        f"new --out")
    return kind


def __getattr__(name: str) -> Any:
    """The kind classes where they used to be (``kinds.MaskSearchKind``)."""
    from .registry import KINDS
    for kind in KINDS:
        target = KINDS[kind].target
        if target.endswith(f":{name}"):
            return KINDS.load(kind)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
