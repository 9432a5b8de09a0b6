"""Independent fits side by side: the candidates, the backtest's origins, the held-out folds of a refit.

On the windows most lead tables give (tens of thousands of rows) LightGBM fits on one thread
(`leadscore.training.candidates.lightgbm_threads`) and scikit-learn's solvers mostly use one core, so one
fit at a time leaves the other cores idle. Independent fits therefore go to worker processes (joblib's loky
backend, which also caps each worker's own thread pools so that the two levels do not oversubscribe the
machine). The results are the same as one by one: every fit is seeded, and none depends on another.

Not below `PARALLEL_ROWS` rows, where starting the workers (each imports scikit-learn and LightGBM, about
two seconds) costs more than the fits; nor where LightGBM itself uses every core (large windows, or a
configured `model.lightgbm.threads`), where workers would only compete for the same cores.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from typing import TypeVar

from joblib import Parallel, delayed

T = TypeVar("T")

PARALLEL_ROWS = 10_000


def workers_for(rows: int, threads_per_fit: int) -> int:
    """How many fits of `rows` rows, each on `threads_per_fit` threads, run at once: every core when each fit
    uses one, else one."""
    if rows < PARALLEL_ROWS or threads_per_fit > 1:
        return 1
    return os.cpu_count() or 1


def run_all(tasks: Sequence[Callable[[], T]], workers: int) -> list[T]:
    """Each task's result, in the tasks' order; on `workers` processes when more than one."""
    if workers <= 1 or len(tasks) <= 1:
        return [task() for task in tasks]
    return Parallel(n_jobs=min(workers, len(tasks)), backend="loky")(delayed(task)() for task in tasks)
