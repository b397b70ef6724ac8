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


# ------------------------------------------------------------------ CUPED, missing covariates
# Integer outcomes and covariates X = offset + u: the running totals are formed exactly in
# Python integers (X^2 near 1e18 per unit would lose digits in float), as the ledger keeps them.
def exact_sums(y: np.ndarray, u: np.ndarray, h: np.ndarray, offset: int) -> list[UnitSums]:
    """The ledger's totals of an ordinary metric (one result per unit) for each row (one
    experiment's variant): y the outcomes, X = offset + u where h (the unit has a covariate)."""
    y, h = y.astype(np.int64), h.astype(np.int64)
    u = np.where(h == 1, u, 0).astype(np.int64)
    k = y.shape[1]
    columns = [(y * y), y, h, u, u * u, h * y, u * y]
    sy2, sy, sh, su, su2, shy, suy = ([int(v) for v in c.sum(axis=1)] for c in columns)
    out = []
    for i in range(y.shape[0]):
        x = offset * sh[i] + su[i]
        out.append(
            UnitSums(
                units=k,
                a=Decimal(sy[i]),
                b=Decimal(k),
                aa=Decimal(sy2[i]),
                bb=Decimal(k),
                ab=Decimal(sy[i]),
                results=k,
                h=Decimal(sh[i]),
                x=Decimal(x),
                xx=Decimal(offset * offset * sh[i] + 2 * offset * su[i] + su2[i]),
                xa=Decimal(offset * shy[i] + suy[i]),
                xb=Decimal(x),
                ha=Decimal(shy[i]),
                hb=Decimal(sh[i]),
            )
        )
    return out


