"""``kind: ensemble_search``: evolve a classifier ensemble on a tabular dataset.

The estimator is fitted on the train + validation splits (it holds out its own validation
share to score ensembles) and tested once on the test split. For reference the run also
reports the best single classifier of the pool (chosen on the same inner validation split)
and a majority vote over the whole pool.
"""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np

from .. import __version__
from ..config import RunConfig, to_dict
from ..ensembles import EvolvedEnsembleClassifier
from ..ensembles.baselines import reference_scores
from ..rundir import RunDir
from ..tracking import open_tracking
from ..ensembles.config import EnsembleConfig
from ..workbench import Workbench
from .kinds import Kind


def estimator_from(cfg: RunConfig) -> EvolvedEnsembleClassifier:
    e = cfg.ensemble
    return EvolvedEnsembleClassifier(
        pool=tuple(e.pool), algorithm=e.algorithm, fusion=e.fusion, init=e.init,
        population=e.population, generations=e.generations,
        diversity_weight=e.diversity_weight, diversity=e.diversity,
        size_penalty=e.size_penalty, val_fraction=e.val_fraction, random_state=cfg.seed)


def run_ensemble_search(bench: Workbench, out: str | Path, progress: bool = True,
                        on_generation=None) -> dict:
    t0 = time.time()
    cfg, data = bench.config, bench.data
    flat = lambda t: t.reshape(len(t), -1).numpy()  # noqa: E731
    X = np.concatenate([flat(data.train_x), flat(data.val_x)])
    y = np.concatenate([data.train_y.numpy(), data.val_y.numpy()])
    Xte, yte = flat(data.test_x), data.test_y.numpy()
    est = estimator_from(cfg)
    rd = RunDir(out, open_tracking(cfg.logging, out, cfg.name)).create()
    rd.write_config(to_dict(cfg))
    rd.write_data_record(data.record())
    est.fit(X, y)
    rows = [{"generation": h["generation"], "index": 0, "best": h["best"], "mean": h["mean"]}
            for h in est.history_]
    rd.write_logbook([{"gen": h["generation"], "best": h["best"], "mean": h["mean"]}
                      for h in est.history_])
    for r in rows:
        rd.commit_generation(r["generation"], [r])
        if on_generation is not None:
            on_generation(r["generation"], [{**r, "val_accuracy": r["best"]}])
    summary = {"status": "complete", "kind": "ensemble_search", "dataset": cfg.data.dataset,
               "data": data.record(),
               "algorithm": cfg.ensemble.algorithm, "fusion": cfg.ensemble.fusion,
               "selected": est.selected_,
               "weights": None if est.weights_ is None else [float(w) for w in est.weights_],
               "val_fitness": float(est.val_score_), "val_accuracy": est.val_accuracy_,
               "test_accuracy": float(est.score(Xte, yte)), "seed": cfg.seed,
               **reference_scores(cfg.ensemble.pool, X, y, Xte, yte,
                                  cfg.ensemble.val_fraction, cfg.seed),
               "wall_seconds": round(time.time() - t0, 3), "device": "cpu",
               "neuroprune_version": __version__}
    save_ensemble(est, rd.path / ENSEMBLE_FILE)
    rd.write_summary(summary)
    return summary


ENSEMBLE_FILE = "ensemble.joblib"


def save_ensemble(est: EvolvedEnsembleClassifier, path: Path) -> None:
    """The fitted estimator, with joblib (scikit-learn's own persistence), atomically."""
    import joblib

    from .._io import atomic_write
    atomic_write(path, lambda tmp: joblib.dump(est, tmp))


