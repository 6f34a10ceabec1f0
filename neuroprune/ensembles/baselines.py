"""What an evolved ensemble is compared with: the best single classifier of the pool and a
majority vote over the whole pool."""

from __future__ import annotations

from typing import Any, Sequence

import numpy as np
from sklearn.model_selection import train_test_split

from .pool import POOL
from .search import fuse


def reference_scores(pool: Sequence[str], X, y, Xte, yte, val_fraction: float,
                     seed: int) -> dict[str, Any]:
    """Test accuracy of the best single classifier (chosen on an inner validation split of
    ``val_fraction``, as the ensemble chooses) and of a majority vote over all of ``pool``,
    both refitted on all of ``(X, y)``. Classifiers that cannot fit the data are left out."""
    Xt, Xv, yt, yv = train_test_split(X, y, test_size=val_fraction, random_state=seed,
                                      stratify=y)
    val_acc, test_pred = {}, {}
    for name in pool:
        try:
            val_acc[name] = float(POOL.load(name)(seed).fit(Xt, yt).score(Xv, yv))
            test_pred[name] = POOL.load(name)(seed).fit(X, y).predict(Xte)
        except Exception:
            continue
    best = max(val_acc, key=val_acc.get)
    n_classes = int(max(y.max(), yte.max())) + 1
    votes = np.stack([np.eye(n_classes)[p] for p in test_pred.values()])
    pool_vote = fuse(votes, np.ones(len(votes), bool), "majority").argmax(1)
    return {"best_single": best,
            "best_single_test_accuracy": float((test_pred[best] == yte).mean()),
            "pool_vote_test_accuracy": float((pool_vote == yte).mean())}
