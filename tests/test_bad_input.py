"""Bad input ends in a clear error (column, rows, fix), a distinct exit code and no output file."""

from pathlib import Path

import pytest
import yaml
from helpers import make_snapshot, snapshot_config

from leadscore.cli import main


def run(argv, capsys):
    code = main([str(a) for a in argv])
    return code, capsys.readouterr().err


def write_config(tmp_path: Path, raw: dict) -> Path:
    path = tmp_path / "config.yaml"
    path.write_text(yaml.safe_dump(raw))
    return path


@pytest.fixture()
def snapshot_file(tmp_path):
    path = tmp_path / "leads.csv"
    make_snapshot().to_csv(path, index=False)
    return path


def train(tmp_path, capsys, frame, **overrides):
    data = tmp_path / "train.csv"
    frame.to_csv(data, index=False)
    return run(["train", "--config", write_config(tmp_path, snapshot_config(data, **overrides))], capsys)


def test_misspelt_label_column_names_the_column_and_suggests(tracking_store, capsys):
    code, err = train(tracking_store, capsys, make_snapshot(), label_column="convertd")
    assert code == 4, "bad input has its own exit code"
    assert "convertd" in err and "did you mean 'converted'" in err, err


def test_label_with_three_values(tracking_store, capsys):
    frame = make_snapshot()
    frame.loc[:5, "converted"] = 2
    code, err = train(tracking_store, capsys, frame)
    assert code == 4 and "exactly two values" in err and "'converted'" in err, err


def test_duplicate_ids_are_named_with_their_rows(tracking_store, capsys):
    frame = make_snapshot()
    frame.loc[7, "lead_id"] = frame.loc[3, "lead_id"]
    code, err = train(tracking_store, capsys, frame)
    assert code == 4 and "duplicate lead ids" in err and "row(s): 4, 8" in err, err


def test_stray_text_in_a_numeric_column_names_the_cells(tracking_store, capsys):
    frame = make_snapshot().astype({"visits": object})
    frame.loc[[4, 9], "visits"] = ["twelve", "12 visits"]
    code, err = train(tracking_store, capsys, frame)
    assert code == 4 and "'visits'" in err and "2 row(s): 5, 10" in err and "data.na_values" in err, err


@pytest.mark.slow
def test_a_declared_category_of_number_codes_trains(tracking_store, capsys):
    # Given number-like codes with one text band, declared a category (the points rule compares it as a number)
    frame = make_snapshot().astype({"visits": object})
    frame.loc[4, "visits"] = "10+"
    code, err = train(tracking_store, capsys, frame, categorical_columns=["visits"])
    assert code == 0, err


def test_unparseable_timestamps(tracking_store, capsys):
    frame = make_snapshot()
    frame.loc[10, "created_at"] = "last tuesday"
    code, err = train(tracking_store, capsys, frame)
    assert code == 4 and "unparseable timestamp" in err and "11" in err and "ISO 8601" in err, err


def test_wrong_type_in_numeric_column(tracking_store, capsys, snapshot_file):
    frame = make_snapshot()
    frame["visits"] = frame["visits"].astype(object)
    frame.loc[2, "visits"] = "inf"
    code, err = train(tracking_store, capsys, frame)
    assert code == 4 and "'visits'" in err and "row(s): 3" in err, err


def test_too_few_conversions(tracking_store, capsys):
    frame = make_snapshot(400)
    frame["converted"] = 0
    frame.loc[:9, "converted"] = 1
    code, err = train(tracking_store, capsys, frame)
    assert code == 4 and "only 10 conversions" in err and "min_conversions" in err, err


def test_empty_file(tracking_store, capsys):
    data = tracking_store / "empty.csv"
    data.write_text("")
    code, err = run(["train", "--config", write_config(tracking_store, snapshot_config(data))], capsys)
    assert code == 4 and "empty" in err, err


def test_bad_config_has_its_own_exit_code(tracking_store, capsys):
    code, err = run(["train", "--config", write_config(tracking_store, {"data": {"form": "csv"}})], capsys)
    assert code == 3 and "data.form" in err, err


