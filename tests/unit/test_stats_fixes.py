"""The statistics fixes of issue 12, each checked against scipy/statsmodels or by simulation."""

from __future__ import annotations

import math
from decimal import Decimal

import numpy as np
import pytest
from scipy import stats
from statsmodels.stats.power import NormalIndPower
from statsmodels.stats.proportion import confint_proportions_2indep

from ab_testing.stats import StatisticalAnalyzer
from ab_testing.stats.descriptive import summarize
from ab_testing.stats.frequentist import compare
from ab_testing.stats.inputs import MetricSpec, MetricTotals
from ab_testing.stats.power import required_units
from tests.unit.stats_helpers import experiment, one_per_unit, two_groups, variant
from tests.unit.test_stats_intervals import mn_diff_interval

BINARY = MetricSpec("converted", kind="binary")


def counts(successes: int, n: int) -> list[int]:
    return [1] * successes + [0] * (n - successes)


def test_differences_of_means_near_1e15_are_exact() -> None:
    # Given values near 1e15 whose means differ by 0.3 (beyond a float's resolution at 1e15)
    rng = np.random.default_rng(1)
    small_c = rng.integers(0, 4, 500).astype(float)
    small_t = rng.integers(0, 4, 500).astype(float) + 0.3
    big = Decimal(10) ** 15
    control = MetricTotals.from_units([[big + Decimal(str(v))] for v in small_c])
    treatment = MetricTotals.from_units([[big + Decimal(str(v))] for v in small_t])
    # When compared
    res = compare(summarize(control), summarize(treatment), 0.95)
    # Then it is Welch's test on the shifted values (the test is shift-invariant)
    ref = stats.ttest_ind(small_t, small_c, equal_var=False)
    assert res.difference == pytest.approx(small_t.mean() - small_c.mean(), rel=1e-12)
    assert res.p_value == pytest.approx(ref.pvalue, rel=1e-9)


def test_binary_sample_size_uses_both_arms_variances() -> None:
    # Given a 10% baseline and a 10% relative MDE (0.10 -> 0.11)
    control = summarize(one_per_unit(counts(1000, 10000)))
    # When the units per variant at 80% power, alpha 0.05 are computed
    res = required_units(control, 0.10, 0.05, kind="binary", planned_units=5000)
    # Then it is statsmodels' normal power solution with each arm's own variance
    var = 0.10 * 0.90 + 0.11 * 0.89
    effect = 0.01 / math.sqrt(var / 2)  # NormalIndPower's effect size for unequal variances
    ref = NormalIndPower().solve_power(effect_size=effect, alpha=0.05, power=0.8, ratio=1)
    assert res.required_units_per_variant == math.ceil(ref) == 14749
    # And the power at the planned 5,000 units per variant is statsmodels' power
    planned = NormalIndPower().power(effect_size=effect, nobs1=5000, alpha=0.05, ratio=1)
    assert res.power_at_planned_size == pytest.approx(planned, rel=1e-9)


def test_relative_interval_agrees_with_the_test() -> None:
    # Given the 185/400 vs 213/400 (p just below 0.05)
    r = StatisticalAnalyzer().analyze(two_groups(counts(185, 400), counts(213, 400), spec=BINARY))
    comparison = r["metrics"]["converted"]["comparisons"][0]
    # Then the lift interval excludes 0 exactly as the test rejects
    assert comparison["p_value"] < 0.05 and comparison["relative_ci"][0] > 0
    # And over many random data sets, interval excludes 0 <=> p < alpha
    rng = np.random.default_rng(3)
    for _ in range(300):
        c, t = rng.normal(10, 3, 60), rng.normal(10 + rng.normal(0, 1), 3, 60)
        res = compare(summarize(one_per_unit(c)), summarize(one_per_unit(t)), 0.95)
        assert res.relative_ci is not None and res.p_value is not None
        assert (not res.relative_ci[0] <= 0 <= res.relative_ci[1]) == (res.p_value < 0.05)


def test_relative_interval_never_below_minus_100_percent() -> None:
    # Given the 1/50 vs 7/50 (the delta method gave [-883%, +2083%]); small counts, so
    # the score test (its Miettinen-Nurminen ratio interval) reads it
    r = StatisticalAnalyzer().analyze(two_groups(counts(1, 50), counts(7, 50), spec=BINARY))
    comparison = r["metrics"]["converted"]["comparisons"][0]
    lo, hi = comparison["relative_ci"]
    # Then the interval stays within what a ratio of rates can be, is statsmodels' score
    # interval of the ratio, and excludes 0 exactly as the test rejects
    ref = confint_proportions_2indep(7, 50, 1, 50, method="score", compare="ratio")
    assert -1.0 <= lo < hi
    assert [lo, hi] == pytest.approx([ref[0] - 1, ref[1] - 1], rel=1e-9)
    assert (lo > 0) == (comparison["p_value"] < 0.05)


