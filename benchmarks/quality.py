"""Model quality: leadscore's default training against what a data scientist builds in an afternoon.

Every contender sees the same feature columns (the config's, as leadscore reads them) and, per
protocol, the same training rows and the same test rows:
- leadscore: `leadscore.training.pipeline.train` with the data set's config, given only the training rows,
  inside which it makes its own train / calibration / test windows (by row order out of time, at random
  otherwise; its own test window shrunk to 5 %, since the benchmark's test rows do the testing); scored
  on the test rows with `result.scorer.predict_proba`. Its fit time is the whole training run, with
  the dimension models, explanations and reports.
- plain logistic: one-hot categories, median-imputed and standardised numbers, scikit-learn defaults.
- default LightGBM: `LGBMClassifier()` with its default parameters, on native categoricals.
- FLAML AutoML with a `--automl-seconds` budget (default 60), its default search and metric (ROC AUC);
  out of time it is told the rows are in time order (`split_type="time"`).
- the points baseline where the config has one: the points rank the leads, and the conversion rate per
  points level on the training rows (isotonic) turns them into probabilities.

Protocols:
- `random`: stratified, 80 % train and 20 % test.
- `out_of_time`: rows in time order, the earlier ones train and the latest ~20 % test, whole periods
  on one side of the cut. The order is the config's time column, the row order when the config says
  `split.method: row_order`, or a calendar column named in `CALENDAR_ORDER`. Without any, the data
  set runs the random protocol only.

The table goes to stdout and, as markdown, to `--output`. Targets: leadscore's test ROC AUC at least
the best alternative's on every data set and protocol, ECE at most 0.02 on random splits, and
training within 60 seconds.

    pip install -e '.[bench]'
    python benchmarks/quality.py [CONFIG ...] [--data CSV] [--automl-seconds 60] [--cores 2]
"""

from __future__ import annotations

import argparse
import os
import platform
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timezone
from importlib.metadata import version
from pathlib import Path

import lightgbm as lgb
import numpy as np
import pandas as pd
from sklearn.compose import ColumnTransformer
from sklearn.impute import SimpleImputer
from sklearn.isotonic import IsotonicRegression
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import train_test_split
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import OneHotEncoder, StandardScaler
from threadpoolctl import threadpool_limits

from leadscore.config import Config, load_config, parse_config
from leadscore.errors import LeadscoreError
from leadscore.model.rules import points_score
from leadscore.reporting.metrics import probability_metrics, ranking_metrics
from leadscore.training.dataset import TrainingTable, load_training_table
from leadscore.training.pipeline import train

REPO = Path(__file__).parents[1]
SHIPPED = [REPO / "configs" / "bank_marketing.yaml", REPO / "configs" / "online_shoppers.yaml"]
DEFAULT_OUTPUT = REPO / "benchmarks" / "results" / "quality.md"
TEST_FRACTION = 0.2
INTERNAL_TEST_FRACTION = 0.05
ECE_TARGET = 0.02
SECONDS_TARGET = 60.0

