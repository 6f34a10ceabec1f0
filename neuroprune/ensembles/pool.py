"""The pool of scikit-learn classifiers an ensemble is selected from, registered by name.

SVMs vote with their labels (no ``predict_proba``: Platt scaling is deprecated in
scikit-learn 1.9); under ``average`` fusion their vote counts as a one-hot probability.
"""

from __future__ import annotations

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

from ..registry import Registry


def _scaled(est):
    return make_pipeline(StandardScaler(), est)


def knn1(rs):
    return _scaled(KNeighborsClassifier(1))


def knn3(rs):
    return _scaled(KNeighborsClassifier(3))


def knn7(rs):
    return _scaled(KNeighborsClassifier(7))


def knn15(rs):
    return _scaled(KNeighborsClassifier(15))


def tree_d3(rs):
    return DecisionTreeClassifier(max_depth=3, random_state=rs)


def tree(rs):
    return DecisionTreeClassifier(random_state=rs)


def logreg(rs):
    return _scaled(LogisticRegression(max_iter=1000))


def linear_svm(rs):
    return _scaled(SVC(kernel="linear", random_state=rs))


def rbf_svm(rs):
    return _scaled(SVC(kernel="rbf", random_state=rs))


def gnb(rs):
    return GaussianNB()


def lda(rs):
    return LinearDiscriminantAnalysis()


def mlp(rs):
    return _scaled(MLPClassifier((64,), max_iter=500, random_state=rs))


def rf(rs):
    return RandomForestClassifier(100, random_state=rs)


def extra_trees(rs):
    return ExtraTreesClassifier(100, random_state=rs)


_HELP = {"knn1": "1-nearest neighbour", "knn3": "3-nearest neighbours",
         "knn7": "7-nearest neighbours", "knn15": "15-nearest neighbours",
         "tree_d3": "decision tree of depth 3", "tree": "decision tree",
         "logreg": "logistic regression", "linear_svm": "linear SVM", "rbf_svm": "RBF SVM",
         "gnb": "Gaussian naive Bayes", "lda": "linear discriminant analysis",
         "mlp": "one-hidden-layer perceptron (64)", "rf": "random forest (100 trees)",
         "extra_trees": "extremely randomised trees (100)"}

#: name -> factory(random_state) -> unfitted classifier
POOL = Registry("classifier", "ensemble.pool",
                {name: (f"neuroprune.ensembles.pool:{name}", text) for name, text in _HELP.items()})

DEFAULT_POOL = tuple(POOL)
