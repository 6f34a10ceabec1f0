"""``EvolvedEnsembleClassifier``: a scikit-learn estimator that evolves which classifiers of a
pool to combine (and with which weights), following the estimator contract: the constructor
only stores parameters, ``fit`` returns ``self``, learned state ends with ``_``."""

from __future__ import annotations

import warnings

import numpy as np
from sklearn.base import BaseEstimator, ClassifierMixin
from sklearn.model_selection import train_test_split
from sklearn.preprocessing import LabelEncoder
from sklearn.utils.multiclass import check_classification_targets
from sklearn.utils.validation import check_is_fitted, validate_data

from .pool import DEFAULT_POOL, POOL
from .search import ALGORITHMS, FUSIONS, INITS, FitnessSpec, evolve, fuse


def _fit_to_size(est, n_samples: int):
    """A k-NN (alone or last in a pipeline) with at most ``n_samples`` neighbours."""
    knn = est.steps[-1][1] if hasattr(est, "steps") else est
    k = getattr(knn, "n_neighbors", None)
    if k is not None and k > n_samples:
        knn.set_params(n_neighbors=max(1, n_samples))
    return est


def _probas(estimators, X, n_classes, classes_seen) -> np.ndarray:
    out = np.zeros((len(estimators), X.shape[0], n_classes))
    for i, (est, seen) in enumerate(zip(estimators, classes_seen)):
        if hasattr(est, "predict_proba"):
            out[i][:, seen] = est.predict_proba(X)
        else:
            out[i][np.arange(X.shape[0]), est.predict(X)] = 1.0
    return out


class EvolvedEnsembleClassifier(ClassifierMixin, BaseEstimator):
    """Select and fuse classifiers from ``pool`` by evolution on a validation split.

    Parameters
    ----------
    pool : tuple of str
        Classifier names from :data:`neuroprune.ensembles.POOL`.
    algorithm : {"ga", "umda", "pbil"}
    fusion : {"majority", "weighted", "average"}
        ``weighted`` evolves one voting weight per classifier too.
    init : {"random", "all_ones", "best_k"}
    population, generations : int
    diversity_weight : float
        Weight of the diversity term (``diversity``: "disagreement" or "double_fault").
    size_penalty : float
        Subtracted per selected share of the pool.
    val_fraction : float
        Share of the training data held out to score ensembles; the selected classifiers are
        then refitted on all of it.
    random_state : int or None
    """

    def __init__(self, pool=DEFAULT_POOL, algorithm="ga", fusion="majority", init="random",
                 population=30, generations=20, diversity_weight=0.0,
                 diversity="disagreement", size_penalty=0.0, val_fraction=0.3, best_k=5,
                 random_state=None):
        self.pool = pool
        self.algorithm = algorithm
        self.fusion = fusion
        self.init = init
        self.population = population
        self.generations = generations
        self.diversity_weight = diversity_weight
        self.diversity = diversity
        self.size_penalty = size_penalty
        self.val_fraction = val_fraction
        self.best_k = best_k
        self.random_state = random_state

    def _check_params(self):
        unknown = [p for p in self.pool if p not in POOL]
        if unknown or not len(self.pool):
            raise ValueError(f"unknown pool classifiers {unknown}; choose from {sorted(POOL)}")
        for name, value, allowed in (("algorithm", self.algorithm, ALGORITHMS),
                                     ("fusion", self.fusion, FUSIONS), ("init", self.init, INITS)):
            if value not in allowed:
                raise ValueError(f"{name}={value!r}; choose one of {', '.join(allowed)}")
        if not 0 < self.val_fraction < 1:
            raise ValueError(f"val_fraction must be in (0, 1), got {self.val_fraction}")

    def _fit_pool(self, X, y, seed):
        """Fit every pool member on ``(X, y)``. A k-NN asking for more neighbours than there
        are samples is given as many as there are; a member that still cannot fit or predict
        (LDA on collinear data, say) is left out with a warning."""
        fitted, seen, names, dropped = [], [], [], []
        for name in self.pool:
            est = _fit_to_size(POOL.load(name)(seed), len(X))
            try:
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore")
                    est.fit(X, y)
                    est.predict(X[:1])
            except Exception as exc:
                dropped.append(f"{name} ({type(exc).__name__})")
                continue
            fitted.append(est)
            seen.append(np.unique(y))
            names.append(name)
        if dropped:
            warnings.warn(f"left out of the pool on this data: {', '.join(dropped)}",
                          UserWarning, stacklevel=3)
        return fitted, seen, names

    def fit(self, X, y):
        self._check_params()
        X, y = validate_data(self, X, y)
        check_classification_targets(y)
        self._encoder = LabelEncoder().fit(y)
        self.classes_ = self._encoder.classes_
        if len(self.classes_) < 2:
            raise ValueError("EvolvedEnsembleClassifier needs at least 2 classes in y; got 1 class")
        yi = self._encoder.transform(y)
        seed = self.random_state if isinstance(self.random_state, int) else \
            np.random.RandomState(self.random_state).randint(2**31 - 1)
        counts = np.bincount(yi)
        try:
            Xt, Xv, yt, yv = train_test_split(X, yi, test_size=self.val_fraction,
                                              random_state=seed,
                                              stratify=yi if counts.min() >= 2 else None)
        except ValueError:  # too few samples to hold any out: score on the training data
            Xt, Xv, yt, yv = X, X, yi, yi
        members, seen, names = self._fit_pool(Xt, yt, seed)
        if not members:
            raise ValueError("no classifier of the pool could be fitted to this data")
        probas = _probas(members, Xv, len(self.classes_), seen)
        spec = FitnessSpec(self.fusion, self.diversity_weight, self.diversity, self.size_penalty)
        res = evolve(probas, yv, spec, self.algorithm, self.init, self.population,
                     self.generations, seed, best_k=min(self.best_k, len(members)))
        self.selected_ = [n for n, s in zip(names, res.select) if s]
        self.weights_ = None if res.weights is None else res.weights[res.select]
        self.val_score_ = res.fitness
        self.val_accuracy_ = float((fuse(probas, res.select, self.fusion, res.weights).argmax(1)
                                    == yv).mean())
        self.history_ = res.history
        chosen = [_fit_to_size(POOL.load(n)(seed), len(X)) for n in self.selected_]
        self.estimators_, self._seen = [], []
        for est in chosen:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                self.estimators_.append(est.fit(X, yi))
            self._seen.append(np.unique(yi))
        return self

    def predict_proba(self, X):
        check_is_fitted(self, "estimators_")
        X = validate_data(self, X, reset=False)
        probas = _probas(self.estimators_, X, len(self.classes_), self._seen)
        select = np.ones(len(self.estimators_), dtype=bool)
        scores = fuse(probas, select, self.fusion, self.weights_)
        total = scores.sum(1, keepdims=True)
        return np.where(total > 0, scores / np.where(total > 0, total, 1), 1 / len(self.classes_))

    def predict(self, X):
        check_is_fitted(self, "estimators_")
        return self.classes_[self.predict_proba(X).argmax(1)]
