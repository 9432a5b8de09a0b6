"""`leadscore` command line: init, check, generate, train, promote, export, score, explain, monitor, funnel.

Exit codes: 0 success, 2 bad usage, 3 bad config, 4 bad input data, 5 tracking server or registry
failure or a model that cannot be loaded, 6 an output that cannot be written (disk full, permission
denied), 1 internal error (a bug: please report it with the message).
"""

from __future__ import annotations

import argparse
import logging
import signal
import sys
import threading
from collections.abc import Sequence

from leadscore.errors import LeadscoreError

log = logging.getLogger("leadscore")


def _generate(args: argparse.Namespace) -> None:
    from leadscore import generate

    paths = generate(args.leads, args.seed, args.out, fmt=args.format, start=args.start, days=args.days,
                     sal_rejections=args.sal_rejections, recycling=args.recycling, accounts=args.accounts)
    print(f"wrote {args.leads} synthetic leads (seed {args.seed}) to {args.out}: {', '.join(sorted(p.name for p in paths.values()))}")


def _init(args: argparse.Namespace) -> None:
    from leadscore.starter import write_starter_config

    starter = write_starter_config(args.data, label=args.label, output=args.output, force=args.force)
    print(starter.summary())


def _check(args: argparse.Namespace) -> None:
    from leadscore.checking import check_config

    report = check_config(args.config)
    print(report.text())
    report.raise_for_problems()


def _train(args: argparse.Namespace) -> None:
    from leadscore import train

    trained = train(args.config)
    registered = trained.registered
    print(_training_summary(trained.result))
    print(f"registered {registered.name} version {registered.version} as challenger (run {registered.run_id})")


def _training_summary(result) -> str:
    from leadscore.config import PointsCutoffs

    split = result.split
    label = [f"label: {result.table.label_description}"] if result.table.label_description else []
    sample = [f"sample: {result.table.sample.text}"] if result.table.sample is not None else []
    lines = [
        *label,
        *sample,
        f"model: {result.winner.name}, calibration: {result.winner.calibration_method}, split: {split.method} "
        f"(train {len(split.train)}, calibration {len(split.calibration)}, test {len(split.test)} rows; "
        f"{split.purged_rows} purged)",
        f"{'test window':<22}{'roc_auc':>9}{'pr_auc':>9}{'brier':>9}{'log_loss':>10}{'ece':>8}{'lift@10%':>10}",
    ]
    shown = ("roc_auc", "pr_auc", "brier", "log_loss", "ece", "top_decile_lift")
    for name, m in result.metrics.items():
        if not any(key in m for key in shown):  # figures of another kind (the MQA's shares): printed below
            continue
        values = [m.get(key, float("nan")) for key in shown]
        lines.append(f"{name:<22}" + "".join(f"{v:>{w}.{d}f}" if v == v else f"{'–':>{w}}"  # NaN: not measured here
                                             for v, w, d in zip(values, (9, 9, 9, 10, 8, 10), (4,) * 5 + (2,))))
    cutoffs = result.scorer.cutoffs
    if isinstance(cutoffs, PointsCutoffs):
        lines.append(f"points fallback: MQL at {cutoffs.mql:g} points, SQL at {cutoffs.sql:g} points; p_convert is "
                     "missing until there are enough conversions to learn from")
    elif cutoffs is not None:
        lines.append(f"cutoffs: MQL p >= {cutoffs.mql:.4f} (score {cutoffs.mql_points:g}; {cutoffs.mql_policy}), "
                     f"SQL p >= {cutoffs.sql:.4f} (score {cutoffs.sql_points:g}; {cutoffs.sql_policy})")
        lines.extend(f"  note: {note}" for note in cutoffs.notes)
        lines.extend(f"  warning: {warning}" for warning in cutoffs.warnings)
        lines.append(result.tables["cutoff_bands"].to_string(index=False, float_format="{:.3f}".format))
    if result.scorer.accounts is not None and "accounts_mqa" in result.metrics:
        part, mqa = result.scorer.accounts, result.metrics["accounts_mqa"]
        lines.append(f"accounts: p_account by {part.method.name}; MQA p_account >= {part.cutoff:.4f} "
                     f"({part.cutoff_policy}); in the test window {mqa['share_of_accounts']:.1%} of account rows are MQAs, "
                     f"converting at {mqa['conversion_rate']:.1%} against {mqa['conversion_rate_below']:.1%} below")
    if result.scorer.dimensions is not None:
        for name, reason in result.scorer.dimensions.absent.items():
            lines.append(f"dimension {name}: absent ({reason})")
    if "stage_timing" in result.tables:
        lines.append(result.tables["stage_timing"].to_string(index=False, float_format="{:.1f}".format))
    return "\n".join(lines)


