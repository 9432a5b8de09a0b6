"""The planted-value search of issue 13, end to end: a German CRM export full of personal data goes through
`leadscore train`, `leadscore score` and `leadscore explain` (the public command line, in its own process,
with a SQLite MLflow store in a temporary folder), and not one planted value turns up in any file of the
store, in any output, or in anything the commands printed or logged.

The planted values are long and random-looking (`Vorname` values such as `Jürgenqvzhwk`), so that a match
by chance in compressed bytes (Parquet, PNG, pickles) is impossible and any match is a leak. Each value
is searched for as UTF-8 and as cp1252 bytes; Parquet files are also read back and searched as text, so
a value cannot hide in their compressed pages. The export is cp1252, `;`-separated, with leading-zero ids
and dates as `31.12.2025`. Decimal commas are left out: the readers take `.` as the decimal mark (there is
no `data.decimal` setting), so `3,5` would be text, refused as a stray value in a numeric column.
"""

from __future__ import annotations

import os
import string
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml

pytestmark = pytest.mark.slow  # trains a model and scores with it, each in a process of its own

ROWS = 1500
POOL = 12  # distinct planted values per column: few enough to be learned as categories if they were kept


def _token(rng: np.random.Generator, length: int = 9) -> str:
    return "".join(rng.choice(list(string.ascii_lowercase), length))


def _iban(rng: np.random.Generator) -> str:
    """A German IBAN with valid ISO 13616 check digits (mod 97), as the value scan requires."""
    account = "".join(str(d) for d in rng.integers(0, 10, 18))
    digits = account + "1314" + "00"  # D=13, E=14, check digits 00
    check = 98 - int(digits) % 97
    compact = f"DE{check:02d}{account}"
    return " ".join(compact[i:i + 4] for i in range(0, len(compact), 4))


def planted_pools(seed: int = 2026) -> dict[str, list[str]]:
    """Distinctive personal values for each personal column, named and innocently named."""
    rng = np.random.default_rng(seed)
    phone = lambda: f"+49 1{rng.integers(50, 80)} {rng.integers(1000000, 9999999)}"  # noqa: E731
    return {
        "E-Mail-Adresse": [f"{_token(rng)}.{_token(rng, 6)}@beispiel-gmbh.de" for _ in range(POOL)],
        "Telefonnummer": [phone() for _ in range(POOL)],
        "Vorname": [f"Jürgen{_token(rng)}" for _ in range(POOL)],
        "Nachname": [f"Müller{_token(rng)}" for _ in range(POOL)],
        "Straße": [f"{_token(rng).capitalize()}straße {rng.integers(1, 200)}" for _ in range(POOL)],
        "emailAddress": [f"{_token(rng)}@{_token(rng, 5)}.com" for _ in range(POOL)],
        "phoneNumber": [phone() for _ in range(POOL)],
        "linkedin_url": [f"https://www.linkedin.com/in/{_token(rng)}-{_token(rng, 5)}" for _ in range(POOL)],
        "notes": [f"Rückruf bei Frau Öztürk{_token(rng)} wegen Angebot {_token(rng, 6)}" for _ in range(POOL)],
        # Innocent names, personal values: found by the value scan alone.
        "source_detail": [f"{_token(rng)}.{_token(rng, 5)}@web-formular.de" for _ in range(4)],
        "comment": [phone() for _ in range(4)],
        "zahlungsreferenz": [_iban(rng) for _ in range(4)],
        "letzter_zugriff": [f"10.{rng.integers(10, 250)}.{rng.integers(10, 250)}.{rng.integers(10, 250)}" for _ in range(4)],
    }


