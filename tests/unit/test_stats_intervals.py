"""Intervals that agree with the p-value on every path (Welch with Fieller; the score test).

Each reference is independent of the package: scipy's t-test and chi-square, statsmodels'
Koopman/Nam closed form of the Miettinen-Nurminen ratio interval, and for the difference an
inversion written here from the definition (the constrained maximum likelihood found by root
finding on the likelihood equation, not by the closed form of proportions.py). statsmodels'
own score interval of a difference is not used: its constrained estimate has a wrong
coefficient when the hypothesised difference is not 0 (statsmodels issue #10269).
"""

from __future__ import annotations

import math
from decimal import Decimal
from functools import cache
from typing import Any

import numpy as np
import pytest
from scipy import optimize, stats
from statsmodels.stats.proportion import confint_proportions_2indep, score_test_proportions_2indep

from ab_testing.stats import StatisticalAnalyzer
from ab_testing.stats.descriptive import summarize
from ab_testing.stats.frequentist import compare
from ab_testing.stats.inputs import MetricSpec, MetricTotals
from ab_testing.stats.lift_interval import fieller_lift
from ab_testing.stats.messages import (
    CONTROL_MEAN_ZERO,
    REASON_TEXT,
    RELATIVE_CI_UNBOUNDED,
    ZERO_VARIANCE,
)
from ab_testing.stats.proportions import restricted_diff, restricted_ratio, score_comparison
from tests.unit.stats_helpers import experiment, one_per_unit, rescaled, two_groups, variant

BINARY = MetricSpec("converted", kind="binary")
Z95 = stats.norm.ppf(0.975)


def counts(successes: int, n: int) -> list[int]:
    return [1] * successes + [0] * (n - successes)


def analyse(control: list[Any], treatment: list[Any], spec: MetricSpec) -> dict[str, Any]:
    answer = StatisticalAnalyzer().analyze(two_groups(control, treatment, spec=spec))
    comparison: dict[str, Any] = answer["metrics"][spec.name]["comparisons"][0]
    return comparison


# --- independent references ---------------------------------------------------------------


def n1_chi_square_p(x_t: int, n_t: int, x_c: int, n_c: int) -> float:
    """The 'N - 1' chi-squared test (Campbell 2007): Pearson's statistic times (N - 1) / N."""
    table = [[x_t, n_t - x_t], [x_c, n_c - x_c]]
    n = n_t + n_c
    chi2 = stats.chi2_contingency(table, correction=False).statistic * (n - 1) / n
    return float(stats.chi2.sf(chi2, 1))


def constrained_mle(x_t: int, n_t: int, x_c: int, n_c: int, delta: float) -> tuple[float, float]:
    """argmax of the binomial likelihood under p_t - p_c = delta, by root finding on its
    derivative in p_c (which decreases from +inf to -inf on the open range when the counts
    are inside it)."""
    lo, hi = max(0.0, -delta), min(1.0, 1.0 - delta)

    def dlog(pc: float) -> float:
        pt = pc + delta
        return x_t / pt - (n_t - x_t) / (1 - pt) + x_c / pc - (n_c - x_c) / (1 - pc)

    eps = 1e-15
    a, b = lo + eps * max(1, lo), hi - eps * max(1, hi)
    if dlog(a) <= 0:
        pc = lo
    elif dlog(b) >= 0:
        pc = hi
    else:
        pc = optimize.brentq(dlog, a, b, xtol=1e-16, rtol=1e-15)
    return pc + delta, pc


def mn_statistic(x_t: int, n_t: int, x_c: int, n_c: int, delta: float) -> float:
    pt, pc = constrained_mle(x_t, n_t, x_c, n_c, delta)
    n = n_t + n_c
    var = (pt * (1 - pt) / n_t + pc * (1 - pc) / n_c) * n / (n - 1)
    return (x_t / n_t - x_c / n_c - delta) / math.sqrt(var)


def mn_diff_interval(x_t: int, n_t: int, x_c: int, n_c: int) -> tuple[float, float]:
    """Miettinen-Nurminen interval of p_t - p_c by inverting the statistic above."""
    est = x_t / n_t - x_c / n_c
    edge = 1e-9  # the statistic is infinite at -1 and 1

    def bound(target: float, a: float, b: float, at_edge: float) -> float:
        f = lambda d: mn_statistic(x_t, n_t, x_c, n_c, d) - target  # noqa: E731
        if est == at_edge:
            return at_edge
        return optimize.brentq(f, a, b, xtol=1e-14)

    lower = bound(Z95, -1 + edge, min(est, 1 - edge), -1.0)
    upper = bound(-Z95, max(est, -1 + edge), 1 - edge, 1.0)
    return lower, upper