def _promote(args: argparse.Namespace) -> None:
    from leadscore import promote

    print(promote(args.name, config=args.config, metric=args.metric, force=args.force))


def _export(args: argparse.Namespace) -> None:
    from leadscore.api import export_model

    print(f"exported {args.model} to {export_model(args.model, args.out)}")


def _score(args: argparse.Namespace) -> None:
    from leadscore import score
    from leadscore.schema import PROVENANCE_COLUMNS, STATUS_COLUMN

    # A scheduler stops a job with SIGTERM: unwind as for Ctrl-C, so that no temporary file is left behind.
    _terminated.clear()
    previous = signal.signal(signal.SIGTERM, _interrupt)
    try:
        report = score(
            args.model, args.input, output=args.output, as_of=args.as_of, reasons=args.reasons, top=args.top,
            rejects=args.rejects, config=args.config, engine=args.engine, chunk_rows=args.chunk_rows,
            max_reject_share=args.max_reject_share, drift_threshold=args.drift_threshold,
            spark_master=args.spark_master, history=args.history,
        )
    finally:
        signal.signal(signal.SIGTERM, previous)
    print(report.summary())  # with accounts, it says where the account table went
    if report.top is not None:
        print(f"top {len(report.top)} open leads:" if STATUS_COLUMN in report.top.columns else f"top {len(report.top)} leads:")
        print(_leads_table(report.top.drop(columns=[*PROVENANCE_COLUMNS, STATUS_COLUMN, "reasons"], errors="ignore")))
    if report.top_accounts is not None:
        print(f"top {len(report.top_accounts)} accounts:")
        print(_accounts_table(report.top_accounts))


def _history(args: argparse.Namespace) -> None:
    from leadscore import lead_history
    from leadscore.history.trajectory import format_latest_alerts, format_trajectory, latest_alerts

    if args.lead is None:
        print(format_latest_alerts(latest_alerts(args.history), top=args.top, reasons=args.reasons))
    else:
        print(format_trajectory(lead_history(args.history, args.lead), reasons=args.reasons))


def _leads_table(leads) -> str:
    """Scored leads as text for people: scores with one decimal, probabilities with three, and the columns of
    dimensions the model does not have (empty for every lead) left out."""
    shown = leads.loc[:, leads.notna().any()]
    formats = {c: "{:.3f}".format if c in ("p_convert", "p_account") else "{:.1f}".format
               for c in shown.columns if c in ("p_convert", "p_account", "score") or c.endswith("_score")}
    return shown.to_string(index=False, formatters=formats, float_format="{:.1f}".format)


# The top accounts as sales reads them: which account, how good, how much of the buying group is engaged, who is
# missing, and the strongest reason.
_ACCOUNT_SHOWN = ("account_id", "account_score", "account_grade", "buying_group_coverage", "roles_missing",
                  "account_reason_1")


