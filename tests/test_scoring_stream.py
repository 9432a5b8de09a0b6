"""The streaming batch job: chunked, every row accounted for, published atomically, with a drift report."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time

import numpy as np
import pandas as pd
import pytest
from helpers import (
    CHAMPION,
    PROVENANCE,
    cli,
    leads_to_score,
    temporary_files,
    with_problems,
)
from hypothesis import given, settings
from hypothesis import strategies as st

from leadscore.data.row_checks import SeenIds
from leadscore.model.drift import DriftCounter, build_reference, psi
from leadscore.model.pyfunc import LeadScorerModel


def score(store, frame: pd.DataFrame, *options, name="scores.csv", fmt=".csv"):
    path = store / f"input{fmt}"
    frame.to_parquet(path, index=False) if fmt == ".parquet" else frame.to_csv(path, index=False)
    out = store / name
    return cli("score", "--model", CHAMPION, "--input", path, "--output", out, *options), out


def test_streamed_scores_equal_scoring_in_one_piece(store, scorer):
    # Given leads in a CSV and the same leads in Parquet
    leads = leads_to_score(1000, seed=5)
    expected = scorer.predict(leads)

    for fmt in (".csv", ".parquet"):
        # When the job scores them in chunks of 128 rows
        code, out = score(store, leads, "--chunk-rows", 128, fmt=fmt, name=f"scores{fmt}")
        assert code == 0, f"scoring {fmt} failed"
        got = pd.read_csv(out) if fmt == ".csv" else pd.read_parquet(out)

        # Then the output is what predict gives on the whole frame, in input order, plus provenance
        assert list(got.columns) == [*expected.columns, *PROVENANCE], "output columns: predict's, then provenance"
        assert got["lead_id"].tolist() == leads["lead_id"].tolist(), "one row per lead, in input order"
        np.testing.assert_allclose(got["p_convert"], expected["p_convert"], rtol=0, atol=1e-12,
                                   err_msg=f"chunked scores equal whole-frame scores ({fmt})")
        assert (got["model_name"] == "leadscore").all() and got["scored_at"].nunique() == 1, "one job, one time"


def test_the_model_never_sees_more_than_a_chunk(store, scorer, monkeypatch):
    # Given a job with chunks of 100 rows, watching every batch the registered model is asked to score
    sizes = []
    original = LeadScorerModel.predict

    def watched(self, context, data, *args, **kwargs):
        sizes.append(len(data))
        return original(self, context, data, *args, **kwargs)

    monkeypatch.setattr(LeadScorerModel, "predict", watched)
    code, out = score(store, leads_to_score(1050, seed=6), "--chunk-rows", 100)

    # Then the input went through in chunks, so memory is bounded by the chunk, not by the file
    assert code == 0
    assert max(sizes) <= 100 and sum(sizes) == 1050, f"batches seen by the model: {sizes}"
    assert len(pd.read_csv(out)) == 1050


def test_every_row_is_scored_or_rejected_exactly_once(store, capsys):
    # Given 400 leads with planted problems, read in chunks of 100
    frame, planted = with_problems(leads_to_score(400, seed=7))

    # When scored with a reject limit above their share
    code, out = score(store, frame, "--chunk-rows", 100, "--max-reject-share", 0.05)
    printed = capsys.readouterr().out

    # Then each input row is in exactly one of the outputs, and each reject names its row and reason
    assert code == 0, printed
    scores = pd.read_csv(out)
    rejects = pd.read_csv(store / "scores.rejects.csv")
    assert len(scores) + len(rejects) == len(frame), "no row lost, none doubled"
    assert dict(zip(rejects["row"], rejects["reason"])) == planted, "each reject has its row number and reason"
    assert set(rejects.columns) == {"row", "id", "column", "reason", "detail"}
    scored_rows = set(range(1, len(frame) + 1)) - set(planted)
    assert scores["lead_id"].tolist() == frame["lead_id"].iloc[sorted(r - 1 for r in scored_rows)].tolist()
    assert scores["lead_id"].is_unique, "a lead id is scored once"
    bad = rejects.set_index("row")
    assert bad.loc[6, "column"] == "visits" and "seven" in bad.loc[6, "detail"], "the bad value is named"
    assert "rejected 7 (2 missing id, 3 duplicate id, 2 bad value)" in printed, printed


def test_too_many_rejects_fail_without_touching_the_previous_output(store, capsys):
    # Given a published output from a good run
    code, out = score(store, leads_to_score(300, seed=8), name="nightly.csv")
    assert code == 0
    previous = out.read_bytes()

    # When a later run has 7 problems in 300 rows (2.3 %), above the default 1 % limit
    frame, planted = with_problems(leads_to_score(300, seed=9))
    code, out = score(store, frame, name="nightly.csv")
    err = capsys.readouterr().err

    # Then the job fails as bad input, keeps the previous scores and lists the rejects for the fix
    assert code == 4, err
    assert "above the limit of 1.00%" in err and "nightly.rejects.csv" in err, err
    assert out.read_bytes() == previous, "the previous output is untouched"
    assert len(pd.read_csv(store / "nightly.rejects.csv")) == len(planted), "the rejects are published to fix the data"
    assert not temporary_files(store), "no temporary file is left behind"


def test_an_interrupted_job_leaves_the_previous_output_and_no_partial_file(store, monkeypatch, capsys):
    # Given a published output
    code, out = score(store, leads_to_score(300, seed=10), name="interrupted.csv")
    assert code == 0
    previous = out.read_bytes()

    # When the next run is interrupted after two chunks were written
    from leadscore.data import streams

    original, calls = streams.TableWriter.write, []

    def interrupted(self, frame):
        calls.append(len(frame))
        if len(calls) == 3:
            raise KeyboardInterrupt
        original(self, frame)

    monkeypatch.setattr(streams.TableWriter, "write", interrupted)
    code, _ = score(store, leads_to_score(500, seed=11), "--chunk-rows", 100, name="interrupted.csv")

    # Then nothing is published: the previous file is intact and no partial file is left
    assert code == 130, "an interruption has its own exit code"
    assert out.read_bytes() == previous, "the previous output is untouched"
    assert not temporary_files(store), "no temporary file is left behind"


def test_a_chunk_that_fails_midway_publishes_nothing(store, monkeypatch, capsys):
    # Given no previous output, and a model that fails on the third chunk
    original, calls = LeadScorerModel.predict, []

    def failing(self, context, data, *args, **kwargs):
        calls.append(1)
        if len(calls) == 3:
            raise MemoryError("out of memory")
        return original(self, context, data, *args, **kwargs)

    monkeypatch.setattr(LeadScorerModel, "predict", failing)
    code, out = score(store, leads_to_score(500, seed=12), "--chunk-rows", 100, name="failed.csv")

    # Then the job fails with no output, no rejects file and no temporary file
    assert code == 1 and "MemoryError" in capsys.readouterr().err
    assert not out.exists() and not (store / "failed.rejects.csv").exists(), "a failed job publishes nothing"
    assert not temporary_files(store), "no temporary file is left behind"


def test_a_missing_column_stops_the_job_before_any_row(store, capsys):
    code, out = score(store, leads_to_score(50, seed=13).drop(columns=["visits"]), name="none.parquet", fmt=".parquet")
    assert code == 4 and "'visits'" in capsys.readouterr().err
    assert not out.exists() and not (store / "none.rejects.csv").exists()


def test_drift_report_flags_shifted_features_and_score(store, caplog):
    # Given leads like the training data, and leads whose visits and company sizes moved
    code, out = score(store, leads_to_score(2000, seed=14), name="steady.csv")
    assert code == 0
    steady = json.loads((store / "steady.drift.json").read_text())

    shifted = leads_to_score(2000, seed=15)
    shifted["visits"] = shifted["visits"] + 6
    shifted["company_size"] = "201+"
    caplog.clear()
    code, out = score(store, shifted, name="shifted.csv")
    assert code == 0
    drift = json.loads((store / "shifted.drift.json").read_text())

    # Then stable inputs stay below the threshold and shifted ones are flagged, with a warning naming them
    assert steady["drifted"] == [], f"no drift on data like the training data: {steady['drifted']}"
    assert {"visits", "company_size", "p_convert"} <= set(drift["drifted"]), drift["drifted"]
    assert drift["rows"] == 2000 and sum(drift["features"]["visits"]["actual_count"]) == 2000
    assert "drift" in caplog.text and "visits" in caplog.text and "company_size" in caplog.text


def test_progress_is_logged_as_lines_when_not_on_a_terminal(store, capsys):
    code, _ = score(store, leads_to_score(250, seed=16), "--chunk-rows", 100, name="progress.csv")
    err = capsys.readouterr().err
    assert code == 0 and "leadscore score: 250 rows" in err and "rows/s" in err, err


@settings(max_examples=50)
@given(ids=st.lists(st.integers(0, 40), max_size=120), cuts=st.lists(st.integers(1, 30), min_size=1, max_size=10))
def test_seen_ids_flag_exactly_the_later_duplicates(ids, cuts):
    # Whatever the chunking, a row is flagged when its id appeared on any earlier row
    seen, flags, start = SeenIds(), [], 0
    series = pd.Series([f"L{i}" for i in ids], dtype="string")
    while start < len(series):
        size = cuts[len(flags) % len(cuts)]
        flags.append(seen.repeated(series.iloc[start:start + size]))
        start += size
    got = np.concatenate(flags) if flags else np.array([], dtype=bool)
    assert got.tolist() == series.duplicated().tolist()
    assert len(seen) == series.nunique()


@settings(max_examples=25)
@given(seed=st.integers(0, 10_000), cut=st.integers(1, 400))
def test_drift_counts_add_up_across_chunks(seed, cut):
    # Counting in chunks gives the same report as counting everything at once
    rng = np.random.default_rng(seed)
    train = pd.DataFrame({"x": rng.exponential(size=500), "c": rng.choice(["a", "b", "c", None], 500)})
    reference = build_reference(train, {"c": ["a", "b"]}, rng.uniform(size=300))
    scored = pd.DataFrame({"x": rng.exponential(size=400) * 2, "c": rng.choice(["a", "z", None], 400)})
    p = rng.uniform(size=400)

    whole, parts = DriftCounter(reference), DriftCounter(reference)
    whole.add(scored, p)
    for start in range(0, 400, cut):
        parts.add(scored.iloc[start:start + cut], p[start:start + cut])
    assert whole.report(0.2) == parts.report(0.2)
    assert whole.other_counts() == {"c": int((scored["c"] == "z").sum())}, "values outside the known categories"


def test_psi_is_zero_for_the_reference_distribution_and_grows_with_shift():
    expected = np.array([0.25, 0.25, 0.25, 0.25])
    assert psi(expected, np.array([25, 25, 25, 25])) == pytest.approx(0.0)
    assert 0 < psi(expected, np.array([30, 25, 25, 20])) < psi(expected, np.array([70, 10, 10, 10]))


def test_a_job_stopped_by_sigterm_cleans_up_and_keeps_the_previous_output(store):
    # Given a published output, and a long job over the same output run as its own process
    code, out = score(store, leads_to_score(200, seed=17), name="terminated.csv")
    assert code == 0
    previous = out.read_bytes()
    path = store / "terminated_input.csv"
    leads_to_score(30_000, seed=18).to_csv(path, index=False)
    job = subprocess.Popen([sys.executable, "-m", "leadscore.cli", "score", "--model", CHAMPION, "--input", path,
                            "--output", out, "--chunk-rows", "200"], stderr=subprocess.PIPE, env=os.environ.copy())

    # When the scheduler stops it with SIGTERM once it has started writing
    deadline = time.monotonic() + 120
    while not temporary_files(store) and job.poll() is None and time.monotonic() < deadline:
        time.sleep(0.05)
    job.send_signal(signal.SIGTERM)
    _, err = job.communicate(timeout=60)

    # Then it stops as interrupted, with the previous output intact and no temporary file
    assert job.returncode == 130, err.decode()[-2000:]
    assert out.read_bytes() == previous, "the previous output is untouched"
    assert not temporary_files(store), "no temporary file is left behind"
