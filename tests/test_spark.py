"""The spark engine in local mode: the same registered model, the same scores as the pandas engine."""

from __future__ import annotations

import json
import sys

import numpy as np
import pandas as pd
import pytest
from helpers import (
    CHAMPION,
    cli,
    leads_to_score,
    needs_spark,
    read_output,
    temporary_files,
    using_store,
    with_problems,
)

from leadscore.synthetic.funnel import generate_to_dir

pytestmark = pytest.mark.slow  # scores with the session champion on Spark


@pytest.fixture(scope="module")
def spark(store, local_spark):
    """A local Spark session on two cores, which the spark engine picks up as the running session."""
    return local_spark


def score_both(store, frame: pd.DataFrame, fmt: str, *options):
    """Score the same input with each engine; the exit codes and output paths."""
    path = store / f"spark_input{fmt}"
    if fmt == ".parquet":  # a column holding numbers and text is stored as text, as exports do
        frame.astype({c: "string" for c in frame.columns if frame[c].dtype == object}).to_parquet(path, index=False)
    else:
        frame.to_csv(path, index=False)
    results = {}
    for engine in ("pandas", "spark"):
        out = store / f"{engine}_scores{fmt}"
        code = cli("score", "--model", CHAMPION, "--input", path, "--output", out, "--engine", engine,
                   "--chunk-rows", 150, *options)
        results[engine] = (code, out)
    return results


@needs_spark
@pytest.mark.parametrize("fmt, options", [(".csv", []), (".parquet", ["--no-reasons"])])
def test_spark_scores_equal_pandas_scores(store, spark, fmt, options, capsys):
    # Given 600 leads with planted problems
    frame, planted = with_problems(leads_to_score(600, seed=21))

    # When both engines score them
    results = score_both(store, frame, fmt, "--max-reject-share", 0.05, *options)

    # Then both succeed with the same rows, the same scores and the same other columns (reasons included)
    assert all(code == 0 for code, _ in results.values()), capsys.readouterr().err
    pandas_out, spark_out = (read_output(out) for _, out in results.values())
    assert sorted(spark_out.columns) == sorted(pandas_out.columns), "same output columns"
    assert any(c.startswith("reason") for c in pandas_out.columns) == (not options), "reasons only when asked for"
    assert len(spark_out) == len(pandas_out) == len(frame) - len(planted), "same rows scored"
    merged = pandas_out.merge(spark_out, on="lead_id", suffixes=("", "_spark"), validate="one_to_one")
    assert len(merged) == len(pandas_out), "the same leads"
    # Identical, not close: the same model on the same numbers (a CSV parsed by Spark or by pyarrow)
    np.testing.assert_array_equal(merged["p_convert_spark"], merged["p_convert"])
    for column in pandas_out.columns.difference(["lead_id", "p_convert", "scored_at"]):
        ours, theirs = merged[column], merged[f"{column}_spark"]
        if pd.api.types.is_float_dtype(ours):
            np.testing.assert_array_equal(theirs.astype(float), ours, err_msg=column)
        else:
            same = (ours.astype("string") == theirs.astype("string")).fillna(False) | (ours.isna() & theirs.isna())
            assert same.all(), f"column {column} differs: {merged.loc[~same, [column, f'{column}_spark']].head()}"

    # And the same rejects, and the same drift report
    stem = {engine: str(out.with_suffix("")) for engine, (_, out) in results.items()}
    rejects = {engine: pd.read_csv(f"{s}.rejects.csv") for engine, s in stem.items()}
    pd.testing.assert_frame_equal(rejects["spark"], rejects["pandas"], check_dtype=False)
    drift = {engine: json.loads(open(f"{s}.drift.json").read()) for engine, s in stem.items()}
    assert drift["spark"] == drift["pandas"], "drift counts are added up across partitions to the same report"
    assert not temporary_files(store), "no temporary file or folder is left behind"


@needs_spark
def test_spark_job_with_too_many_rejects_keeps_the_previous_output(store, spark, capsys):
    # Given a published Spark output
    path = store / "spark_reject_input.csv"
    leads_to_score(300, seed=22).to_csv(path, index=False)
    out = store / "spark_kept.parquet"
    argv = ["score", "--model", CHAMPION, "--input", path, "--output", out, "--engine", "spark"]
    assert cli(*argv) == 0, capsys.readouterr().err
    before = read_output(out)

    # When a later input has too many rejects
    frame, planted = with_problems(leads_to_score(300, seed=23))
    frame.to_csv(path, index=False)
    code = cli(*argv)

    # Then the job fails as bad input, the previous output is untouched and the rejects are published
    assert code == 4 and "above the limit" in capsys.readouterr().err
    pd.testing.assert_frame_equal(read_output(out), before)
    assert len(pd.read_csv(store / "spark_kept.rejects.csv")) == len(planted)
    assert not temporary_files(store), "no temporary file or folder is left behind"


