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
- FLAML AutoML with a `--automl-seconds` budget (default 60; `--rolling-automl-seconds`, default 20, per
  origin of the rolling-origin protocol), its default search and metric (ROC AUC); out of time it is
  told the rows are in time order (`split_type="time"`).
- the points baseline where the config has one: the points rank the leads, and the conversion rate per
  points level on the training rows (isotonic) turns them into probabilities.

Protocols:
- `random`: stratified, 80 % train and 20 % test.
- `out_of_time`: rows in time order, the earlier ones train and the latest ~20 % test, whole periods
  on one side of the cut. The order is the config's time column, the row order when the config says
  `split.method: row_order`, or a calendar column named in `CALENDAR_ORDER`. Without any, the data
  set runs the random protocol only.
- `rolling_origin`: expanding window over the same time order, 5 blocks of ~20 %: train on the first
  2, 3, 4 blocks and test on the block after (3 origins), every contender refitted per origin. Cuts
  move to the nearest period boundary, so a period is never on both sides.

Each data set and protocol compares leadscore with the best alternative (the highest point ROC AUC;
for rolling origin, the highest mean of the per-origin ROC AUCs) by a paired bootstrap (see
`bootstrap.py`): the test rows resampled with replacement within each label (and origin), the same
resample for both models, 95 % percentile interval of leadscore's ROC AUC minus the alternative's.
A separate line times leadscore's whole training on the largest real data set, against the 60 s goal
for 50,000 rows.

The tables go to stdout and, as markdown, to `--output`. Targets: leadscore's test ROC AUC at least
the best alternative's on every data set and protocol or within the bootstrap noise (never below the
interval), ECE at most 0.02 on random splits, and training within 60 seconds for 50,000 rows.

    pip install -e '.[bench]'
    python benchmarks/quality.py [CONFIG ...] [--data CSV] [--automl-seconds 60] [--cores 2] [--quick]
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

sys.path.insert(0, str(Path(__file__).parent))
from bootstrap import Interval, paired_intervals  # noqa: E402  (sibling scripts, not part of the package)
from common import cpu_time  # noqa: E402

REPO = Path(__file__).parents[1]
SHIPPED = [REPO / "configs" / "bank_marketing.yaml", REPO / "configs" / "online_shoppers.yaml"]
# The smaller set: a quick run exercises every protocol in a couple of minutes.
QUICK_SHIPPED = [REPO / "configs" / "online_shoppers.yaml"]
DEFAULT_OUTPUT = REPO / "benchmarks" / "results" / "quality.md"
TEST_FRACTION = 0.2
ORIGINS = 3
INTERNAL_TEST_FRACTION = 0.05
ECE_TARGET = 0.02
SECONDS_TARGET = 60.0
ROWS_TARGET = 50_000
PROTOCOLS = ("random", "out_of_time", "rolling_origin")
REFERENCE = "leadscore"

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
    period: pd.Series | None  # the same order as people name it (row number, month, date), for the notes
    time_note: str


@dataclass(frozen=True)
class Fold:
    """One training and test set shared by every contender: positions in the data set's table."""

    train: np.ndarray
    test: np.ndarray
    note: str


@dataclass(frozen=True)
class Protocol:
    """A way to test: one fold, or several (the origins of a rolling-origin evaluation)."""

    name: str
    folds: list[Fold]
    automl_seconds: float


@dataclass(frozen=True)
class Fit:
    """One contender on one fold: its metrics, its fit time, and the scores that rank the test rows."""

    metrics: dict[str, float]
    seconds: float  # wall clock of the fit
    cpu_seconds: float  # CPU time of the fit over all threads: less sensitive to other work on the machine
    scores: np.ndarray  # probabilities, or the points themselves for the points baseline


