"""The kinds of run a config can ask for (``kind:``), one class each, registered in
:data:`~neuroprune.searches.registry.KINDS`.

A kind is *prepared* from a workbench (data loaded, model checked, every method of a sweep
validated), so bad input ends before anything is written; it then runs into a run directory,
returns its summary, and says which lines the command line prints. The tuner runs the same
kinds: ``objectives`` are the summary keys a study may optimise (empty: not tunable, and
``not_tunable`` says why).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Callable, ClassVar

from ..errors import UserError
from ..workbench import Workbench

Log = Callable[[str], None]
OnGeneration = Callable[[int, list[dict[str, Any]]], None]


class Kind:
    """Base of every kind."""

    name: ClassVar[str]
    resumable: ClassVar[bool] = True
    objectives: ClassVar[tuple[str, ...]] = ()
    not_tunable: ClassVar[str] = ""

    def __init__(self, bench: Workbench):
        self.bench = bench

    def run(self, out: Path, *, progress: bool = True, resume: bool = False,
            log: Log = print, on_generation: OnGeneration | None = None) -> dict[str, Any]:
        raise NotImplementedError

    def lines(self, summary: dict[str, Any], out: Path) -> list[str]:
        """What the command line prints when the run is done."""
        return [f"run directory: {out}"]


class MaskSearchKind(Kind):
    name = "mask_search"
    objectives = ("val_accuracy", "sparsity", "wall_seconds", "params", "flops", "latency")

    def __init__(self, bench: Workbench):
        super().__init__(bench)
        from .mask_search import MaskSearch
        self.search = MaskSearch(bench)

    def run(self, out, *, progress=True, resume=False, log=print, on_generation=None):
        return self.search.run(out, progress=progress, resume=resume, log=log,
                               on_generation=on_generation)

    def lines(self, summary, out):
        s = summary
        return [f"{s['method']}: test accuracy {s['test_accuracy']:.4f} at sparsity "
                f"{s['sparsity']:.4f} ({s['wall_seconds']:.1f}s on {s['device']})",
                f"run directory: {out}"]


class ComparisonKind(Kind):
    name = "comparison"
    not_tunable = ("a comparison is already a grid over methods, sparsities and seeds; tune "
                   "one method with kind: mask_search")

    def __init__(self, bench: Workbench):
        super().__init__(bench)
        from .comparison import Comparison
        self.comparison = Comparison(bench)

    def run(self, out, *, progress=True, resume=False, log=print, on_generation=None):
        return self.comparison.run(out, progress=progress, log=log)

    def lines(self, summary, out):
        return [(out / "comparison.md").read_text().rstrip("\n"),
                f"{summary['cells']} cells in {summary['wall_seconds']:.0f}s; "
                f"run directory: {out}"]


class PlantedKind(Kind):
    name = "planted"
    not_tunable = ("the planted-ticket benchmark is a fixed sweep with a known answer; tune a "
                   "method with kind: mask_search")

    def run(self, out, *, progress=True, resume=False, log=print, on_generation=None):
        from .planted_search import run_planted
        return run_planted(self.bench, out, progress)

    def lines(self, summary, out):
        return [(out / "planted.md").read_text().rstrip("\n"),
                f"{summary['cells']} cells in {summary['wall_seconds']:.0f}s; "
                f"run directory: {out}"]


class ActivationSearchKind(Kind):
    name = "activation_search"
    resumable = False
    objectives = ("val_accuracy", "wall_seconds")

    def __init__(self, bench: Workbench):
        super().__init__(bench)
        from .._system import require_memory
        from .activation_search import ActivationSearch
        a = bench.config.activation  # three populations of trees, and their offspring
        require_memory(a.population * 3 * 2 * 2 ** (a.max_height + 6),
                       f"activation.population={a.population:,}", "lower activation.population")
        self.search = ActivationSearch(bench)

    def run(self, out, *, progress=True, resume=False, log=print, on_generation=None):
        return self.search.run(out, progress, on_generation=on_generation)

    def lines(self, summary, out):
        lines = []
        for name, st in summary["strategies"].items():
            funcs = "; ".join(f"{r}: {f}" for r, f in st["functions"].items())
            paper = st.get("paper_test_accuracy", float("nan"))
            lines.append(f"{name:<12} val {st['val_accuracy']:.4f} "
                         f"test {st['test_accuracy']:.4f} (paper's {paper:.4f})  {funcs}")
        return lines + [f"best by validation: {summary['best_strategy']}; run directory: {out}"]


class EnsembleSearchKind(Kind):
    name = "ensemble_search"
    resumable = False
    objectives = ("val_accuracy", "wall_seconds")

    def __init__(self, bench: Workbench):
        super().__init__(bench)
        from .._system import require_memory
        e = bench.config.ensemble  # a population and its offspring of DEAP individuals
        require_memory(e.population * 2 * (1000 + 16 * len(e.pool)),
                       f"ensemble.population={e.population:,}", "lower ensemble.population")

    def run(self, out, *, progress=True, resume=False, log=print, on_generation=None):
        from .ensemble_search import run_ensemble_search
        return run_ensemble_search(self.bench, out, progress, on_generation=on_generation)

    def lines(self, summary, out):
        s = summary
        return [f"ensemble of {len(s['selected'])} ({', '.join(s['selected'])}): test "
                f"accuracy {s['test_accuracy']:.4f}; best single ({s['best_single']}) "
                f"{s['best_single_test_accuracy']:.4f}; whole-pool vote "
                f"{s['pool_vote_test_accuracy']:.4f}", f"run directory: {out}"]


class RBMConnectivityKind(Kind):
    name = "rbm_connectivity"
    resumable = False
    not_tunable = ("its only held-out score is the test log-likelihood (there is no "
                   "validation split), and choosing settings by the test set leaves no "
                   "unbiased estimate")

    def __init__(self, bench: Workbench):
        super().__init__(bench)
        from .rbm_connectivity import check
        check(bench)

    def run(self, out, *, progress=True, resume=False, log=print, on_generation=None):
        from .rbm_connectivity import run_rbm_connectivity
        return run_rbm_connectivity(self.bench, out, progress, log, on_generation)

    def lines(self, summary, out):
        return [f"{v:<8} test log-likelihood {s['test_log_likelihood']:.2f} nats, "
                f"reconstruction error {s['reconstruction_error']:.4f} "
                f"({s['connections']:,} connections)" for v, s in summary["variants"].items()
                ] + [f"run directory: {out}"]


class NeuroevolutionKind(Kind):
    name = "neuroevolution"
    resumable = False
    objectives = ("reward", "wall_seconds")

    def __init__(self, bench: Workbench):
        super().__init__(bench)
        from .neuroevolution import check
        check(bench.config.neuroevolution)

    def run(self, out, *, progress=True, resume=False, log=print, on_generation=None):
        from .neuroevolution import run_neuroevolution
        return run_neuroevolution(self.bench, out, progress)

    def lines(self, summary, out):
        return [f"{env}: " + "; ".join(f"{m} {r['final_reward_mean']:.1f} ± "
                                       f"{r['final_reward_std']:.1f}" for m, r in ms.items()
                                       if m != "best_genome")
                for env, ms in summary["environments"].items()] + [f"run directory: {out}"]


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


class PrivateTrainingKind(Kind):
    name = "private_training"
    resumable = False
    objectives = ("val_accuracy", "epsilon")

    def __init__(self, bench: Workbench):
        super().__init__(bench)
        if bench.structure is not None:
            raise UserError("kind private_training draws an element mask; use "
                            "sparsity.structure=element")
        from .private_training import private_model
        private_model(bench)  # a model Opacus cannot handle is refused before any writing

    def run(self, out, *, progress=True, resume=False, log=print, on_generation=None):
        from .private_training import run_private_training
        return run_private_training(self.bench, out)

    def lines(self, summary, out):
        s = summary
        spent = (f" at epsilon {s['epsilon']:.3f} (target {s['target_epsilon']}, delta "
                 f"{s['delta']:g}, {s['privacy_method']})" if s["private"] else " (not private)")
        return [f"test accuracy {s['test_accuracy']:.4f}{spent}, sparsity {s['sparsity']:.3f}",
                f"run directory: {out}"]
