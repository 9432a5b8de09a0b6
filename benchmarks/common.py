"""Set-up shared by the benchmarks: a trained champion in a throwaway MLflow store, scoring inputs of
any size, and a way to run `leadscore score` measuring its wall time and peak memory.

Scoring inputs are snapshot Parquet files: the features of `distinct` synthetic leads (the funnel
generator, features as of one date with the training code), repeated until the file has the rows
asked for, each copy with its own lead ids. Every row costs the model the same whatever its values,
so repeating rows changes no timing; it keeps building a 10 million row file to a minute.
Row groups hold 100,000 rows, as a typical export does.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import yaml

REPO = Path(__file__).resolve().parents[1]
CHAMPION = "models:/leadscore@champion"
ROW_GROUP = 100_000


def cpu_time() -> float:
    """CPU seconds used so far by this process, its finished child processes and its live ones.

    Training runs independent fits in worker processes (`leadscore.training.parallel`), whose work
    `time.process_time` does not see; a difference of two readings covers them, live or finished."""
    import psutil

    me = psutil.Process()
    times = me.cpu_times()
    total = times.user + times.system + times.children_user + times.children_system
    for child in me.children(recursive=True):
        try:
            child_times = child.cpu_times()
        except psutil.NoSuchProcess:  # finished meanwhile: counted among the finished children once reaped
            continue
        total += child_times.user + child_times.system
    return total


def leadscore(*argv, env: dict) -> subprocess.CompletedProcess:
    """Run the `leadscore` command of this interpreter's environment."""
    command = [sys.executable, "-m", "leadscore.cli", *map(str, argv)]
    result = subprocess.run(command, env=env, capture_output=True, text=True)
    if result.returncode != 0:
        raise SystemExit(f"{' '.join(command)} failed ({result.returncode}):\n{result.stderr[-3000:]}")
    return result


# Columns of the demo config that only a funnel generated with accounts has.
_ACCOUNT_ONLY_COLUMNS = ("buying_role", "employees")


def lead_demo_config(data_path: Path) -> dict:
    """The demo config (configs/demo.yaml) at `data_path`, for a funnel generated without accounts: the benchmarks
    measure the lead model, so the accounts section and the account-only columns are left out."""
    raw = yaml.safe_load((REPO / "configs" / "demo.yaml").read_text())
    raw["data"]["path"] = str(data_path)
    raw.pop("accounts", None)
    raw["groups"]["fit"] = [c for c in raw["groups"]["fit"] if c not in _ACCOUNT_ONLY_COLUMNS]
    return raw


def train_champion(workdir: Path, leads: int = 20_000, seed: int = 7, **overrides) -> dict:
    """Train the demo config on a synthetic funnel and make it champion; the environment pointing at it.

    `overrides` replace whole config sections (e.g. `model={"candidates": ["lightgbm"]}`).
    """
    from leadscore.synthetic.funnel import generate_to_dir

    history = workdir / "history"
    if not history.exists():
        generate_to_dir(leads, seed, history)
    raw = lead_demo_config(history)
    for section, value in overrides.items():
        raw[section] = value
    config = workdir / "benchmark.yaml"
    config.write_text(yaml.safe_dump(raw))
    env = {**os.environ, "MLFLOW_TRACKING_URI": f"sqlite:///{workdir / 'mlflow.db'}"}
    trained = workdir / "trained"  # a kept workdir already holds the champion
    if not trained.exists():
        leadscore("train", "--config", config, env=env)
        leadscore("promote", "--name", "leadscore", "--force", env=env)
        trained.touch()
    return env


def scoring_setup(workdir: Path | None, prefix: str) -> tuple[Path, dict, pd.DataFrame]:
    """The folder (a new temporary one unless given), the environment of a LightGBM-only champion
    without dimension models (one booster, so that the raw booster is the fair reference), and the
    feature table that scoring inputs repeat."""
    workdir = workdir or Path(tempfile.mkdtemp(prefix=prefix))
    workdir.mkdir(parents=True, exist_ok=True)
    env = train_champion(workdir, model={"seed": 7, "candidates": ["lightgbm"]}, groups={})
    return workdir, env, feature_table(env, workdir)