@dataclass(frozen=True)
class Result:
    """Every contender on every fold of one data set and protocol, and leadscore against the others."""

    dataset: str
    protocol: str
    y_test: list[np.ndarray]  # per fold
    fits: dict[str, list[Fit]]  # per contender, per fold
    intervals: dict[str, Interval]  # leadscore's ROC AUC minus each alternative's

    def metric(self, model: str, name: str) -> float:
        """The metric on the one fold, or its mean over the origins."""
        return float(np.mean([fit.metrics[name] for fit in self.fits[model]]))

    def seconds(self, model: str) -> tuple[float, float]:
        """Wall and CPU seconds of the fits, summed over the origins."""
        return sum(f.seconds for f in self.fits[model]), sum(f.cpu_seconds for f in self.fits[model])

    @property
    def best(self) -> str:
        """The alternative with the highest (mean) point ROC AUC."""
        return max((m for m in self.fits if m != REFERENCE), key=lambda m: self.metric(m, "roc_auc"))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("configs", nargs="*", type=Path,
                        help="leadscore configs (default: the shipped real-data ones; with --quick, online_shoppers)")
    parser.add_argument("--data", help="CSV or Parquet file to use instead of the single config's data.path")
    parser.add_argument("--automl-seconds", type=float, help="FLAML time budget (default 60, quick 10); 0 leaves AutoML out")
    parser.add_argument("--rolling-automl-seconds", type=float,
                        help="FLAML time budget per rolling origin (default 20, quick 5)")
    parser.add_argument("--bootstrap", type=int, help="bootstrap resamples (default 1000, quick 200)")
    parser.add_argument("--cores", type=int, default=2, help="threads every contender may use")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--protocols", nargs="+", choices=PROTOCOLS, default=list(PROTOCOLS))
    parser.add_argument("--quick", action="store_true",
                        help="for development: one data set, smaller budgets, report on stdout only unless --output")
    parser.add_argument("--output", type=Path, help=f"markdown file for the tables (default {DEFAULT_OUTPUT.relative_to(REPO)})")
    args = parser.parse_args()
    if args.data and len(args.configs) != 1:
        parser.error("--data needs exactly one config")
    # A quick run must not overwrite the full run's published tables by accident.
    defaults = {"automl_seconds": (10.0, 60.0), "rolling_automl_seconds": (5.0, 20.0), "bootstrap": (200, 1000),
                "output": (None, DEFAULT_OUTPUT)}
    for name, (quick, full) in defaults.items():
        if getattr(args, name) is None:
            setattr(args, name, quick if args.quick else full)

    started, cpu_started = time.perf_counter(), cpu_time()
    configs = args.configs or (QUICK_SHIPPED if args.quick else SHIPPED)
    datasets = [d for d in (_load(path, args.data) for path in configs) if d is not None]
    if not datasets:
        sys.exit("no data set found: put the data in ../shared/data or set LEADSCORE_DATA_DIR")
    results, notes, load_at_start = [], [], os.getloadavg()[0]
    with threadpool_limits(limits=args.cores), tempfile.TemporaryDirectory() as workdir:
        for dataset in datasets:
            notes.append(f"- {dataset.name}: {dataset.time_note}")
            for protocol in _protocols(dataset, args):
                for i, fold in enumerate(protocol.folds):
                    where = f"{dataset.name}, {protocol.name}" + (f", origin {i + 1}" if len(protocol.folds) > 1 else "")
                    notes.append(f"- {where}: {fold.note}")
                    print(f"{where}: {fold.note}", file=sys.stderr)
                results.append(_run(dataset, protocol, args, Path(workdir)))
        timing = _time_training(max(datasets, key=lambda d: len(d.table.frame)))
    load_at_end, cores = os.getloadavg()[0], os.cpu_count() or 1
    busy = ("above the core count, other work slowed the wall-clock times (the CPU times much less)"
            if max(load_at_start, load_at_end) > cores else "not above the core count")
    notes.append(f"- machine load (1-minute average) {load_at_start:.1f} at the start and {load_at_end:.1f} at the "
                 f"end, on {cores} cores: {busy}")
    notes.append(f"- the whole benchmark took {(time.perf_counter() - started) / 60:.1f} min "
                 f"({(cpu_time() - cpu_started) / 60:.1f} CPU min)")
    report = _report(results, timing, notes, args)
    print(report)
    if args.output:
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
        column = frame[table.time_column]
        return DataSet(name, cfg, table, column, column.astype(str), f"time order from column `{table.time_column}`")
    if cfg.split.method == "row_order":
        rows = pd.Series(np.arange(len(frame)), index=frame.index)
        return DataSet(name, cfg, table, rows, (rows + 1).map("row {:,}".format), "rows are in time order")
    if name in CALENDAR_ORDER:
        column, values = CALENDAR_ORDER[name]
        rank = frame[column].map({value: i for i, value in enumerate(values)})
        if rank.notna().all():
            return DataSet(name, cfg, table, rank, frame[column].astype(str),
                           f"time order from the calendar column `{column}` (one year)")
    return DataSet(name, cfg, table, None, None, "no time order: random protocol only")