def _accounts_table(accounts) -> str:
    """The best accounts as text: the columns of `_ACCOUNT_SHOWN` (those the table has), the score with one decimal,
    the buying-group coverage as a percentage, missing roles comma-separated."""
    shown = accounts[[c for c in _ACCOUNT_SHOWN if c in accounts.columns]].copy()
    if "roles_missing" in shown.columns:
        shown["roles_missing"] = shown["roles_missing"].fillna("").astype(str).str.replace(";", ", ")
    formats = {"account_score": "{:.1f}".format, "buying_group_coverage": lambda v: "" if v != v else f"{v:.0%}"}
    return shown.to_string(index=False, formatters={c: f for c, f in formats.items() if c in shown.columns})


def _interrupt(signum, frame) -> None:
    _terminated.set()
    raise KeyboardInterrupt


# Set once SIGTERM arrives. The KeyboardInterrupt raised then can surface as another exception when it lands
# inside a library that turns errors into its own (numpy does, mid type promotion); it is still a stop.
_terminated = threading.Event()


def _explain(args: argparse.Namespace) -> None:
    from leadscore import load_model
    from leadscore.api import lead_rows
    from leadscore.describe import describe_lead

    scorer = load_model(args.model)
    print(describe_lead(scorer, lead_rows(scorer, args.input, args.lead, as_of=args.as_of)))


def _monitor(args: argparse.Namespace) -> None:
    from leadscore import monitor

    done = monitor(
        args.history, args.outcomes, args.out, model=args.model, issued_days_ago=args.issued_days_ago,
        since=args.since, until=args.until, observed_until=args.observed_until, horizon_days=args.horizon_days,
        backtest_auc=args.backtest_auc, conversion_stage=args.conversion_stage, track=args.tracking,
    )
    for name, group in done.result.groups.items():
        print(f"{name}: {group.verdict.text()}")
    logged = f"; MLflow run {done.run_id}" if done.run_id else ""
    print(f"report: {done.files['monitoring.md']}{logged}")


