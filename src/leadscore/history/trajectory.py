"""A lead's scores over time, from the score history: as a table, and as text a sales rep can read.

`leadscore history --history DIR --lead ID` prints `format_trajectory(lead_trajectory(DIR, ID))`: one line
per scoring (when, which model version, the score, its change and the lines it crossed, and whether the lead
is an MQL / SQL then), and under each change its largest reasons in points ("Pricing page visits +6.2").
"""

from __future__ import annotations

import json
import os

import pandas as pd

from leadscore.errors import InputError
from leadscore.history.changes import MODEL_CHANGED
from leadscore.history.store import read_history
from leadscore.model.reasons import readable_code


def lead_trajectory(path: str | os.PathLike, lead_id) -> pd.DataFrame:
    """Every history row of one lead, oldest first (the columns of `read_history`).

    An `InputError` when the history is missing or empty, or holds no score of this lead."""
    lead = str(lead_id)
    rows = read_history(path, lead_ids=[lead])
    if rows.empty:
        if read_history(path, columns=["lead_id"]).empty:
            raise InputError(f"the score history at {os.fspath(path)} holds no scores yet",
                             fix="score leads with --history pointing to this folder first")
        raise InputError(f"lead '{lead}' has no score in the history at {os.fspath(path)}",
                         fix="check the id (the model's id column, as text, leading zeros included)")
    return rows


def format_trajectory(rows: pd.DataFrame, *, reasons: int = 3) -> str:
    """A lead's history rows (`lead_trajectory`) as plain text: one line per scoring, its top `reasons` below."""
    lead = rows["lead_id"].iat[0]
    as_of = rows["as_of"].notna().any()  # event logs are scored as of a time, which the rep wants to see
    lines = [f"Lead {lead}: scored {len(rows)} time(s), {_span(rows)}", ""]
    lines.append(f"{'scored at (UTC)':<17}  " + (f"{'as of':<10}  " if as_of else "")
                 + f"{'model':<18}  {'score':>5}  {'change':>6}  {'qualified':<9}  alerts")
    for row in rows.itertuples(index=False):
        model = f"{row.model_name} v{row.model_version}"
        change = "first" if pd.isna(row.score_change) else f"{row.score_change:+.1f}"
        flags = "/".join(name for name, on in (("MQL", row.is_mql), ("SQL", row.is_sql)) if on is True) or "-"
        alerts = row.alerts if isinstance(row.alerts, str) and row.alerts else ""
        when = f"{str(row.as_of or '')[:10]:<10}  " if as_of else ""
        lines.append(f"{row.scored_at:%Y-%m-%d %H:%M}  {when}{model[:18]:<18}  {row.score:>5.1f}  {change:>6}  "
                     f"{flags:<9}  {alerts}".rstrip())
        why = change_reason_text(row.change_reasons, reasons)
        if why:
            lines.append(f"{'':17}  why: {why}")
    return "\n".join(lines)


def change_reason_text(change_reasons, top: int = 3) -> str:
    """The largest `top` entries of a `change_reasons` JSON list as text: "Pricing page visits +6.2, ..."."""
    if not isinstance(change_reasons, str) or not change_reasons:
        return ""
    entries = json.loads(change_reasons)
    shown = []
    # Largest first, as stored; a change split over many fields shows its top ones and a count of the rest.
    for entry in entries[:top]:
        if entry["field"] == MODEL_CHANGED:
            name = f"new model (was version {entry.get('from_version', '?')})"
        else:
            text = readable_code(entry["field"].replace(".", "_")).strip()
            name = text[:1].upper() + text[1:]
        shown.append(f"{name} {entry['points']:+.1f}")
    more = len(entries) - len(shown)
    return ", ".join(shown) + (f" (and {more} smaller)" if more > 0 else "")


def _span(rows: pd.DataFrame) -> str:
    first, last = rows["scored_at"].iat[0], rows["scored_at"].iat[-1]
    return f"{first:%Y-%m-%d}" if first.date() == last.date() else f"{first:%Y-%m-%d} to {last:%Y-%m-%d}"
