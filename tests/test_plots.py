"""Plots a person reads at a glance: the calibration plot is zoomed to where the scores are."""

from __future__ import annotations

import numpy as np
import pandas as pd

from leadscore.model.cutoffs import BANDS
from leadscore.reporting.plots import bands_figure, calibration_figure


def test_calibration_axes_cover_the_data_and_not_much_more():
    # Given scores that all sit below 0.3, as lead scores usually do
    rng = np.random.default_rng(0)
    p = rng.beta(1, 12, 5000)
    y = rng.binomial(1, p)
    # When the calibration plot is drawn
    ax = calibration_figure(y, {"leadscore": p}).axes[0]
    # Then both axes end a little above the highest binned value, far below 1
    lines = [line for line in ax.get_lines() if line.get_label() == "leadscore"]
    highest = max(np.max(lines[0].get_xdata()), np.max(lines[0].get_ydata()))
    for low, high in (ax.get_xlim(), ax.get_ylim()):
        assert low == 0, "axes start at zero"
        assert highest <= high <= 1.25 * highest, f"axis ends at {high}, the data at {highest}"
    # And each bin says how many leads it holds
    counts = [int(t.get_text().replace(",", "")) for t in ax.texts]
    assert len(counts) == len(lines[0].get_xdata()) and sum(counts) == len(p), "every lead is counted in one bin"


def test_band_shares_are_written_in_the_tick_labels_not_over_the_bars():
    rows = [{"window": w, "band": b, "leads": 10, "share_of_leads": s, "conversions": 2, "conversion_rate": r,
             "rate_ci_low": r / 2, "rate_ci_high": min(1, r * 1.5), "share_of_conversions": 0.3}
            for w in ("calibration", "test") for b, s, r in zip(BANDS, (0.1, 0.3, 0.6), (0.5, 0.2, 0.02))]
    ax = bands_figure(pd.DataFrame(rows), BANDS).axes[0]
    assert not ax.texts, "no labels drawn inside the plot area"
    assert all("of leads" in label.get_text() for label in ax.get_xticklabels())
