"""The score history: changes that add up, MQL / SQL crossings, atomic appends, both engines, the CLI."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow.parquet as pq
import pytest
import yaml
from helpers import (
    CHAMPION,
    leads_to_score,
    make_snapshot,
    needs_spark,
    read_output,
    run_cli,
    snapshot_config,
    with_problems,
)
from hypothesis import given
from hypothesis import strategies as st

from leadscore.errors import ConfigError, InputError
from leadscore.history.changes import MODEL_CHANGED, score_changes, threshold_crossings
from leadscore.history.recorder import check_history_ids
from leadscore.history.store import (
    HISTORY_COLUMNS,
    history_table,
    new_run_id,
    partition_file,
    read_history,
    write_rows,
)
from leadscore.schema import CHANGE_COLUMNS, ROW_ID
from leadscore.scoring.job import scoring_settings

READER_COLUMNS = ["lead_id", "scored_at", "model_name", "model_version", "p_convert", "score", "grade", "is_mql",
                  "is_sql"]


# Pure parts: no model.
def lead_rows(ids, log_odds: np.ndarray, base_raw: float, version: str, fields: list[str]) -> pd.DataFrame:
    """Scored leads of a logistic model, p = sigmoid(base_raw + sum of the fields' log-odds), with their points
    as the explainer makes them (log-odds times the secant slope from the base score), as the history stores them."""
    def score(raw):
        return 100 / (1 + np.exp(-raw))

    exact, base = score(base_raw + log_odds.sum(axis=1)), score(base_raw)
    total = log_odds.sum(axis=1)
    points = log_odds * ((exact - base) / np.where(total == 0, 1.0, total))[:, None]
    as_json = [[json.dumps(dict(zip(fields, row))) for row in values.tolist()] for values in (points, log_odds)]
    return pd.DataFrame({
        "lead_id": ids, "model_name": "m", "model_version": version, "p_convert": exact / 100,
        "score": np.round(exact, 1), "points": as_json[0], "log_odds": as_json[1],
    })


@given(st.integers(1, 60), st.integers(1, 8), st.integers(0, 2**32 - 1))
def test_changes_add_up_to_the_new_score_for_one_model_version(leads, fields, seed):
    # Given leads scored twice by the same model, with any points per field (some fields unchanged)
    rng = np.random.default_rng(seed)
    names = [f"field_{i}" for i in range(fields)]
    old = rng.normal(0, 0.8, (leads, fields))
    new = np.where(rng.random((leads, fields)) < 0.3, old, old + rng.normal(0, 0.5, (leads, fields)))
    ids = [f"L{i}" for i in range(leads)]
    previous = lead_rows(ids, old, -1.5, "3", names).set_index("lead_id")
    current = lead_rows(ids, new, -1.5, "3", names)

    # When the changes are computed
    changes = score_changes(previous, current)

    # Then for every lead: previous unrounded score + the changes = the new one, the largest change first,
    # only the fields that moved, each with the sign of its own move, and the score change is the change of
    # the published scores
    for i, reasons in enumerate(changes["change_reasons"]):
        entries = json.loads(reasons)
        total = 100 * previous["p_convert"].iat[i] + sum(e["points"] for e in entries)
        assert total == pytest.approx(100 * current["p_convert"].iat[i], abs=1e-9), "additive, exactly"
        sizes = [abs(e["points"]) for e in entries]
        assert sizes == sorted(sizes, reverse=True), "largest change first"
        assert {e["field"] for e in entries} == {names[j] for j in np.flatnonzero(new[i] != old[i])}, "fields that moved"
        moved = {names[j]: new[i, j] - old[i, j] for j in range(fields)}
        assert all(np.sign(e["points"]) == np.sign(moved[e["field"]]) for e in entries if abs(e["points"]) > 1e-12)
    np.testing.assert_allclose(changes["score_change"],
                               np.round(current["score"].to_numpy() - previous["score"].to_numpy(), 1))


def test_a_new_model_version_is_one_entry_and_a_first_score_has_no_change():
    # Given a lead scored before by version 1 and one never scored
    names = ["a", "b"]
    previous = lead_rows(["old"], np.array([[0.1, 0.2]]), -1.0, "1", names).set_index("lead_id")
    current = lead_rows(["old", "new"], np.array([[0.5, -0.1], [0.3, 0.3]]), -1.2, "2", names)

    # When the changes are computed
    changes = score_changes(previous, current)

    # Then the change across versions is one "model changed" entry that still adds up, the first score none
    entries = json.loads(changes["change_reasons"].iat[0])
    assert [e["field"] for e in entries] == [MODEL_CHANGED] and entries[0]["from_version"] == "1"
    assert 100 * previous["p_convert"].iat[0] + entries[0]["points"] == pytest.approx(100 * current["p_convert"].iat[0])
    assert pd.isna(changes["score_change"].iat[1]) and pd.isna(changes["change_reasons"].iat[1]), "a first score"


@pytest.mark.parametrize("before, after, expected", [
    ((False, False), (True, False), ["became MQL"]),
    ((False, False), (True, True), ["became MQL", "became SQL"]),
    ((True, True), (True, False), ["dropped below SQL"]),
    ((True, True), (False, False), ["dropped below MQL", "dropped below SQL"]),
    ((True, False), (True, False), []),
    ((None, None), (True, True), []),  # a model without cutoffs crosses nothing
])
def test_crossings_follow_the_flags(before, after, expected):
    # Given a lead's MQL / SQL flags at its previous and its new score
    previous = pd.DataFrame({"lead_id": ["L1"], "score": [10.0], "scored_at": [pd.Timestamp("2026-11-01", tz="UTC")],
                             "is_mql": [before[0]], "is_sql": [before[1]]}).set_index("lead_id")
    current = pd.DataFrame({"lead_id": ["L1", "L2"], "scored_at": pd.Timestamp("2026-11-15", tz="UTC"),
                            "score": [20.0, 50.0], "score_change": [10.0, np.nan], "is_mql": [after[0], True],
                            "is_sql": [after[1], True], "model_name": "m", "model_version": "1"})

    # When the crossings are found, then they are exactly the flags that changed (L2 is new: no alert)
    alerts = threshold_crossings(previous, current)
    assert sorted(alerts["alert"]) == sorted(expected)
    assert set(alerts["lead_id"]) <= {"L1"}


def write_run(folder: Path, rows: pd.DataFrame) -> None:
    at = pd.Timestamp(rows["scored_at"].iat[0])
    file = partition_file(folder, at, new_run_id(at.to_pydatetime()))
    file.parent.mkdir(parents=True, exist_ok=True)
    write_rows(file, [history_table(rows)])


def test_read_history_filters_by_lead_and_time(tmp_path):
    # Given two runs on two days
    for day, score in (("2026-11-01T09:00:00Z", 10.0), ("2026-11-15T09:00:00Z", 30.0)):
        write_run(tmp_path, pd.DataFrame({"lead_id": ["A", "B"], "scored_at": pd.Timestamp(day), "model_name": "m",
                                          "model_version": "1", "p_convert": score / 100, "score": score}))

    # Then the reader gives the columns others rely on, ordered by lead and time, and filters
    everything = read_history(tmp_path)
    assert set(READER_COLUMNS) <= set(everything.columns) and list(everything.columns) == list(HISTORY_COLUMNS)
    assert list(everything["lead_id"]) == ["A", "A", "B", "B"] and everything["scored_at"].is_monotonic_increasing is False
    assert list(read_history(tmp_path, lead_ids=["B"])["score"]) == [10.0, 30.0]
    assert list(read_history(tmp_path, since="2026-11-10")["score"]) == [30.0, 30.0], "since: inclusive"
    assert list(read_history(tmp_path, until="2026-11-15T09:00:00")["score"]) == [10.0, 10.0], "until: exclusive"
    assert sorted(tmp_path.iterdir())[0].name == "scored_date=2026-11-01", "partitioned by scoring date"


def test_read_history_of_an_empty_folder_is_empty_and_of_a_missing_one_an_error(tmp_path):
    assert read_history(tmp_path).empty and list(read_history(tmp_path).columns) == list(HISTORY_COLUMNS)
    with pytest.raises(InputError, match="does not exist"):
        read_history(tmp_path / "nowhere")


def test_a_model_without_ids_has_no_history():
    class Numbered:
        id_column = ROW_ID

    with pytest.raises(ConfigError, match="id column"):
        check_history_ids(Numbered())


# The scoring job with the session's champion (a snapshot model with a lead_id column and MQL / SQL cutoffs).
def score(store: Path, frame: pd.DataFrame, name: str, history: Path | None, *options) -> tuple[int, Path, str]:
    path = store / f"{name}.csv"
    frame.to_csv(path, index=False)
    output = store / f"{name}_scores.csv"
    extra = ["--history", history] if history is not None else []
    code, out, err = run_cli("score", "--model", CHAMPION, "--input", path, "--output", output, *extra, *options)
    return code, output, out + err


def later(frame: pd.DataFrame) -> pd.DataFrame:
    """The same leads a little later: a third visit more for a third of them, one fewer for another third."""
    return frame.assign(visits=np.maximum(frame["visits"] + (frame.index % 3) - 1, 0))


def history_files(folder: Path) -> list[Path]:
    return sorted(folder.rglob("*")) if folder.exists() else []


@pytest.fixture(scope="module")
def two_runs(store, scorer):
    """The same 400 leads scored twice, the second time with changed visits, into one history."""
    history = store / "history_two_runs"
    leads = leads_to_score(400, seed=31)
    first = score(store, leads, "first", history)
    second = score(store, later(leads), "second", history)
    assert first[0] == 0 and second[0] == 0, first[2] + second[2]
    return history, leads, read_output(first[1]), read_output(second[1]), second


def test_each_run_appends_its_rows_and_the_outputs_carry_the_changes(two_runs):
    history, leads, first, second, (_, output, printed) = two_runs

    rows = read_history(history)
    assert len(rows) == 2 * len(leads) and rows["run_id"].nunique() == 2, "one row per lead and run"
    assert set(rows["lead_id"]) == set(leads["lead_id"]), "the model's ids, as text"
    assert str(rows["scored_at"].dtype) == "datetime64[us, UTC]"
    assert set(CHANGE_COLUMNS) <= set(second.columns) and set(CHANGE_COLUMNS) <= set(first.columns)
    assert first["score_change"].isna().all(), "first scores have no change"
    merged = first.merge(second, on="lead_id", suffixes=("_before", ""))
    np.testing.assert_allclose(merged["score_change"], np.round(merged["score"] - merged["score_before"], 1))
    changed = int((merged["score_change"] != 0).sum())
    assert f"{changed:,} score(s) changed" in printed, "the summary counts the changed scores"
    assert Path(str(output).replace(".csv", ".alerts.csv")).exists()


def test_changes_add_up_with_the_real_model(two_runs, scorer):
    history, leads, first, second, _ = two_runs

    rows = read_history(history)
    newest = rows.drop_duplicates("lead_id", keep="last").set_index("lead_id")
    oldest = rows.drop_duplicates("lead_id", keep="first").set_index("lead_id")
    for lead, row in newest.iterrows():
        # Each stored decomposition is exact: base score + every field's points = 100 p
        assert row["base_score"] + sum(json.loads(row["points"]).values()) == pytest.approx(100 * row["p_convert"], abs=1e-8)
        # and the previous score + the changes = the new score
        entries = json.loads(row["change_reasons"])
        assert 100 * oldest.at[lead, "p_convert"] + sum(e["points"] for e in entries) == pytest.approx(
            100 * row["p_convert"], abs=1e-8)
    assert set(json.loads(newest["points"].iat[0])) == {f.name for f in scorer.explainer.fields}
    # A lead whose input did not change has no change and no reason, whatever moved for the others
    same = leads.loc[later(leads)["visits"] == leads["visits"], "lead_id"]
    assert len(same) and (newest.loc[same, "change_reasons"] == "[]").all() and (newest.loc[same, "score_change"] == 0).all()
    # and, where a field's log-odds depend on its own value alone (a linear model), a lead whose visits changed
    # has the change put on visits alone: its company size did not move
    if scorer.classifier.kind == "logistic":
        moved = newest.drop(same)
        assert all({e["field"] for e in json.loads(r)} == {"visits"} for r in moved["change_reasons"])


def test_alerts_match_the_crossings_of_the_cutoffs(two_runs, store, scorer):
    _, _, first, second, _ = two_runs
    alerts = pd.read_csv(store / "second_scores.alerts.csv", dtype={"lead_id": str})
    merged = first.merge(second, on="lead_id", suffixes=("_before", ""))
    cut = scorer.cutoffs
    expected = set()
    for flag, cutoff, up, down in (("mql", cut.mql, "became MQL", "dropped below MQL"),
                                   ("sql", cut.sql, "became SQL", "dropped below SQL")):
        before, after = merged["p_convert_before"] >= cutoff, merged["p_convert"] >= cutoff
        expected |= {(lead, up) for lead in merged.loc[~before & after, "lead_id"]}
        expected |= {(lead, down) for lead in merged.loc[before & ~after, "lead_id"]}
    assert expected, "the changed visits move some leads across a cutoff"
    assert set(zip(alerts["lead_id"], alerts["alert"])) == expected


def test_the_history_holds_no_personal_data(two_runs):
    history, leads, *_ = two_runs
    for file in history.rglob("*.parquet"):
        table = pq.read_table(file)
        assert "email" not in table.column_names
        text = table.to_pandas().to_csv()
        assert "@example.com" not in text and leads["email"].iat[0] not in text, "no e-mail address anywhere"


def test_without_history_the_outputs_are_as_before(store):
    code, output, printed = score(store, leads_to_score(50, seed=32), "plain", None)
    assert code == 0, printed
    assert not set(CHANGE_COLUMNS) & set(read_output(output).columns)
    assert not (store / "plain_scores.alerts.csv").exists() and "history" not in printed


def test_a_job_that_fails_after_scoring_leaves_the_history_unchanged(store):
    # Given a history with one run
    history = store / "history_atomic"
    leads = leads_to_score(300, seed=33)
    assert score(store, leads, "atomic_first", history)[0] == 0
    before = {p: p.read_bytes() for p in history_files(history) if p.is_file()}

    # When a job is rejected for too many bad rows, and another cannot publish its scores (the output is a folder)
    bad, _ = with_problems(later(leads))
    rejected = score(store, bad, "atomic_rejected", history, "--max-reject-share", 0)
    (store / "atomic_blocked_scores.csv").mkdir()
    (store / "atomic_blocked_scores.csv" / "keep").write_text("x")
    blocked = score(store, later(leads), "atomic_blocked", history)

    # Then both fail and the history holds exactly what it held, with no temporary left behind
    assert rejected[0] == 4 and blocked[0] == 6, rejected[2] + blocked[2]
    assert {p: p.read_bytes() for p in history_files(history) if p.is_file()} == before
    assert not (store / "atomic_rejected_scores.alerts.csv").exists()


def test_the_history_command_prints_a_leads_trajectory(two_runs):
    history, leads, _, second, _ = two_runs
    moved = second.loc[second["score_change"].abs() > 0].iloc[0]

    code, out, err = run_cli("history", "--history", history, "--lead", moved["lead_id"])

    assert code == 0, err
    lines = out.splitlines()
    assert lines[0].startswith(f"Lead {moved['lead_id']}: scored 2 time(s)")
    assert "first" in out and f"{moved['score_change']:+.1f}" in out and "why:" in out
    assert "Visits" in out, "the changed field, in words"


def test_without_a_lead_the_history_command_lists_the_latest_runs_alerts(two_runs, store):
    history = two_runs[0]
    alerts = pd.read_csv(store / "second_scores.alerts.csv", dtype={"lead_id": str})

    code, out, err = run_cli("history", "--history", history, "--top", 3)

    assert code == 0, err
    alerted = alerts["lead_id"].nunique()
    assert out.splitlines()[0].startswith(f"{alerted} lead(s) crossed a line in the latest run")
    for name, count in alerts["alert"].value_counts().items():
        assert f"{name} {count}" in out.splitlines()[0], "the count of each kind of crossing"
    listed = [line.split()[0] for line in out.splitlines()[3:] if line and not line.startswith(" ")][:3]
    assert set(listed) <= set(alerts["lead_id"]) and len(listed) == min(3, alerted)
    assert f"and {alerted - 3} more" in out if alerted > 3 else "more" not in out


def test_the_history_command_fails_clearly(two_runs, tmp_path):
    history = two_runs[0]
    code, _, err = run_cli("history", "--history", history, "--lead", "no-such-lead")
    assert code == 4 and "no-such-lead" in err and "no score" in err
    code, _, err = run_cli("history", "--history", tmp_path, "--lead", "L00001")
    assert code == 4 and "no scores yet" in err
    code, _, err = run_cli("history", "--history", tmp_path / "missing", "--lead", "L00001")
    assert code == 4 and "does not exist" in err


@needs_spark
def test_the_spark_engine_appends_the_same_rows_as_pandas(store, local_spark):
    # Given the same leads scored twice by each engine, each into a history of its own
    leads = leads_to_score(300, seed=34)
    histories = {}
    for engine in ("pandas", "spark"):
        histories[engine] = store / f"history_{engine}"
        for name, frame in (("a", leads), ("b", later(leads))):
            code, _, printed = score(store, frame, f"{engine}_{name}", histories[engine], "--engine", engine)
            assert code == 0, printed

    # Then the histories hold the same rows: scores, points, changes and alerts
    ours, theirs = (read_history(histories[e]).drop(columns=["scored_at", "run_id"]) for e in ("pandas", "spark"))
    assert len(ours) == len(theirs) == 2 * len(leads)
    ours, theirs = (f.sort_values(["lead_id", "score_change"], na_position="first").reset_index(drop=True)
                    for f in (ours, theirs))
    for column in ("lead_id", "model_version", "score", "score_change", "alerts", "is_mql", "is_sql", "grade"):
        pd.testing.assert_series_equal(ours[column], theirs[column], check_dtype=False)
    np.testing.assert_allclose(theirs["p_convert"], ours["p_convert"], rtol=1e-12)
    for a, b in zip(ours["points"], theirs["points"]):
        assert json.loads(a) == pytest.approx(json.loads(b), abs=1e-9)
    spark_out = read_output(store / "spark_b_scores.csv")
    assert set(CHANGE_COLUMNS) <= set(spark_out.columns)


def test_the_history_folder_comes_from_the_config_unless_the_option_gives_one(tmp_path):
    make_snapshot(50).to_csv(tmp_path / "train.csv", index=False)
    config = tmp_path / "config.yaml"
    config.write_text(yaml.safe_dump({**snapshot_config(tmp_path / "train.csv"), "scoring": {"history": "from_config"}}))
    assert scoring_settings(config).history == "from_config"
    assert scoring_settings(config, history="from_option").history == "from_option"
    assert scoring_settings().history is None, "no history unless asked for"