def german_export(rows: int, seed: int, pools: dict[str, list[str]], labelled: bool = True) -> pd.DataFrame:
    """A CRM snapshot export as German systems write it, with the planted values in their columns."""
    rng = np.random.default_rng(seed)
    size = rng.choice(["1-10", "11-50", "51-200", "201+"], rows)
    visits = rng.poisson(3, rows)
    frame = pd.DataFrame({
        "Lead-ID": [f"{seed:02d}{i:05d}" for i in range(rows)],  # leading zeros: 0000123
        "Anlagedatum": (pd.Timestamp("2025-01-01") + pd.to_timedelta(np.arange(rows) * 3, unit="h")).strftime("%d.%m.%Y"),
        "Firmengröße": size,
        "Branche": rng.choice(["Maschinenbau", "Öffentlicher Dienst", "Handel", "Gesundheitswesen"], rows),
        "Besuche": visits,
    })
    for column, pool in pools.items():
        if column in ("source_detail", "comment", "zahlungsreferenz", "letzter_zugriff"):
            usual = {"source_detail": ["Messe", "Webinar", "Newsletter"], "comment": ["Rückruf", "kein Interesse"],
                     "zahlungsreferenz": ["Rechnung", "Vorkasse"], "letzter_zugriff": ["Webseite", "App"]}[column]
            cells = rng.choice(usual, rows).astype(object)
            planted = rng.random(rows) < 0.05
            cells[planted] = rng.choice(pool, int(planted.sum()))
            frame[column] = cells
        else:
            frame[column] = rng.choice(pool, rows)
    if labelled:
        logit = -2.5 + 0.35 * visits + np.select([size == "201+", size == "1-10"], [1.0, -1.0], 0.0)
        frame["konvertiert"] = rng.binomial(1, 1 / (1 + np.exp(-logit)))
    return frame


def write_cp1252(frame: pd.DataFrame, path: Path, ragged_row: int | None = None) -> Path:
    """`frame` as a cp1252, `;`-separated CSV file; `ragged_row` (1-based data row) gets one field too many."""
    lines = frame.to_csv(index=False, sep=";").splitlines()
    if ragged_row is not None:
        lines[ragged_row] += ";überzählig"
    path.write_bytes(("\r\n".join(lines) + "\r\n").encode("cp1252"))
    return path


def leadscore(*argv, cwd: Path, env: dict, log: Path) -> subprocess.CompletedProcess:
    """Run the installed command line in its own process, verbose; stdout and stderr kept in `log` too."""
    command = [str(Path(sys.executable).parent / "leadscore"), "-v", *map(str, argv)]
    done = subprocess.run(command, cwd=cwd, env=env, capture_output=True, text=True, timeout=800)
    log.write_text(done.stdout + "\n" + done.stderr)
    return done


def forms(value: str) -> set[bytes]:
    """The byte forms a value may be written in: UTF-8 and cp1252 (the same for plain ASCII)."""
    return {value.encode("utf-8"), value.encode("cp1252")}


def searchable_bytes(path: Path) -> list[bytes]:
    """The bytes of a file, plus, for Parquet, its cells as text (its pages may be compressed)."""
    content = [path.read_bytes()]
    if path.suffix == ".parquet" or (path.parent.suffix == ".parquet" and path.name.startswith("part-")):
        try:
            content.append(pd.read_parquet(path).to_csv(index=False).encode("utf-8"))
        except Exception:  # noqa: BLE001  (a Parquet footer or checksum file: its raw bytes are searched)
            pass
    return content


