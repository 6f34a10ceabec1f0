"""Progress bars that read: a search's bar shows the best fitness beside the best validation
accuracy so far, and log lines (Optuna's trial lines) are written above the bars instead of
through them."""

from __future__ import annotations

import contextlib
import logging
from typing import Any, Iterable, Iterator


def show_best(bar, fitness: float, rows: Iterable[dict[str, Any]]) -> None:
    """Best fitness of the population, and the best validation accuracy seen so far, on a
    search's bar (``rows``: the generation's evaluations)."""
    accs = [r["val_accuracy"] for r in rows if r.get("val_accuracy") is not None]
    bar.best_val_accuracy = max([getattr(bar, "best_val_accuracy", float("-inf")), *accs])
    bar.set_postfix(fitness=f"{fitness:.4f}", val_acc=f"{bar.best_val_accuracy:.4f}")


@contextlib.contextmanager
def logs_above_bars(*loggers: str) -> Iterator[None]:
    """Within the block, console log lines of ``loggers`` (default: Optuna's) go through
    ``tqdm.write``, which lifts the open bars, writes the line and draws them again."""
    from tqdm.contrib.logging import logging_redirect_tqdm

    with logging_redirect_tqdm(loggers=[logging.getLogger(n) for n in loggers or ("optuna",)]):
        yield
