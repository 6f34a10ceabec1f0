"""The kinds of run a config can ask for (``kind:``), registered by name.

Each kind is *prepared* from a config that :func:`~neuroprune.config.load_config` validated
(every method of a sweep included) and loads what it needs (data), so that bad input ends
before anything is written; the prepared job then runs into a run directory and returns the
lines to print.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from ..config import RunConfig
from ..errors import UserError


@dataclass
class Job:
    run: Callable[[Path, bool, bool, Callable[[str], None]], list[str]]
    resumable: bool = True


def _mask_search(cfg: RunConfig) -> Job:
    from .mask_search import MaskSearch

    search = MaskSearch(cfg)

    def run(out, progress, resume, log):
        s = search.run(out, progress=progress, resume=resume, log=log)
        return [f"{s['method']}: test accuracy {s['test_accuracy']:.4f} at sparsity "
                f"{s['sparsity']:.4f} ({s['wall_seconds']:.1f}s on {s['device']})",
                f"run directory: {out}"]
    return Job(run)


def _comparison(cfg: RunConfig) -> Job:
    from .comparison import run_comparison

    def run(out, progress, resume, log):
        s = run_comparison(cfg, out, progress=progress, log=log)
        return [(out / "comparison.md").read_text().rstrip("\n"),
                f"{s['cells']} cells in {s['wall_seconds']:.0f}s; run directory: {out}"]
    return Job(run)


def _planted(cfg: RunConfig) -> Job:
    from .planted_search import run_planted

    def run(out, progress, resume, log):
        s = run_planted(cfg, out, progress)
        return [(out / "planted.md").read_text().rstrip("\n"),
                f"{s['cells']} cells in {s['wall_seconds']:.0f}s; run directory: {out}"]
    return Job(run)


def _activation_search(cfg: RunConfig) -> Job:
    from .activation_search import ActivationSearch

    search = ActivationSearch(cfg)

    def run(out, progress, resume, log):
        s = search.run(out, progress)
        lines = []
        for name, st in s["strategies"].items():
            funcs = "; ".join(f"{r}: {f}" for r, f in st["functions"].items())
            lines.append(f"{name:<12} val {st['val_accuracy']:.4f} "
                         f"test {st['test_accuracy']:.4f}  {funcs}")
        return lines + [f"best by validation: {s['best_strategy']}; run directory: {out}"]
    return Job(run, resumable=False)


def _ensemble_search(cfg: RunConfig) -> Job:
    from .ensemble_search import run_ensemble_search
    from .mask_search import load_data

    load_data(cfg)

    def run(out, progress, resume, log):
        s = run_ensemble_search(cfg, out, progress)
        return [f"ensemble of {len(s['selected'])} ({', '.join(s['selected'])}): test "
                f"accuracy {s['test_accuracy']:.4f}; best single ({s['best_single']}) "
                f"{s['best_single_test_accuracy']:.4f}; whole-pool vote "
                f"{s['pool_vote_test_accuracy']:.4f}", f"run directory: {out}"]
    return Job(run, resumable=False)


KINDS: dict[str, Callable[[RunConfig], Job]] = {
    "mask_search": _mask_search,
    "comparison": _comparison,
    "planted": _planted,
    "activation_search": _activation_search,
    "ensemble_search": _ensemble_search,
}


def prepare(cfg: RunConfig, resume: bool = False) -> Job:
    """Validate everything a run of ``cfg`` needs, without writing anything."""
    job = KINDS[cfg.kind](cfg)
    if resume and not job.resumable:
        raise UserError(f"a {cfg.kind} run cannot be resumed; start it again with a new --out")
    return job