def test_no_planted_personal_value_reaches_the_store_the_outputs_or_the_logs(tmp_path):
    # Given a German CRM export (cp1252, ';', leading-zero ids, dates as 31.12.2025) with personal columns
    # named in German and camel case and personal values planted in innocently named columns
    pools = planted_pools()
    planted = sorted({value for pool in pools.values() for value in pool})
    inputs, store, outputs, logs = (tmp_path / name for name in ("inputs", "store", "outputs", "logs"))
    for folder in (inputs, store, outputs, logs):
        folder.mkdir()
    train_file = write_cp1252(german_export(ROWS, 0, pools), inputs / "export.csv")
    score_frame = german_export(300, 1, pools, labelled=False)
    score_file = write_cp1252(score_frame, inputs / "neue_leads.csv", ragged_row=17)
    # A whole read (explain) stops at a ragged row, naming its line: the lead is explained from a clean export.
    explain_file = write_cp1252(score_frame, inputs / "ein_lead.csv")
    exported = train_file.read_bytes() + score_file.read_bytes()
    assert all(any(form in exported for form in forms(value)) for value in planted), "the search finds what is there"
    config = inputs / "config.yaml"
    config.write_text(yaml.safe_dump({
        "data": {"form": "snapshot", "path": str(train_file), "id_column": "Lead-ID", "label_column": "konvertiert"},
        "model": {"min_conversions": 20, "lightgbm": {"n_estimators": 60}},
        "groups": {"fit": ["Firmengröße", "Branche"], "engagement": ["Besuche"]},
        "cutoffs": {"sql": {"policy": "top_fraction", "fraction": 0.1}},
        "points_baseline": [{"column": "Besuche", "op": ">=", "value": 4, "points": 20}],
        "tracking": {"experiment": "planted", "registered_model": "planted"},
    }, allow_unicode=True), encoding="utf-8")
    env = {**os.environ, "MLFLOW_TRACKING_URI": f"sqlite:///{store / 'mlflow.db'}"}
    model = "models:/planted@challenger"
    lead = score_frame["Lead-ID"].iloc[5]

    # When it is trained on, a file of new leads is scored and one lead is explained, all on the command line
    trained = leadscore("train", "--config", config, cwd=store, env=env, log=logs / "train.log")
    assert trained.returncode == 0, trained.stderr[-3000:]
    scored = leadscore("score", "--model", model, "--input", score_file, "--output", outputs / "scores.csv",
                       "--max-reject-share", 0.05, cwd=store, env=env, log=logs / "score.log")
    assert scored.returncode == 0, scored.stderr[-3000:]
    explained = leadscore("explain", "--model", model, "--input", explain_file, "--lead", lead, cwd=store, env=env,
                          log=logs / "explain.log")
    assert explained.returncode == 0, explained.stderr[-3000:]

    # Then the commands did what they were asked: scores joined back by the exact ids, the ragged row rejected
    scores = pd.read_csv(outputs / "scores.csv", dtype={"Lead-ID": str})
    assert set(scores["Lead-ID"]) <= set(score_frame["Lead-ID"]) and lead in set(scores["Lead-ID"]), "ids byte-exact"
    rejects = pd.read_csv(outputs / "scores.rejects.csv")
    assert rejects["row"].tolist() == [17], "the ragged row is one reject, with its row number"
    assert (outputs / "scores.drift.json").exists(), "the drift report is searched too"
    places = {
        **{f"store/{p.relative_to(store)}": p for p in store.rglob("*") if p.is_file()},
        **{f"outputs/{p.name}": p for p in outputs.iterdir() if p.is_file()},
        **{f"logs/{p.name}": p for p in logs.iterdir()},
    }
    assert any(name.endswith("mlflow.db") for name in places), "the SQLite store is searched"
    kinds = {"input_example", "serving_input_example", "model.pkl", "python_model.pkl", "model_card", ".parquet"}
    searched_kinds = {kind for kind in kinds if any(kind in name for name in places)}
    assert {"input_example", "model_card"} <= searched_kinds, f"the artifacts are in the store: {sorted(places)}"

    # And not one planted value, in either encoding, is in any of those places
    leaks, attacks = [], 0
    for name, path in sorted(places.items()):
        contents = searchable_bytes(path)
        for value in planted:
            for form in forms(value):
                attacks += 1
                if any(form in content for content in contents):
                    leaks.append((name, pools_column(pools, value)))
    print(f"\nplanted-value search: {len(planted)} planted values x {len(places)} places searched "
          f"(UTF-8 and cp1252 bytes, Parquet also as text) = {attacks} attacks, {len(leaks)} leaks")
    assert not leaks, f"planted values found (place, column): {sorted(set(leaks))[:10]}"


def pools_column(pools: dict[str, list[str]], value: str) -> str:
    """The column a planted value was planted in (named in a failure instead of the value itself)."""
    return next(column for column, pool in pools.items() if value in pool)
