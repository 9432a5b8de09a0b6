"""Cutoff policies: guarantees hold, impossible policies say what is achievable, MQL never above SQL."""

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from scipy.stats import binomtest

from leadscore.config import (
    Capacity,
    CutoffsConfig,
    KeepConversions,
    MinConversionRate,
    MinLift,
    TopFraction,
)
from leadscore.errors import ConfigError
from leadscore.model.cutoffs import BANDS
from leadscore.training.cutoffs import (
    band_table,
    choose_cutoff,
    choose_cutoffs,
    clopper_pearson_lower,
)


def calibrated_sample(n=5000, seed=0):
    rng = np.random.default_rng(seed)
    p = rng.beta(0.7, 6, n)
    return p, rng.binomial(1, p)


def test_clopper_pearson_matches_scipy_exact_interval():
    for k, n in [(0, 10), (3, 10), (40, 100), (99, 100)]:
        expected = binomtest(k, n, alternative="greater").proportion_ci(0.95, method="exact").low
        assert clopper_pearson_lower(np.array([k]), np.array([n]), 0.95)[0] == pytest.approx(expected, abs=1e-9)


def test_min_conversion_rate_is_the_lowest_cutoff_meeting_the_bound():
    p, y = calibrated_sample()
    policy = MinConversionRate(policy="min_conversion_rate", conversion_rate=0.4, confidence=0.95)
    cutoff, _ = choose_cutoff(p, y, policy, which="sql")
    above = p >= cutoff
    bound = clopper_pearson_lower(np.array([y[above].sum()]), np.array([above.sum()]), 0.95)[0]
    assert bound >= 0.4, "the chosen cutoff meets the policy"
    for lower in np.unique(p[p < cutoff]):
        chosen = p >= lower
        assert clopper_pearson_lower(np.array([y[chosen].sum()]), np.array([chosen.sum()]), 0.95)[0] < 0.4, \
            "no lower cutoff meets the policy"


def test_impossible_policy_says_what_is_achievable():
    p, y = calibrated_sample(800)
    policy = MinConversionRate(policy="min_conversion_rate", conversion_rate=0.95, confidence=0.99)
    with pytest.raises(ConfigError, match=r"best achievable lower bound is \d+\.\d%"):
        choose_cutoff(p, y, policy, which="sql")


def test_recall_keeps_the_share_of_conversions_with_the_highest_cutoff():
    p, y = calibrated_sample()
    cutoff, _ = choose_cutoff(p, y, KeepConversions(policy="recall", recall=0.8), which="mql")
    assert y[p >= cutoff].sum() >= 0.8 * y.sum(), "at least 80 % of conversions are above the cutoff"
    higher = np.unique(p[p > cutoff])
    if higher.size:
        assert y[p >= higher[0]].sum() < 0.8 * y.sum(), "the next higher cutoff would keep too few"


def test_capacity_is_a_top_fraction():
    p, y = calibrated_sample()
    by_capacity, _ = choose_cutoff(p, y, Capacity(policy="capacity", leads_per_week=50, weekly_volume=1000), which="mql")
    by_fraction, _ = choose_cutoff(p, y, TopFraction(policy="top_fraction", fraction=0.05), which="mql")
    assert by_capacity == by_fraction, "50 of 1000 a week is the top 5 %"
    assert (p >= by_fraction).mean() == pytest.approx(0.05, abs=1 / len(p)), "the top 5 % are flagged"


@given(seed=st.integers(0, 10_000), recall=st.floats(0.05, 1.0), fraction=st.floats(0.001, 1.0))
def test_mql_cutoff_is_never_above_sql_and_bands_partition_the_leads(seed, recall, fraction):
    p, y = calibrated_sample(500, seed)
    cfg = CutoffsConfig(mql=KeepConversions(policy="recall", recall=recall),
                        sql=TopFraction(policy="top_fraction", fraction=fraction))
    cutoffs = choose_cutoffs(p, y, cfg)
    assert cutoffs.mql <= cutoffs.sql, "MQL is never stricter than SQL"
    table = band_table(p, y, cutoffs, "calibration")
    assert list(table["band"]) == list(BANDS)
    assert table["leads"].sum() == len(p) and table["conversions"].sum() == y.sum(), "bands partition the leads"
    assert (table["rate_ci_low"].fillna(0) <= table["conversion_rate"].fillna(0) + 1e-12).all()
    assert 0 <= cutoffs.mql_points <= cutoffs.sql_points <= 100, "points are the probabilities on the 0-100 scale"


# Defaults relative to the base rate: they hold on any data, and say so when they can only be approached.
def test_default_policies_never_stop_training_and_warn_when_only_approached():
    # Given a weak model whose ranking shows no lift at all (probabilities unrelated to the outcome)
    rng = np.random.default_rng(3)
    p, y = rng.uniform(0, 1, 3000), rng.binomial(1, 0.1, 3000)
    # When the default cutoffs are chosen
    cutoffs = choose_cutoffs(p, y, CutoffsConfig())
    # Then they are chosen all the same, with a warning that names the policy
    assert 0 <= cutoffs.mql <= cutoffs.sql <= 1
    assert any("cutoffs.sql" in w and "best achievable" in w for w in cutoffs.warnings), cutoffs.warnings
    assert (p >= cutoffs.sql).mean() <= 1 / 3 + 1 / len(p) * 10, "a lift of 3 is sought among at most a third of leads"


@given(seed=st.integers(0, 10_000), base=st.floats(0.01, 0.6))
def test_defaults_hold_for_any_base_rate(seed, base):
    rng = np.random.default_rng(seed)
    p = rng.beta(1, 1 / base - 1 if base < 0.5 else 1, 800)
    y = rng.binomial(1, np.clip(p, 0, 1))
    if y.sum() == 0:
        return
    cutoffs = choose_cutoffs(p, y, CutoffsConfig())
    assert cutoffs.mql <= cutoffs.sql, "MQL never above SQL"


def test_min_lift_is_relative_to_the_windows_average():
    p, y = calibrated_sample()
    policy = MinLift(policy="min_lift", lift=2.0, confidence=0.9)
    cutoff, text = choose_cutoff(p, y, policy, which="sql")
    above = p >= cutoff
    bound = clopper_pearson_lower(np.array([y[above].sum()]), np.array([above.sum()]), 0.9)[0]
    assert bound >= 2.0 * y.mean(), "conversion above the cutoff is at least twice the average, with confidence"
    assert "2x the average" in text


def test_unreachable_lift_stops_only_when_asked():
    p, y = calibrated_sample(800)
    policy = MinLift(policy="min_lift", lift=8.0, confidence=0.99, if_unreachable="stop")
    with pytest.raises(ConfigError, match="best achievable lower bound"):
        choose_cutoff(p, y, policy, which="sql")


def test_an_empty_mql_band_is_a_warning_and_an_error_in_strict_mode():
    # Given policies where the MQL policy asks for a higher cutoff than the SQL one
    p, y = calibrated_sample()
    policies = dict(mql=KeepConversions(policy="recall", recall=0.3), sql=TopFraction(policy="top_fraction", fraction=0.5))
    # Then the MQL band is empty, which is said, never silent
    cutoffs = choose_cutoffs(p, y, CutoffsConfig(**policies))
    assert cutoffs.mql == cutoffs.sql
    assert any("MQL band is empty" in w for w in cutoffs.warnings), cutoffs.warnings
    # And in strict mode it stops training
    with pytest.raises(ConfigError, match="MQL band is empty"):
        choose_cutoffs(p, y, CutoffsConfig(**policies, strict=True))
