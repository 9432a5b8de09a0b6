"""Throughput of scoring with reasons against the raw booster's `predict` and `pred_contrib`, same model, same rows.

Explanations are the expensive part of scoring: LightGBM's exact TreeSHAP (`pred_contrib`) costs 30 to 200
times a prediction. leadscore computes the same values by groups of rows (`leadscore.model.tree_paths`).
This measures, in one run and on the same rows:
- `predict`: `booster.predict(encoded, raw_score=True)` on the already encoded frame, the cost of a bare score;
- `pred_contrib`: `booster.predict(encoded, pred_contrib=True)`, the raw booster's exact TreeSHAP;
- with reasons: `LeadScorer.predict(frame)`, the whole scoring path (validation, encoding, calibrated
  probability, dimension scores, cutoffs, contributions, points and reason texts);
- without reasons: `LeadScorer.predict(frame, reasons=False)`.
Targets: with reasons at least 1/10 of `predict`'s throughput, and at least 0.8 of `pred_contrib`'s.
Two models: the demo configuration's LightGBM (trees by early stopping) and a larger one, 300 trees of 31
leaves, that replaces the demo's conversion model inside the same scorer. Each timing is the best of
`--repeat` runs, taken in turns so that a busy machine slows every contender alike. Rows per second are
wall-clock; ratios are given on wall clock and on this process's CPU time (all its threads), which other
processes on a shared machine disturb far less.

    python benchmarks/explain_throughput.py [--leads 20000] [--rows 50000] [--repeat 3]
"""

from __future__ import annotations

import argparse
import dataclasses
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd
from sklearn.pipeline import Pipeline

from leadscore.config import parse_config
from leadscore.model.explainer import build_explainer
from leadscore.synthetic.funnel import generate_to_dir
from leadscore.training.calibration import calibrate
from leadscore.training.candidates import lightgbm_classifier
from leadscore.training.pipeline import train

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import lead_demo_config  # noqa: E402

TARGET_PREDICT = 0.1  # with reasons / raw predict
TARGET_CONTRIB = 0.8  # with reasons / raw pred_contrib


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--leads", type=int, default=20_000, help="synthetic leads to train on")
    parser.add_argument("--rows", type=int, default=50_000, help="rows scored per timing")
    parser.add_argument("--repeat", type=int, default=3, help="timings per contender (the best counts)")
    args = parser.parse_args()

    with tempfile.TemporaryDirectory() as tmp:
        data = Path(tmp) / "funnel"
        generate_to_dir(args.leads, 7, data)
        raw = lead_demo_config(data)
        raw["model"]["candidates"] = ["lightgbm"]
        cfg = parse_config(raw, source="benchmark config")
        result = train(cfg)
    demo = result.scorer
    large = _larger_model(result, cfg, n_trees=300, num_leaves=31)
    rows = _rows(result, args.rows)

    print(f"{len(rows):,} rows, {len(demo.feature_columns)} feature columns, best of {args.repeat}")
    print(f"{'rows/s (wall clock)':<32}{'predict':>11}{'pred_contrib':>14}{'with reasons':>14}{'no reasons':>12}"
          f"{'reasons/predict':>17}{'reasons/contrib':>17}{'no reasons/predict':>20}")
    for name, scorer in (("demo", demo), ("300 trees x 31 leaves", large)):
        booster = scorer.classifier.model[-1].booster_
        label = f"{name} ({booster.num_trees()} trees)"
        wall, cpu = _measure(scorer, booster, rows, args.repeat)
        ratios = {clock: (rate["with"] / rate["predict"], rate["with"] / rate["pred_contrib"],
                          rate["without"] / rate["predict"]) for clock, rate in (("wall", wall), ("cpu", cpu))}
        print(f"{label:<32}{wall['predict']:>11,.0f}{wall['pred_contrib']:>14,.0f}{wall['with']:>14,.0f}"
              f"{wall['without']:>12,.0f}" + "".join(f"{ratio:>17.3f}" for ratio in ratios["wall"][:2])
              + f"{ratios['wall'][2]:>20.3f}   (wall)")
        print(f"{'':<32}{'':>11}{'':>14}{'':>14}{'':>12}" + "".join(f"{ratio:>17.3f}" for ratio in ratios["cpu"][:2])
              + f"{ratios['cpu'][2]:>20.3f}   (cpu)")
        worst = [min(ratios["wall"][i], ratios["cpu"][i]) for i in range(2)]
        verdict = "ok" if worst[0] >= TARGET_PREDICT and worst[1] >= TARGET_CONTRIB else "below target"
        print(f"{'':<32}{verdict}: reasons/predict >= {TARGET_PREDICT}, reasons/contrib >= {TARGET_CONTRIB}")


def _larger_model(result, cfg, *, n_trees: int, num_leaves: int):
    """The demo scorer with its conversion model replaced by a bigger LightGBM, calibrated and explained the same way."""
    features, label = result.table.feature_columns, result.table.label_column
    train_window, calibration = result.split.train, result.split.calibration
    encoder = result.scorer.encoder
    params = cfg.model.lightgbm.model_copy(update={"num_leaves": num_leaves})
    model = lightgbm_classifier(params, n_trees, cfg.model.seed).fit(
        encoder.transform(train_window[features]), train_window[label].to_numpy()
    )
    pipeline = Pipeline([("encode", encoder), ("model", model)])
    classifier, _, _ = calibrate(pipeline, "lightgbm", calibration[features], calibration[label].to_numpy(), "sigmoid", cfg.model.seed)
    explainer = build_explainer(classifier, train_window[features], features, cfg.groups, cfg.reasons, result.scorer.event_spec)
    return dataclasses.replace(result.scorer, classifier=classifier, explainer=explainer)


def _rows(result, n: int) -> pd.DataFrame:
    """`n` test-window rows (drawn again when the window is smaller), each with its own id."""
    test = result.split.test
    picked = test.sample(n=n, replace=len(test) < n, random_state=0)
    frame = picked[result.table.feature_columns].reset_index(drop=True)
    frame.insert(0, result.table.id_column, [f"B{i:07d}" for i in range(n)])
    return frame


def _measure(scorer, booster, rows: pd.DataFrame, repeat: int) -> tuple[dict[str, float], dict[str, float]]:
    """Rows per second of each contender: by wall clock and by this process's CPU time (best run each)."""
    encoded = scorer.encoder.transform(rows[scorer.feature_columns])
    contenders = {
        "predict": lambda: booster.predict(encoded, raw_score=True),
        "pred_contrib": lambda: booster.predict(encoded, pred_contrib=True),
        "with": lambda: scorer.predict(rows),
        "without": lambda: scorer.predict(rows, reasons=False),
    }
    for run in contenders.values():  # warm up: first calls pay for imports and allocations
        run()
    wall, cpu = dict.fromkeys(contenders, np.inf), dict.fromkeys(contenders, np.inf)
    for _ in range(repeat):
        for name, run in contenders.items():
            started, started_cpu = time.perf_counter(), time.process_time()
            run()
            wall[name] = min(wall[name], time.perf_counter() - started)
            cpu[name] = min(cpu[name], time.process_time() - started_cpu)
    return {k: len(rows) / v for k, v in wall.items()}, {k: len(rows) / v for k, v in cpu.items()}


if __name__ == "__main__":
    main()
