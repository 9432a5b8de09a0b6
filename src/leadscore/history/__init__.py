"""Score history: every scored lead, run after run, with the points that explain each change.

- `leadscore.history.store`: the history dataset (a Parquet folder partitioned by scoring date), its
  reader `read_history` and the writing of one run's partition file;
- `leadscore.history.changes`: a lead's score change since its previous score, split into the fields
  whose points moved, and the MQL / SQL threshold crossings (alerts);
- `leadscore.history.recorder`: what the scoring job (`leadscore.scoring.job`) does with `--history`:
  changes and alerts for each scored batch, the run's rows staged and renamed in once the scores are published;
- `leadscore.history.trajectory`: a lead's scores over time, as a table and as plain text for a sales rep.

This package sits on the scoring path: it imports nothing from `training/` or `reporting/`. Names are
loaded on first use.
"""

from __future__ import annotations

import importlib

_PUBLIC = {
    "read_history": "store",
    "lead_trajectory": "trajectory",
    "format_trajectory": "trajectory",
    "score_changes": "changes",
    "threshold_crossings": "changes",
}
__all__ = sorted(_PUBLIC)


def __getattr__(name: str):
    if name in _PUBLIC:
        return getattr(importlib.import_module(f".{_PUBLIC[name]}", __name__), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
