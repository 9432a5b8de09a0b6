"""Hostile and messy input, generated: every case ends in correct output or a clear error.

The scoring job gets random tables shaped by the model's input schema (`lead_id`, `company_size`,
`visits`, plus extra columns): wrong types, NaN and infinities, empty and blank strings, huge and
negative counts, Unicode and very long strings, duplicate and missing ids, zero rows. Training gets
tiny tables with the same damage plus broken labels, one class only and timestamps in mixed zones, out
of order or in the future; event logs get activities in mixed zones, out of order and after the
scoring time. Nothing may crash, and no row may go missing.

The scoring cases share the session's champion model (trained once). Run with
`--hypothesis-show-statistics` to see how many cases ran; `HYPOTHESIS_PROFILE=thorough` runs more.
"""

from __future__ import annotations

import csv
import itertools
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from helpers import CHAMPION, build_config, make_snapshot, run_cli, snapshot_config
from hypothesis import event, given, note, settings
from hypothesis import strategies as st

from leadscore.config import Signal
from leadscore.errors import ConfigError, InputError, LeadscoreError
from leadscore.features.events import (
    EventFeatureSpec,
    EventLogLayout,
    features_as_of,
    load_event_log,
)
from leadscore.training.pipeline import train

SCHEMA = ("lead_id", "company_size", "visits")
KNOWN_SIZES = ["1-10", "11-50", "51-200", "201+"]
# Cells a CSV reader takes for "missing" (pyarrow's defaults): an id spelt like this is a missing id.
CSV_NULLS = {"", "#N/A", "#N/A N/A", "#NA", "-1.#IND", "-1.#QNAN", "-NaN", "-nan", "1.#IND", "1.#QNAN", "N/A",
             "NA", "NULL", "NaN", "n/a", "nan", "null"}

long_text = st.text(min_size=1, max_size=4).map(lambda t: t * 700)
ids = st.one_of(
    st.sampled_from(["L1", "L2", "L3", "lead-ä", "🙂", "  L4  "]),  # a small pool, so duplicates are common
    st.text(max_size=12), st.none(), st.just("   "), st.integers(-5, 10**15).map(str), long_text,
)
sizes = st.one_of(st.sampled_from(KNOWN_SIZES), st.none(), st.just(""), st.text(max_size=12), long_text)
counts = st.one_of(
    st.integers(-(10**18), 10**18), st.floats(allow_nan=True, allow_infinity=True), st.none(),
    st.sampled_from(["", " ", "seven", "inf", "-Infinity", "NaN", " 12 ", "1e400", "0x10", "true", "3,5", "١٢"]),
    st.text(max_size=8),
)
extra_values = st.one_of(st.text(max_size=20), st.integers(), st.floats(), st.none())


distinct_ids = st.text(min_size=1, max_size=12).filter(str.strip)


@st.composite
def lead_tables(draw, max_rows: int = 25) -> pd.DataFrame:
    """A table of leads to score: the model's columns in any order, with extra columns of any name.

    Half the tables have distinct, present ids, so that the other damage is not hidden behind bad ids.
    """
    n = draw(st.integers(0, max_rows))
    good_ids = draw(st.booleans())
    columns = {
        "lead_id": draw(st.lists(distinct_ids if good_ids else ids, min_size=n, max_size=n, unique=good_ids)),
        "company_size": draw(st.lists(sizes, min_size=n, max_size=n)),
        "visits": draw(st.lists(counts, min_size=n, max_size=n)),
    }
    for name in draw(st.lists(st.text(min_size=1, max_size=12), max_size=3, unique=True)):
        if name not in columns:
            columns[name] = draw(st.lists(extra_values, min_size=n, max_size=n))
    order = draw(st.permutations(list(columns)))
    return pd.DataFrame({name: pd.Series(columns[name], dtype=object) for name in order})


def write_input(frame: pd.DataFrame, path: Path) -> None:
    """As a CRM export would: every CSV cell quoted; Parquet with text columns, or numbers where all are numbers."""
    if path.suffix == ".csv":
        frame.to_csv(path, index=False, quoting=csv.QUOTE_ALL)
        return
    typed = {}
    for name in frame.columns:
        values = frame[name]
        numeric = values.map(lambda v: v is None or (isinstance(v, (int, float)) and not isinstance(v, bool))).all()
        typed[name] = values.astype("float64") if numeric and name == "visits" else values.map(
            lambda v: None if v is None else str(v)).astype("string")
    pd.DataFrame(typed).to_parquet(path, index=False)


