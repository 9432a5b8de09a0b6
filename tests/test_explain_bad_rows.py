"""Explaining one lead reads its file as the scoring job does: a bad row elsewhere does not stop it.

A CSV with a ragged row and a row holding a cell over 16 MB: `leadscore score` scores every other row and
rejects those two with their row numbers, so `leadscore explain` (and `leadscore.explain`) explains any
other lead, refuses the two bad rows' leads naming their row numbers, and never shows a bad row's content.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

import pandas as pd
import pytest
from helpers import CHAMPION, leads_to_score, run_cli

import leadscore
from leadscore.api import lead_rows
from leadscore.data import sources
from leadscore.errors import InputError
from leadscore.model.scorer import ScoringContract
from leadscore.schema import ROW_ID
from leadscore.scoring import events

MARKER = "QZXPLANT"
RAGGED_ROW, HUGE_ROW, BAD_VALUE_ROW = 10, 25, 31  # data rows (1-based, after the header)
RAGGED_ID, HUGE_ID, BAD_VALUE_ID = "L_RAGGED", "L_HUGE", "L_BADVALUE"
ZEROS_ID, PLAIN_ID = "0004711", "4711"


def _line(cells: list) -> str:
    return ",".join(str(c) for c in cells)


@pytest.fixture(scope="module")
def bad_file(tmp_path_factory) -> Path:
    """Leads to score, with a ragged row, a row with a cell over 16 MB (both holding MARKER), a bad value, and
    two leads whose ids differ only by leading zeros."""
    frame = leads_to_score(40, seed=5)
    frame.loc[2, "lead_id"], frame.loc[2, "visits"] = ZEROS_ID, 9
    frame.loc[3, "lead_id"], frame.loc[3, "visits"] = PLAIN_ID, 0
    lines = [_line(frame.columns)] + [_line(row) for row in frame.itertuples(index=False)]
    cells = list(frame.iloc[RAGGED_ROW - 1])
    lines[RAGGED_ROW] = _line([RAGGED_ID, cells[1], f"{MARKER}@x.de", cells[3], cells[4], "extra"])
    cells = list(frame.iloc[HUGE_ROW - 1])
    huge = MARKER + "y" * ((sources._MAX_CELL_BYTES) + (1 << 20))
    lines[HUGE_ROW] = _line([HUGE_ID, cells[1], f'"{huge}"', cells[3], cells[4]])
    cells = list(frame.iloc[BAD_VALUE_ROW - 1])
    lines[BAD_VALUE_ROW] = _line([BAD_VALUE_ID, cells[1], cells[2], cells[3], f"{MARKER}seven"])
    path = tmp_path_factory.mktemp("bad_rows") / "leads.csv"
    path.write_text("\n".join(lines) + "\n")
    return path


@pytest.fixture(scope="module")
def clean(bad_file) -> pd.DataFrame:
    """The readable rows of `bad_file`, ids as text: what a clean export of the good leads holds."""
    frame = leads_to_score(40, seed=5)
    frame.loc[2, "lead_id"], frame.loc[2, "visits"] = ZEROS_ID, 9
    frame.loc[3, "lead_id"], frame.loc[3, "visits"] = PLAIN_ID, 0
    return frame.drop(index=[RAGGED_ROW - 1, HUGE_ROW - 1, BAD_VALUE_ROW - 1]).reset_index(drop=True)


def test_a_good_lead_is_explained_despite_bad_rows_elsewhere(scorer, bad_file, clean, caplog):
    # Given a file with bad rows, and a good lead in it
    lead = clean["lead_id"].iloc[20]
    # When the lead is explained from the file
    with caplog.at_level(logging.INFO):
        explained = leadscore.explain(scorer, bad_file, lead)
    # Then it is explained as from a clean export, and the bad rows are counted in one line, without content
    expected = leadscore.explain(scorer, clean[clean["lead_id"] == lead])
    assert set(explained["lead_id"]) == {lead}, "only the lead asked for"
    assert explained["score"].iloc[0] == pytest.approx(expected["score"].iloc[0]), "the same score as from a clean file"
    assert explained["base_score"].iloc[0] + explained["points"].sum() == pytest.approx(explained["score"].iloc[0])
    counted = [r.getMessage() for r in caplog.records if "could not be read" in r.getMessage()]
    assert len(counted) == 1 and "2 other row(s)" in counted[0], f"one line counts the unreadable rows: {counted}"
    assert MARKER not in caplog.text, "no bad row's content in the log"


def test_the_command_line_explains_a_good_lead_despite_bad_rows(store, bad_file, clean, caplog):
    lead = clean["lead_id"].iloc[5]
    with caplog.at_level(logging.INFO):
        code, out, err = run_cli("-v", "explain", "--model", CHAMPION, "--input", bad_file, "--lead", lead)
    assert code == 0, err[-2000:]
    assert out.startswith(f"lead {lead}: score"), out[:300]
    assert MARKER not in out + err + caplog.text, "no bad row's content in the output or the log"


@pytest.mark.parametrize(("lead", "row", "why"), [(RAGGED_ID, RAGGED_ROW, "6 fields"), (HUGE_ID, HUGE_ROW, "MB")])
def test_a_lead_on_an_unreadable_row_is_refused_with_its_row_number(store, scorer, bad_file, lead, row, why, caplog):
    with pytest.raises(InputError) as error:
        leadscore.explain(scorer, bad_file, lead)
    assert error.value.rows == [row], "the lead's own row number"
    assert f"data row {row}" in str(error.value) and "cannot be read" in str(error.value) and why in str(error.value)
    assert MARKER not in str(error.value)

    with caplog.at_level(logging.INFO):
        code, out, err = run_cli("explain", "--model", CHAMPION, "--input", bad_file, "--lead", lead)
    assert code == 4, "bad input data"
    assert f"data row {row}" in err and "cannot be read" in err, err
    assert MARKER not in out + err + caplog.text, "no bad row's content in the error or the log"


def test_a_lead_with_a_bad_value_is_refused_as_the_job_rejects_it(scorer, bad_file):
    with pytest.raises(InputError) as error:
        leadscore.explain(scorer, bad_file, BAD_VALUE_ID)
    assert error.value.rows == [BAD_VALUE_ROW] and error.value.column == "visits"
    assert "not a number" in str(error.value) and MARKER not in str(error.value), "the reason, not the cell"


def test_ids_are_text_when_a_lead_is_looked_up(scorer, bad_file):
    zeros = lead_rows(scorer, bad_file, ZEROS_ID)
    plain = lead_rows(scorer, bad_file, PLAIN_ID)
    assert zeros["lead_id"].tolist() == [ZEROS_ID] and plain["lead_id"].tolist() == [PLAIN_ID]
    assert zeros["visits"].tolist() == [9.0] and plain["visits"].tolist() == [0.0], "each id finds its own row"
    with pytest.raises(InputError, match="'04711' is not among the readable rows"):
        lead_rows(scorer, bad_file, "04711")


def test_an_unknown_lead_names_the_unreadable_rows_it_may_be_on(scorer, bad_file):
    with pytest.raises(InputError) as error:
        lead_rows(scorer, bad_file, "nobody")
    assert error.value.rows == [RAGGED_ROW, HUGE_ROW] and "nobody" in str(error.value)


def test_explaining_a_whole_file_with_bad_rows_is_refused_naming_them(scorer, bad_file, clean):
    with pytest.raises(InputError) as error:
        leadscore.explain(scorer, bad_file)
    assert error.value.rows == [RAGGED_ROW, HUGE_ROW, BAD_VALUE_ROW], "every row the job would reject"
    assert "leadscore score" in str(error.value) and MARKER not in str(error.value)
    clean_file = bad_file.parent / "clean.csv"
    clean.to_csv(clean_file, index=False)
    explained = leadscore.explain(scorer, clean_file)
    assert explained["lead_id"].drop_duplicates().tolist() == clean["lead_id"].tolist(), "every lead, in input order"


@dataclass(frozen=True)
class _RowNumbered(ScoringContract):
    """The input contract of a model trained on a table without ids (the row number is the id)."""

    id_column: str = ROW_ID
    feature_columns: tuple = ("visits",)
    numeric_columns: tuple = ("visits",)


def test_a_table_without_ids_numbers_its_rows_as_the_job_does(tmp_path):
    path = tmp_path / "no_ids.csv"
    path.write_text(f"visits,email\n1,a\n2,b\n3,{MARKER},extra\n4,d\n")
    model = _RowNumbered()
    assert events.lead_rows(model, path, "4", None)["visits"].tolist() == [4.0], "rows are numbered from 1"
    with pytest.raises(InputError) as error:
        events.lead_rows(model, path, "3", None)
    assert error.value.rows == [3] and "data row 3" in str(error.value) and MARKER not in str(error.value)
    assert events.lead_rows(model, path, "5", None).empty, "no such row"