def _protocols(dataset: DataSet, args: argparse.Namespace) -> list[Protocol]:
    y = dataset.table.frame[dataset.table.label_column].to_numpy()
    out = []
    if "random" in args.protocols:
        train_rows, test_rows = train_test_split(np.arange(len(y)), test_size=TEST_FRACTION, stratify=y,
                                                 random_state=args.seed)
        train_rows, test_rows = np.sort(train_rows), np.sort(test_rows)
        out.append(Protocol("random", [Fold(train_rows, test_rows, _describe(y, train_rows, test_rows))],
                            args.automl_seconds))
    if dataset.time_order is None:
        return out
    key = dataset.time_order.to_numpy()
    order = np.argsort(key, kind="stable")
    sorted_key = key[order]
    if "out_of_time" in args.protocols:
        cut = sorted_key[int(len(order) * (1 - TEST_FRACTION))]
        # Rows of the period at the cut all go to test, so no period is on both sides.
        train_rows, test_rows = order[sorted_key < cut], order[sorted_key >= cut]
        out.append(Protocol("out_of_time", [Fold(train_rows, test_rows, _describe(y, train_rows, test_rows, dataset))],
                            args.automl_seconds))
    if "rolling_origin" in args.protocols:
        # Where a new period starts, the only places a cut keeps each period on one side.
        starts = np.flatnonzero(np.r_[True, sorted_key[1:] != sorted_key[:-1]])[1:]
        if len(starts) == 0:
            print(f"{dataset.name}: one period only, no rolling origin", file=sys.stderr)
            return out
        wanted = [1 - TEST_FRACTION * (ORIGINS - i) for i in range(ORIGINS)]
        cuts = sorted({int(starts[np.argmin(np.abs(starts - f * len(order)))]) for f in wanted} | {len(order)})
        folds = [Fold(order[:a], order[a:b], _describe(y, order[:a], order[a:b], dataset))
                 for a, b in zip(cuts[:-1], cuts[1:])]
        if len(folds) < ORIGINS:
            print(f"{dataset.name}: only {len(folds)} rolling origin(s): too few periods", file=sys.stderr)
        out.append(Protocol("rolling_origin", folds, args.rolling_automl_seconds))
    return out


def _describe(y: np.ndarray, train_rows: np.ndarray, test_rows: np.ndarray, dataset: DataSet | None = None) -> str:
    def span(rows: np.ndarray) -> str:
        if dataset is None:
            return ""
        # Rows are in time order here: the first and last name the periods covered.
        first, last = dataset.period.iloc[rows[0]], dataset.period.iloc[rows[-1]]
        return f", {first}" + (f" to {last}" if last != first else "")

    return (f"train {len(train_rows):,} rows ({y[train_rows].mean():.1%} converted{span(train_rows)}), "
            f"test {len(test_rows):,} rows ({y[test_rows].mean():.1%} converted{span(test_rows)})")


def _run(dataset: DataSet, protocol: Protocol, args: argparse.Namespace, workdir: Path) -> Result:
    """Fit every contender on every fold of the protocol, then bootstrap leadscore against each."""
    table = dataset.table
    ordered = protocol.name != "random"
    contenders: dict[str, Callable[[Data], Callable[[], np.ndarray]]] = {
        REFERENCE: lambda d: _fit_leadscore(dataset, d, workdir),
        "plain logistic": lambda d: _fit_logistic(d, args.seed),
        "default LightGBM": lambda d: _fit_lightgbm(d, args.cores, args.seed),
    }
    if protocol.automl_seconds > 0 and args.automl_seconds > 0:
        contenders["FLAML AutoML"] = _automl_fitter(protocol.automl_seconds, args.cores, args.seed)
    fits: dict[str, list[Fit]] = {}
    y_tests = []
    for i, fold in enumerate(protocol.folds):
        train_frame, test_frame = table.frame.iloc[fold.train], table.frame.iloc[fold.test]
        X_train, X_test = _typed(train_frame[table.feature_columns], test_frame[table.feature_columns])
        data = Data(train_frame, test_frame, X_train, X_test, train_frame[table.label_column].to_numpy(),
                    test_frame[table.label_column].to_numpy(), ordered, f"{protocol.name}_{i}")
        y_tests.append(data.y_test)
        for name, fit in contenders.items():
            start, cpu_start = time.perf_counter(), cpu_time()
            predict = fit(data)
            seconds, cpu_seconds = time.perf_counter() - start, cpu_time() - cpu_start
            p = np.clip(predict(), 0.0, 1.0)
            fits.setdefault(name, []).append(Fit(probability_metrics(data.y_test, p), seconds, cpu_seconds, p))
            print(f"  {name}: ROC AUC {fits[name][-1].metrics['roc_auc']:.4f}, ECE "
                  f"{fits[name][-1].metrics['ece']:.4f}, {seconds:.1f} s", file=sys.stderr)
        if dataset.cfg.points_baseline:
            fits.setdefault("points baseline", []).append(_points(dataset.cfg, data))
    # Paired: every contender's scores on the same resampled rows; with origins, each origin keeps its size.
    groups = np.repeat(np.arange(len(y_tests)), [len(y) for y in y_tests])
    intervals = paired_intervals(np.concatenate(y_tests), {m: np.concatenate([f.scores for f in fs])
                                                           for m, fs in fits.items()},
                                 REFERENCE, args.bootstrap, args.seed, groups=groups)
    return Result(dataset.name, protocol.name, y_tests, fits, intervals)