def load_ensemble(path: str | Path, *, trust: bool | None = None) -> EvolvedEnsembleClassifier:
    """A fitted :class:`EvolvedEnsembleClassifier` saved by an ensemble run (or exported).

    joblib files are pickles, and a pickle can call any function as it loads. So every
    class the file names is checked before it is built: only the estimator, scikit-learn
    estimators and the numpy and scikit-learn internals they hold are accepted, and any other
    name is refused in one line, unless ``trust`` (default: ``--trust-code`` on the command
    line) loads the file as it is.
    """
    from ..checkpoint import trusted
    from ..errors import UserError

    path = Path(path)
    if path.is_dir():
        path = path / ENSEMBLE_FILE
    if not path.is_file():
        raise UserError(f"{path} does not exist (an ensemble run writes {ENSEMBLE_FILE})")
    trust = trusted() if trust is None else trust
    try:
        est = _load_checked(path) if not trust else _load_any(path)
    except _Refused as exc:
        raise UserError(f"{path} names {exc}, which a saved ensemble never holds, and loading "
                        f"it could run code: load it only if you trust who wrote it "
                        f"(--trust-code, or trust=True)") from None
    except Exception as exc:
        raise UserError(f"{path} is not a saved ensemble (truncated or corrupt?): "
                        f"{type(exc).__name__}") from None
    if not isinstance(est, EvolvedEnsembleClassifier):
        raise UserError(f"{path} holds a {type(est).__name__}, not an evolved ensemble")
    return est


def _load_any(path: Path):
    """joblib's loader as it is: for a file from someone trusted (``trust``)."""
    import joblib

    return joblib.load(path)


class _Refused(Exception):
    """A pickle names a global outside :data:`SAFE_GLOBALS`."""


#: what a saved ensemble names besides scikit-learn estimators (numpy arrays and random
#: states, joblib's array wrapper, the fitted internals of trees, neighbours and MLPs)
SAFE_GLOBALS = {
    ("joblib.numpy_pickle", "NumpyArrayWrapper"),
    ("neuroprune.ensembles.estimator", "EvolvedEnsembleClassifier"),
    ("numpy", "dtype"), ("numpy", "ndarray"),
    *((m, n) for m in ("numpy._core.multiarray", "numpy.core.multiarray")
      for n in ("scalar", "_reconstruct")),
    ("numpy.random._pickle", "__bit_generator_ctor"),
    ("numpy.random._pickle", "__randomstate_ctor"),
    ("numpy.random._pickle", "__generator_ctor"),
    ("numpy.random._mt19937", "MT19937"), ("numpy.random._pcg64", "PCG64"),
    ("sklearn.tree._tree", "Tree"),
    ("sklearn.neighbors._kd_tree", "KDTree"), ("sklearn.neighbors._ball_tree", "BallTree"),
    # their pickles call newObj(cls): cls.__new__(cls), with cls itself checked here
    *((m, "newObj") for m in ("sklearn.neighbors._kd_tree", "sklearn.neighbors._ball_tree",
                              "sklearn.metrics._dist_metrics")),
    ("sklearn.neural_network._stochastic_optimizers", "AdamOptimizer"),
    ("sklearn.neural_network._stochastic_optimizers", "SGDOptimizer"),
}


def _load_checked(path: Path):
    """joblib's loader, with every global the pickle names checked before it is imported."""
    import importlib

    from joblib.numpy_pickle import NumpyUnpickler
    from sklearn.base import BaseEstimator

    class Checked(NumpyUnpickler):
        def find_class(self, module: str, name: str):
            if (module, name) not in SAFE_GLOBALS:
                # a scikit-learn estimator class: its constructor only stores parameters
                if not module.startswith("sklearn.") or "." in name or name.startswith("_"):
                    raise _Refused(f"{module}.{name}")
                obj = getattr(importlib.import_module(module), name, None)
                metric = module == "sklearn.metrics._dist_metrics"  # a tree's distance
                if not (isinstance(obj, type) and obj.__module__.startswith("sklearn.")
                        and (metric or issubclass(obj, BaseEstimator))):
                    raise _Refused(f"{module}.{name}")
            return super().find_class(module, name)

    with open(path, "rb") as f:  # written uncompressed (save_ensemble)
        try:
            unpickler = Checked(str(path), f, ensure_native_byte_order=True)
        except TypeError:  # joblib before 1.5
            unpickler = Checked(str(path), f)
        return unpickler.load()


class EnsembleSearchKind(Kind):
    name = "ensemble_search"
    section = "ensemble"
    Config = EnsembleConfig
    columns = ("generation", "best", "mean")
    reporter = "neuroprune.report.ensemble:report"
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