def statsmodels_ratio(x_t: int, n_t: int, x_c: int, n_c: int) -> tuple[float, float]:
    """statsmodels' score interval of p_t / p_c (Koopman/Nam closed form with the N / (N - 1)
    factor: the Miettinen-Nurminen interval). Its polynomial roots are unreliable when a group
    is all successes, so the tests use it for 0 < x < n in both groups."""
    lo, hi = confint_proportions_2indep(
        x_t, n_t, x_c, n_c, method="score", compare="ratio", correction=True
    )
    return float(np.real(lo)), float(np.real(hi))


# --- the five reported cases, through the analyzer ------------------------------------------


def test_case_1_welch_with_an_unbounded_lift_interval_says_so() -> None:
    # Given 2/20 vs 8/20 (Welch's p = 0.03; the control rate is not distinguishable from 0 at
    # this level, so Fieller's set is unbounded: it read [-12.1%, +1720%], across 0)
    c = analyse(counts(2, 20), counts(8, 20), BINARY)
    # Then the p-value is scipy's Welch test and the absolute interval agrees with it
    ref = stats.ttest_ind(counts(8, 20), counts(2, 20), equal_var=False)
    assert c["test"] == "welch"
    assert c["p_value"] == pytest.approx(ref.pvalue, rel=1e-9) and c["p_value"] < 0.05
    assert c["absolute_ci"][0] > 0
    # And the relative interval is null with the reason, not a finite interval across 0
    assert c["relative_ci"] is None and c["relative_ci_reason"] == RELATIVE_CI_UNBOUNDED
    assert c["relative_lift"] == pytest.approx(3.0, rel=1e-12)
    # Because the control mean is within q standard errors of 0 (Fieller's a <= 0)
    se_c = np.std(counts(2, 20), ddof=1) / math.sqrt(20)
    q = stats.t.ppf(0.975, ref.df)
    assert 0.1 <= q * se_c


def test_case_2_continuous_unbounded_lift_interval_has_no_log_ratio_fallback() -> None:
    # Given the skewed samples (Welch's p = 0.092; it read [-97.5%, -69.2%])
    control = [0.8, 2.6, 1.2, 0.4, 1.7, 7.1]
    treatment = [0.4, 0.2, 0.1, 0.2, 0.2, 0.1]
    c = analyse(control, treatment, MetricSpec("score"))
    ref = stats.ttest_ind(treatment, control, equal_var=False)
    assert c["p_value"] == pytest.approx(ref.pvalue, rel=1e-9) and c["p_value"] > 0.05
    assert c["absolute_ci"][0] < 0 < c["absolute_ci"][1]
    # Then there is no relative interval that excludes 0, and the reason says why
    assert c["relative_ci"] is None and c["relative_ci_reason"] == RELATIVE_CI_UNBOUNDED
    q = stats.t.ppf(0.975, ref.df)
    assert np.mean(control) <= q * np.std(control, ddof=1) / math.sqrt(len(control))


@pytest.mark.parametrize(
    ("control", "treatment"),
    [((4, 20), (0, 20)), ((1, 20), (6, 20))],
    ids=["case-3-4of20-vs-0of20", "case-4-1of20-vs-6of20"],
)
def test_cases_3_and_4_small_counts_use_one_score_statistic(
    control: tuple[int, int], treatment: tuple[int, int]
) -> None:
    # Given small binary counts (Fisher's p 0.106 with a lift interval [-100%, -100%]; Fisher's
    # p 0.0915 with Newcombe's interval [0.008, 0.473], which excluded 0)
    (x_c, n_c), (x_t, n_t) = control, treatment
    c = analyse(counts(*control), counts(*treatment), BINARY)
    # Then the p-value is the 'N - 1' chi-squared test's
    assert c["test"] == "score_n1"
    assert c["p_value"] == pytest.approx(n1_chi_square_p(x_t, n_t, x_c, n_c), rel=1e-9)
    # And the intervals are Miettinen-Nurminen's for the difference and for the ratio
    assert c["absolute_ci"] == pytest.approx(mn_diff_interval(x_t, n_t, x_c, n_c), abs=1e-9)
    lo, hi = statsmodels_ratio(x_t, n_t, x_c, n_c)
    assert c["relative_ci"] == pytest.approx([max(lo - 1, -1.0), hi - 1], rel=1e-9, abs=1e-12)
    # And all three agree on the decision
    rejected = c["p_value"] < 0.05
    assert rejected == (not c["absolute_ci"][0] <= 0 <= c["absolute_ci"][1])
    assert rejected == (not c["relative_ci"][0] <= 0 <= c["relative_ci"][1])