@dataclass(frozen=True)
class Data:
    """One fold's rows: raw frames (for leadscore and the points), typed features (for the others), labels."""

    train_frame: pd.DataFrame
    test_frame: pd.DataFrame
    X_train: pd.DataFrame
    X_test: pd.DataFrame
    y_train: np.ndarray
    y_test: np.ndarray
    ordered: bool  # out of time: the training rows are in time order
    tag: str  # names the fold's files


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


def _fit_leadscore(dataset: DataSet, data: Data, workdir: Path) -> Callable[[], np.ndarray]:
    """leadscore's default training on the training rows only, with the data set's config."""
    path = workdir / f"{dataset.name}_{data.tag}.parquet"
    data.train_frame.to_parquet(path, index=False)
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
        raw["split"]["method"] = "row_order" if data.ordered else "random"
    elif not data.ordered:
        raw["split"]["method"] = "random"
    result = train(parse_config(raw, source=f"{dataset.name} benchmark config"))
    return lambda: result.scorer.predict_proba(data.test_frame)


def _fit_logistic(data: Data, seed: int) -> Callable[[], np.ndarray]:
    X = data.X_train
    numeric = [c for c in X.columns if not isinstance(X[c].dtype, pd.CategoricalDtype)]
    categorical = [c for c in X.columns if c not in numeric]
    model = make_pipeline(
        ColumnTransformer([
            ("numeric", make_pipeline(SimpleImputer(strategy="median"), StandardScaler()), numeric),
            ("categorical", OneHotEncoder(handle_unknown="ignore"), categorical),
        ]),
        LogisticRegression(max_iter=5000, random_state=seed),
    ).fit(X, data.y_train)
    return lambda: model.predict_proba(data.X_test)[:, 1]


def _fit_lightgbm(data: Data, cores: int, seed: int) -> Callable[[], np.ndarray]:
    model = lgb.LGBMClassifier(n_jobs=cores, random_state=seed, verbose=-1).fit(data.X_train, data.y_train)
    return lambda: model.predict_proba(data.X_test)[:, 1]


def _automl_fitter(seconds: float, cores: int, seed: int) -> Callable[[Data], Callable[[], np.ndarray]]:
    """FLAML with a time budget, or exit saying which extra to install."""
    try:
        from flaml import AutoML
    except ImportError:
        sys.exit("FLAML is not installed: pip install -e '.[bench]' (or run with --automl-seconds 0)")

    def fit(data: Data) -> Callable[[], np.ndarray]:
        automl = AutoML()
        automl.fit(data.X_train, data.y_train, task="classification", time_budget=seconds, n_jobs=cores, seed=seed,
                   verbose=0, log_file_name="", split_type="time" if data.ordered else "auto")
        return lambda: automl.predict_proba(data.X_test)[:, 1]

    return fit


def _points(cfg: Config, data: Data) -> Fit:
    """Rank metrics from the points themselves, probability metrics from the points' conversion rates."""
    start, cpu_start = time.perf_counter(), cpu_time()
    points_train = points_score(data.train_frame, cfg.points_baseline)
    to_probability = IsotonicRegression(out_of_bounds="clip", y_min=0, y_max=1).fit(points_train, data.y_train)
    seconds, cpu_seconds = time.perf_counter() - start, cpu_time() - cpu_start
    points_test = np.asarray(points_score(data.test_frame, cfg.points_baseline), dtype=float)
    p = to_probability.predict(points_test)
    metrics = {**probability_metrics(data.y_test, p), **ranking_metrics(data.y_test, points_test)}
    return Fit(metrics, seconds, cpu_seconds, points_test)