def _funnel(args: argparse.Namespace) -> None:
    from leadscore import funnel
    from leadscore.monitoring.funnel import as_text, output_format, write_table

    stages = [name.strip() for name in args.stages.split(",") if name.strip()] if args.stages else None
    if args.out:
        output_format(args.out)  # a file name without a known ending fails before any work
    table = funnel(args.input, by=args.by, scores=args.scores, config=args.config, stages=stages,
                               as_of=args.as_of)
    print(as_text(table))
    if args.out:
        write_table(table, args.out)
        print(f"wrote {args.out}")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="leadscore", description="Predictive lead scoring.")
    parser.add_argument("-v", "--verbose", action="store_true", help="log progress and show tracebacks")
    commands = parser.add_subparsers(dest="command", required=True)

    it = commands.add_parser("init", help="write a commented starter config for a data file or event-log folder")
    it.add_argument("data", help="CSV or Parquet snapshot file, or event-log folder (leads, activities, outcomes)")
    it.add_argument("--label", help="the column that says whether a lead converted (default: guessed)")
    it.add_argument("--output", help="the config file to write (default: <data name>.yaml in the working folder)")
    it.add_argument("--force", action="store_true", help="overwrite the output file if it exists")
    it.set_defaults(run=_init)

    ck = commands.add_parser("check", help="check a config against its data without training (exit codes as train)")
    ck.add_argument("--config", required=True)
    ck.set_defaults(run=_check)

    gen = commands.add_parser("generate", help="write a synthetic event log with known ground truth")
    gen.add_argument("--leads", type=int, required=True)
    gen.add_argument("--seed", type=int, default=0)
    gen.add_argument("--out", required=True, help="output folder")
    gen.add_argument("--format", choices=["parquet", "csv"], default="parquet")
    gen.add_argument("--start", default="2025-01-01", help="first lead creation date")
    gen.add_argument("--days", type=int, default=730, help="days over which leads are created")
    gen.add_argument("--sal-rejections", action="store_true", help="also write a SAL_rejected outcome for each MQL "
                     "sales did not accept (every other row stays the same)")
    gen.add_argument("--recycling", action="store_true", help="also bring rejected leads back as MQLs for a second "
                     "episode (implies --sal-rejections)")
    gen.add_argument("--accounts", action="store_true", help="group the leads into accounts that buy together: "
                     "adds account_id and buying_role to the leads and writes an accounts table (and its ground truth)")
    gen.set_defaults(run=_generate)

    tr = commands.add_parser("train", help="train, evaluate, log to MLflow and register as challenger")
    tr.add_argument("--config", required=True)
    tr.set_defaults(run=_train)

    pr = commands.add_parser("promote", help="make the challenger champion if it beats the champion")
    pr.add_argument("--config", help="take the registered model name and metric from this config")
    pr.add_argument("--name", help="registered model name (default: leadscore)")
    pr.add_argument("--metric", choices=["log_loss", "roc_auc", "pr_auc", "brier"])
    pr.add_argument("--force", action="store_true", help="promote without comparing")
    pr.set_defaults(run=_promote)

    ex = commands.add_parser("export", help="copy a registered model into a local folder (default models/)")
    ex.add_argument("--model", default="models:/leadscore@champion")
    ex.add_argument("--out", default="models", help="parent folder of the bundle")
    ex.set_defaults(run=_export)

    xp = commands.add_parser("explain", help="print one lead's scores and the reasons behind them")
    _add_model_and_input(xp, "explain")
    xp.add_argument("--lead", required=True, help="the lead's id (the row number for tables without ids)")
    xp.set_defaults(run=_explain)

    sc = commands.add_parser("score", help="score a snapshot file or event-log folder")
    _add_model_and_input(sc, "score")
    sc.add_argument("--output", required=True, help="CSV or Parquet file, written atomically")
    sc.add_argument("--top", type=int, default=0, help="print the N highest-scoring leads (and accounts, with a model "
                    "trained with accounts)")
    sc.add_argument("--rejects", help="where to list rejected rows (default: <output stem>.rejects.csv)")
    sc.add_argument("--config", help="take defaults for the options below from this config's 'scoring' section")
    sc.add_argument("--engine", choices=["pandas", "spark"], help="pandas (default): stream on this machine; "
                    "spark: mlflow.pyfunc.spark_udf (pip install 'leadscore[spark]')")
    sc.add_argument("--max-reject-share", type=float, help="fail without publishing scores above this share of "
                    "rejected rows (default 0.01)")
    sc.add_argument("--chunk-rows", type=int, help="pandas engine: rows per chunk (default 100000)")
    sc.add_argument("--drift-threshold", type=float, help="warn when a population stability index exceeds this (default 0.2)")
    sc.add_argument("--spark-master", help="Spark master URL (default: $LEADSCORE_SPARK_MASTER, the config, local[*])")
    sc.add_argument("--no-reasons", dest="reasons", action="store_const", const=False,
                    help="leave out the reason columns (faster)")
    sc.add_argument("--history", help="score history folder to append to (default: the config's scoring.history); "
                    "adds score_change and change_reasons, and writes <output stem>.alerts.csv")
    sc.set_defaults(run=_score)

    hi = commands.add_parser("history", help="print a lead's scores over time, what changed and the MQL/SQL crossings; "
                             "without --lead, the leads that crossed a line in the latest run")
    hi.add_argument("--history", required=True, help="the score history folder (leadscore score --history)")
    hi.add_argument("--lead", help="the lead's id (default: list the latest run's alerts)")
    hi.add_argument("--top", type=int, default=10, help="alerted leads listed without --lead (default 10)")
    hi.add_argument("--reasons", type=int, default=3, help="reasons shown per change (default 3)")
    hi.set_defaults(run=_history)

    mo = commands.add_parser("monitor", help="compare past scores with what happened: calibration, ranking, verdict")
    mo.add_argument("--history", required=True, help="score-history folder (scored_date=YYYY-MM-DD/<run>.parquet)")
    mo.add_argument("--outcomes", required=True, help="event-log folder, or an outcomes table (lead_id, stage, timestamp)")
    mo.add_argument("--model", help="the model that issued the scores (default: each version of the history, "
                    "from the registry)")
    mo.add_argument("--out", default="monitoring", help="folder for monitoring.md, monitoring.json and the plots")
    mo.add_argument("--issued-days-ago", type=int, help="the scores issued on the day this many days before the "
                    "observation time (default: every score of the history)")
    mo.add_argument("--since", help="first scoring time of the window (inclusive)")
    mo.add_argument("--until", help="end of the window (exclusive)")
    mo.add_argument("--observed-until", help="when the outcomes were exported (default: the last recorded time)")
    mo.add_argument("--horizon-days", type=float, help="the horizon p_convert refers to (default: the model's)")
    mo.add_argument("--backtest-auc", type=float, help="ROC AUC to hold the ranking to (default: the registered one)")
    mo.add_argument("--conversion-stage", default="won", help="the outcome stage that counts as converted")
    mo.add_argument("--no-tracking", dest="tracking", action="store_false", help="do not log the run to MLflow")
    mo.set_defaults(run=_monitor)

    fu = commands.add_parser("funnel", help="stage-to-stage conversion (MQL -> SAL -> SQL -> won) per episode, "
                             "with exact intervals and the days between stages")
    fu.add_argument("--input", required=True, help="event-log folder (its outcomes table; leads for --by)")
    fu.add_argument("--by", help="segment by this column of the scores file or the leads table")
    fu.add_argument("--scores", help="a scores file (leadscore score --output): without --by, by score band")
    fu.add_argument("--out", help="also write the table here, atomically: .csv or .md")
    fu.add_argument("--config", help="take stage names (funnel section) and table and column names from this config")
    fu.add_argument("--stages", help="the funnel stages in order, comma-separated (default: MQL,SAL,SQL,won)")
    fu.add_argument("--as-of", help="the export time, for the too-recent rule (default: the last outcome recorded)")
    fu.set_defaults(run=_funnel)
    return parser