def test_case_5_lift_interval_near_1e9_with_a_tiny_standard_error() -> None:
    # Given values near 1e9 whose standard error is about 1e-10 of the mean (p = 0.77; the
    # textbook discriminant cancelled and the interval was a point excluding 0)
    big = Decimal(10) ** 9
    small_c = np.round(rescaled(40, 0.0, 1.0, 1), 6)
    small_t = np.round(rescaled(40, 0.066, 1.0, 2), 6)
    totals = [
        MetricTotals.from_units([[big + Decimal(repr(float(v)))] for v in small])
        for small in (small_c, small_t)
    ]
    inp = experiment(
        [variant(1, {"score": totals[0]}, is_control=True), variant(2, {"score": totals[1]})],
        primary=MetricSpec("score"),
    )
    c = StatisticalAnalyzer().analyze(inp)["metrics"]["score"]["comparisons"][0]
    # Then the test is Welch's on the shifted values (shift-invariant) and does not reject
    ref = stats.ttest_ind(small_t, small_c, equal_var=False)
    assert c["p_value"] == pytest.approx(ref.pvalue, rel=1e-9) and c["p_value"] > 0.05
    # And the relative interval contains 0 and is the absolute one over the control mean
    lo, hi = c["relative_ci"]
    assert lo < 0 < hi
    mean_c = float(big + Decimal(repr(float(np.mean(small_c)))))
    assert [lo, hi] == pytest.approx([v / mean_c for v in c["absolute_ci"]], rel=1e-9)
    assert c["relative_lift"] == pytest.approx(c["absolute_difference"] / mean_c, rel=1e-9)


# --- the score path over grids of small tables ----------------------------------------------

GRID = (
    [(x_t, 20, x_c, 20) for x_t in range(21) for x_c in range(21)]
    + [(x_t, 7, x_c, 30) for x_t in range(8) for x_c in range(31)]
    + [(x_t, 50, x_c, 13) for x_t in range(0, 51, 5) for x_c in range(14)]
)


@pytest.mark.parametrize("confidence", [0.95, 0.9])
def test_p_value_and_both_intervals_agree_on_every_small_table(confidence: float) -> None:
    alpha = 1 - confidence
    q = stats.norm.ppf(0.5 + confidence / 2)
    checked = 0
    for x_t, n_t, x_c, n_c in GRID:
        res = score_comparison((x_c, n_c), (x_t, n_t), confidence)
        if x_t + x_c in (0, n_t + n_c):  # both constant and equal: no test
            assert (res.p_value, res.ci, res.ratio_ci) == (None, None, None)
            continue
        assert res.p_value is not None and res.ci is not None and res.ratio_ci is not None
        # p is scipy's 'N - 1' chi-squared test
        assert res.p_value == pytest.approx(n1_chi_square_p(x_t, n_t, x_c, n_c), rel=1e-9)
        # p < alpha <=> the difference interval excludes 0 <=> the ratio interval excludes 1
        rejected = res.p_value < alpha
        assert rejected == (not res.ci[0] <= 0 <= res.ci[1]), (x_t, n_t, x_c, n_c)
        assert rejected == (not res.ratio_ci[0] <= 1 <= res.ratio_ci[1]), (x_t, n_t, x_c, n_c)
        # Bounds within the parameters' ranges; an infinite ratio only with no control success
        assert -1.0 <= res.ci[0] <= res.ci[1] <= 1.0
        assert 0.0 <= res.ratio_ci[0] <= res.ratio_ci[1]
        assert math.isinf(res.ratio_ci[1]) == (x_c == 0) and (res.ratio_ci[0] == 0) == (x_t == 0)
        if 0 < x_c < n_c and 0 < x_t < n_t and confidence == 0.95:
            assert res.ratio_ci == pytest.approx(statsmodels_ratio(x_t, n_t, x_c, n_c), rel=1e-8)
        # Each finite ratio bound solves |z| = q for statsmodels' score statistic of the ratio
        for bound, z in zip(res.ratio_ci, (q, -q), strict=True):
            if 0 < bound < math.inf:
                got = score_test_proportions_2indep(
                    x_t, n_t, x_c, n_c, value=bound, compare="ratio", correction=True
                ).statistic
                assert got == pytest.approx(z, abs=1e-9), (x_t, n_t, x_c, n_c)
        checked += 1
    assert checked > 800


