"""Numbers written with a decimal comma (German, French and Spanish CRM exports): `data.decimal: ","`.

A German export (cp1252, `;`, `3,5` and `1.234,5`) trains and scores exactly as the same data written with
decimal points: the columns are numbers, not categories, and every engine reads the cells alike. With the
default `data.decimal: "."`, such a column is refused with its rows and the fix instead of being learned as a
category.
"""

from __future__ import annotations

import importlib.util
import math
import os
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml
from helpers import build_config, run_cli, using_store
from hypothesis import given
from hypothesis import strategies as st

from leadscore.config import DataConfig
from leadscore.data.row_checks import parse_decimal_comma, row_problems
from leadscore.data.sources import ReadOptions, open_table, read_table
from leadscore.data.validation import read_numbers, validate_numeric
from leadscore.errors import ConfigError, InputError
from leadscore.training.dataset import snapshot_table

ROWS = 1200
TO_GERMAN = str.maketrans(",.", ".,")

needs_spark = pytest.mark.skipif(
    importlib.util.find_spec("pyspark") is None or (shutil.which("java") is None and not os.environ.get("JAVA_HOME")),
    reason="Spark needs PySpark (pip install -e '.[spark]') and Java 17 or newer",
)


def german_number(value: float, decimals: int) -> str:
    """`value` as German exports write it: `.` grouping thousands, `,` before the decimals (1.234,50)."""
    return f"{value:,.{decimals}f}".translate(TO_GERMAN)


def leads(rows: int = ROWS, seed: int = 0) -> pd.DataFrame:
    """A snapshot export's columns as numbers; the label follows revenue, visits and company size."""
    rng = np.random.default_rng(seed)
    size = rng.choice(["1-10", "11-50", "51-200", "201+"], rows)
    visits = rng.poisson(3, rows)
    revenue = np.round(rng.lognormal(5.5, 1.5, rows), 2)  # from a few to tens of thousands: grouped thousands
    margin = np.round(rng.normal(0, 0.3, rows), 2)  # negative too: -0,25
    logit = -2.5 + 0.3 * visits + 0.3 * (np.log(revenue) - 5.5) + np.select([size == "201+", size == "1-10"], [1.0, -1.0], 0.0)
    frame = pd.DataFrame({
        "Lead-ID": [f"{seed:02d}{i:05d}" for i in range(rows)],
        "Vorname": rng.choice(["Jürgen", "Anna", "Özlem", "Björn", "Marie"], rows),
        "Anlagedatum": (pd.Timestamp("2025-01-01") + pd.to_timedelta(np.arange(rows) * 3, unit="h")).strftime("%d.%m.%Y"),
        "Firmengröße": size,
        "Umsatz": revenue,
        "Marge": margin,
        "Besuche": visits,
        "Rabattstufe": rng.choice(["0,5", "1,0", "2,5"], rows),  # a category that looks like numbers
        "konvertiert": rng.binomial(1, 1 / (1 + np.exp(-logit))),
    })
    frame.loc[rng.random(rows) < 0.05, "Umsatz"] = np.nan  # some unknown
    return frame


def write_german(frame: pd.DataFrame, path: Path) -> Path:
    """`frame` as a German CRM writes it: cp1252, `;`, decimal commas and grouped thousands."""
    text = frame.assign(
        Umsatz=[german_number(v, 2) if not math.isnan(v) else "" for v in frame["Umsatz"]],
        Marge=[german_number(v, 2) for v in frame["Marge"]],
    )
    path.write_bytes(text.to_csv(index=False, sep=";").encode("cp1252"))
    return path


def write_dotted(frame: pd.DataFrame, path: Path) -> Path:
    """The same data with decimal points and no grouping, as UTF-8 with `,` (category texts as they are)."""
    text = frame.assign(
        Umsatz=[f"{v:.2f}" if not math.isnan(v) else "" for v in frame["Umsatz"]],
        Marge=[f"{v:.2f}" for v in frame["Marge"]],
    )
    text.to_csv(path, index=False)
    return path


def config(path: Path, name: str, **data) -> dict:
    return {
        "data": {"form": "snapshot", "path": str(path), "id_column": "Lead-ID", "label_column": "konvertiert",
                 "categorical_columns": ["Rabattstufe"], **data},
        "model": {"min_conversions": 20, "lightgbm": {"n_estimators": 60}},
        "groups": {"fit": ["Firmengröße", "Umsatz"], "engagement": ["Besuche"]},
        "cutoffs": {"sql": {"policy": "top_fraction", "fraction": 0.1}},
        "tracking": {"experiment": name, "registered_model": name},
    }


