"""Outputs for people: `scored_at` typed as a time in both engines' files, reason points that read the same in
the text as in the JSON, and raw codes shown as words where no template was written for them."""

from __future__ import annotations

import json
import re
from datetime import datetime, timedelta, timezone

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.dataset as ds
import pytest
from helpers import CHAMPION, cli, leads_to_score
from hypothesis import given
from hypothesis import strategies as st
from test_spark import needs_spark, score_both, spark  # noqa: F401  (spark: the module's Spark session fixture)

from leadscore.model.reasons import DEFAULT_TEXTS, ReasonField, ReasonWriter, Templates, readable_code
from leadscore.scoring.job import scored_at

POINTS_IN_TEXT = re.compile(r" \(([+-]\d+(?:\.\d)?)\)$")


# ---------------------------------------------------------------------------------------------
# scored_at
# ---------------------------------------------------------------------------------------------


def _assert_utc_timestamp(path, engine: str) -> None:
    field = ds.dataset(path, format="parquet").schema.field("scored_at")
    assert pa.types.is_timestamp(field.type), f"{engine}: scored_at is a timestamp in Parquet, not {field.type}"
    assert field.type.tz in ("UTC", "+00:00"), f"{engine}: scored_at is timezone-aware UTC, not tz={field.type.tz}"


def _assert_recent(values: pd.Series, engine: str) -> None:
    now = pd.Timestamp.now(tz="UTC")
    assert values.nunique() == 1, f"{engine}: one job, one time"
    assert now - timedelta(minutes=30) <= values.iloc[0] <= now + timedelta(seconds=1), f"{engine}: the job's own time"


def test_scored_at_is_a_utc_timestamp_for_parquet_and_iso_text_for_csv():
    # Given a job start time in another zone
    start = datetime(2026, 3, 1, 10, 30, 15, 123456, tzinfo=timezone(timedelta(hours=1)))

    # When the value is taken for each output format
    typed, text = scored_at(".parquet", start), scored_at(".csv", start)

    # Then Parquet gets the same instant as a UTC timestamp, CSV gets ISO 8601 text that reads back as it
    assert isinstance(typed, pd.Timestamp) and str(typed.tz) == "UTC", "a timezone-aware UTC timestamp"
    assert typed == pd.Timestamp(start).floor("s"), "the same instant, to the second"
    assert isinstance(text, str) and datetime.fromisoformat(text) == typed, "ISO 8601 text of the same instant"
    assert datetime.fromisoformat(text).utcoffset() == timedelta(0), "written in UTC"


@pytest.mark.slow
def test_pandas_engine_writes_scored_at_as_a_timestamp_in_parquet_and_iso_text_in_csv(store):
    # Given leads to score
    path = store / "outputs_input.csv"
    leads_to_score(200, seed=31).to_csv(path, index=False)

    # When the pandas engine scores them to Parquet and to CSV
    for fmt in (".parquet", ".csv"):
        assert cli("score", "--model", CHAMPION, "--input", path, "--output", store / f"outputs{fmt}",
                   "--chunk-rows", 70) == 0, f"scoring to {fmt} failed"

    # Then the Parquet column is a UTC timestamp, and the CSV column is ISO 8601 text of a UTC time
    _assert_utc_timestamp(store / "outputs.parquet", "pandas")
    _assert_recent(pd.read_parquet(store / "outputs.parquet")["scored_at"], "pandas")
    text = pd.read_csv(store / "outputs.csv", dtype={"scored_at": str})["scored_at"]
    parsed = text.map(datetime.fromisoformat)
    assert all(t.utcoffset() == timedelta(0) for t in parsed), "CSV times carry their UTC offset"
    _assert_recent(parsed.map(pd.Timestamp), "pandas csv")


@needs_spark
@pytest.mark.slow
def test_both_engines_write_scored_at_as_a_utc_timestamp_in_parquet(store, spark):  # noqa: F811
    # Given leads scored to Parquet by each engine
    results = score_both(store, leads_to_score(300, seed=32), ".parquet", "--no-reasons")

    # Then each file types scored_at as a UTC timestamp, which pandas reads as the job's time
    for engine, (code, out) in results.items():
        assert code == 0, f"{engine} engine failed"
        _assert_utc_timestamp(out, engine)
        _assert_recent(ds.dataset(out, format="parquet").to_table().to_pandas()["scored_at"], engine)

    # And a CSV from Spark holds ISO 8601 text in UTC, as the pandas engine writes it
    csv = score_both(store, leads_to_score(100, seed=33), ".csv", "--no-reasons")
    for engine, (code, out) in csv.items():
        assert code == 0, f"{engine} engine failed"
        files = sorted(out.glob("part-*.csv")) if out.is_dir() else [out]
        text = pd.concat([pd.read_csv(f, dtype={"scored_at": str}) for f in files])["scored_at"]
        assert all(datetime.fromisoformat(t).utcoffset() == timedelta(0) for t in text), f"{engine}: ISO 8601 in UTC"


# ---------------------------------------------------------------------------------------------
# Reason points: the text's number is the JSON's
# ---------------------------------------------------------------------------------------------