@pytest.mark.parametrize("table", GRID[::23])
def test_difference_interval_is_miettinen_nurminens(table: tuple[int, int, int, int]) -> None:
    x_t, n_t, x_c, n_c = table
    res = score_comparison((x_c, n_c), (x_t, n_t), 0.95)
    if res.ci is None:
        return
    assert res.ci == pytest.approx(mn_diff_interval(x_t, n_t, x_c, n_c), abs=1e-9)


def test_constrained_estimates_maximise_the_likelihood() -> None:
    # The closed forms (a cubic for the difference, a quadratic for the ratio) against root
    # finding on the likelihood equation
    for x_t, n_t, x_c, n_c in [(8, 20, 2, 20), (0, 20, 4, 20), (6, 20, 1, 20), (3, 7, 29, 30)]:
        for delta in np.linspace(-0.95, 0.95, 39):
            ref = constrained_mle(x_t, n_t, x_c, n_c, float(delta))
            got = restricted_diff(x_t, n_t, x_c, n_c, float(delta))
            assert got == pytest.approx(ref, abs=1e-9)
        for ratio in (0.2, 0.7, 1.3, 4.0):
            pt, pc = restricted_ratio(x_t, n_t, x_c, n_c, ratio)
            assert pt == pytest.approx(ratio * pc, rel=1e-12)
            score = x_t / pc - (n_t - x_t) * ratio / (1 - pt) + x_c / pc - (n_c - x_c) / (1 - pc)
            assert abs(score) < 1e-7 * (n_t + n_c) / pc


SETTINGS = [(20, 20, 0.1), (10, 30, 0.1), (50, 50, 0.05), (500, 500, 0.005), (15, 40, 0.03)]


@pytest.mark.parametrize(("n_t", "n_c", "rate"), SETTINGS)
def test_type_one_error_of_the_score_test_is_at_most_alpha(n_t: int, n_c: int, rate: float) -> None:
    # Given A/A experiments with a small expected count (the score path's territory)
    reps = 20_000
    rng = np.random.default_rng(n_t * 1000 + n_c)
    x_t, x_c = rng.binomial(n_t, rate, reps), rng.binomial(n_c, rate, reps)

    @cache
    def rejects(a: int, b: int) -> bool:
        p = score_comparison((b, n_c), (a, n_t), 0.95).p_value
        return p is not None and p < 0.05

    # When each table is tested with the package's score test (once per distinct table)
    pairs, where = np.unique(np.stack([x_t, x_c], axis=1), axis=0, return_inverse=True)
    rejected = np.array([rejects(int(a), int(b)) for a, b in pairs])[where.ravel()]
    # Then the false-positive rate is at most 5% (plus 3 Monte Carlo standard errors)
    assert rejected.mean() <= 0.05 + 3 * math.sqrt(0.05 * 0.95 / reps)


# --- the Welch path: Fieller's interval, computed stably, or unbounded ----------------------


def test_welch_lift_interval_agrees_with_p_or_is_unbounded() -> None:
    # Given many small, noisy samples, some with a control mean near 0
    rng = np.random.default_rng(17)
    unbounded = 0
    for _ in range(400):
        n = int(rng.integers(4, 40))
        c = rng.normal(rng.choice([0.3, 1.0, 10.0]), 2.0, n)
        t = rng.normal(1.0 + rng.normal(0, 1), 2.0, n + 3)
        res = compare(summarize(one_per_unit(c)), summarize(one_per_unit(t)), 0.95)
        assert res.p_value is not None and res.df is not None
        q = stats.t.ppf(0.975, res.df)
        if res.relative_ci is None:
            # Then the interval is missing only when Fieller's set is unbounded
            assert res.relative_ci_reason == RELATIVE_CI_UNBOUNDED
            assert abs(c.mean()) <= q * c.std(ddof=1) / math.sqrt(n) * (1 + 1e-9)
            unbounded += 1
        else:
            # Else it excludes 0 exactly when the test rejects
            assert res.relative_ci_reason is None
            assert (not res.relative_ci[0] <= 0 <= res.relative_ci[1]) == (res.p_value < 0.05)
    assert unbounded > 20