def train(folder: Path, data_file: Path, name: str, **data) -> tuple[int, str]:
    path = folder / f"{name}.yaml"
    path.write_text(yaml.safe_dump(config(data_file, name, **data), allow_unicode=True), encoding="utf-8")
    code, _, err = run_cli("train", "--config", path)
    return code, err


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """One store holding a model trained on the German export and one trained on the same data with decimal
    points: (folder, German file, dotted file)."""
    folder = tmp_path_factory.mktemp("decimal_comma")
    frame = leads()
    german, dotted = write_german(frame, folder / "export.csv"), write_dotted(frame, folder / "dotted.csv")
    with using_store(folder):
        for data_file, name, data in ((german, "german", {"decimal": ","}), (dotted, "dotted", {})):
            code, err = train(folder, data_file, name, **data)
            assert code == 0, f"training on {data_file.name} failed: {err[-3000:]}"
        yield folder, german, dotted


def score(folder: Path, model: str, data_file: Path, out: str, *options) -> pd.DataFrame:
    code, _, err = run_cli("score", "--model", f"models:/{model}@challenger", "--input", data_file,
                           "--output", folder / out, *options)
    assert code == 0, err[-3000:]
    return pd.read_csv(folder / out, dtype=str, keep_default_na=False)


# End to end: trained and scored on the German export as on the same data with decimal points.
@pytest.mark.slow
def test_a_german_export_trains_and_scores_as_the_same_data_with_decimal_points(trained):
    from leadscore.registry.loading import load_model

    folder, german, dotted = trained
    with using_store(folder):
        # Given the model trained on the German export with data.decimal ","
        scorer = load_model("models:/german@challenger").scorer
        dotted_scorer = load_model("models:/dotted@challenger").scorer

        # Then its money columns are numbers, not categories, and it keeps the decimal mark for scoring
        assert {"Umsatz", "Marge", "Besuche"} <= set(scorer.numeric_columns), scorer.numeric_columns
        assert "Rabattstufe" not in scorer.numeric_columns, "a declared category stays a category"
        assert "Vorname" not in scorer.feature_columns, "a first name is personal, never a feature"
        assert scorer.decimal == "," and dotted_scorer.decimal == "."
        assert scorer.numeric_columns == dotted_scorer.numeric_columns
        assert set(scorer.encoder.categories_["Rabattstufe"]) == {"0,5", "1,0", "2,5"}, "category texts as written"

        # When each file is scored by its own model with `leadscore score` (pandas engine, small chunks)
        ours = score(folder, "german", german, "german_scores.csv", "--chunk-rows", 250)
        theirs = score(folder, "dotted", dotted, "dotted_scores.csv")

    # Then every lead is scored, ids byte-exact, with the same bits as the same data written with decimal points
    assert ours["Lead-ID"].tolist() == pd.read_csv(german, sep=";", dtype=str, encoding="cp1252")["Lead-ID"].tolist()
    assert not pd.read_csv(folder / "german_scores.rejects.csv").shape[0], "no cell was refused"
    assert ours["p_convert"].tolist() == theirs["p_convert"].tolist(), "same model, same numbers, same scores"
    for column in ours.columns.difference(["scored_at", "model_name"]):
        assert ours[column].tolist() == theirs[column].tolist(), column

    # And a whole read of the file as the model says (`read_options`: explaining, a frame) scores the same
    whole = scorer.predict(open_table(german, scorer.read_options()).read())
    np.testing.assert_array_equal(whole["p_convert"].to_numpy(), ours["p_convert"].astype(float).to_numpy())


@pytest.mark.slow
def test_the_scorer_reads_decimal_commas_in_a_frame_and_refuses_decimal_points(trained):
    from leadscore.registry.loading import load_model

    folder, _, _ = trained
    with using_store(folder):
        scorer = load_model("models:/german@challenger").scorer
    frame = leads(40, seed=3).drop(columns=["konvertiert"])

    # Given the same leads as numbers and as German text (the DataFrame API path: `ScoringContract.validate`)
    as_text = frame.assign(Umsatz=[german_number(v, 2) if not math.isnan(v) else None for v in frame["Umsatz"]],
                           Marge=[german_number(v, 2) for v in frame["Marge"]])

    # Then both score alike
    pd.testing.assert_frame_equal(scorer.predict(as_text), scorer.predict(frame))

    # And a decimal point is not a number for this model: the column and row are named
    with pytest.raises(InputError, match=r"column 'Marge'.*\[1 row\(s\): 3\].*decimal comma"):
        scorer.predict(as_text.assign(Marge=as_text["Marge"].where(as_text.index != 2, "0.25")))