@dataclass(frozen=True)
class Timing:
    """leadscore's whole training on a whole data set."""

    dataset: str
    rows: int
    seconds: float
    cpu_seconds: float

    @property
    def per_target_rows(self) -> float:
        """Wall seconds scaled linearly to the goal's row count."""
        return self.seconds * ROWS_TARGET / self.rows


def _time_training(dataset: DataSet) -> Timing:
    """Train with the data set's own config, reading its file included, as `leadscore train` would."""
    print(f"{dataset.name}: timing leadscore's training on all {len(dataset.table.frame):,} rows", file=sys.stderr)
    start, cpu_start = time.perf_counter(), cpu_time()
    result = train(dataset.cfg)
    seconds, cpu_seconds = time.perf_counter() - start, cpu_time() - cpu_start
    return Timing(dataset.name, len(result.table.frame), seconds, cpu_seconds)


def _report(results: list[Result], timing: Timing, notes: list[str], args: argparse.Namespace) -> str:
    """The markdown report: how it was made, how to read it, one table per protocol, and each target."""
    command = " ".join(["python benchmarks/quality.py", *sys.argv[1:]])
    automl = (f", FLAML {version('flaml')} ({args.automl_seconds:g} s budget, {args.rolling_automl_seconds:g} s per "
              f"rolling origin)" if args.automl_seconds > 0 else "")
    lines = [
        "# Model quality benchmark",
        "",
        f"`{command}` on {datetime.now(timezone.utc):%Y-%m-%d}, {min(args.cores, os.cpu_count() or 1)} cores "
        f"({platform.processor() or platform.machine()}); leadscore {version('leadscore')}, LightGBM "
        f"{version('lightgbm')}, scikit-learn {version('scikit-learn')}{automl}, numpy {version('numpy')}, "
        f"Python {platform.python_version()}; seed {args.seed}; {args.bootstrap:,} bootstrap resamples"
        + (" (quick run)" if args.quick else "") + ".",
        "",
        "## How to read",
        "",
        "Within a data set and protocol every contender trains on the same rows and is tested on the same rows. "
        "*leadscore − model* is leadscore's test ROC AUC minus that model's, with a 95 % paired bootstrap interval: "
        f"the test rows resampled with replacement {args.bootstrap:,} times, within each label (every resample keeps "
        "the test set's conversion rate) and, for rolling origin, within each origin; both models are scored on the "
        "same resample, so the interval is that of the difference itself, much narrower than either AUC's. Verdict: "
        "**better** (interval above 0), **within noise** (interval holds 0), **worse** (interval below 0). The best "
        "alternative (marked *best*) has the highest point ROC AUC; picking it on the test rows favours it a "
        "little, so the comparison is, if anything, hard on leadscore. The interval covers the sampling of test "
        "rows, not the randomness of training (seeds, FLAML's search) nor another period. Rolling origin: the ROC "
        "AUC per origin and their mean (the interval is for the mean), ECE the mean over origins, fit seconds "
        f"summed over origins; FLAML has {args.rolling_automl_seconds:g} s per origin there. ECE is the mean "
        "|predicted − observed| over 10 equal-count bins; its target applies to random splits only, because out of "
        "time the conversion rate moves between periods, which no calibration on earlier rows can know. Fit s is "
        "wall clock, CPU s all threads together: on a machine busy with other work the wall clock grows, CPU s much "
        "less. The points baseline's ROC AUC ranks by the points themselves.",
        "",
        "## Data, folds, machine",
        "",
        *notes,
    ]
    for protocol in PROTOCOLS:
        chosen = [r for r in results if r.protocol == protocol]
        if chosen:
            lines += ["", f"## {protocol}", ""]
            lines += _rolling_table(chosen) if protocol == "rolling_origin" else _table(chosen)
    lines += ["", "## Targets", "",
              "| data set | protocol | best alternative | leadscore − best [95 % interval] | verdict | ECE | "
              "leadscore fit s (CPU s) | targets |",
              "|---|---|---|---:|---|---:|---:|---|"]
    for result in results:
        best, interval = result.best, result.intervals[result.best]
        ece = result.metric(REFERENCE, "ece")
        longest = max(f.seconds for f in result.fits[REFERENCE])
        seconds, cpu_seconds = result.seconds(REFERENCE)
        missed = []
        if interval.verdict == "worse":
            missed.append(f"ROC AUC below {best} beyond the noise")
        if result.protocol == "random" and ece > ECE_TARGET:
            missed.append(f"ECE {ece - ECE_TARGET:.4f} above {ECE_TARGET}")
        if longest > SECONDS_TARGET:
            missed.append(f"a fit {longest - SECONDS_TARGET:.0f} s over {SECONDS_TARGET:g} s wall clock")
        lines.append(f"| {result.dataset} | {result.protocol} | {best} | {interval} | {interval.verdict} | {ece:.4f} | "
                     f"{seconds:.1f} ({cpu_seconds:.1f}) | {'met' if not missed else 'missed: ' + '; '.join(missed)} |")
    # No real data set at hand reaches the goal's row count: the largest one is timed and its time
    # scaled in proportion to the rows, a rough figure that the report labels as such.
    short = timing.rows < ROWS_TARGET
    seconds = timing.per_target_rows if short else timing.seconds
    lines += ["",
              f"Training time: leadscore's whole training (reading the file, tournament, calibration, dimension "
              f"models, explanations and reports) on all {timing.rows:,} rows of {timing.dataset}, the largest data "
              f"set of this run: {timing.seconds:.1f} s wall clock ({timing.cpu_seconds:.1f} CPU s) on {args.cores} "
              "cores"
              + (f"; fewer rows than the goal's {ROWS_TARGET:,} (no real data set at hand has that many), so scaled "
                 f"linearly: {timing.per_target_rows:.1f} s for {ROWS_TARGET:,} rows" if short else "")
              + f". Goal ≤ {SECONDS_TARGET:g} s for {ROWS_TARGET:,} rows: "
              + ("met" if seconds <= SECONDS_TARGET else "missed") + "."]
    return "\n".join(lines) + "\n"


