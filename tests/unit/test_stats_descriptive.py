"""Descriptive statistics from running totals: precision, unit-level variance, guards."""

from __future__ import annotations

import math

import numpy as np
import pytest
import statsmodels.api as sm

from ab_testing.stats.descriptive import summarize
from ab_testing.stats.inputs import MetricTotals
from ab_testing.stats.messages import NO_DATA, NON_FINITE, NUMERIC_OVERFLOW, TOO_FEW_UNITS
from tests.unit.stats_helpers import one_per_unit


def test_one_result_per_unit_matches_numpy() -> None:
    # Given 500 results, one per unit
    y = np.random.default_rng(1).normal(3.0, 2.0, 500)
    # When summarized
    s = summarize(one_per_unit(y))
    # Then mean, sample variance (ddof=1), std and the variance of the mean are the textbook ones
    assert s.results == s.units == 500
    assert s.mean == pytest.approx(y.mean(), rel=1e-12)
    assert s.variance == pytest.approx(y.var(ddof=1), rel=1e-12)
    assert s.std == pytest.approx(y.std(ddof=1), rel=1e-12)
    assert s.var_mean == pytest.approx(y.var(ddof=1) / 500, rel=1e-12)
    assert s.min == y.min() and s.max == y.max()


def test_huge_values_do_not_cancel_catastrophically() -> None:
    # Given values around 1e15 whose spread is tiny (float64 would lose it in sum y^2 - ...)
    values = [1e15 + k for k in (1, 2, 3, 4, 5)]
    naive = (sum(v * v for v in values) - sum(values) ** 2 / 5) / 4
    # When summarized (the totals keep DynamoDB's 38 significant digits)
    s = summarize(one_per_unit(values))
    # Then the variance is exact (2.5) while the naive float formula is far off
    assert s.variance == 2.5
    assert s.var_mean == pytest.approx(0.5, rel=1e-15)
    assert abs(naive - 2.5) > 1.0
    assert s.mean == 1e15 + 3


def test_cluster_robust_variance_matches_independent_computations() -> None:
    # Given 300 units with 1 to 6 results each and a per-unit random effect
    rng = np.random.default_rng(7)
    m = rng.integers(1, 7, 300)
    unit_effect = rng.normal(0, 1.0, 300)
    ids = np.repeat(np.arange(300), m)
    y = 5 + unit_effect[ids] + rng.normal(0, 2.0, ids.size)
    per_unit = [y[ids == i].tolist() for i in range(300)]
    # When summarized from unit-level totals
    s = summarize(MetricTotals.from_units(per_unit))
    # Then it equals the linearised variance of the ratio estimator computed from raw arrays
    big_s, big_m = np.bincount(ids, weights=y), np.bincount(ids).astype(float)
    r = big_s.sum() / big_m.sum()
    influence = (big_s - r * big_m) / big_m.mean()
    assert s.mean == pytest.approx(y.mean(), rel=1e-12)
    assert s.var_mean == pytest.approx(influence.var(ddof=1) / 300, rel=1e-9)
    # And the cluster-robust OLS variance of an intercept-only model (CR1, G/(G-1) correction)
    fit = sm.OLS(y, np.ones_like(y)).fit(cov_type="cluster", cov_kwds={"groups": ids})
    assert s.var_mean == pytest.approx(fit.bse[0] ** 2, rel=1e-9)
    # And it is larger than the naive i.i.d. variance, which ignores the within-unit correlation
    assert s.var_mean > y.var(ddof=1) / y.size


def test_single_result_per_unit_reduces_to_sample_variance_over_k() -> None:
    # Given unit totals tracked explicitly with m_i = 1
    y = [0, 1, 1, 0, 1, 1, 1]
    s = summarize(one_per_unit(y))
    # Then Var(mean) is s_y^2 / K exactly
    assert s.var_mean == pytest.approx(np.var(y, ddof=1) / len(y), rel=1e-15)


def test_guards_for_empty_and_single_results() -> None:
    # Given no results, then one result
    empty = summarize(MetricTotals())
    single = summarize(one_per_unit([4.2]))
    # Then nothing is invented: no mean for empty data, no variance for n = 1
    assert empty.reason == NO_DATA and empty.mean is None and empty.results == 0
    assert single.mean == 4.2 and single.variance is None and single.var_mean is None
    assert single.reason == TOO_FEW_UNITS


def test_many_results_in_a_single_unit_have_no_unit_level_variance() -> None:
    # Given 10 results all from the same unit
    s = summarize(MetricTotals.from_units([[1.0, 2.0, 3.0, 4.0] * 3]))
    # Then the result variance exists but the mean's variance cannot be estimated (K = 1)
    assert s.variance is not None and s.var_mean is None and s.reason == TOO_FEW_UNITS


def test_missing_unit_totals_fall_back_to_one_unit_per_result() -> None:
    # Given totals from a store that did not track units
    y = [1.0, 2.0, 4.0, 8.0]
    totals = MetricTotals(results=4, total=sum(y), total_sq=sum(v * v for v in y))
    # When summarized
    s = summarize(totals)
    # Then each result is its own unit and this is reported
    assert s.units_missing and s.units == 4
    assert s.var_mean == pytest.approx(np.var(y, ddof=1) / 4)


def test_non_finite_and_overflowing_totals_give_reasons() -> None:
    # Given NaN totals, and values whose squares do not fit in a float
    bad = summarize(MetricTotals(results=3, total=float("nan"), total_sq=1.0, units=3))
    huge = summarize(one_per_unit([1e200, 3e200, 2e200]))
    # Then no exception, and the reason says why
    assert bad.reason == NON_FINITE and bad.mean is None
    assert huge.mean == pytest.approx(2e200) and huge.reason == NUMERIC_OVERFLOW
    assert huge.var_mean is None
    assert all(v is None or math.isfinite(v) for v in (huge.variance, huge.std))