def id_as_read(value, fmt: str) -> str | None:
    """The id a reader of the written file sees (None: missing)."""
    if value is None:
        return None
    text = str(value)
    return None if fmt == ".csv" and text in CSV_NULLS else text


cases = itertools.count()


@given(frame=lead_tables(), fmt=st.sampled_from([".csv", ".parquet"]), chunk_rows=st.integers(1, 8))
def test_scoring_accounts_for_every_row_or_fails_clearly(store, frame, fmt, chunk_rows):
    # Given a messy table of leads, written as a CRM export
    case = next(cases)
    source, output = store / f"messy_{case}{fmt}", store / f"messy_scores_{case}.parquet"
    write_input(frame, source)

    # When the scoring job reads it, in small chunks, accepting any share of rejects
    code, printed, err = run_cli("score", "--model", CHAMPION, "--input", source, "--output", output,
                           "--chunk-rows", chunk_rows, "--max-reject-share", 1)
    note(f"exit {code}: {err[-2000:]}")

    # Then it never crashes: an empty table is bad input, anything else is scored or rejected row by row
    assert "Traceback" not in err and "internal error" not in err, err
    if frame.empty:
        assert code == 4 and "no leads to score" in err and not output.exists(), err
        return
    assert code == 0, err
    event(f"{fmt}: {'no' if 'rejected 0 ' in printed else 'some'} rows rejected")
    scores = pd.read_parquet(output)
    rejects = pd.read_csv(store / f"messy_scores_{case}.rejects.csv", dtype=str, keep_default_na=False)
    rejected_rows = rejects["row"].astype(int).tolist()

    # And every input row is in exactly one of the outputs, scored rows keep their ids and order
    assert len(scores) + len(rejects) == len(frame), "each input row is scored or rejected"
    assert sorted(set(rejected_rows)) == sorted(rejected_rows) and set(rejected_rows) <= set(range(1, len(frame) + 1))
    kept = [i for i in range(len(frame)) if i + 1 not in set(rejected_rows)]
    expected_ids = [id_as_read(frame["lead_id"].iloc[i], fmt) for i in kept]
    assert scores["lead_id"].astype(str).tolist() == expected_ids, "scored rows keep their ids, in input order"
    assert scores["lead_id"].is_unique, "a lead is scored at most once"
    assert scores["p_convert"].between(0, 1).all(), "probabilities are probabilities"

    # And each rejected row has the reason that applies to it first
    for row, reason in zip(rejected_rows, rejects["reason"]):
        lead = id_as_read(frame["lead_id"].iloc[row - 1], fmt)
        earlier = {id_as_read(v, fmt) for v in frame["lead_id"].iloc[:row - 1]}
        if lead is None or not lead.strip():
            assert reason == "missing id", (row, reason)
        elif lead in earlier:
            assert reason == "duplicate id", (row, reason)
        else:
            assert reason == "bad value", (row, reason)
    for path in (source, output, *store.glob(f"messy_scores_{case}.*")):
        path.unlink(missing_ok=True)


@given(frame=lead_tables(max_rows=15))
def test_the_scorer_returns_one_row_per_lead_or_names_the_problem(scorer, frame):
    # Given any frame handed to the model itself (as `mlflow models serve` and Spark do)
    # When it is scored
    try:
        out = scorer.predict(frame)
    except InputError as exc:
        # Then either it is refused with the column at fault named
        assert exc.column in frame.columns or "no leads" in str(exc), str(exc)
        event(f"refused: column {exc.column}")
        return
    event("scored")
    # Or every lead gets exactly one row, in input order, with a probability and its reasons
    assert out["lead_id"].tolist() == frame["lead_id"].tolist()
    assert out["p_convert"].between(0, 1).all() and out["reasons"].notna().all()


# Damage that training must refuse with a clear input error, whatever else is wrong with the table.
FATAL = {"duplicate id", "blank id", "unparseable time", "infinite count", "one class", "three labels",
         "missing label", "no rows"}
DAMAGE = sorted(FATAL | {"text count", "huge count", "negative count", "nan count", "unicode size", "long size",
                         "empty size", "other zone", "naive time", "future time", "shuffle", "extra column",
                         "personal column"})


