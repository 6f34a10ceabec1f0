"""The pool of scikit-learn classifiers an ensemble is selected from, registered by name.

SVMs vote with their labels (no ``predict_proba``: Platt scaling is deprecated in
scikit-learn 1.9); under ``average`` fusion their vote counts as a one-hot probability.
"""

from __future__ import annotations

from typing import Callable

from sklearn.base import ClassifierMixin
from sklearn.discriminant_analysis import LinearDiscriminantAnalysis
from sklearn.ensemble import ExtraTreesClassifier, RandomForestClassifier
from sklearn.linear_model import LogisticRegression
from sklearn.naive_bayes import GaussianNB
from sklearn.neighbors import KNeighborsClassifier
from sklearn.neural_network import MLPClassifier
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler
from sklearn.svm import SVC
from sklearn.tree import DecisionTreeClassifier


def _scaled(est):
    return make_pipeline(StandardScaler(), est)


#: name -> factory(random_state) -> unfitted classifier
POOL: dict[str, Callable[[int | None], ClassifierMixin]] = {
    "knn1": lambda rs: _scaled(KNeighborsClassifier(1)),
    "knn3": lambda rs: _scaled(KNeighborsClassifier(3)),
    "knn7": lambda rs: _scaled(KNeighborsClassifier(7)),
    "knn15": lambda rs: _scaled(KNeighborsClassifier(15)),
    "tree_d3": lambda rs: DecisionTreeClassifier(max_depth=3, random_state=rs),
    "tree": lambda rs: DecisionTreeClassifier(random_state=rs),
    "logreg": lambda rs: _scaled(LogisticRegression(max_iter=1000)),
    "linear_svm": lambda rs: _scaled(SVC(kernel="linear", random_state=rs)),
    "rbf_svm": lambda rs: _scaled(SVC(kernel="rbf", random_state=rs)),
    "gnb": lambda rs: GaussianNB(),
    "lda": lambda rs: LinearDiscriminantAnalysis(),
    "mlp": lambda rs: _scaled(MLPClassifier((64,), max_iter=500, random_state=rs)),
    "rf": lambda rs: RandomForestClassifier(100, random_state=rs),
    "extra_trees": lambda rs: ExtraTreesClassifier(100, random_state=rs),
}

DEFAULT_POOL = ("knn1", "knn3", "knn7", "knn15", "tree_d3", "tree", "logreg", "linear_svm",
                "rbf_svm", "gnb", "lda", "mlp", "rf", "extra_trees")
