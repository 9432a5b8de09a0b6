"""The scoring job's contract, the same on every engine: every row accounted for, the reject limit, atomic
publishing whose failures are output errors, engines chosen by name, and no training stack loaded."""

from __future__ import annotations

import errno
import importlib.util
import json
import os
import shutil
import subprocess
import sys

import pandas as pd
import pytest
from helpers import (
    CHAMPION,
    leads_to_score,
    read_output,
    temporary_files,
    with_problems,
)

from leadscore.config import ScoringConfig
from leadscore.errors import ConfigError, InputError, OutputError
from leadscore.scoring import score_file
from leadscore.scoring.job import engine_named

HAS_SPARK = importlib.util.find_spec("pyspark") is not None and bool(shutil.which("java") or os.environ.get("JAVA_HOME"))
ENGINES = ["pandas", pytest.param("spark", marks=pytest.mark.skipif(not HAS_SPARK, reason="needs PySpark and Java"))]


@pytest.fixture(scope="module")
def spark_if_asked(request, store):
    """A local Spark session on two cores for the spark cases, stopped at the end of the module."""
    sessions = []

    def start():
        if not sessions:
            from leadscore.scoring.spark_engine import spark_session

            session, _ = spark_session("local[2]")
            session.conf.set("spark.sql.shuffle.partitions", "4")
            sessions.append(session)

    yield start
    for session in sessions:
        session.stop()


def run(store, engine: str, frame: pd.DataFrame, name: str, spark_if_asked, **settings):
    if engine == "spark":
        spark_if_asked()
    path = store / f"{name}_input.csv"
    frame.to_csv(path, index=False)
    out = store / f"{name}_{engine}.parquet"
    return score_file(CHAMPION, path, out, settings=ScoringConfig(engine=engine, chunk_rows=64, **settings)), out


@pytest.mark.parametrize("engine", ENGINES)
def test_every_row_is_counted_once_and_the_outputs_hold_what_the_report_says(store, engine, spark_if_asked):
    # Given leads with one planted problem of each kind
    frame, planted = with_problems(leads_to_score(300, seed=61))

    # When the job scores them with a limit above their share
    report, out = run(store, engine, frame, "counted", spark_if_asked, max_reject_share=0.05)

    # Then the counts add up to the rows read, and the published outputs hold exactly those rows
    assert report.engine == engine
    assert report.rows_read == len(frame), "every row is read"
    assert report.rows_scored + report.rows_rejected == report.rows_read, "each row is scored or rejected"
    assert report.rows_rejected == len(planted)
    assert len(read_output(out)) == report.rows_scored, "the scores hold the scored rows"
    rejects = pd.read_csv(report.rejects)
    assert sorted(rejects["row"]) == sorted(planted), "the rejects hold the rejected rows"
    assert json.loads(open(report.drift_report).read())["rows"] == report.rows_scored, "drift counts the scored rows"
    assert not temporary_files(store), "no temporary file is left behind"


@pytest.mark.parametrize("engine", ENGINES)
def test_above_the_reject_limit_the_scores_are_not_published(store, engine, spark_if_asked):
    # Given leads of which more than the limit are bad
    frame, planted = with_problems(leads_to_score(300, seed=62))

    # When the job scores them, then it fails as bad input
    with pytest.raises(InputError, match="above the limit"):
        run(store, engine, frame, "refused", spark_if_asked, max_reject_share=0.01)

    # And no scores are published, while the rejects and the drift report say why
    out = store / f"refused_{engine}.parquet"
    assert not out.exists(), "scores are published only within the reject limit"
    assert len(pd.read_csv(store / f"refused_{engine}.rejects.csv")) == len(planted)
    assert (store / f"refused_{engine}.drift.json").exists()
    assert not temporary_files(store), "no temporary file is left behind"


class _RenameRefused:
    """A Hadoop file system that may not rename `target` (away or onto), as in a folder the job may not write."""

    def __init__(self, fs, target: str):
        self._fs, self._target = fs, target

    def rename(self, source, destination):
        if self._target in (source.toUri().getPath(), destination.toUri().getPath()):
            return False
        return self._fs.rename(source, destination)

    def __getattr__(self, name):
        return getattr(self._fs, name)


def refuse_to_publish(monkeypatch, engine: str, target) -> None:
    """Make the file system refuse to move the finished scores onto `target`."""
    if engine == "pandas":
        from leadscore.data import io

        replace = os.replace

        def refused(source, destination):
            if os.fspath(destination) == str(target):
                raise PermissionError(errno.EACCES, "Permission denied")
            replace(source, destination)

        monkeypatch.setattr(io.os, "replace", refused)
    else:
        from leadscore.scoring import spark_engine

        original = spark_engine._HadoopFiles._fs

        def refusing(self, path):
            fs, hadoop_path = original(self, path)
            return _RenameRefused(fs, str(target)), hadoop_path

        monkeypatch.setattr(spark_engine._HadoopFiles, "_fs", refusing)


@pytest.mark.parametrize("engine", ENGINES)
def test_a_publish_that_fails_is_an_output_error_and_keeps_the_previous_scores(store, engine, spark_if_asked,
                                                                              monkeypatch):
    # Given published scores
    _, out = run(store, engine, leads_to_score(100, seed=63), "kept", spark_if_asked)
    before = read_output(out)

    # When the next job cannot move its scores into place
    refuse_to_publish(monkeypatch, engine, out)
    with pytest.raises(OutputError) as failed:
        run(store, engine, leads_to_score(120, seed=64), "kept", spark_if_asked)

    # Then the failure is an output error (its own exit code) naming the output, and nothing else changed
    assert failed.value.exit_code == OutputError.exit_code
    assert str(out) in str(failed.value) and "untouched" in str(failed.value), str(failed.value)
    pd.testing.assert_frame_equal(read_output(out), before)
    assert not temporary_files(store), "no temporary file is left behind"


def test_engines_are_chosen_by_name_and_unknown_names_are_refused():
    assert engine_named("pandas").name == "pandas"
    with pytest.raises(ConfigError) as unknown:
        engine_named("dask")
    assert "'dask'" in str(unknown.value) and "pandas" in str(unknown.value) and "spark" in str(unknown.value)


def test_a_job_on_an_input_no_source_kind_reads_fails_before_loading_the_model(tmp_path):
    path = tmp_path / "leads.xlsx"
    path.write_bytes(b"spreadsheet")
    with pytest.raises(InputError) as refused:
        score_file("models:/no-such-model@champion", path, tmp_path / "out.csv")
    assert str(path) in str(refused.value) and "CSV" in str(refused.value) and "Parquet" in str(refused.value)


def test_scoring_loads_neither_the_training_nor_the_reporting_stack(store, tmp_path):
    # Given a fresh interpreter that scores a file with the champion
    leads = tmp_path / "leads.csv"
    leads_to_score(50, seed=65).to_csv(leads, index=False)
    script = (
        "import sys\n"
        "from leadscore.scoring import score_file\n"
        f"report = score_file({CHAMPION!r}, {str(leads)!r}, {str(tmp_path / 'out.csv')!r})\n"
        "assert report.rows_scored == 50, report\n"
        "print(sorted(m for m in sys.modules if m.startswith(('leadscore.training', 'leadscore.reporting'))))\n"
    )

    # When it runs, then it scores without importing any module of training/ or reporting/
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=300,
                          env=os.environ.copy(), cwd=store)
    assert done.returncode == 0, done.stderr[-3000:]
    assert done.stdout.strip().splitlines()[-1] == "[]", done.stdout