@st.composite
def training_tables(draw) -> tuple[pd.DataFrame, set[str]]:
    """A tiny snapshot table (`helpers.make_snapshot`) with some kinds of damage, and the kinds planted."""
    n = draw(st.integers(120, 200))
    frame = make_snapshot(n, seed=draw(st.integers(0, 10_000)))
    frame = frame.astype({c: object for c in frame.columns})
    # Time damage starts from each row's own instant as generated (tz-aware UTC): another kind of damage
    # may already have rewritten the cell (naive, in another zone, or unparseable) when it is drawn again.
    generated_at = pd.to_datetime(frame["created_at"], utc=True)
    planted = set(draw(st.lists(st.sampled_from(DAMAGE), max_size=4, unique=True)))
    rows = st.integers(0, n - 1)
    for kind in sorted(planted):
        row = draw(rows)
        if kind == "duplicate id":
            frame.loc[row, "lead_id"] = frame.loc[(row + 1) % n, "lead_id"]
        elif kind == "blank id":
            frame.loc[row, "lead_id"] = draw(st.sampled_from(["", "   ", None]))
        elif kind == "unparseable time":
            frame.loc[row, "created_at"] = draw(st.sampled_from(["last tuesday", "2025-13-45", "🙂"]))
        elif kind == "infinite count":
            frame.loc[row, "visits"] = draw(st.sampled_from([float("inf"), float("-inf")]))
        elif kind == "one class":
            frame["converted"] = draw(st.sampled_from([0, 1]))
        elif kind == "three labels":
            frame.loc[row, "converted"] = 2
        elif kind == "missing label":
            frame.loc[row, "converted"] = None
        elif kind == "no rows":
            frame = frame.iloc[:0]
            n = 0
            break
        elif kind == "text count":
            frame.loc[row, "visits"] = draw(st.text(min_size=1, max_size=10))
        elif kind == "huge count":
            frame.loc[row, "visits"] = 10**18
        elif kind == "negative count":
            frame.loc[row, "visits"] = draw(st.integers(-(10**9), -1))
        elif kind == "nan count":
            frame.loc[row, "visits"] = float("nan")
        elif kind in ("unicode size", "long size", "empty size"):
            frame.loc[row, "company_size"] = {"unicode size": "größe ✓ 🙂", "long size": "x" * 5000, "empty size": ""}[kind]
        elif kind in ("other zone", "naive time", "future time"):
            moment = generated_at[row]
            frame.loc[row, "created_at"] = {
                "other zone": moment.tz_convert("Asia/Kolkata").isoformat(),
                "naive time": moment.tz_localize(None).isoformat(),
                "future time": "2100-01-01T00:00:00-05:00",
            }[kind]
        elif kind == "shuffle":
            frame = frame.sample(frac=1, random_state=row).reset_index(drop=True)
        elif kind == "extra column":
            frame[draw(st.text(min_size=1, max_size=10).filter(lambda c: c not in frame.columns))] = draw(
                st.lists(extra_values, min_size=n, max_size=n))
        elif kind == "personal column":
            frame["phone_number"] = [f"+1 555 {i:04d}" for i in range(n)]
    return frame, planted


