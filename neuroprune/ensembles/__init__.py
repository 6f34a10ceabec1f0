"""Evolved classifier ensembles (CIF-E): selection and fusion over a scikit-learn pool."""

from .estimator import EvolvedEnsembleClassifier
from .pool import DEFAULT_POOL, POOL

__all__ = ["DEFAULT_POOL", "EvolvedEnsembleClassifier", "POOL"]