def test_stable_fieller_matches_high_precision_roots() -> None:
    # Given means near 1e9 with standard errors of 1e-10 of the mean
    from decimal import localcontext

    mean_c, diff, var_c, var_t, q = 1e9, 0.066, 0.025, 0.027, 1.99
    lift = fieller_lift(diff, mean_c, var_t, var_c, q)
    assert lift is not None
    lo, hi = lift
    # When the textbook quadratic in theta is solved in 80-digit Decimal arithmetic
    with localcontext() as ctx:
        ctx.prec = 80
        mc, mt = Decimal(mean_c), Decimal(mean_c) + Decimal(diff)
        q2, vc, vt = Decimal(q) ** 2, Decimal(var_c), Decimal(var_t)
        a, b, c = mc * mc - q2 * vc, -2 * mt * mc, mt * mt - q2 * vt
        root = (b * b - 4 * a * c).sqrt()
        ref = sorted(float((-b + s * root) / (2 * a) - 1) for s in (-1, 1))
    # Then the lift bounds agree to 1e-12 relative
    assert (lo, hi) == pytest.approx(ref, rel=1e-12)
    assert lo < 0 < hi


def test_relative_ci_reason_is_in_the_answer_with_its_sentence() -> None:
    c = analyse(counts(2, 20), counts(8, 20), BINARY)
    assert "relative_ci_reason" in c and c["relative_ci_reason"] in REASON_TEXT
    bounded = analyse(counts(50, 100), counts(60, 100), BINARY)
    assert bounded["relative_ci"] is not None and bounded["relative_ci_reason"] is None
    zero = analyse(counts(0, 20), counts(5, 20), BINARY)
    assert zero["relative_ci"] is None and zero["relative_ci_reason"] == CONTROL_MEAN_ZERO
    assert zero["test"] == "score_n1" and zero["absolute_ci"][0] > 0
    same = analyse(counts(0, 30), counts(0, 40), BINARY)
    assert (same["p_value"], same["reason"], same["test"]) == (None, ZERO_VARIANCE, "score_n1")


def test_an_unbounded_cost_interval_needs_a_decision_and_renders() -> None:
    # Given a clear win on the primary metric and a cost whose control mean is near 0, with a
    # declared acceptable regression on the cost
    from ab_testing.report_page import render_report
    from emulator.report_cli import render_text

    primary = MetricSpec("resolution_rate", "binary", "higher")
    cost = MetricSpec("cost_usd", "continuous", "lower")
    rng = np.random.default_rng(3)
    variants = [
        variant(
            vid,
            {
                "resolution_rate": one_per_unit(counts(rate, 200)),
                "cost_usd": one_per_unit(rng.normal(mean, 1.0, 200)),
            },
            is_control=vid == 1,
        )
        for vid, rate, mean in ((1, 60, 0.02), (2, 110, 0.3))
    ]
    inp = experiment(
        variants,
        primary=primary,
        secondary=[cost],
        min_sample_size=50,
        acceptable_regressions={"cost_usd": 0.1},
    )
    answer = StatisticalAnalyzer().analyze(inp)
    comparison = answer["metrics"]["cost_usd"]["comparisons"][0]
    assert comparison["relative_ci"] is None
    assert comparison["relative_ci_reason"] == RELATIVE_CI_UNBOUNDED
    # Then the trade-off rule cannot hold it to its limit and leaves it to people
    decision = answer["decision"]
    (check,) = decision["checks"]
    assert (check["verdict"], check["interval"], decision["action"]) == (
        "unbounded",
        None,
        "needs_decision",
    )
    # And the report page and the terminal say the interval is unbounded
    page = render_report({"id": 1, "name": "x"}, answer, [], "2026-01-03T00:00:00Z")
    assert "<td>unbounded</td>" in page
    assert "unbounded" in render_text(answer)