@pytest.fixture()
def trained(store):
    """The folder of the session's champion, trained on `make_snapshot()` with `snapshot_config` (see `conftest.store`)."""
    return store


def score(tmp, capsys, frame, name="scores.csv"):
    path = tmp / "to_score.csv"
    frame.to_csv(path, index=False)
    out = tmp / name
    code, err = run(["score", "--model", "models:/leadscore@champion", "--input", path, "--output", out], capsys)
    return code, err, out


def test_scoring_bad_input_leaves_no_output_and_keeps_the_previous_one(trained, capsys):
    code, err, out = score(trained, capsys, make_snapshot(50, seed=1))
    assert code == 0, err
    previous = out.read_bytes()
    broken = make_snapshot(50, seed=2).drop(columns=["visits"])
    code, err, out = score(trained, capsys, broken)
    assert code == 4 and "'visits'" in err and "trained with it" in err, err
    assert out.read_bytes() == previous, "a failed job leaves the previous output untouched"
    assert not list(trained.glob(".scores.csv.*")), "no temporary file is left behind"


def test_scoring_missing_column_writes_nothing(trained, capsys):
    code, err, out = score(trained, capsys, make_snapshot(20).drop(columns=["company_size"]), name="new.csv")
    assert code == 4 and "company_size" in err, err
    assert not out.exists(), "no partial output file"


def test_unseen_categories_are_scored_as_missing_and_reported(trained, capsys, caplog):
    frame = make_snapshot(30, seed=4)
    frame.loc[:2, "company_size"] = "galactic"
    code, err, out = score(trained, capsys, frame)
    assert code == 0, err
    import pandas as pd

    scores = pd.read_csv(out)
    assert len(scores) == 30 and scores["p_convert"].between(0, 1).all(), "every lead is scored"
    assert "never seen in training" in caplog.text and "company_size" in caplog.text, "the handling is reported"


def test_an_event_log_for_a_snapshot_model_is_bad_input_for_explain_too(trained, synthetic_dir, capsys):
    code, err = run(["explain", "--model", "models:/leadscore@champion", "--input", synthetic_dir, "--lead", "L1"], capsys)
    assert code == 4 and "trained on a snapshot table" in err, err


@pytest.mark.slow
def test_the_training_datas_placeholders_mean_missing_when_scoring_and_explaining(tracking_store, capsys):
    import pandas as pd

    # Given a model trained where `unknown` stands for a missing number of visits (data.na_values),
    frame = make_snapshot().astype({"visits": object})
    frame.loc[frame.index % 10 == 0, "visits"] = "unknown"
    code, err = train(tracking_store, capsys, frame, na_values=["unknown"])
    assert code == 0, err
    model = "models:/leadscore@challenger"
    # when leads holding the placeholder and the same leads with empty cells are scored,
    new = make_snapshot(200, seed=1).astype({"visits": object})
    new.loc[[3, 8], "visits"] = "unknown"
    new.to_csv(tracking_store / "placeholder.csv", index=False)
    new.replace("unknown", None).to_csv(tracking_store / "empty.csv", index=False)
    for name in ("placeholder", "empty"):
        code, err = run(["score", "--model", model, "--input", tracking_store / f"{name}.csv",
                         "--output", tracking_store / f"{name}_scores.csv"], capsys)
        assert code == 0, err
    # then no row is rejected and the placeholder scores exactly as a missing value,
    assert pd.read_csv(tracking_store / "placeholder_scores.rejects.csv").empty
    placeholder, empty = (pd.read_csv(tracking_store / f"{n}_scores.csv") for n in ("placeholder", "empty"))
    assert len(placeholder) == len(new)
    pd.testing.assert_frame_equal(placeholder.drop(columns="scored_at"), empty.drop(columns="scored_at"))
    # and a lead holding it is explained, as scored.
    code, err = run(["explain", "--model", model, "--input", tracking_store / "placeholder.csv",
                     "--lead", new.loc[3, "lead_id"]], capsys)
    assert code == 0, err
