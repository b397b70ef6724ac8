"""Intervals that agree with the p-value: the relative lift's Fieller interval on the Welch
path, computed stably, or null with a reason when it is unbounded."""

from __future__ import annotations

import math
from decimal import Decimal
from typing import Any

import numpy as np
import pytest
from scipy import stats

from ab_testing.stats import StatisticalAnalyzer
from ab_testing.stats.descriptive import summarize
from ab_testing.stats.frequentist import compare
from ab_testing.stats.inputs import MetricSpec, MetricTotals
from ab_testing.stats.lift_interval import fieller_lift
from ab_testing.stats.messages import CONTROL_MEAN_ZERO, REASON_TEXT, RELATIVE_CI_UNBOUNDED
from tests.unit.stats_helpers import experiment, one_per_unit, rescaled, two_groups, variant

BINARY = MetricSpec("converted", kind="binary")


def counts(successes: int, n: int) -> list[int]:
    return [1] * successes + [0] * (n - successes)


def analyse(control: list[Any], treatment: list[Any], spec: MetricSpec) -> dict[str, Any]:
    answer = StatisticalAnalyzer().analyze(two_groups(control, treatment, spec=spec))
    comparison: dict[str, Any] = answer["metrics"][spec.name]["comparisons"][0]
    return comparison


# --- reported cases, through the analyzer ---------------------------------------------------


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
    zero = analyse([0.0] * 10, [0, 1] * 5, MetricSpec("score"))
    assert zero["relative_ci"] is None and zero["relative_ci_reason"] == CONTROL_MEAN_ZERO


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
