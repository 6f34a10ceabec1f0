import json
import warnings

import numpy as np
import pandas as pd
import pytest
from sklearn.utils.estimator_checks import check_estimator

from neuroprune.cli import main
from neuroprune.ensembles import EvolvedEnsembleClassifier
from neuroprune.ensembles.search import FitnessSpec, diversity, evolve, fuse, initial_bits

from helpers import REPO

SMALL = ("knn3", "tree_d3", "gnb", "logreg")


@pytest.mark.parametrize("kw", [{}, {"algorithm": "umda", "fusion": "average"},
                                {"algorithm": "pbil", "fusion": "weighted", "init": "best_k"}],
                         ids=["ga-majority", "umda-average", "pbil-weighted"])
def test_passes_scikit_learns_estimator_checks(kw):
    est = EvolvedEnsembleClassifier(pool=SMALL, population=6, generations=2, random_state=0,
                                    **kw)
    assert not _failed_checks(est)


def _failed_checks(est) -> list:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        results = check_estimator(est, on_fail=None)
    return [(r["check_name"], str(r["exception"])[:100]) for r in results
            if r["status"] == "failed"]


def test_default_pool_passes_the_checks_on_tiny_data():
    """The default pool holds a 15-nearest-neighbour classifier, which cannot fit the checks'
    14-sample sets: it is adapted (fewer neighbours), never a failure."""
    assert not _failed_checks(EvolvedEnsembleClassifier(population=4, generations=1,
                                                        random_state=0))


def test_a_member_that_cannot_fit_is_left_out_with_a_warning():
    X = np.r_[np.zeros((6, 3)), np.ones((6, 3))]  # collinear: LDA and others struggle
    y = np.r_[np.zeros(6), np.ones(6)]
    est = EvolvedEnsembleClassifier(pool=("knn15", "gnb", "lda"), population=4,
                                    generations=1, random_state=0)
    with warnings.catch_warnings(record=True):
        warnings.simplefilter("always")
        est.fit(X, y)
    assert (est.predict(X) == y).all()


def test_fusion_rules():
    # 3 classifiers, 2 samples, 2 classes
    probas = np.array([[[0.9, 0.1], [0.6, 0.4]],
                       [[0.4, 0.6], [0.3, 0.7]],
                       [[0.45, 0.55], [0.2, 0.8]]])
    every = np.ones(3, bool)
    assert fuse(probas, every, "majority").argmax(1).tolist() == [1, 1]
    assert fuse(probas, every, "average").argmax(1).tolist() == [0, 1]  # 0.58 vs 0.42 first
    heavy_first = np.array([5.0, 1.0, 1.0])
    assert fuse(probas, every, "weighted", heavy_first).argmax(1).tolist() == [0, 0]
    assert fuse(probas, np.array([True, False, False]), "majority").argmax(1).tolist() == [0, 0]


def test_diversity_measures():
    y = np.array([0, 1])
    probas = np.array([[[1, 0], [0, 1]], [[0, 1], [0, 1]]], dtype=float)
    sel = np.ones(2, bool)
    assert diversity(probas, y, sel, "disagreement") == 0.5
    assert diversity(probas, y, sel, "double_fault") == 1.0  # never both wrong


@pytest.mark.parametrize("algorithm,init", [("ga", "best_k"), ("umda", "random"),
                                            ("pbil", "random")])
def test_each_algorithm_finds_the_perfect_subset(algorithm, init):
    # From random bits a GA can stall on this needle (removing one noisy member of a
    # three-member vote does not help); started from the best single member, elitism keeps it.
    rng = np.random.default_rng(0)
    y = rng.integers(0, 3, 200)
    perfect = np.eye(3)[y]
    noise = [np.eye(3)[rng.integers(0, 3, 200)] for _ in range(7)]
    probas = np.stack([noise[0], perfect, *noise[1:]])
    res = evolve(probas, y, FitnessSpec("majority", size_penalty=0.01), algorithm, init=init,
                 population=20, generations=25, seed=1, best_k=1)
    assert res.fitness > 0.98 and res.select[1]


def test_best_k_initialisation_picks_the_most_accurate():
    bits = initial_bits(5, "best_k", 2, np.array([0.1, 0.9, 0.5, 0.95, 0.2]),
                        np.random.default_rng(0))
    assert bits.tolist() == [False, True, False, True, False]


def test_ensemble_search_run_and_csv_data(tmp_path, capsys):
    rng = np.random.default_rng(0)
    df = pd.DataFrame(rng.normal(size=(150, 4)), columns=list("abcd"))
    df["label"] = (df.a + df.b > 0).astype(int).map({0: "no", 1: "yes"})
    df.to_csv(tmp_path / "d.csv", index=False)
    out = tmp_path / "run"
    code = main(["run", str(REPO / "configs" / "ensemble_breast_cancer.yaml"), "--out", str(out),
                 "--set", f"data.path={tmp_path / 'd.csv'}", "--set", "data.dataset=csv",
                 "--set", "ensemble.generations=3", "--set", "ensemble.population=6",
                 "--set", "ensemble.pool=[knn3, tree_d3, logreg, gnb]"])
    assert code == 0, capsys.readouterr().err
    s = json.loads((out / "summary.json").read_text())
    assert s["test_accuracy"] > 0.8 and s["selected"]
    assert {"best_single", "best_single_test_accuracy", "pool_vote_test_accuracy"} <= set(s)
    assert len(pd.read_csv(out / "results.csv")) == 3
    import neuroprune
    loaded = neuroprune.load_ensemble(out)  # the fitted ensemble is saved with the run
    assert loaded.selected_ == s["selected"]
    assert main(["export", str(out), "--out", str(tmp_path / "e.joblib")]) == 0
    again = neuroprune.load_ensemble(tmp_path / "e.joblib")
    X = df[list("abcd")].to_numpy()
    assert (again.predict(X) == loaded.predict(X)).all()
    assert main(["run", str(REPO / "configs" / "ensemble_breast_cancer.yaml"), "--out",
                 str(tmp_path / "bad"), "--set", "data.dataset=csv", "--set",
                 f"data.path={tmp_path / 'd.csv'}", "--set", "data.label_column=nope"]) == 2
    assert "no column 'nope'" in capsys.readouterr().err
    assert not (tmp_path / "bad").exists()
    assert main(["run", str(REPO / "configs" / "ensemble_breast_cancer.yaml"), "--set",
                 "ensemble.pool=[knn3, xgboost]"]) == 2