@pytest.mark.slow
def test_relative_interval_covers_the_true_lift() -> None:
    # Given many binary experiments with true rates 0.30 and 0.36 (true lift +20%)
    rng = np.random.default_rng(11)
    covered = 0
    reps = 1500
    for _ in range(reps):
        c = (rng.random(300) < 0.30).astype(int)
        t = (rng.random(300) < 0.36).astype(int)
        res = compare(summarize(one_per_unit(c)), summarize(one_per_unit(t)), 0.95, "binary")
        assert res.relative_ci is not None
        covered += res.relative_ci[0] <= 0.2 <= res.relative_ci[1]
    # Then the 95% interval covers it about 95% of the time (binomial 3-sigma band)
    assert abs(covered / reps - 0.95) < 3 * math.sqrt(0.95 * 0.05 / reps)


@pytest.mark.parametrize(("c", "t"), [((0, 300), (300, 300)), ((0, 500), (10, 500))])
def test_small_or_degenerate_binary_counts_get_the_score_test(
    c: tuple[int, int], t: tuple[int, int]
) -> None:
    # Given degenerate or small binary counts
    r = StatisticalAnalyzer().analyze(
        two_groups(counts(*c), counts(*t), spec=BINARY, min_sample_size=10)
    )
    comparison = r["metrics"]["converted"]["comparisons"][0]
    # Then the p-value is the 'N - 1' chi-squared test (scipy's Pearson statistic times
    # (N - 1) / N) and the interval the Miettinen-Nurminen score interval that inverts it
    n = c[1] + t[1]
    table = [[t[0], t[1] - t[0]], [c[0], c[1] - c[0]]]
    chi2 = stats.chi2_contingency(table, correction=False).statistic * (n - 1) / n
    assert comparison["test"] == "score_n1"
    assert comparison["p_value"] == pytest.approx(stats.chi2.sf(chi2, 1), rel=1e-9)
    ref = mn_diff_interval(t[0], t[1], c[0], c[1])
    assert comparison["absolute_ci"] == pytest.approx(list(ref), abs=1e-9)
    assert -1.0 <= comparison["absolute_ci"][0] and comparison["absolute_ci"][1] <= 1.0


def test_sequential_tuning_comes_from_the_planned_size_or_the_experiment() -> None:
    # Given 100,000 units per arm and a small effect (Welch p about 0.03)
    rng = np.random.default_rng(7)
    c, t = rng.normal(10, 3, 100_000), rng.normal(10.03, 3, 100_000)
    inp = two_groups(c, t, min_sample_size=100, analysis_method="sequential")
    r = StatisticalAnalyzer().analyze(inp)
    comparison = r["metrics"]["score"]["comparisons"][0]
    welch = stats.ttest_ind(t, c, equal_var=False).pvalue
    # Then the confidence sequence is tuned at twice the planned units per variant
    assert r["power"]["sequential_tuning_units"] == 2 * r["power"]["required_units_per_variant"]
    # And its p-value is informative (it read 1.0 when tuned at 2 x min_sample_size)
    assert welch < 0.05 and comparison["sequential"]["p_value"] < 0.5
    # And an experiment may fix the tuning itself
    fixed = StatisticalAnalyzer().analyze(
        experiment(inp.variants, sequential_tuning_units=400_000, analysis_method="sequential")
    )
    assert fixed["power"]["sequential_tuning_units"] == 400_000


def test_units_not_results_are_counted_in_the_sentence() -> None:
    # Given users who each record one to three results
    rng = np.random.default_rng(9)
    control = MetricTotals.from_units([[0.5 + 0.1 * rng.random()] * 2 for _ in range(150)])
    treatment = MetricTotals.from_units([[0.7 + 0.1 * rng.random()] * 3 for _ in range(140)])
    r = StatisticalAnalyzer().analyze(
        experiment(
            [
                variant(1, {"score": control}, is_control=True),
                variant(2, {"score": treatment}),
            ]
        )
    )
    # Then the sentence names the variant and counts its 140 units, not its 420 results
    assert r["recommendation_reason"].startswith("Variant 2 (variant-2) shows")
    assert "with 140 units" in r["recommendation_reason"]
