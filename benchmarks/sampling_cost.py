"""What training on a sample of whole leads (`model.max_rows`) costs in quality, on the same test rows.

The rows: every training row of a seeded synthetic funnel of `--leads` leads (the demo config, every row,
no sample), cut by the pipeline's own out-of-time split. For each fraction of leads (the uniform, seeded
sample `leadscore.training.sampling` draws, whole leads), the tournament's two main candidates are fitted on
the sampled training window, calibrated (sigmoid) on the sampled calibration window, and measured on the
*whole* test window, the same rows for every fraction: ROC AUC and log loss, with the standard error of each
fraction's log loss difference to the full data (paired over the test rows), and the fit time.
The fraction `model.max_rows` would take by default is among them.

    .venv/bin/python benchmarks/sampling_cost.py --leads 100000 --workdir /tmp/bench-scale
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import roc_auc_score

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import lead_demo_config, machine
from training_cost import funnel


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--leads", type=int, default=100_000)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--workdir", type=Path, required=True, help="kept between runs (the funnel is reused)")
    parser.add_argument("--fractions", type=float, nargs="+", default=[1.0, 0.5])
    args = parser.parse_args()
    args.workdir.mkdir(parents=True, exist_ok=True)
    print(machine(), flush=True)

    from leadscore.config import parse_config
    from leadscore.model.kinds import model_kind
    from leadscore.training.candidates import candidate
    from leadscore.training.dataset import load_training_table
    from leadscore.training.sampling import kept_ids
    from leadscore.training.split import split_frame

    raw = lead_demo_config(funnel(args.workdir, args.leads, args.seed))
    default_max_rows = parse_config(raw, source="benchmark").model.max_rows
    raw["model"]["max_rows"] = None
    cfg = parse_config(raw, source="benchmark")
    table = load_training_table(cfg)
    split = split_frame(table.frame, cfg.split, label_column=table.label_column, time_column=table.time_column,
                        horizon_days=cfg.event_log.horizon_days, seed=cfg.model.seed)
    features, label, ids = table.feature_columns, table.label_column, table.id_column
    y_test = split.test[label].to_numpy()
    fractions = sorted({*args.fractions, default_max_rows / len(table.frame)}, reverse=True)
    print(f"{len(table.frame):,} rows from {args.leads:,} leads; test window {len(y_test):,} rows, "
          f"{int(y_test.sum()):,} conversions, the same for every fraction; model.max_rows {default_max_rows:,} "
          f"keeps a fraction {default_max_rows / len(table.frame):.4f}")

    losses: dict[str, np.ndarray] = {}
    for name in ("logistic", "lightgbm"):
        spec = candidate(name)
        for fraction in fractions:
            train, calibration = (w[kept_ids(w[ids], fraction, cfg.model.seed)] for w in (split.train, split.calibration))
            started = time.perf_counter()
            model = spec.fit(train[features], train[label].to_numpy(), np.arange(len(train)), cfg.model)
            seconds = time.perf_counter() - started
            kind = model_kind(spec.kind)
            raw_cal = np.asarray(kind.raw_output(model, calibration[features])).reshape(-1, 1)
            sigmoid = LogisticRegression(C=1e6).fit(raw_cal, calibration[label].to_numpy())
            p = sigmoid.predict_proba(np.asarray(kind.raw_output(model, split.test[features])).reshape(-1, 1))[:, 1]
            p = np.clip(p, 1e-15, 1 - 1e-15)
            loss = -(y_test * np.log(p) + (1 - y_test) * np.log1p(-p))
            key = f"{name}@{fraction:.4f}"
            losses[key] = loss
            full = losses[f"{name}@{fractions[0]:.4f}"]
            difference = loss - full
            se = difference.std(ddof=1) / np.sqrt(len(difference))
            print(f"{name:<9} fraction {fraction:.4f}: {len(train):>8,} training rows, fit {seconds:6.1f} s; test "
                  f"ROC AUC {roc_auc_score(y_test, p):.4f}, log loss {loss.mean():.5f} "
                  f"({difference.mean():+.5f} against fraction {fractions[0]:.2f}, standard error {se:.5f})",
                  flush=True)


if __name__ == "__main__":
    main()
