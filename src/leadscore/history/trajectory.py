"""A lead's scores over time, from the score history: as a table, and as text a sales rep can read.

`leadscore history --history DIR --lead ID` prints `format_trajectory(lead_trajectory(DIR, ID))`: one line
per scoring (when, which model version, the score, its change and the lines it crossed, and whether the lead
is an MQL / SQL then), and under each change its largest reasons in points ("Pricing page visits +6.2").
Without `--lead` it prints `format_latest_alerts(latest_alerts(DIR))`: the leads that crossed the MQL or SQL
line in the latest run, largest moves first, with why: the list a sales manager reads on Monday morning.
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


def latest_alerts(path: str | os.PathLike) -> pd.DataFrame:
    """The rows of the latest run in the history that raised an alert, largest score change first.

    An `InputError` when the history holds no scores."""
    rows = read_history(path)
    if rows.empty:
        raise InputError(f"the score history at {os.fspath(path)} holds no scores yet",
                         fix="score leads with --history pointing to this folder first")
    latest = rows[rows["run_id"] == rows["run_id"].max()]  # run ids sort by their start time
    alerted = latest[latest["alerts"].fillna("").astype(str) != ""]
    order = alerted["score_change"].abs().sort_values(ascending=False, na_position="last").index
    return alerted.loc[order]


def format_latest_alerts(rows: pd.DataFrame, *, top: int = 10, reasons: int = 3) -> str:
    """The alerted leads of the latest run (`latest_alerts`) as plain text: counts per alert, then the `top` leads."""
    if rows.empty:
        return "no lead crossed the MQL or SQL line in the latest run"
    counts = rows["alerts"].str.split("; ").explode().value_counts()
    lines = [f"{len(rows)} lead(s) crossed a line in the latest run: "
             + ", ".join(f"{name} {count}" for name, count in counts.items()), ""]
    lines.append(f"{'lead':<14}  {'score':>5}  {'change':>6}  alerts")
    for row in rows.head(top).itertuples(index=False):
        change = "first" if pd.isna(row.score_change) else f"{row.score_change:+.1f}"
        lines.append(f"{str(row.lead_id)[:14]:<14}  {row.score:>5.1f}  {change:>6}  {row.alerts}")
        why = change_reason_text(row.change_reasons, reasons)
        if why:
            lines.append(f"{'':14}  why: {why}")
    if len(rows) > top:
        lines.append(f"... and {len(rows) - top} more (see the alerts file beside the scores)")
    lines.append("")
    lines.append("one lead's whole history: leadscore history --history <folder> --lead <id>")
    return "\n".join(lines)


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