def draw(
    rng: np.random.Generator, reps: int, k: int, availability: float
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """reps x k units of one arm: u ~ round(N(50, 20)), y = round(8 u + N(0, 150)) (the covariate
    explains ~40% of the variance), h ~ Bernoulli(availability) independent of both."""
    u = np.rint(rng.normal(50, 20, size=(reps, k))).astype(np.int64)
    y = np.rint(8 * u + rng.normal(0, 150, size=(reps, k))).astype(np.int64)
    h = rng.random((reps, k)) < availability
    return y, u, h


def ols_fits(y: np.ndarray, t: np.ndarray, u: np.ndarray, h: np.ndarray) -> dict[str, object]:
    """statsmodels OLS of y on a constant, the treatment, X* = h (X - m) and h, per HC variant.
    X* is formed from u = X - offset, which is exact in float whatever the offset."""
    import statsmodels.api as sm

    hf = h.astype(float)
    m = (u * hf).sum() / hf.sum()
    columns = [np.ones_like(hf), t, hf * (u - m)]
    if 0 < hf.sum() < len(hf):
        columns.append(hf)
    design = np.column_stack(columns)
    return {hc: sm.OLS(y.astype(float), design).fit(cov_type=hc) for hc in HC}


HC = ("HC0", "HC1", "HC2", "HC3")


@pytest.mark.parametrize(
    ("offset", "availability"), [(0, 1.0), (0, 0.8), (10**9, 0.8), (10**9, 0.5)]
)
def test_cuped_equals_robust_ols_with_missing_covariates_and_large_offsets(
    offset: int, availability: float
) -> None:
    # Given 2 x 400 units, a covariate near `offset` that some units lack at random
    rng = np.random.default_rng(17)
    y, u, h = draw(rng, 2, 400, availability)
    # When CUPED is fitted on the running totals
    fit = cuped.fit(dict(zip((1, 2), exact_sums(y, u, h, offset), strict=True)))
    assert fit.reason is None
    c = compare(fit.adjusted[1], fit.adjusted[2], 0.95)
    assert c.difference is not None and c.se is not None
    # Then the estimate is the treatment coefficient of L ~ T + X* + h to 1e-9 (relative)
    t = np.repeat([0.0, 1.0], 400)
    ols = ols_fits(y.ravel(), t, u.ravel(), h.ravel())
    assert c.difference == pytest.approx(ols["HC0"].params[1], rel=1e-9)  # type: ignore[attr-defined]
    # And its standard error is within 1% of the HC0 and HC2 robust ones (0.3% and 0.6% here;
    # the per-variant variances leave out the sampling error of theta, an O(1/K) term)
    ratios = {hc: float(c.se / ols[hc].bse[1]) for hc in HC}  # type: ignore[attr-defined]
    print(f"offset={offset:g} availability={availability}: SE / HC SE {ratios}")
    assert ratios["HC0"] == pytest.approx(1.0, abs=0.01)
    assert ratios["HC2"] == pytest.approx(1.0, abs=0.01)


def test_availability_is_tested_by_pearsons_chi_square_of_the_counts() -> None:
    # Given units with a covariate out of units, per variant
    counts = {1: (180, 300), 2: (150, 310), 3: (200, 290)}
    # Then the p-value is Pearson's chi-square test of independence, computed directly
    table = np.array([[w, n - w] for w, n in counts.values()], dtype=float)
    expected = table.sum(axis=1, keepdims=True) * table.sum(axis=0) / table.sum()
    statistic = ((table - expected) ** 2 / expected).sum()
    from scipy.stats import chi2

    assert cuped.availability_p_value(counts) == pytest.approx(chi2.sf(statistic, 2), rel=1e-12)
    # And there is nothing to test when every unit or none has a covariate
    assert cuped.availability_p_value({1: (300, 300), 2: (310, 310)}) is None
    assert cuped.availability_p_value({1: (0, 300), 2: (0, 310)}) is None


def test_cuped_is_withheld_when_availability_depends_on_the_variant() -> None:
    # Given a covariate for 90% of the control's units and 10% of the treatment's
    y, u, h = draw(np.random.default_rng(5), 1, 200, 0.9)
    y2, u2, h2 = draw(np.random.default_rng(6), 1, 200, 0.1)
    s1, s2 = exact_sums(y, u, h, 0)[0], exact_sums(y2, u2, h2, 0)[0]
    fit = cuped.fit({1: s1, 2: s2})
    # Then no adjusted read-out is given, and the fit says why and what availability was
    assert fit.adjusted == {} and fit.reason == "covariate_availability_differs"
    assert fit.availability == {1: (int(h.sum()), 200), 2: (int(h2.sum()), 200)}
    assert fit.availability_p is not None and fit.availability_p < 0.001


def test_cuped_at_an_offset_of_1e9_keeps_the_variance_reduction_of_offset_0() -> None:
    # Given the same units with the covariate as drawn and shifted by 1e9, 20% without one
    rng = np.random.default_rng(23)
    y, u, h = draw(rng, 2, 1000, 0.8)
    fits = [
        cuped.fit(dict(zip((1, 2), exact_sums(y, u, h, offset), strict=True)))
        for offset in (0, 10**9)
    ]
    # Then theta, the adjusted means and their variances are the same to 1e-9
    for vid in (1, 2):
        a, b = (f.adjusted[vid] for f in fits)
        assert b.mean == pytest.approx(a.mean, rel=1e-9)
        assert b.var_mean == pytest.approx(a.var_mean, rel=1e-9)
    assert fits[1].theta == pytest.approx(fits[0].theta, rel=1e-9)


def deciding_rejections(
    reps: int, k: int, availability: tuple[float, float], offset: int, seed: int
) -> tuple[float, float, float]:
    """A/A experiments: the rejection rate at 5% of the read-out the analysis decides with (the
    adjusted one when CUPED gives one, else the unadjusted), the share where the availability
    test withheld the adjustment, and the mean variance reduction where it did not."""
    rng = np.random.default_rng(seed)
    arms = [draw(rng, reps, k, a) for a in availability]
    control, treatment = (exact_sums(*arm, offset) for arm in arms)
    rejected = withheld = 0
    reductions = []
    for s1, s2 in zip(control, treatment, strict=True):
        fit = cuped.fit({1: s1, 2: s2})
        raw = compare(ratio_summary(s1), ratio_summary(s2), 0.95)
        if fit.adjusted:
            deciding = compare(fit.adjusted[1], fit.adjusted[2], 0.95)
            reductions.append(1 - (deciding.se / raw.se) ** 2)  # type: ignore[operator]
        else:
            assert fit.reason == "covariate_availability_differs"
            deciding = raw
            withheld += 1
        assert deciding.p_value is not None
        rejected += deciding.p_value < 0.05
    mean_reduction = float(np.mean(reductions)) if reductions else float("nan")
    return rejected / reps, withheld / reps, mean_reduction


@pytest.mark.slow
@pytest.mark.parametrize(
    ("availability", "offset", "always_withheld"),
    [((1.0, 0.0), 0, True), ((0.9, 0.1), 0, True), ((0.8, 0.8), 10**9, False)],
    ids=["one-arm-only", "90-vs-10", "offset-1e9-20pct-missing"],
)
def test_a_a_false_positive_rate_with_missing_covariates(
    availability: tuple[float, float], offset: int, always_withheld: bool
) -> None:
    # Given 2,000 A/A experiments of 2 x 300 units
    fp, withheld, reduction = deciding_rejections(2000, 300, availability, offset, seed=31)
    print(f"{availability} offset={offset:g}: A/A={fp:.4f} withheld={withheld:.4f} VR={reduction}")
    # Then the read-out that decides is significant at 5% in 5% +/- 1.5% of them
    assert 0.035 <= fp <= 0.065
    if always_withheld:
        # And the adjustment is withheld when availability depends on the arm
        assert withheld == 1.0
    else:
        # And with availability independent of the arm it is kept (withheld ~0.1% by
        # chance), with the variance reduction that 80% availability allows: 0.8 rho^2,
        # rho^2 = Var(8 u) / Var(y) = 64 * 400 / (64 * 400 + 150^2)
        assert withheld < 0.01
        assert reduction == pytest.approx(0.8 * 25600 / (25600 + 22500), abs=0.02)
