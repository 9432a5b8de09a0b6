"""A sample of whole leads (or whole accounts) when the training table would exceed `model.max_rows`.

Training cost grows with the rows: every LightGBM fit, every logistic fit and the leakage screen read them
all, and the pipeline fits many models (the candidates, the rolling origins, the held-out folds of two
refits, the dimension models). So beyond `model.max_rows` training keeps a uniform sample of leads and learns
from all their rows. It is a trade of some accuracy for time, measured in docs/results.md
(`benchmarks/sampling_cost.py`, `benchmarks/training_cost.py`):

- **The unit is the lead** (with `accounts`, the account): every snapshot row of a kept lead is kept and every
  row of another lead is left out, so no lead is split between the windows and account aggregates see every
  contact of a kept account.
- **Who is kept depends only on the id** (a seeded hash of it below the fraction), not on row order or the
  reader: the same export samples the same leads on every run and on every engine, and a lead kept at one
  fraction is kept at any larger one.
- **Every kept row weighs the same**, 1 / fraction: a uniform sample needs no weights in the fit, and the
  probabilities stay calibrated to every lead (the conversion rate of the sample is the population's, within
  noise). The fraction and the weight are recorded with the run (`training.sample` tags, `sample_*` metrics)
  and in the model card.
- **With an event log the sample is drawn before any feature is built**: the rows each lead would give are
  counted from its creation and closing times alone, so only the kept leads' features are ever computed.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, replace

import numpy as np
import pandas as pd
import pyarrow.compute as pc

from leadscore.config import EventLogConfig, ModelConfig
from leadscore.data.validation import require_columns
from leadscore.features.columnar import text_array
from leadscore.features.events import (
    EventLog,
    EventLogLayout,
    id_texts,
    rows_per_lead,
    snapshot_times,
)

log = logging.getLogger(__name__)

# 2**53: hashes are reduced to 53 bits, which a float64 holds exactly, and compared with the fraction as floats.
_BITS = 53


@dataclass(frozen=True)
class LeadSample:
    """Which part of the training data was kept, and how much it weighs."""

    unit: str  # the column sampled by: the lead id, or the account id
    fraction: float  # the probability of each unit to be kept
    units_kept: int
    units_total: int
    rows_kept: int
    rows_total: int  # the rows every unit would have given
    max_rows: int  # `model.max_rows`, the bound that asked for the sample
    seed: int  # `model.seed`, which the hash of the ids is keyed with

    @property
    def weight(self) -> float:
        """How many rows of the whole data each kept row stands for."""
        return 1 / self.fraction

    @property
    def text(self) -> str:
        """The sample in one sentence, for the run, the model card and the command line."""
        return (f"a uniform sample of {self.units_kept:,} of {self.units_total:,} {self.unit} values (fraction "
                f"{self.fraction:.4f}; every kept row weighs {self.weight:.2f}): {self.rows_kept:,} of "
                f"{self.rows_total:,} rows, as model.max_rows is {self.max_rows:,}")

    def kept(self, rows: pd.DataFrame) -> np.ndarray:
        """Whether each row (of a table with the `unit` column) is in the sample."""
        return kept_ids(rows[self.unit], self.fraction, self.seed)

    @property
    def tags(self) -> dict[str, str]:
        return {"training.sample": self.text, "training.sample.unit": self.unit}

    @property
    def metrics(self) -> dict[str, float]:
        return {"sample_fraction": self.fraction, "sample_weight": self.weight, "sample_rows": float(self.rows_kept),
                "sample_rows_total": float(self.rows_total), "sample_units": float(self.units_kept),
                "sample_units_total": float(self.units_total)}


def kept_ids(ids: pd.Series, fraction: float, seed: int) -> np.ndarray:
    """Whether each id is in a sample of `fraction` of the ids: its seeded hash falls below the fraction.

    The same id is kept or not whatever the other ids, their order or their count; a larger fraction keeps
    every id a smaller one keeps. Missing ids are hashed as one value."""
    key = f"leadscore{seed % 10**7:07d}"
    hashes = np.concatenate([pd.util.hash_array(text, hash_key=key, categorize=False) for text in id_texts(ids)]
                            or [np.empty(0, "uint64")])
    return (hashes >> np.uint64(64 - _BITS)).astype("float64") < fraction * 2.0**_BITS


def sample_fraction(rows_per_unit: pd.Series, max_rows: int | None) -> float | None:
    """The fraction of units to keep so that about `max_rows` rows remain; None when every row fits."""
    total = int(rows_per_unit.sum())
    if max_rows is None or total <= max_rows:
        return None
    return max_rows / total


def draw(rows_per_unit: pd.Series, unit: str, max_rows: int | None, seed: int) -> LeadSample | None:
    """The sample of units (index of `rows_per_unit`: unit id -> rows it gives) within `max_rows`, logged; None when
    every row fits. Units that give no row are not counted."""
    rows_per_unit = rows_per_unit[rows_per_unit > 0]
    fraction = sample_fraction(rows_per_unit, max_rows)
    if fraction is None:
        return None
    kept = kept_ids(pd.Series(rows_per_unit.index), fraction, seed)
    sample = LeadSample(unit=unit, fraction=fraction, units_kept=int(kept.sum()), units_total=len(rows_per_unit),
                        rows_kept=int(rows_per_unit.to_numpy()[kept].sum()), rows_total=int(rows_per_unit.sum()),
                        max_rows=int(max_rows), seed=seed)
    log.warning("training on %s; to fit every row, set model.max_rows: null", sample.text)
    return sample


class EventLogSampler:
    """The sample of an event log, drawn while it is read (`leadscore.features.events.load_event_log`'s `keep`).

    Called with the leads and outcomes, it counts the training rows each lead would give (`rows_per_lead`, summed
    by account with `account_column`) and, when they exceed `model.max_rows`, draws the sample (kept on
    `self.sample`) and returns the mask of its leads, so that only their activities are kept while reading;
    `only_kept` then leaves the other leads and their outcomes out, once the export-time rules have seen them."""

    def __init__(self, layout: EventLogLayout, log_cfg: EventLogConfig, model: ModelConfig,
                 account_column: str | None = None):
        self.layout, self.log_cfg, self.model = layout, log_cfg, model
        self.unit = account_column or layout.id_column
        self.sample: LeadSample | None = None

    def __call__(self, leads: pd.DataFrame, outcomes: pd.DataFrame | None) -> np.ndarray | None:
        if self.model.max_rows is None or outcomes is None:
            return None
        rows = rows_per_lead(leads, outcomes, self.layout, self.log_cfg.terminal_stages, snapshot_times(self.log_cfg))
        if self.unit != self.layout.id_column:
            require_columns(leads, [self.unit], "leads", "export the leads table with the account id of every lead "
                            "(accounts.column), or remove the accounts section")
            rows = rows.groupby(leads[self.unit].astype("string").fillna("").to_numpy(), sort=False).sum()
        self.sample = draw(rows, self.unit, self.model.max_rows, self.model.seed)
        return None if self.sample is None else self.sample.kept(leads)

    def only_kept(self, event_log: EventLog) -> EventLog:
        """The log of the sampled leads alone (the activities of the others were never kept)."""
        if self.sample is None:
            return event_log
        id_column = self.layout.id_column
        leads = event_log.leads
        if event_log.sampled_leads is not None:  # the leads still in the log: `after_export` may have left out some
            still = pc.is_in(text_array(event_log.sampled_leads[id_column]), value_set=text_array(leads[id_column]))
            leads = event_log.sampled_leads[still.to_numpy(zero_copy_only=False)]
        leads = leads[self.sample.kept(leads)].reset_index(drop=True)
        ids = leads[id_column]

        def of_kept(events: pd.DataFrame) -> pd.DataFrame:
            return events[events[id_column].isin(ids).to_numpy(bool)].reset_index(drop=True)

        outcomes = of_kept(event_log.outcomes) if event_log.outcomes is not None else None
        return replace(event_log, leads=leads, activities=of_kept(event_log.activities), outcomes=outcomes,
                       sampled_leads=None)

