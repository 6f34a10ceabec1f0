"""Evolved ensemble vs the best single classifier vs a vote of the whole pool: stratified
k-fold cross-validation on scikit-learn's bundled sets, mean ± std of the test accuracy.

    python benchmarks/ensembles_cv.py --folds 5 --algorithm ga

The best single classifier is chosen inside each training fold (on the same inner validation
split the ensemble uses), so no figure selects on its test fold.
"""

from __future__ import annotations

import argparse
import warnings

import numpy as np
from sklearn import datasets
from sklearn.model_selection import StratifiedKFold

from neuroprune.ensembles import DEFAULT_POOL, EvolvedEnsembleClassifier
from neuroprune.ensembles.baselines import reference_scores


def fold_scores(X, y, tr, te, args, seed):
    ens = EvolvedEnsembleClassifier(algorithm=args.algorithm, fusion=args.fusion,
                                    population=args.population, generations=args.generations,
                                    diversity_weight=args.diversity_weight,
                                    size_penalty=args.size_penalty, random_state=seed)
    ens.fit(X[tr], y[tr])
    ens_acc = ens.score(X[te], y[te])
    ref = reference_scores(DEFAULT_POOL, X[tr], y[tr], X[te], y[te], 0.3, seed)
    single_acc, vote_acc = ref["best_single_test_accuracy"], ref["pool_vote_test_accuracy"]
    return ens_acc, single_acc, vote_acc, len(ens.selected_)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--folds", type=int, default=5)
    ap.add_argument("--algorithm", default="ga", choices=["ga", "umda", "pbil"])
    ap.add_argument("--fusion", default="majority", choices=["majority", "weighted", "average"])
    ap.add_argument("--population", type=int, default=30)
    ap.add_argument("--generations", type=int, default=20)
    ap.add_argument("--diversity-weight", type=float, default=0.05)
    ap.add_argument("--size-penalty", type=float, default=0.01)
    ap.add_argument("--sets", default="breast_cancer,wine,iris,digits")
    args = ap.parse_args()
    warnings.simplefilter("ignore")
    print(f"stratified {args.folds}-fold CV; {args.algorithm}, {args.fusion} fusion; "
          f"pool of {len(DEFAULT_POOL)}")
    print("| dataset | evolved ensemble | best single | whole-pool vote | members |")
    print("| --- | --- | --- | --- | --- |")
    for name in args.sets.split(","):
        X, y = getattr(datasets, f"load_{name}")(return_X_y=True)
        skf = StratifiedKFold(args.folds, shuffle=True, random_state=0)
        rows = np.array([fold_scores(X, y, tr, te, args, seed)
                         for seed, (tr, te) in enumerate(skf.split(X, y))])
        cell = lambda c: f"{rows[:, c].mean():.4f} ± {rows[:, c].std(ddof=1):.4f}"  # noqa: E731
        print(f"| {name} | {cell(0)} | {cell(1)} | {cell(2)} | {rows[:, 3].mean():.1f} |")


if __name__ == "__main__":
    main()
