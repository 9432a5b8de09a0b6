"""What a training run reports about its dimension scores, cutoffs and calibration.

Everything here is measured on the calibration and test windows of the run, and logged with it.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pandas as pd
from matplotlib.figure import Figure

from leadscore.features.events import DAYS_TO_CONVERSION
from leadscore.model.cutoffs import BANDS
from leadscore.model.dimensions import STAGES, dimension_spec
from leadscore.model.scorer import LeadScorer
from leadscore.reporting.metrics import probability_metrics
from leadscore.reporting.plots import bands_figure, calibration_figure
from leadscore.training.cutoffs import band_table


@dataclass
class DimensionReport:
    """Metrics, tables and figures about dimensions, cutoffs and calibration."""

    metrics: dict[str, dict[str, float]] = field(default_factory=dict)
    tables: dict[str, pd.DataFrame] = field(default_factory=dict)
    figures: dict[str, Figure] = field(default_factory=dict)


def report_dimensions(scorer: LeadScorer, windows: dict[str, pd.DataFrame], label_column: str, stage_cfg,
                      p_test: np.ndarray) -> DimensionReport:
    """Dimension metrics against their own targets, cutoff bands, stage timing and reliability;
    `p_test` holds the scorer's probabilities on the test window."""
    report = DimensionReport()
    test = windows["test"]
    y_test = test[label_column].to_numpy()
    reliability = {"p_convert": (y_test, p_test)}

    dimensions = scorer.dimensions
    if dimensions is not None:
        p_dims = dimensions.probabilities(test)
        for name, p in p_dims.items():
            target = dimension_spec(name).target(test, label_column, stage_cfg)
            report.metrics[f"dimension_{name}"] = probability_metrics(target, p)
            reliability[f"{name}_score"] = (target, p)
        if "stage" in p_dims and DAYS_TO_CONVERSION in test.columns:
            report.tables["stage_timing"] = stage_timing(test, dimensions.stage_labels(p_dims["stage"]), label_column)

    if scorer.cutoffs is not None:
        probabilities = {"calibration": scorer.predict_proba(windows["calibration"]), "test": p_test}
        bands = pd.concat([
            band_table(p, windows[w][label_column].to_numpy(), scorer.cutoffs, w, windows[w])
            for w, p in probabilities.items()
        ], ignore_index=True)
        report.tables["cutoff_bands"] = bands
        report.figures["cutoff_bands.png"] = bands_figure(bands, BANDS)
    report.figures["reliability.png"] = _reliability_figure(reliability)
    return report


def stage_timing(window: pd.DataFrame, stages: np.ndarray, label_column: str) -> pd.DataFrame:
    """Among leads that converted within the horizon: median days to conversion per stage label."""
    converted = window[label_column].to_numpy() == 1
    days = window[DAYS_TO_CONVERSION].to_numpy()
    rows = []
    for stage in STAGES:
        members = converted & (stages == stage)
        rows.append({
            "stage": stage, "leads": int((stages == stage).sum()), "conversions": int(members.sum()),
            "median_days_to_conversion": float(np.median(days[members])) if members.any() else float("nan"),
        })
    return pd.DataFrame(rows)


def _reliability_figure(outputs: dict[str, tuple[np.ndarray, np.ndarray]]) -> Figure:
    # Each output is compared with its own target, so draw each against its own observed rates.
    figures_input = {name: p for name, (_, p) in outputs.items()}
    targets = {name: y for name, (y, _) in outputs.items()}
    return calibration_figure(targets, figures_input)