@pytest.mark.slow
@needs_spark
def test_spark_scores_a_german_export_as_the_pandas_engine(trained):
    from leadscore.scoring.spark_engine import spark_session

    folder, german, _ = trained
    session, _ = spark_session("local[2]")
    session.conf.set("spark.sql.shuffle.partitions", "4")
    try:
        with using_store(folder):
            pandas_scores = score(folder, "german", german, "pandas.csv")
            code, _, err = run_cli("score", "--model", "models:/german@challenger", "--input", german,
                                   "--output", folder / "spark.csv", "--engine", "spark")
            assert code == 0, err[-3000:]
    finally:
        session.stop()
    ids = {"Lead-ID": str}
    spark_scores = pd.concat([pd.read_csv(part, dtype=ids) for part in sorted((folder / "spark.csv").glob("part-*.csv"))],
                             ignore_index=True)
    merged = pd.read_csv(folder / "pandas.csv", dtype=ids).merge(spark_scores, on="Lead-ID", suffixes=("", "_spark"),
                                                                 validate="one_to_one")
    assert len(merged) == len(pandas_scores) == ROWS, "every lead scored on both engines"
    np.testing.assert_array_equal(merged["p_convert_spark"], merged["p_convert"], "the same bits on both engines")
    rejects = (folder / "spark.rejects.csv").read_text().splitlines()
    assert len(rejects) <= 1, "no cell refused on Spark"


# Silently wrong becomes loud: decimal commas read with data.decimal ".".
def test_a_column_of_decimal_commas_read_with_decimal_points_is_refused_with_its_rows(tmp_path):
    # Given the German export (every Marge cell has a comma; Umsatz has commas and a few whole numbers)
    path = write_german(leads(200), tmp_path / "export.csv")
    frame = read_table(path, text_columns=["Lead-ID"])

    # When it is read into a training table with the default data.decimal "."
    data = DataConfig(form="snapshot", path=str(path), id_column="Lead-ID", label_column="konvertiert",
                      categorical_columns=["Rabattstufe"])
    with pytest.raises(InputError) as error:
        snapshot_table(frame, data)

    # Then the first such column is named with rows and the fix, and no cell is shown
    message = str(error.value)
    filled = [int(i) + 1 for i in np.flatnonzero(frame["Umsatz"].notna())]
    assert error.value.column == "Umsatz" and error.value.rows == filled, message
    assert 'set data.decimal: ","' in message and "data.categorical_columns" in message, message
    shown = frame["Umsatz"].dropna().head(20)
    assert not any(cell in message for cell in shown), "no cell content in the message"


def test_a_few_decimal_commas_in_a_column_of_whole_numbers_are_named_too():
    frame = pd.DataFrame({"id": [f"L{i}" for i in range(50)], "y": [0, 1] * 25,
                          "visits": ["3"] * 47 + ["3,5", "2", "1,25"]})
    data = DataConfig(form="snapshot", path="x.csv", id_column="id", label_column="y")
    with pytest.raises(InputError, match=r"column 'visits'.*2 of them.*\[2 row\(s\): 48, 50\].*data\.decimal: \",\""):
        snapshot_table(frame, data)


def test_a_declared_category_of_decimal_commas_is_not_refused():
    frame = pd.DataFrame({"id": [f"L{i}" for i in range(30)], "y": [0, 1] * 15, "band": ["1,5", "2,5", "3"] * 10})
    data = DataConfig(form="snapshot", path="x.csv", id_column="id", label_column="y", categorical_columns=["band"])
    table = snapshot_table(frame, data)
    assert "band" in table.feature_columns and table.frame["band"].tolist()[:2] == ["1,5", "2,5"]


def test_decimal_points_read_with_decimal_commas_are_refused_too():
    frame = pd.DataFrame({"id": [f"L{i}" for i in range(30)], "y": [0, 1] * 15,
                          "score": [f"{i / 7:.3f}" for i in range(30)]})
    data = DataConfig(form="snapshot", path="x.csv", id_column="id", label_column="y", decimal=",")
    with pytest.raises(InputError, match=r"column 'score'.*decimal point.*data\.decimal: \"\.\""):
        snapshot_table(frame, data)


def test_a_cli_training_on_decimal_commas_with_decimal_points_fails_as_bad_input(tmp_path):
    path = write_german(leads(200), tmp_path / "export.csv")
    with using_store(tmp_path):
        code, err = train(tmp_path, path, "refused")
    assert code == 4 and "'Umsatz'" in err and 'data.decimal: ","' in err, err[-2000:]