# Data sets whose only time information is a calendar column: the column and its values in time order.
# The online shoppers sessions cover one year, so the month orders them (the file itself is only
# partly sorted).
CALENDAR_ORDER = {
    "online_shoppers": ("Month", ["Jan", "Feb", "Mar", "Apr", "May", "June", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"]),
}
METRICS = ("roc_auc", "pr_auc", "brier", "log_loss", "ece", "top_decile_lift")
HEADERS = ("ROC AUC", "PR AUC", "Brier", "log loss", "ECE", "lift@10%", "fit s", "fit CPU s")


@dataclass(frozen=True)
class DataSet:
    """A config, the table leadscore reads from it, and the time order of its rows if it has one."""

    name: str
    cfg: Config
    table: TrainingTable
    time_order: pd.Series | None  # sortable key per row, in the table's index; None: no honest time order
    time_note: str


@dataclass(frozen=True)
class Protocol:
    """One split shared by every contender: positions of the training and test rows."""

    name: str
    train: np.ndarray
    test: np.ndarray
    note: str


@dataclass(frozen=True)
class Row:
    """One contender's result on one data set and protocol."""

    dataset: str
    protocol: str
    model: str
    metrics: dict[str, float]
    seconds: float  # wall clock of the fit
    cpu_seconds: float  # CPU time of the fit over all threads: less sensitive to other work on the machine


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("configs", nargs="*", type=Path, help="leadscore configs (default: the shipped real-data ones)")
    parser.add_argument("--data", help="CSV or Parquet file to use instead of the single config's data.path")
    parser.add_argument("--automl-seconds", type=float, default=60.0, help="FLAML time budget; 0 leaves AutoML out")
    parser.add_argument("--cores", type=int, default=2, help="threads every contender may use")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--protocols", nargs="+", choices=["random", "out_of_time"], default=["random", "out_of_time"])
    parser.add_argument("--output", type=Path, default=DEFAULT_OUTPUT, help="markdown file for the table")
    args = parser.parse_args()
    if args.data and len(args.configs) != 1:
        parser.error("--data needs exactly one config")
    automl = _automl_fitter(args.automl_seconds, args.cores, args.seed) if args.automl_seconds > 0 else None

    datasets = [d for d in (_load(path, args.data) for path in (args.configs or SHIPPED)) if d is not None]
    if not datasets:
        sys.exit("no data set found: put the data in ../shared/data or set LEADSCORE_DATA_DIR")
    rows, notes, load_at_start = [], [], os.getloadavg()[0]
    with threadpool_limits(limits=args.cores), tempfile.TemporaryDirectory() as workdir:
        for dataset in datasets:
            notes.append(f"- {dataset.name}: {dataset.time_note}")
            for protocol in _protocols(dataset, args.protocols, args.seed):
                notes.append(f"- {dataset.name}, {protocol.name}: {protocol.note}")
                print(f"{dataset.name}, {protocol.name}: {protocol.note}", file=sys.stderr)
                rows.extend(_run(dataset, protocol, automl, args.cores, args.seed, Path(workdir)))
    load_at_end, cores = os.getloadavg()[0], os.cpu_count() or 1
    busy = ("above the core count, other work slowed the wall-clock times (the CPU times much less)"
            if max(load_at_start, load_at_end) > cores else "not above the core count")
    notes.append(f"- machine load (1-minute average) {load_at_start:.1f} at the start and {load_at_end:.1f} at the "
                 f"end, on {cores} cores: {busy}")
    report = _report(rows, notes, args)
    print(report)
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(report)


def _load(path: Path, data: str | None) -> DataSet | None:
    """Read a data set through leadscore's own loader, or say why it is skipped."""
    cfg = load_config(path)
    if data:
        cfg = cfg.model_copy(update={"data": cfg.data.model_copy(update={"path": str(Path(data).resolve())})})
    if cfg.data.form != "snapshot":
        print(f"skipping {path.name}: the benchmark takes snapshot tables", file=sys.stderr)
        return None
    try:
        table = load_training_table(cfg)
    except LeadscoreError as exc:
        print(f"skipping {path.name}: {exc}", file=sys.stderr)
        return None
    name = path.stem
    frame = table.frame
    if table.time_column:
        return DataSet(name, cfg, table, frame[table.time_column], f"time order from column `{table.time_column}`")
    if cfg.split.method == "row_order":
        return DataSet(name, cfg, table, pd.Series(np.arange(len(frame)), index=frame.index), "rows are in time order")
    if name in CALENDAR_ORDER:
        column, values = CALENDAR_ORDER[name]
        rank = frame[column].map({value: i for i, value in enumerate(values)})
        if rank.notna().all():
            return DataSet(name, cfg, table, rank, f"time order from the calendar column `{column}` (one year)")
    return DataSet(name, cfg, table, None, "no time order: random protocol only")


def _protocols(dataset: DataSet, wanted: list[str], seed: int) -> list[Protocol]:
    y = dataset.table.frame[dataset.table.label_column].to_numpy()
    positions = np.arange(len(y))
    out = []
    if "random" in wanted:
        train_rows, test_rows = train_test_split(positions, test_size=TEST_FRACTION, stratify=y, random_state=seed)
        out.append(Protocol("random", np.sort(train_rows), np.sort(test_rows), _describe(y, train_rows, test_rows)))
    if "out_of_time" in wanted and dataset.time_order is not None:
        key = dataset.time_order.to_numpy()
        order = np.argsort(key, kind="stable")
        cut = key[order[int(len(order) * (1 - TEST_FRACTION))]]
        # Rows of the period at the cut all go to test, so no period is on both sides.
        train_rows, test_rows = order[key[order] < cut], order[key[order] >= cut]
        out.append(Protocol("out_of_time", train_rows, test_rows, _describe(y, train_rows, test_rows)))
    return out


def _describe(y: np.ndarray, train_rows: np.ndarray, test_rows: np.ndarray) -> str:
    return (f"train {len(train_rows):,} rows ({y[train_rows].mean():.1%} converted), "
            f"test {len(test_rows):,} rows ({y[test_rows].mean():.1%} converted)")


def _run(dataset: DataSet, protocol: Protocol, automl, cores: int, seed: int, workdir: Path) -> list[Row]:
    table = dataset.table
    train_frame, test_frame = table.frame.iloc[protocol.train], table.frame.iloc[protocol.test]
    X_train, X_test = _typed(train_frame[table.feature_columns], test_frame[table.feature_columns])
    fold = Fold(train_frame, test_frame, X_train, X_test, train_frame[table.label_column].to_numpy(),
                test_frame[table.label_column].to_numpy(), ordered=protocol.name == "out_of_time")
    contenders: dict[str, Callable[[Fold], Callable[[], np.ndarray]]] = {
        "leadscore": lambda f: _fit_leadscore(dataset, f, workdir),
        "plain logistic": lambda f: _fit_logistic(f, seed),
        "default LightGBM": lambda f: _fit_lightgbm(f, cores, seed),
    }
    if automl is not None:
        contenders["FLAML AutoML"] = automl
    rows = []
    for name, fit in contenders.items():
        start, cpu_start = time.perf_counter(), time.process_time()
        predict = fit(fold)
        seconds, cpu_seconds = time.perf_counter() - start, time.process_time() - cpu_start
        metrics = probability_metrics(fold.y_test, np.clip(predict(), 0.0, 1.0))
        rows.append(Row(dataset.name, protocol.name, name, metrics, seconds, cpu_seconds))
        print(f"  {name}: ROC AUC {metrics['roc_auc']:.4f}, ECE {metrics['ece']:.4f}, {seconds:.1f} s", file=sys.stderr)
    if dataset.cfg.points_baseline:
        metrics, seconds = _points(dataset.cfg, fold)
        rows.append(Row(dataset.name, protocol.name, "points baseline", metrics, seconds, seconds))
    return rows


@dataclass(frozen=True)
class Fold:
    """One protocol's rows: raw frames (for leadscore and the points), typed features (for the others), labels."""

    train_frame: pd.DataFrame
    test_frame: pd.DataFrame
    X_train: pd.DataFrame
    X_test: pd.DataFrame
    y_train: np.ndarray
    y_test: np.ndarray
    ordered: bool  # out of time: the training rows are in time order


def _typed(train_frame: pd.DataFrame, test_frame: pd.DataFrame) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Numbers as floats, everything else categorical with the training rows' categories (others missing)."""
    train_out, test_out = {}, {}
    for column in train_frame.columns:
        values = train_frame[column]
        if pd.api.types.is_numeric_dtype(values) or pd.api.types.is_bool_dtype(values):
            train_out[column] = values.astype("float64")
            test_out[column] = test_frame[column].astype("float64")
        else:
            categories = sorted(values.dropna().astype(str).unique())
            for out, frame in ((train_out, train_frame), (test_out, test_frame)):
                text = frame[column].astype("string")
                out[column] = pd.Categorical(text.where(text.isin(categories)), categories=categories)
    return pd.DataFrame(train_out, index=train_frame.index), pd.DataFrame(test_out, index=test_frame.index)


def _fit_leadscore(dataset: DataSet, fold: Fold, workdir: Path) -> Callable[[], np.ndarray]:
    """leadscore's default training on the training rows only, with the data set's config."""
    path = workdir / f"{dataset.name}_{'ordered' if fold.ordered else 'random'}.parquet"
    fold.train_frame.to_parquet(path, index=False)
    table = dataset.table
    raw = dataset.cfg.model_dump(mode="json")
    raw["data"].update(path=str(path), id_column=table.id_column, positive_label=1, personal_columns=[])
    # The benchmark's test rows do the testing, so leadscore's own test window shrinks to what it must
    # have; training and calibration windows keep their configured proportion.
    split = raw["split"]
    share = (1 - INTERNAL_TEST_FRACTION) / (split["train_fraction"] + split["calibration_fraction"])
    split["train_fraction"] *= share
    split["calibration_fraction"] = 1 - INTERNAL_TEST_FRACTION - split["train_fraction"]
    split["test_fraction"] = INTERNAL_TEST_FRACTION
    if not table.time_column:
        # Out of time the rows were written in time order; in a random sample their order means nothing.
        raw["split"]["method"] = "row_order" if fold.ordered else "random"
    elif not fold.ordered:
        raw["split"]["method"] = "random"
    result = train(parse_config(raw, source=f"{dataset.name} benchmark config"))
    return lambda: result.scorer.predict_proba(fold.test_frame)


def _fit_logistic(fold: Fold, seed: int) -> Callable[[], np.ndarray]:
    X = fold.X_train
    numeric = [c for c in X.columns if not isinstance(X[c].dtype, pd.CategoricalDtype)]
    categorical = [c for c in X.columns if c not in numeric]
    model = make_pipeline(
        ColumnTransformer([
            ("numeric", make_pipeline(SimpleImputer(strategy="median"), StandardScaler()), numeric),
            ("categorical", OneHotEncoder(handle_unknown="ignore"), categorical),
        ]),
        LogisticRegression(max_iter=5000, random_state=seed),
    ).fit(X, fold.y_train)
    return lambda: model.predict_proba(fold.X_test)[:, 1]


def _fit_lightgbm(fold: Fold, cores: int, seed: int) -> Callable[[], np.ndarray]:
    model = lgb.LGBMClassifier(n_jobs=cores, random_state=seed, verbose=-1).fit(fold.X_train, fold.y_train)
    return lambda: model.predict_proba(fold.X_test)[:, 1]


def _automl_fitter(seconds: float, cores: int, seed: int) -> Callable[[Fold], Callable[[], np.ndarray]]:
    """FLAML with a time budget, or exit saying which extra to install."""
    try:
        from flaml import AutoML
    except ImportError:
        sys.exit("FLAML is not installed: pip install -e '.[bench]' (or run with --automl-seconds 0)")

    def fit(fold: Fold) -> Callable[[], np.ndarray]:
        automl = AutoML()
        automl.fit(fold.X_train, fold.y_train, task="classification", time_budget=seconds, n_jobs=cores, seed=seed,
                   verbose=0, log_file_name="", split_type="time" if fold.ordered else "auto")
        return lambda: automl.predict_proba(fold.X_test)[:, 1]

    return fit


def _points(cfg: Config, fold: Fold) -> tuple[dict[str, float], float]:
    """Rank metrics from the points themselves, probability metrics from the points' conversion rates."""
    start = time.perf_counter()
    points_train = points_score(fold.train_frame, cfg.points_baseline)
    to_probability = IsotonicRegression(out_of_bounds="clip", y_min=0, y_max=1).fit(points_train, fold.y_train)
    seconds = time.perf_counter() - start
    points_test = points_score(fold.test_frame, cfg.points_baseline)
    p = to_probability.predict(points_test)
    return {**probability_metrics(fold.y_test, p), **ranking_metrics(fold.y_test, points_test)}, seconds


def _report(rows: list[Row], notes: list[str], args: argparse.Namespace) -> str:
    """The markdown report: how it was made, the table, and each target met or missed."""
    command = " ".join(["python benchmarks/quality.py", *sys.argv[1:]])
    lines = [
        "# Model quality benchmark",
        "",
        f"`{command}` on {datetime.now(timezone.utc):%Y-%m-%d}, {min(args.cores, os.cpu_count() or 1)} cores "
        f"({platform.processor() or platform.machine()}); leadscore {version('leadscore')}, LightGBM "
        f"{version('lightgbm')}, scikit-learn {version('scikit-learn')}"
        + (f", FLAML {version('flaml')} ({args.automl_seconds:g} s budget)" if args.automl_seconds > 0 else "")
        + f", seed {args.seed}.",
        "",
        *notes,
        "",
        "| data set | protocol | model | " + " | ".join(HEADERS) + " |",
        "|---|---|---|" + "---:|" * len(HEADERS),
    ]
    for row in rows:
        values = ([f"{row.metrics[m]:.4f}" for m in METRICS[:-1]]
                  + [f"{row.metrics['top_decile_lift']:.2f}", f"{row.seconds:.1f}", f"{row.cpu_seconds:.1f}"])
        model = f"**{row.model}**" if row.model == "leadscore" else row.model
        lines.append(f"| {row.dataset} | {row.protocol} | {model} | " + " | ".join(values) + " |")
    lines += ["", "| data set | protocol | leadscore ROC AUC − best alternative | ECE | fit s (CPU s) | targets |",
              "|---|---|---:|---:|---:|---|"]
    for (dataset, protocol), group in _groups(rows).items():
        ours = next(r for r in group if r.model == "leadscore")
        best = max((r for r in group if r.model != "leadscore"), key=lambda r: r.metrics["roc_auc"])
        margin = ours.metrics["roc_auc"] - best.metrics["roc_auc"]
        missed = []
        if margin < 0:
            missed.append(f"ROC AUC {-margin:.4f} below {best.model}")
        if protocol == "random" and ours.metrics["ece"] > ECE_TARGET:
            missed.append(f"ECE {ours.metrics['ece'] - ECE_TARGET:.4f} above {ECE_TARGET}")
        if ours.seconds > SECONDS_TARGET:
            missed.append(f"{ours.seconds - SECONDS_TARGET:.0f} s over {SECONDS_TARGET:g} s wall clock")
        lines.append(f"| {dataset} | {protocol} | {margin:+.4f} (vs {best.model}) | {ours.metrics['ece']:.4f} | "
                     f"{ours.seconds:.1f} ({ours.cpu_seconds:.1f}) | {'met' if not missed else 'missed: ' + '; '.join(missed)} |")
    return "\n".join(lines) + "\n"


def _groups(rows: list[Row]) -> dict[tuple[str, str], list[Row]]:
    groups: dict[tuple[str, str], list[Row]] = {}
    for row in rows:
        groups.setdefault((row.dataset, row.protocol), []).append(row)
    return groups


if __name__ == "__main__":
    main()