def feature_table(env: dict, workdir: Path, distinct: int = 100_000, seed: int = 8) -> pd.DataFrame:
    """Id and feature columns of `distinct` fresh synthetic leads, as of the end of their funnel."""
    import mlflow

    from leadscore.features.events import features_as_of, load_event_log
    from leadscore.registry.loading import load_model
    from leadscore.synthetic.funnel import generate_to_dir

    mlflow.set_tracking_uri(env["MLFLOW_TRACKING_URI"])
    os.environ["MLFLOW_TRACKING_URI"] = env["MLFLOW_TRACKING_URI"]
    scorer = load_model(CHAMPION).scorer
    fresh = workdir / f"fresh_{distinct}"
    if not fresh.exists():
        generate_to_dir(distinct, seed, fresh, start="2026-01-01", days=300)
    log = load_event_log(fresh, scorer.event_spec.layout, with_outcomes=False)
    features = features_as_of(log.leads, log.activities, pd.Timestamp("2026-11-01", tz="UTC"), scorer.event_spec)
    return features[[scorer.id_column, *scorer.feature_columns]]


def write_repeated(features: pd.DataFrame, rows: int, path: Path) -> Path:
    """A Parquet file of `rows` rows: `features` repeated, each copy's ids suffixed to stay unique."""
    if path.exists() and pq.ParquetFile(path).metadata.num_rows == rows:
        return path
    id_column = features.columns[0]
    base = pa.Table.from_pandas(features, preserve_index=False)
    with pq.ParquetWriter(path, base.schema) as writer:
        written, copy = 0, 0
        while written < rows:
            for start in range(0, len(features), ROW_GROUP):
                part = features.iloc[start:min(start + ROW_GROUP, len(features), start + rows - written)]
                if part.empty:
                    break
                part = part.assign(**{id_column: part[id_column].astype("string") + f"-{copy}"})
                writer.write_table(pa.Table.from_pandas(part, schema=base.schema, preserve_index=False))
                written += len(part)
            copy += 1
    return path


@dataclass(frozen=True)
class Run:
    """One measured run of a command."""

    seconds: float
    max_rss_mb: float
    stdout: str
    stderr: str

    def loop_rate(self) -> float | None:
        """The scoring loop's own rows per second, from its last progress line (model loading excluded)."""
        rates = re.findall(r"leadscore score: [\d,]+ rows, ([\d,]+) rows/s", self.stderr)
        return float(rates[-1].replace(",", "")) if rates else None


# Started from this small launcher, a job's peak memory is its own: the kernel gives a child that
# execs the peak of the process that started it, when that one is larger (here, the benchmark itself).
_LAUNCHER = """
import os, subprocess, sys
process = subprocess.Popen(sys.argv[1:])
_, status, usage = os.wait4(process.pid, 0)
print(usage.ru_maxrss, file=sys.stderr)
sys.exit(os.waitstatus_to_exitcode(status))
"""


def measure(argv: list, env: dict) -> Run:
    """Run `leadscore <argv>` in a child process; its wall time and peak resident memory (ru_maxrss)."""
    command = [sys.executable, "-m", "leadscore.cli", *map(str, argv)]
    with tempfile.TemporaryFile("w+") as out, tempfile.TemporaryFile("w+") as err:
        started = time.perf_counter()
        code = subprocess.run([sys.executable, "-c", _LAUNCHER, *command], env=env, stdout=out, stderr=err).returncode
        seconds = time.perf_counter() - started
        stdout, stderr, peak_mb = launched_output(command, code, out, err)
    return Run(seconds, peak_mb, stdout, stderr)


def launched_output(command: list, code: int, out, err) -> tuple[str, str, float]:
    """The stdout and stderr of a command started through `_LAUNCHER` (files `out`, `err`), and its peak resident
    memory in MB, which the launcher prints last on stderr; a failed command stops the benchmark."""
    out.seek(0)
    err.seek(0)
    stdout, stderr = out.read(), err.read()
    if code != 0:
        raise SystemExit(f"{' '.join(command)} failed ({code}):\n{stderr[-3000:]}")
    stderr, _, max_rss_kb = stderr.rstrip("\n").rpartition("\n")
    return stdout, stderr, int(max_rss_kb) / 1024


def machine() -> str:
    """Cores and memory, for the record."""
    memory_gb = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30
    return f"{os.cpu_count()} cores, {memory_gb:.0f} GB, Python {sys.version.split()[0]}"