# Reading: ids, categories and dates untouched; only whole columns of numbers become numbers.
def test_a_whole_read_with_decimal_commas_leaves_ids_categories_and_dates_as_text(tmp_path):
    path = tmp_path / "export.csv"
    path.write_bytes(("id;amount;grouped;band;date;mixed;points\n"
                      "007;3,5;1.234,5;1,5;31.12.2025;3,5;3.5\n"
                      "008;-0,25;1.234.567;2,5;01.01.2024;unbekannt;4.25\n"
                      "009;;12;1,5;02.01.2024;4;5\n").encode("cp1252"))
    frame = read_table(path, text_columns=["id", "band"], decimal=",")
    assert frame["id"].tolist() == ["007", "008", "009"]
    assert frame["amount"].tolist()[:2] == [3.5, -0.25] and math.isnan(frame["amount"].iloc[2])
    assert frame["grouped"].tolist() == [1234.5, 1234567.0, 12.0]
    assert frame["band"].tolist() == ["1,5", "2,5", "1,5"], "a declared category keeps its text"
    assert frame["date"].tolist()[0] == "31.12.2025", "a date is no grouped number"
    assert not pd.api.types.is_numeric_dtype(frame["mixed"]), "a column with other text stays text for training"
    assert not pd.api.types.is_numeric_dtype(frame["points"]), "3.5 is not a number under a decimal comma"

    # And the streamed chunks (text) give the same numbers through the row checks
    chunk = next(open_table(path, ReadOptions(decimal=",")).chunks(["id", "amount", "grouped"], 10))
    typed, problems = row_problems(chunk, "id", ["amount", "grouped"], decimal=",")
    np.testing.assert_array_equal(typed["amount"], frame["amount"])
    np.testing.assert_array_equal(typed["grouped"], frame["grouped"])
    assert problems["reason"].isna().all()


def test_decimal_points_are_bad_values_in_a_chunk_read_with_decimal_commas():
    chunk = pd.DataFrame({"id": ["a", "b", "c", "d"], "x": ["3,5", "3.5", "1,234.5", None]})
    typed, problems = row_problems(chunk, "id", ["x"], decimal=",")
    assert problems["reason"].isna().tolist() == [True, False, False, True]
    assert problems["reason"].tolist()[1:3] == ["bad value", "bad value"]
    assert typed["x"].iloc[0] == 3.5 and math.isnan(typed["x"].iloc[3])


def test_the_default_decimal_point_is_unchanged():
    chunk = pd.DataFrame({"id": ["a", "b"], "x": ["3.5", "3,5"]})
    _, problems = row_problems(chunk, "id", ["x"])
    assert problems["reason"].isna().tolist() == [True, False] and problems["reason"].iloc[1] == "bad value"
    with pytest.raises(InputError, match="column 'x'"):
        validate_numeric(chunk, ["x"], "t")


# The config.
def test_decimal_is_a_point_by_default_and_only_a_point_or_a_comma():
    assert DataConfig(form="snapshot", path="x.csv", label_column="y").decimal == "."
    assert DataConfig(form="snapshot", path="x.csv", label_column="y", decimal=",").decimal == ","
    for wrong in (";", "comma", " ", ""):
        with pytest.raises(ConfigError, match=r"data\.decimal"):
            build_config({"data": {"form": "snapshot", "path": "x.csv", "label_column": "y", "decimal": wrong}})


# The one parser: German text of any float gives that float back, on every path.
GERMAN_FLOATS = st.tuples(st.floats(min_value=-1e12, max_value=1e12, allow_nan=False, allow_infinity=False),
                          st.integers(min_value=0, max_value=6))


@given(st.lists(GERMAN_FLOATS, min_size=1, max_size=20))
def test_german_text_of_a_float_reads_back_as_that_float(values):
    cells = pd.Series([german_number(v, d) for v, d in values], dtype=object)
    expected = np.array([float(f"{v:.{d}f}") for v, d in values])

    np.testing.assert_array_equal(parse_decimal_comma(cells), expected)
    np.testing.assert_array_equal(parse_decimal_comma(cells.astype("string")), expected)
    numbers, _, bad = read_numbers(cells, ",")
    assert not bad.any()
    np.testing.assert_array_equal(numbers.to_numpy(), expected)
    typed, problems = row_problems(pd.DataFrame({"id": range(len(cells)), "x": cells}), "id", ["x"], decimal=",")
    assert problems["reason"].isna().all()
    np.testing.assert_array_equal(typed["x"].to_numpy(), expected)