def test_missing_pyspark_gives_a_clear_message(store, monkeypatch, capsys):
    # Given a machine without PySpark
    monkeypatch.setitem(sys.modules, "pyspark", None)
    monkeypatch.setitem(sys.modules, "pyspark.sql", None)
    path = store / "no_spark.csv"
    leads_to_score(20, seed=24).to_csv(path, index=False)

    # When the spark engine is asked for, then it says which extra to install
    code = cli("score", "--model", CHAMPION, "--input", path, "--output", store / "no_spark_out.csv", "--engine", "spark")
    err = capsys.readouterr().err
    assert code == 3 and "pip install 'leadscore[spark]'" in err, err
    assert not (store / "no_spark_out.csv").exists()


def assert_same_up_to_rounding(actual, expected) -> None:
    """Equal JSON values, floats to 1e-12 (the builders sum decayed weights in another order)."""
    if isinstance(expected, float):
        assert actual == pytest.approx(expected, rel=1e-12, abs=1e-12)
    elif isinstance(expected, (list, dict)):
        assert type(actual) is type(expected) and len(actual) == len(expected), f"{actual} != {expected}"
        pairs = zip(actual, expected) if isinstance(expected, list) else ((actual[k], v) for k, v in expected.items())
        for a, e in pairs:
            assert_same_up_to_rounding(a, e)
    else:
        assert actual == expected


@needs_spark
def test_an_event_log_scores_on_spark_as_on_pandas(demo_run, spark, tmp_path, capsys):
    # Given the demo model (trained on an event log) and an event log of 300 other leads, some closed by then
    folder, _, registered = demo_run
    log_dir = tmp_path / "event_log"
    generate_to_dir(300, 31, log_dir, start="2026-06-01", days=150)  # its events reach past today
    as_of = "2026-11-01T00:00:00Z"

    # When each engine scores it as of a moment
    outputs = {}
    with using_store(folder):
        for engine in ("pandas", "spark"):
            out = tmp_path / f"events_{engine}.parquet"
            code = cli("score", "--model", registered.uri, "--input", log_dir, "--as-of", as_of, "--output", out,
                       "--engine", engine)
            assert code == 0, f"{engine}: {capsys.readouterr().err}"
            outputs[engine] = out
        # (and without --as-of, the synthetic log's future-dated events are refused on Spark too, nothing written)
        refused = tmp_path / "refused.parquet"
        code = cli("score", "--model", registered.uri, "--input", log_dir, "--output", refused, "--engine", "spark")
        err = capsys.readouterr().err
        assert code == 4 and "after the scoring time" in err and not refused.exists(), err

    # Then every lead is scored once on each engine, with the same columns, in the same column order
    pandas_out, spark_out = (read_output(out) for out in outputs.values())
    leads = pd.read_parquet(log_dir / "leads.parquet")
    assert len(pandas_out) == len(spark_out) == len(leads), "every lead of the log is scored"
    assert list(spark_out.columns) == list(pandas_out.columns), "the same columns, lead_status last"
    assert pandas_out.columns[-1] == "lead_status"
    merged = pandas_out.merge(spark_out, on="lead_id", suffixes=("", "_spark"), validate="one_to_one")
    assert len(merged) == len(leads) and set(merged["lead_id"]) == set(leads["lead_id"])
    # And the same statuses (some leads closed before the scoring time), scores and other columns
    assert (merged["lead_status"] == merged["lead_status_spark"]).all()
    assert {"open", "won"} <= set(merged["lead_status"]), "open and closed leads are both in the log"
    np.testing.assert_allclose(merged["p_convert_spark"], merged["p_convert"], rtol=1e-9, atol=1e-12)
    for column in pandas_out.columns.difference(["lead_id", "p_convert", "scored_at"]):
        ours, theirs = merged[column], merged[f"{column}_spark"]
        if pd.api.types.is_float_dtype(ours):
            np.testing.assert_allclose(theirs.astype(float), ours, rtol=1e-9, atol=1e-9, err_msg=column)
        elif column == "reasons":  # JSON holding each signal's values, decayed sums to rounding
            for mine, other in zip(ours, theirs):
                assert_same_up_to_rounding(json.loads(other), json.loads(mine))
        else:
            same = (ours.astype("string") == theirs.astype("string")).fillna(False) | (ours.isna() & theirs.isna())
            assert same.all(), f"column {column} differs"
    # And nothing rejected, the same drift report, nothing left behind
    for engine, out in outputs.items():
        assert pd.read_csv(out.with_suffix(".rejects.csv")).empty, f"{engine}: no rejects"
    drift = {engine: json.loads(out.with_suffix(".drift.json").read_text()) for engine, out in outputs.items()}
    assert drift["spark"] == drift["pandas"], "the same drift counts"
    assert not temporary_files(tmp_path), "no temporary file or folder is left behind"


