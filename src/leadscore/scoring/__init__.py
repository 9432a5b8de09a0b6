"""Batch scoring: `score_file` runs the job (`leadscore.scoring.job`) on an engine (pandas, Spark).

Loaded on first use, so that importing one module of this package loads nothing more than it needs.
"""

from __future__ import annotations

import importlib

__all__ = ["ScoringReport", "score_file"]


def __getattr__(name: str):
    if name in __all__:
        return getattr(importlib.import_module(".job", __name__), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
