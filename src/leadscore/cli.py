"""`leadscore` command line: generate, train, promote, score.

Exit codes: 0 success, 2 bad usage, 3 bad config, 4 bad input data, 5 tracking server or registry
failure, 1 internal error (a bug: please report it with the message).
"""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Sequence

from leadscore.errors import LeadscoreError

log = logging.getLogger("leadscore")


def _generate(args: argparse.Namespace) -> None:
    from leadscore.synthetic import generate_to_dir

    paths = generate_to_dir(args.leads, args.seed, args.out, fmt=args.format, start=args.start, days=args.days)
    print(f"wrote {args.leads} synthetic leads (seed {args.seed}) to {args.out}: {', '.join(sorted(p.name for p in paths.values()))}")


def _train(args: argparse.Namespace) -> None:
    from leadscore.config import load_config
    from leadscore.tracking import connect, log_training
    from leadscore.training import train

    cfg = load_config(args.config)
    connect()  # fail before the expensive part when the tracking server is down
    result = train(cfg)
    registered = log_training(result, cfg)
    print(_training_summary(result))
    print(f"registered {registered.name} version {registered.version} as challenger (run {registered.run_id})")


def _training_summary(result) -> str:
    split = result.split
    lines = [
        f"model: {result.winner.name}, calibration: {result.winner.calibration_method}, split: {split.method} "
        f"(train {len(split.train)}, calibration {len(split.calibration)}, test {len(split.test)} rows; "
        f"{split.purged_rows} purged)",
        f"{'test window':<22}{'roc_auc':>9}{'pr_auc':>9}{'brier':>9}{'log_loss':>10}{'ece':>8}{'lift@10%':>10}",
    ]
    for name, m in result.metrics.items():
        lines.append(
            f"{name:<22}{m['roc_auc']:>9.4f}{m['pr_auc']:>9.4f}{m['brier']:>9.4f}{m['log_loss']:>10.4f}"
            f"{m['ece']:>8.4f}{m['top_decile_lift']:>10.2f}"
        )
    return "\n".join(lines)


def _promote(args: argparse.Namespace) -> None:
    from leadscore.config import load_config
    from leadscore.tracking import promote

    if args.config:
        tracking = load_config(args.config).tracking
        name, metric = args.name or tracking.registered_model, args.metric or tracking.promote_metric
    else:
        name, metric = args.name or "leadscore", args.metric or "log_loss"
    print(promote(name, metric, force=args.force))


def _score(args: argparse.Namespace) -> None:
    from leadscore.scoring import STATUS_COLUMN, score_file

    report = score_file(args.model, args.input, args.output, as_of=args.as_of)
    print(f"scored {report.rows} leads with {report.model_name} version {report.model_version} -> {report.output}")
    if args.top:
        scores = report.scores
        if STATUS_COLUMN in scores.columns:
            scores = scores[scores[STATUS_COLUMN] == "open"]
        top = scores.sort_values("p_convert", ascending=False).head(args.top)
        print(f"top {len(top)} open leads:" if STATUS_COLUMN in report.scores.columns else f"top {len(top)} leads:")
        print(top.drop(columns=["model_name", "model_version", "scored_at"]).to_string(index=False, float_format="{:.4f}".format))


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="leadscore", description="Predictive lead scoring.")
    parser.add_argument("-v", "--verbose", action="store_true", help="log progress and show tracebacks")
    commands = parser.add_subparsers(dest="command", required=True)

    gen = commands.add_parser("generate", help="write a synthetic event log with known ground truth")
    gen.add_argument("--leads", type=int, required=True)
    gen.add_argument("--seed", type=int, default=0)
    gen.add_argument("--out", required=True, help="output folder")
    gen.add_argument("--format", choices=["parquet", "csv"], default="parquet")
    gen.add_argument("--start", default="2025-01-01", help="first lead creation date")
    gen.add_argument("--days", type=int, default=730, help="days over which leads are created")
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

    sc = commands.add_parser("score", help="score a snapshot file or event-log folder")
    sc.add_argument("--model", default="models:/leadscore@champion")
    sc.add_argument("--input", required=True, help="CSV/Parquet snapshot table, or event-log folder")
    sc.add_argument("--output", required=True, help="CSV or Parquet file, written atomically")
    sc.add_argument("--as-of", help="event log only: score as of this time (default: just after the last event)")
    sc.add_argument("--top", type=int, default=0, help="print the N highest-scoring leads")
    sc.set_defaults(run=_score)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO if args.verbose else logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
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
        log.debug("internal error", exc_info=True)
        if args.verbose:
            log.exception("internal error")
        print(f"leadscore {args.command}: internal error: {exc.__class__.__name__}: {exc} "
              "(run with --verbose for details and report it)", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