@pytest.mark.slow
@settings(max_examples=max(10, settings.default.max_examples // 2))
@given(table=training_tables())
def test_training_learns_from_every_row_or_fails_clearly(tmp_path_factory, table):
    # Given a tiny, possibly damaged, training table
    frame, planted = table
    folder = tmp_path_factory.mktemp("train_case")
    frame.to_csv(folder / "train.csv", index=False)
    raw = snapshot_config(folder / "train.csv")
    raw["model"] = {"min_conversions": 3, "lightgbm": {"n_estimators": 10}}
    note(f"planted: {sorted(planted)}")

    # When a model is trained on it
    try:
        result = train(build_config(raw))
    except (InputError, ConfigError) as exc:
        # Then a refusal is an error the user can act on
        note(str(exc))
        event(f"refused ({exc.__class__.__name__})")
        assert len(str(exc)) > 20 and "Fix" in str(exc) or isinstance(exc, ConfigError), str(exc)
        return
    except LeadscoreError as exc:  # pragma: no cover - any other kind is unexpected here
        pytest.fail(f"unexpected {exc.__class__.__name__}: {exc}")

    # Or, when it succeeds, no fatal damage was there and every row is accounted for
    event("trained")
    assert not planted & FATAL, f"trained despite {planted & FATAL}"
    split = result.split
    assert len(split.train) + len(split.calibration) + len(split.test) + split.purged_rows == len(frame)
    assert "phone_number" not in result.table.feature_columns, "personal columns never become features"
    p = result.scorer.predict_proba(split.test)
    assert np.isfinite(p).all() and ((p >= 0) & (p <= 1)).all()


instants = st.datetimes(min_value=pd.Timestamp("2024-01-01").to_pydatetime(),
                        max_value=pd.Timestamp("2031-01-01").to_pydatetime())
zones = st.sampled_from(["UTC", "Europe/Berlin", "America/Los_Angeles", "Asia/Kolkata", None])


def written(moment: pd.Timestamp, zone: str | None) -> str:
    """The same instant as an export might write it: in some zone, or naive (meaning UTC)."""
    return moment.tz_localize(None).isoformat() if zone is None else moment.tz_convert(zone).isoformat()


@given(
    leads=st.lists(st.tuples(instants, zones), min_size=1, max_size=8),
    events=st.lists(st.tuples(st.integers(0, 7), instants, zones, st.sampled_from(["visit", "demo"])), max_size=30),
    as_of=instants,
)
def test_event_features_count_only_what_happened_before_the_scoring_time(tmp_path_factory, leads, events, as_of):
    # Given an event log with times in mixed zones, out of order, some after the scoring time
    folder = tmp_path_factory.mktemp("events")
    utc = lambda moment: pd.Timestamp(moment, tz="UTC")  # noqa: E731
    lead_ids = [f"L{i}" for i in range(len(leads))]
    pd.DataFrame({"lead_id": lead_ids, "created_at": [written(utc(t), z) for t, z in leads]}).to_csv(
        folder / "leads.csv", index=False)
    events = [(lead_ids[i % len(leads)], utc(t), z, kind) for i, t, z, kind in events]
    pd.DataFrame({"lead_id": [e[0] for e in events], "timestamp": [written(e[1], e[2]) for e in events],
                  "activity_type": [e[3] for e in events]}, columns=["lead_id", "timestamp", "activity_type"]
                 ).to_csv(folder / "activities.csv", index=False)
    if not events:
        (folder / "activities.csv").write_text("lead_id,timestamp,activity_type\n")

    # When features are taken as of a moment
    layout = EventLogLayout()
    try:
        log = load_event_log(folder, layout, with_outcomes=False)
    except InputError as exc:
        assert not events and "no rows" in str(exc), str(exc)  # an empty activities table is refused
        return
    spec = EventFeatureSpec(layout, ("won", "lost"), (), {"visit": Signal(activity_type="visit")})
    features = features_as_of(log.leads, log.activities, utc(as_of), spec)

    # Then each lead has one row, whose counts hold exactly its visits strictly before that moment
    assert features["lead_id"].tolist() == lead_ids
    expected = [sum(1 for e in events if e[0] == lead and e[3] == "visit" and e[1] < utc(as_of)) for lead in lead_ids]
    assert features["visit_count"].tolist() == expected
    assert (features["days_since_last_activity"].dropna() > 0).all(), "nothing from the scoring time or later"


# Hostile generators (issue 13): encodings, personal names in four languages, personal values, future
# timestamps, leading-zero ids and formula cells. None trains a model: they check the reading and personal
# data rules directly, so they run in the default (derandomized) profile in seconds.
from leadscore.data.personal import personal_decisions  # noqa: E402
from leadscore.data.sources import open_table, read_table  # noqa: E402
from leadscore.data.streams import TableWriter  # noqa: E402

ENCODINGS = st.sampled_from(["utf-8", "utf-8-sig", "cp1252", "latin-1"])
SEPARATORS = st.sampled_from([",", ";", "\t", "|"])
PERSONAL_NAMES = st.sampled_from([
    "email", "E-Mail-Adresse", "emailAddress", "correo electrónico", "courriel", "phone_number", "Telefonnummer",
    "phoneNumber", "téléphone", "teléfono", "first name", "Vorname", "Nachname", "prénom", "apellidos",
    "Straße", "street-address", "dirección", "linkedin_url", "IBAN", "Geburtsdatum", "fecha de nacimiento",
])
PERSONAL_VALUES = st.sampled_from([
    "anna.schmidt@example.de", "+49 170 1234567", "0049 30 12345678", "DE89 3704 0044 0532 0130 00",
    "https://www.linkedin.com/in/anna-schmidt", "192.168.10.25", "2001:db8::8a2e:370:7334", "612 34 56 78",
])
LEADING_ZERO_IDS = st.lists(st.from_regex(r"0{1,4}[1-9][0-9]{0,4}", fullmatch=True), min_size=1, max_size=12, unique=True)
FORMULA_CELLS = st.builds(lambda start, rest: start + rest, st.sampled_from(["=", "+", "-", "@", "\t", "\r"]),
                          st.text(alphabet="ABC1(),!| ", min_size=1, max_size=12))
GERMAN_TEXT = st.text(alphabet="abcäöüßÄÖÜéè °-", min_size=1, max_size=10)  # all four encodings hold these.map(str.strip).filter(bool)


@settings(max_examples=25)  # each case writes and reads a file
@given(ids=LEADING_ZERO_IDS, encoding=ENCODINGS, separator=SEPARATORS, texts=st.data())
def test_any_encoding_and_separator_reads_the_same_table_and_ids_stay_text(tmp_path_factory, ids, encoding, separator, texts):
    values = [texts.draw(GERMAN_TEXT) for _ in ids]
    path = tmp_path_factory.mktemp("enc") / "t.csv"
    frame = pd.DataFrame({"lead_id": ids, "Firmengröße": values})
    path.write_bytes(frame.to_csv(index=False, sep=separator).encode(encoding))
    whole = read_table(path, text_columns=["lead_id"])
    chunks = pd.concat(open_table(path).chunks(["lead_id", "Firmengröße"], 5), ignore_index=True)
    assert whole["lead_id"].tolist() == ids and chunks["lead_id"].tolist() == ids, "ids byte-exact as text"
    assert chunks["Firmengröße"].str.strip().tolist() == [v.strip() for v in values]


@given(name=PERSONAL_NAMES, value=PERSONAL_VALUES, seed=st.integers(0, 3))
def test_personal_names_and_values_are_always_found(name, value, seed):
    n = 40
    frame = pd.DataFrame({
        name: [f"x{i}" for i in range(n)],
        "source_detail": ["webinar"] * (n - 1) + [value],  # one planted value in an innocent column
        "company_size": ["1-10"] * n,
    })
    decided = {d.column: d for d in personal_decisions(frame, seed=seed)}
    assert decided[name].personal, decided[name]
    assert decided["source_detail"].personal and decided["source_detail"].kind == "value"
    assert not decided["company_size"].personal
    assert all(value not in d.why for d in decided.values()), "decisions never quote a value"


@settings(max_examples=25)
@given(cells=st.lists(FORMULA_CELLS, min_size=1, max_size=10))
def test_formula_cells_never_reach_a_csv_output_as_formulas(tmp_path_factory, cells):
    path = tmp_path_factory.mktemp("formula") / "o.csv"
    with TableWriter(path, ".csv") as writer:
        writer.write(pd.DataFrame({"reason_1": cells}))
    written = pd.read_csv(path, dtype=str, keep_default_na=False, skip_blank_lines=False)["reason_1"]
    for cell in written:
        number = cell.lstrip("+-").replace(".", "", 1).isdigit()
        assert number or not cell.startswith(("=", "+", "-", "@", "\t", "\r")), repr(cell)


@given(years_ahead=st.integers(1, 200), as_of_given=st.booleans())
def test_future_activities_never_move_the_default_scoring_time(years_ahead, as_of_given):
    from leadscore.scoring.events import scoring_time

    now = pd.Timestamp("2026-06-01", tz="UTC")
    past = pd.to_datetime(["2026-01-01", "2026-05-01"], utc=True)
    times = pd.Series([*past, now + pd.DateOffset(years=years_ahead)])
    moment = scoring_time(times, "2026-03-01" if as_of_given else None, now=now)
    expected = pd.Timestamp("2026-03-01", tz="UTC") if as_of_given else past[-1] + pd.Timedelta(seconds=1)
    assert moment == expected