class _StderrHandler(logging.StreamHandler):
    """Writes to whatever `sys.stderr` is at the time of writing (tests and notebooks replace it)."""

    @property
    def stream(self):
        return sys.stderr

    @stream.setter
    def stream(self, value) -> None:
        pass


def _show_progress() -> None:
    """Training's stage lines on stderr by default, as plain lines (no level or logger name)."""
    from leadscore.progress import STAGE_LOGGER

    progress = logging.getLogger(STAGE_LOGGER)
    progress.setLevel(logging.INFO)
    progress.propagate = False
    if not any(isinstance(h, _StderrHandler) for h in progress.handlers):
        handler = _StderrHandler()
        handler.setFormatter(logging.Formatter("%(message)s"))
        progress.addHandler(handler)


def _add_model_and_input(parser: argparse.ArgumentParser, verb: str) -> None:
    """The options `score` and `explain` share: which model, which leads, and as of when."""
    parser.add_argument("--model", default="models:/leadscore@champion")
    parser.add_argument("--input", required=True, help="CSV/Parquet snapshot table, or event-log folder")
    parser.add_argument("--as-of", help=f"event log only: {verb} as of this time (default: just after the last event)")


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO if args.verbose else logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    _show_progress()
    try:
        args.run(args)
    except LeadscoreError as exc:
        if args.verbose:
            log.exception("failed")
        print(f"leadscore {args.command}: error: {exc}", file=sys.stderr)
        return exc.exit_code
    except KeyboardInterrupt:
        print(f"leadscore {args.command}: interrupted", file=sys.stderr)
        return 130
    except Exception as exc:  # noqa: BLE001  (the last line of defence: no raw traceback for users)
        if _terminated.is_set():
            print(f"leadscore {args.command}: interrupted", file=sys.stderr)
            return 130
        log.debug("internal error", exc_info=True)
        if args.verbose:
            log.exception("internal error")
        print(f"leadscore {args.command}: internal error: {exc.__class__.__name__}: {exc} "
              "(run with --verbose for details and report it)", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