FIELDS = [
    ReasonField("company_size", "fit", ("company_size",), Templates(*DEFAULT_TEXTS["column"])),
    ReasonField("visits", "engagement", ("visits",), Templates(*DEFAULT_TEXTS["column"])),
    ReasonField("demo", "stage", ("demo_count", "demo_days_since", "demo_decayed"),
                Templates(*DEFAULT_TEXTS["signal"]), kind="signal"),
]


def _frame(n: int, seed: int) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    return pd.DataFrame({
        "company_size": rng.choice(["1-10", "201+", "enterprise_tier", None], n),
        "visits": rng.poisson(3, n).astype(float),
        "demo_count": rng.poisson(0.5, n).astype(float),
        "demo_days_since": rng.uniform(0, 400, n),
        "demo_decayed": rng.uniform(0, 1, n),
    })


@given(seed=st.integers(0, 2**32 - 1), scale=st.sampled_from([0.3, 3.0, 30.0]),
       halves=st.booleans(), top_k=st.integers(1, 3))
def test_reason_points_read_the_same_in_the_text_and_the_json(seed, scale, halves, top_k):
    # Given many leads with points of every size, some exactly on a rounding boundary (x.x5)
    rng = np.random.default_rng(seed)
    frame = _frame(300, seed)
    points = rng.normal(0, scale, (len(frame), len(FIELDS)))
    if halves:
        points = np.round(points * 10) / 10 + rng.choice([-0.05, 0.05], points.shape)

    # When their reasons are written
    out = ReasonWriter(FIELDS, top_k=top_k, max_chars=40).write(frame, points)

    # Then every reason's text ends with exactly the number its JSON carries, which is its points to one decimal
    names = [f.name for f in FIELDS]
    seen = 0
    for row, text in enumerate(out["reasons"]):
        reasons = json.loads(text)
        for slot, reason in enumerate(reasons):
            shown = POINTS_IN_TEXT.search(reason["text"])
            assert shown, f"the text ends with its points in brackets: {reason['text']!r}"
            assert float(shown.group(1)) == reason["points"], f"text and JSON disagree: {reason}"
            exact = points[row, names.index(reason["field"])]
            assert abs(reason["points"] - exact) <= 0.05 + 1e-9, f"points are the field's, to one decimal: {reason}"
            assert reason["points"] != 0, "a reason moves the score"
            if slot < top_k:
                assert out[f"reason_{slot + 1}"].iloc[row] == reason["text"], "the text columns are the JSON's texts"
            seen += 1
    assert seen, "some leads have reasons"


# ---------------------------------------------------------------------------------------------
# Raw codes read as words
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("raw, shown", [
    ("abm_2025q3", "abm 2025q3"),
    ("paid-social-q3", "paid social q3"),
    ("UPPER_CASE_CODE", "UPPER CASE CODE"),
    ("web_form-v2", "web form v2"),
])
def test_codes_read_as_words(raw, shown):
    assert readable_code(raw) == shown


@pytest.mark.parametrize("text", ["1-10", "mid-market", "2025-03-01", "201+", "New York", "-3", "C-level", ""])
def test_text_that_is_not_a_code_is_left_alone(text):
    assert readable_code(text) == text


def test_field_names_read_as_words():
    def label(name):
        return ReasonField(name, "fit", (name,), Templates(*DEFAULT_TEXTS["column"])).label

    assert label("lead_source") == "Lead source"
    assert label("campaign-touch-type") == "Campaign touch type"
    assert label("emp.var.rate") == "Emp var rate"
    assert label("company_size") == "Company size"


def test_a_code_without_a_template_reads_as_words_and_a_template_overrides_it():
    # Given a campaign field with the default texts, one with its own template and one with value words
    frame = pd.DataFrame({"campaign": ["abm_2025q3", "webinar-series-b", "1-10", None]})
    points = np.array([[-0.9], [2.3], [1.0], [-4.0]])

    def texts(templates: Templates) -> list[list[dict]]:
        field = ReasonField("campaign", "fit", ("campaign",), templates)
        written = ReasonWriter([field], top_k=1, max_chars=80).write(frame, points)
        return [json.loads(t) for t in written["reasons"]]

    default = texts(Templates(*DEFAULT_TEXTS["column"]))
    own = texts(Templates("From {value}", "From {value}", "No campaign"))
    worded = texts(Templates(*DEFAULT_TEXTS["column"], words={"abm_2025q3": "the Q3 ABM push"}))

    # Then the default text shows the code as words, and the JSON keeps the raw value
    assert [r[0]["text"] for r in default] == ["Campaign: abm 2025q3 (-0.9)", "Campaign: webinar series b (+2.3)",
                                               "Campaign: 1-10 (+1)", "Campaign unknown (-4)"]
    assert [r[0]["value"] for r in default] == ["abm_2025q3", "webinar-series-b", "1-10", None], "JSON keeps raw values"
    # And a field's own template shows what it was written for: the raw value
    assert own[0][0]["text"] == "From abm_2025q3 (-0.9)", "a template overrides the fallback"
    # And value words win over the fallback, which still reads the other codes
    assert worded[0][0]["text"] == "Campaign: the Q3 ABM push (-0.9)"
    assert worded[1][0]["text"] == "Campaign: webinar series b (+2.3)"
