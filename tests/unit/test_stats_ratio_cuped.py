"""Ratio metrics (delta method) and CUPED, checked against direct computation, statsmodels and
by simulation. Per-unit data are drawn with numpy; our functions see only their sums."""

from __future__ import annotations

import math
from decimal import Decimal

import numpy as np
import pytest

from ab_testing.stats import cuped
from ab_testing.stats.frequentist import compare
from ab_testing.stats.unitsums import UnitSums, ratio_summary


def sums(a: np.ndarray, b: np.ndarray, x: np.ndarray | None = None) -> UnitSums:
    """The running totals the ledger keeps, from per-unit values (x NaN: no covariate)."""

    def d(v: float) -> Decimal:
        return Decimal(repr(float(v)))

    h = np.zeros_like(a) if x is None else (~np.isnan(x)).astype(float)
    xv = np.zeros_like(a) if x is None else np.nan_to_num(x)
    return UnitSums(
        units=len(a),
        a=d(a.sum()),
        b=d(b.sum()),
        aa=d((a * a).sum()),
        bb=d((b * b).sum()),
        ab=d((a * b).sum()),
        results=len(a),
        h=d(h.sum()),
        x=d(xv.sum()),
        xx=d((xv * xv).sum()),
        xa=d((xv * a).sum()),
        xb=d((xv * b).sum()),
        ha=d((h * a).sum()),
        hb=d((h * b).sum()),
    )


# ------------------------------------------------------------------ ratio metrics
def test_ratio_estimate_and_standard_error_equal_the_delta_method_and_statsmodels() -> None:
    import statsmodels.api as sm

    # Given per-unit numerator (cost) and denominator (resolutions) sums
    rng = np.random.default_rng(11)
    d = rng.integers(1, 5, size=500).astype(float)
    n = 0.0002 * d + rng.gamma(2.0, 0.0001, size=500)
    # When summarised from their running totals
    s = ratio_summary(sums(n, d))
    # Then the estimate and its standard error equal a direct delta-method computation
    k, r = len(d), n.sum() / d.sum()
    se = math.sqrt(((n - r * d) ** 2).sum() / ((k - 1) * k * d.mean() ** 2))
    assert s.mean == pytest.approx(r, rel=1e-9)
    assert math.sqrt(s.var_mean) == pytest.approx(se, rel=1e-9)
    # And statsmodels: a WLS of N/D on a constant with weights D, HC1 standard error
    wls = sm.WLS(n / d, np.ones(k), weights=d).fit(cov_type="HC1")
    assert s.mean == pytest.approx(wls.params[0], rel=1e-9)
    assert math.sqrt(s.var_mean) == pytest.approx(wls.bse[0], rel=1e-9)


def test_a_ratio_without_denominator_says_why() -> None:
    s = ratio_summary(sums(np.array([1.0, 2.0]), np.array([0.0, 0.0])))
    assert s.mean is None and s.reason == "denominator_zero"


def _ratio_sims(reps: int, k: int, slope_t: float, seed: int) -> tuple[float, float]:
    """Coverage of the true ratio difference, and the rejection rate at 5%."""
    rng = np.random.default_rng(seed)
    covered = rejected = 0
    slopes = (0.5, slope_t)
    true = [(s * 1.5 + 0.2) / 1.5 for s in slopes]  # E[N] / E[D], D ~ Binomial(3, 0.5)
    for _ in range(reps):
        summaries = []
        for slope in slopes:
            d = rng.binomial(3, 0.5, size=k).astype(float)
            n = slope * d + rng.gamma(2.0, 0.1, size=k)
            summaries.append(ratio_summary(sums(n, d)))
        c = compare(summaries[0], summaries[1], 0.95)
        assert c.ci is not None and c.p_value is not None
        covered += c.ci[0] <= true[1] - true[0] <= c.ci[1]
        rejected += c.p_value < 0.05
    return covered / reps, rejected / reps


@pytest.mark.slow
def test_ratio_interval_coverage_and_a_a_false_positive_rate() -> None:
    # Given 3,000 experiments where the treatment lowers cost per resolution
    coverage, _ = _ratio_sims(3000, 300, 0.4, seed=5)
    # And 3,000 A/A experiments
    _, false_positive = _ratio_sims(3000, 300, 0.5, seed=6)
    print(f"ratio coverage={coverage:.4f} A/A={false_positive:.4f}")
    # Then the 95% interval covers the true difference 95% +/- 1.5% of the time
    assert 0.935 <= coverage <= 0.965
    # And the A/A false-positive rate is 5% +/- 1.5%
    assert 0.035 <= false_positive <= 0.065