def _table(results: list[Result]) -> list[str]:
    """One fold per data set: the metrics, fit times, and leadscore against each alternative."""
    lines = ["| data set | model | " + " | ".join(HEADERS) + " | leadscore − model [95 % interval] | verdict |",
             "|---|---|" + "---:|" * (len(HEADERS) + 1) + "---|"]
    for result in results:
        for model, (fit,) in result.fits.items():
            values = ([f"{fit.metrics[m]:.4f}" for m in METRICS[:-1]]
                      + [f"{fit.metrics['top_decile_lift']:.2f}", f"{fit.seconds:.1f}", f"{fit.cpu_seconds:.1f}"])
            lines.append(f"| {result.dataset} | {_name(result, model)} | " + " | ".join(values) + " | "
                         + _comparison(result, model) + " |")
    return lines


def _rolling_table(results: list[Result]) -> list[str]:
    """Several origins per data set: ROC AUC per origin, means, summed fit times, leadscore against each."""
    origins = " | ".join(f"ROC AUC origin {i + 1}" for i in range(ORIGINS))
    lines = [f"| data set | model | {origins} | mean ROC AUC | mean PR AUC | mean ECE | fit s | fit CPU s | "
             "leadscore − model [95 % interval] | verdict |",
             "|---|---|" + "---:|" * (ORIGINS + 6) + "---|"]
    for result in results:
        for model, fits in result.fits.items():
            per_origin = [f"{f.metrics['roc_auc']:.4f}" for f in fits] + [""] * (ORIGINS - len(fits))
            seconds, cpu_seconds = result.seconds(model)
            values = [*per_origin, *(f"{result.metric(model, m):.4f}" for m in ("roc_auc", "pr_auc", "ece")),
                      f"{seconds:.1f}", f"{cpu_seconds:.1f}"]
            lines.append(f"| {result.dataset} | {_name(result, model)} | " + " | ".join(values) + " | "
                         + _comparison(result, model) + " |")
    return lines


def _name(result: Result, model: str) -> str:
    if model == REFERENCE:
        return f"**{model}**"
    return f"{model} (*best*)" if model == result.best else model


def _comparison(result: Result, model: str) -> str:
    if model == REFERENCE:
        return "— | —"
    interval = result.intervals[model]
    return f"{interval} | {interval.verdict}"


if __name__ == "__main__":
    main()
