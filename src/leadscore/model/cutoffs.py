"""The MQL and SQL cutoffs a scorer carries, and the band of a probability.

They are chosen at training time by `leadscore.training.cutoffs` from a stated business policy; a lead
is flagged when `p_convert >= cutoff`.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from leadscore.model.encoding import segment_codes
from leadscore.schema import probability_to_score

BANDS = ("SQL", "MQL", "below MQL")


@dataclass(frozen=True)
class Cutoffs:
    """Probability cutoffs (a lead is MQL when p >= mql, SQL when p >= sql) and how they were chosen."""

    mql: float
    sql: float
    mql_policy: str
    sql_policy: str
    notes: tuple[str, ...] = field(default_factory=tuple)
    # What a user should act on: a policy only approached, an empty band. A plain default (not a factory) so that
    # a scorer pickled before this field existed still reads as having none.
    warnings: tuple[str, ...] = ()

    @property
    def mql_points(self) -> float:
        return float(probability_to_score(self.mql))

    @property
    def sql_points(self) -> float:
        return float(probability_to_score(self.sql))

    def band(self, p: np.ndarray, features: pd.DataFrame | None = None) -> np.ndarray:
        """The band of each probability: SQL, MQL or below MQL; given the leads' `features`, by each lead's own
        cutoffs (`thresholds`), else by `mql` and `sql`."""
        mql, sql = (self.mql, self.sql) if features is None else self.thresholds(features)
        return np.where(p >= sql, BANDS[0], np.where(p >= mql, BANDS[1], BANDS[2]))

    def thresholds(self, features: pd.DataFrame) -> tuple[np.ndarray, np.ndarray]:
        """The MQL and SQL cutoff of each lead of `features`: the same for every lead."""
        return np.full(len(features), self.mql), np.full(len(features), self.sql)


@dataclass(frozen=True)
class SegmentCutoffs(Cutoffs):
    """Cutoffs per segment (`segments.per_segment_cutoffs`): a lead of a segment with its own model is flagged by
    its segment's cutoffs, chosen by the same policies on that segment's rows; every other lead by the overall
    cutoffs (`mql`, `sql`, chosen on every row). Band tables and run metrics report the overall ones."""

    column: str = ""
    segments: dict[str, Cutoffs] = field(default_factory=dict)  # segment value (as text) -> its cutoffs

    def thresholds(self, features: pd.DataFrame) -> tuple[np.ndarray, np.ndarray]:
        """The MQL and SQL cutoff of each lead of `features`: its segment's, else the overall ones."""
        mql, sql = super().thresholds(features)
        route = segment_codes(features[self.column], tuple(self.segments))
        for code, own in enumerate(self.segments.values()):
            mql[route == code], sql[route == code] = own.mql, own.sql
        return mql, sql
