"""The MQL and SQL cutoffs a scorer carries, and the band of a probability.

They are chosen at training time by `leadscore.training.cutoffs` from a stated business policy; a lead
is flagged when `p_convert >= cutoff`.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

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

    def band(self, p: np.ndarray) -> np.ndarray:
        """The band of each probability: SQL, MQL or below MQL."""
        return np.where(p >= self.sql, BANDS[0], np.where(p >= self.mql, BANDS[1], BANDS[2]))