@needs_spark
def test_dotted_column_names_are_columns_not_struct_fields(store, spark, tmp_path):
    # Given a table whose feature is named like the bank model's `emp.var.rate`, with a repeated id
    from types import SimpleNamespace

    from leadscore.data.sources import open_table
    from leadscore.scoring.spark_engine import _SparkJob

    path = tmp_path / "dotted.csv"
    pd.DataFrame({"lead.id": ["a", "b", "a"], "emp.var.rate": ["1.1", "x", "-0.2"]}).to_csv(path, index=False)
    scorer = SimpleNamespace(id_column="lead.id", feature_columns=["emp.var.rate"], numeric_columns=["emp.var.rate"],
                             decimal=".", accounts=None)
    job = SimpleNamespace(loaded=SimpleNamespace(scorer=scorer, name="m", version="1"), model_uri="runs:/x/m",
                          settings=SimpleNamespace(reasons=False))

    # When the spark engine reads and checks its rows
    numbered, rows = _SparkJob(spark, job, None)._numbered(open_table(path).spark_frame(spark))
    checked = _SparkJob(spark, job, None)._checked(numbered).orderBy("_row").toPandas()

    # Then the dotted names are read as columns, and the row checks see them
    assert rows == 3 and list(numbered.columns[:2]) == ["lead.id", "emp.var.rate"]
    assert checked["reason"].isna().tolist() == [True, False, False]
    assert checked["reason"].tolist()[1:] == ["bad value", "duplicate id"]


@needs_spark
def test_a_ragged_cp1252_semicolon_export_scores_on_spark_as_on_pandas(store, spark, capsys):
    # Given a German export (cp1252, ';', leading-zero ids, an umlaut in a category) with one ragged row
    leads = leads_to_score(200, seed=25).assign(lead_id=[f"{i:07d}" for i in range(200)])
    leads.loc[4, "company_size"] = "Größe unbekannt"
    lines = leads.to_csv(index=False, sep=";").splitlines()
    lines[30] += ";überzählig"  # data row 30 has a field too many
    path = store / "spark_german.csv"
    path.write_bytes(("\r\n".join(lines) + "\r\n").encode("cp1252"))

    # When each engine scores it
    outputs = {}
    for engine in ("pandas", "spark"):
        out = store / f"german_{engine}.csv"
        code = cli("score", "--model", CHAMPION, "--input", path, "--output", out, "--engine", engine,
                   "--max-reject-share", 0.05)
        assert code == 0, f"{engine}: {capsys.readouterr().err}"
        outputs[engine] = out

    # Then the job does not fail: the ragged row is one reject with its row number, the same on both engines
    rejects = {e: pd.read_csv(str(out.with_suffix("")) + ".rejects.csv", dtype={"id": str}) for e, out in outputs.items()}
    assert rejects["spark"]["row"].tolist() == rejects["pandas"]["row"].tolist() == [30]
    assert rejects["spark"]["reason"].tolist() == rejects["pandas"]["reason"].tolist() == ["unreadable row"]
    assert "überzählig" not in rejects["spark"].to_csv(), "no row content in the rejects"
    # And the same leads, ids byte-exact, with the same scores
    scores = {e: pd.concat([pd.read_csv(part, dtype={"lead_id": str}) for part in
                            (sorted(out.glob("part-*.csv")) if out.is_dir() else [out])], ignore_index=True)
              for e, out in outputs.items()}
    merged = scores["pandas"].merge(scores["spark"], on="lead_id", suffixes=("", "_spark"), validate="one_to_one")
    assert len(merged) == len(scores["pandas"]) == len(scores["spark"]) == 199
    assert set(merged["lead_id"]) == set(leads["lead_id"].drop(index=29)), "leading zeros kept on both engines"
    np.testing.assert_array_equal(merged["p_convert_spark"], merged["p_convert"])
    assert not temporary_files(store), "no temporary file or folder is left behind"