# ------------------------------------------------------------------ CUPED
def _ols_treatment_coefficient(y: np.ndarray, t: np.ndarray, x: np.ndarray) -> float:
    """OLS of y on a constant, the treatment and the centred covariate(s) (statsmodels)."""
    import statsmodels.api as sm

    if np.isnan(x).any():
        h = (~np.isnan(x)).astype(float)
        xz = np.nan_to_num(x)
        covariates = np.column_stack([xz - xz.mean(), h - h.mean()])
    else:
        covariates = (x - x.mean())[:, None]
    design = np.column_stack([np.ones_like(y), t, covariates])
    return float(sm.OLS(y, design).fit().params[1])


def _cuped_difference(y: np.ndarray, t: np.ndarray, x: np.ndarray) -> tuple[float, cuped.CupedFit]:
    ones = np.ones_like(y)
    fit = cuped.fit(
        {
            1: sums(y[t == 0], ones[t == 0], x[t == 0]),
            2: sums(y[t == 1], ones[t == 1], x[t == 1]),
        }
    )
    assert fit.reason is None
    return fit.adjusted[2].mean - fit.adjusted[1].mean, fit  # type: ignore[operator]


@pytest.mark.parametrize("missing", [0.0, 0.2])
def test_cuped_estimate_equals_ols_on_treatment_and_centred_covariate(missing: float) -> None:
    # Given units with an outcome correlated with a covariate (some without one)
    rng = np.random.default_rng(3)
    k = 800
    t = (rng.random(k) < 0.5).astype(float)
    x = rng.normal(5, 2, size=k)
    y = 1.0 + 0.3 * t + 0.8 * x + rng.normal(0, 1.5, size=k)
    x[rng.random(k) < missing] = np.nan
    # When adjusted from running totals
    difference, fit = _cuped_difference(y, t, x)
    # Then it equals the treatment coefficient of the OLS to 1e-9
    assert difference == pytest.approx(_ols_treatment_coefficient(y, t, x), rel=1e-9)
    assert fit.units_with_covariate == int((~np.isnan(x)).sum())


def test_cuped_without_any_covariate_says_why() -> None:
    y = np.arange(10.0)
    fit = cuped.fit({1: sums(y, np.ones(10)), 2: sums(y + 1, np.ones(10))})
    assert fit.adjusted == {} and fit.reason == "no_covariate"


def _cuped_sims(reps: int, k: int, rho: float, effect: float, seed: int) -> tuple[float, float]:
    """Mean width ratio (adjusted / raw) of the 95% interval, and the adjusted rejection rate."""
    from ab_testing.stats.descriptive import summarize
    from ab_testing.stats.inputs import MetricTotals

    rng = np.random.default_rng(seed)
    widths_raw, widths_adj, rejected = 0.0, 0.0, 0
    ones = np.ones(k)
    for _ in range(reps):
        groups, raw = {}, []
        for vid, shift in ((1, 0.0), (2, effect)):
            x = rng.normal(0, 1, size=k)
            y = shift + rho * x + math.sqrt(1 - rho * rho) * rng.normal(0, 1, size=k)
            groups[vid] = sums(y, ones, x)
            raw.append(summarize(MetricTotals.from_units([[v] for v in y.tolist()])))
        fit = cuped.fit(groups)
        adjusted = compare(fit.adjusted[1], fit.adjusted[2], 0.95)
        plain = compare(raw[0], raw[1], 0.95)
        assert adjusted.ci and plain.ci and adjusted.p_value is not None
        widths_adj += adjusted.ci[1] - adjusted.ci[0]
        widths_raw += plain.ci[1] - plain.ci[0]
        rejected += adjusted.p_value < 0.05
    return widths_adj / widths_raw, rejected / reps


@pytest.mark.slow
def test_cuped_shrinks_the_interval_by_sqrt_one_minus_rho_squared_and_stays_calibrated() -> None:
    # Given 3,000 A/A experiments with a covariate correlated 0.7 with the outcome
    ratio, false_positive = _cuped_sims(3000, 200, 0.7, 0.0, seed=21)
    print(f"CUPED width ratio={ratio:.4f} (sqrt(1-rho^2)={math.sqrt(1 - 0.49):.4f})")
    print(f"CUPED A/A={false_positive:.4f}")
    # Then the interval is about sqrt(1 - rho^2) as wide
    assert ratio == pytest.approx(math.sqrt(1 - 0.49), abs=0.02)
    # And the A/A false-positive rate stays 5% +/- 1.5%
    assert 0.035 <= false_positive <= 0.065
