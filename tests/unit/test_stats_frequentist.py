"""Welch comparison: equality with scipy and statsmodels, relative lift, degenerate cases."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import optimize, stats
from statsmodels.stats.proportion import (
    confint_proportions_2indep,
    proportions_ztest,
)
from statsmodels.stats.proportion import (
    test_proportions_2indep as wald_test_2indep,
)

from ab_testing.stats.descriptive import summarize
from ab_testing.stats.frequentist import compare, welch_satterthwaite_df, z_test
from ab_testing.stats.messages import CONTROL_MEAN_ZERO, TOO_FEW_UNITS, ZERO_VARIANCE
from tests.unit.stats_helpers import one_per_unit


def _draw(kind: str, seed: int) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    n_c, n_t = int(rng.integers(20, 400)), int(rng.integers(20, 400))
    if kind == "binary":
        return (rng.random(n_c) < 0.3).astype(float), (rng.random(n_t) < 0.36).astype(float)
    return rng.normal(10, 3, n_c), rng.normal(10.4, 5, n_t)


@pytest.mark.parametrize("kind", ["continuous", "binary"])
@pytest.mark.parametrize("seed", range(8))
def test_welch_p_value_and_df_equal_scipy(kind: str, seed: int) -> None:
    # Given seeded control and treatment data, one result per unit
    c, t = _draw(kind, seed)
    # When compared
    res = compare(summarize(one_per_unit(c)), summarize(one_per_unit(t)), 0.95)
    # Then the p-value is scipy's Welch test and df the Welch-Satterthwaite df
    ref = stats.ttest_ind(c, t, equal_var=False)
    v_c, v_t = c.var(ddof=1) / c.size, t.var(ddof=1) / t.size
    ws_df = (v_c + v_t) ** 2 / (v_c**2 / (c.size - 1) + v_t**2 / (t.size - 1))
    assert res.p_value == pytest.approx(ref.pvalue, rel=1e-8)
    assert res.df == pytest.approx(ws_df, rel=1e-10)
    assert res.difference == pytest.approx(t.mean() - c.mean(), rel=1e-12, abs=1e-15)
    # And the interval is scipy's (which is for control - treatment, hence the sign flip)
    ci = ref.confidence_interval(0.95)
    assert res.ci is not None
    assert res.ci[0] == pytest.approx(-ci.high, rel=1e-8)
    assert res.ci[1] == pytest.approx(-ci.low, rel=1e-8)


def test_binary_wald_interval_and_test_equal_statsmodels_exactly() -> None:
    # Given two large binary samples
    rng = np.random.default_rng(11)
    c = (rng.random(20000) < 0.10).astype(float)
    t = (rng.random(20500) < 0.11).astype(float)
    sc, st = summarize(one_per_unit(c)), summarize(one_per_unit(t))
    assert sc.var_mean is not None and st.var_mean is not None
    # When the package's z-test uses the Wald variance p(1-p)/n, i.e. s^2 (n-1)/n / n
    wald_se = (sc.var_mean * (c.size - 1) / c.size + st.var_mean * (t.size - 1) / t.size) ** 0.5
    diff = t.mean() - c.mean()
    p, lo, hi = z_test(diff, wald_se, 0.95)
    # Then it is statsmodels' unpooled Wald test and interval (same variance, normal quantile)
    ref_ci = confint_proportions_2indep(t.sum(), t.size, c.sum(), c.size, method="wald")
    ref_test = wald_test_2indep(t.sum(), t.size, c.sum(), c.size, method="wald")
    assert (lo, hi) == pytest.approx(ref_ci, rel=1e-8)
    assert p == pytest.approx(ref_test.pvalue, rel=1e-8)


def test_binary_welch_agrees_closely_with_pooled_z_test_at_large_n() -> None:
    # Given large binary samples (Welch t with ddof=1 variances vs the pooled-variance z-test)
    rng = np.random.default_rng(12)
    c = (rng.random(30000) < 0.20).astype(float)
    t = (rng.random(30000) < 0.21).astype(float)
    res = compare(summarize(one_per_unit(c)), summarize(one_per_unit(t)), 0.95)
    z, p = proportions_ztest([t.sum(), c.sum()], [t.size, c.size])
    # Then they differ only by the variance estimate (pooled vs unpooled, n vs n - 1) and the
    # t vs normal tail at df ~ 60000: O(1/n) and O(diff^2) effects, well under 1% on the
    # statistic and a few percent on the p-value
    assert res.difference is not None and res.se is not None and res.p_value is not None
    assert res.difference / res.se == pytest.approx(z, rel=5e-3)
    assert res.p_value == pytest.approx(p, rel=3e-2)


def test_relative_lift_interval_is_fiellers_and_agrees_with_the_test() -> None:
    # Given two samples
    rng = np.random.default_rng(5)
    c, t = rng.normal(20, 4, 300), rng.normal(22, 6, 280)
    res = compare(summarize(one_per_unit(c)), summarize(one_per_unit(t)), 0.9)
    # Then each end of the lift interval solves Fieller's equality with the Welch t quantile
    # (checked by scipy's root finder on the defining equation, not on our closed form)
    v_c, v_t = c.var(ddof=1) / c.size, t.var(ddof=1) / t.size
    mc, mt = c.mean(), t.mean()
    q = stats.t.ppf(0.95, res.df)

    def fieller(theta: float) -> float:
        return (mt - theta * mc) ** 2 - q * q * (v_t + theta * theta * v_c)

    lo = optimize.brentq(fieller, 0.5, mt / mc)
    hi = optimize.brentq(fieller, mt / mc, 2.0)
    assert res.relative_lift == pytest.approx(mt / mc - 1, rel=1e-12)
    assert res.relative_ci == pytest.approx((lo - 1, hi - 1), rel=1e-9)


def test_degenerate_comparisons_have_reasons_and_no_p_value() -> None:
    # Given constant groups, a single-unit group and a zero control mean
    const = compare(summarize(one_per_unit([1] * 5)), summarize(one_per_unit([2] * 5)), 0.95)
    tiny = compare(summarize(one_per_unit([1.0])), summarize(one_per_unit([1.0, 2.0])), 0.95)
    zero = compare(summarize(one_per_unit([0.0] * 10)), summarize(one_per_unit([0, 1] * 5)), 0.95)
    # Then each says why, keeping what is still defined
    assert const.reason == ZERO_VARIANCE and const.p_value is None and const.difference == 1.0
    assert tiny.reason == TOO_FEW_UNITS and tiny.p_value is None
    assert zero.reason == CONTROL_MEAN_ZERO and zero.relative_lift is None
    assert zero.p_value is not None and zero.df == pytest.approx(9)


def test_welch_df_formula_is_stable_for_extreme_variances() -> None:
    # Given variances whose squares underflow in float64
    df = welch_satterthwaite_df(1e-200, 9, 1e-200, 19)
    # Then the df is still the Welch-Satterthwaite value (equal variances: between 9 and 28)
    assert df == pytest.approx(4 / (1 / 9 + 1 / 19))
