"""CUPED: regression adjustment with a pre-experiment covariate, from unit-level running totals.

Deng, Xu, Kohavi and Walker (2013), "Improving the Sensitivity of Online Controlled Experiments
by Utilizing Pre-Experiment Data" (WSDM), sec. 3: Y_cv = Y - theta (X - E X) with
theta = Cov(Y, X) / Var(X) keeps the estimate unbiased and divides its variance by 1 - rho^2.

Here the outcome of unit i is the linearised value of the metric's ratio estimator r = sum A /
sum B (ab_testing.stats.unitsums): L_i = (A_i - r B_i) / B_bar, so ordinary metrics (mean per
result) and ratio metrics are adjusted alike (Deng, Knoblich and Lu 2018, sec. 4). Units
without a covariate keep their place: X_i is taken as 0 and an indicator h_i (1 when the unit
has one) joins the regression, so the estimand is unchanged and the adjustment uses what is
known. The covariate enters centred on the pooled mean m of the observed values,
X*_i = h_i (X_i - m): (X*, h) spans the same space as (X h, h), so the estimate is unchanged, but
with X near 1e9 the uncentred sums of squares are ~1e18 times the units and the normal
equations cancel in floating point. The centred sums are formed exactly in Decimal from the
running totals before any float is taken. theta is pooled within variants,
theta = (sum_g C_zz,g)^-1 sum_g C_zL,g, which makes the adjusted difference equal to the
treatment coefficient of an OLS of L on the variant, X* and h (docs/statistics.md, "CUPED").

The indicator is a pre-experiment covariate only if whether a unit has a covariate does not
depend on its variant. When it does (the covariate is sent by one arm's code path only, or
mostly by one), the regression adjusts for something the treatment changed: with the
covariate in one arm only the adjusted standard error is too small, and with availability
far apart the sampling error of theta, which the per-variant variances leave out, is no
longer negligible (an A/A test reads "significant" a quarter of the time at 90% vs 10%). So
availability is tested first: a chi-square test of independence of the variants x (with,
without) table of unit counts; below the threshold (0.001, as the sample-ratio check) no
adjusted read-out is given and the decision stays on the unadjusted one.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from decimal import Decimal, localcontext

from .descriptive import Summary
from .messages import (
    COVARIATE_AVAILABILITY,
    COVARIATE_AVAILABILITY_THRESHOLD,
    COVARIATE_CONSTANT,
    DECIMAL_PRECISION,
    NO_COVARIATE,
    TOO_FEW_UNITS,
)
from .unitsums import UnitSums, residual_sum_sq

Matrix = tuple[tuple[float, float], tuple[float, float]]


@dataclass(frozen=True)
class CupedFit:
    """The pooled theta (for X and the has-covariate indicator) and the adjusted summaries.

    ``availability``: per variant, (units with a covariate, units); ``availability_p``: the
    p-value of the test that availability does not depend on the variant (None when every
    unit, or none, has a covariate: nothing to test)."""

    theta: tuple[float, float] | None
    adjusted: dict[int, Summary]
    units: int
    units_with_covariate: int
    reason: str | None = None
    availability: dict[int, tuple[int, int]] = field(default_factory=dict)
    availability_p: float | None = None


@dataclass(frozen=True)
class _Group:
    units: int
    mean: float
    sll: float  # sum of squared centred L
    szl: tuple[float, float]  # sum of (Z - Z_bar) L
    czz: Matrix  # sum of (Z - Z_bar)(Z - Z_bar)^T
    z_sum: tuple[float, float]  # sum X*, sum h
    results: int


def pooled_covariate_mean(groups: Mapping[int, UnitSums]) -> Decimal:
    """m: the mean of the covariate over the units (of every variant) that have one."""
    with localcontext() as ctx:
        ctx.prec = DECIMAL_PRECISION
        h = sum((s.h for s in groups.values()), Decimal(0))
        x = sum((s.x for s in groups.values()), Decimal(0))
        return x / h if h > 0 else Decimal(0)


def _group(s: UnitSums, m: Decimal) -> _Group:
    with localcontext() as ctx:
        ctx.prec = DECIMAL_PRECISION
        k = Decimal(s.units)
        r = s.a / s.b
        b_bar = s.b / k
        sll = residual_sum_sq(s, r) / (b_bar * b_bar)
        # Sums of X* = h (X - m), exact: h^2 = h and X h = X (X is 0 where h is 0).
        x = s.x - m * s.h
        xx = s.xx - 2 * m * s.x + m * m * s.h
        xa = s.xa - m * s.ha
        xb = s.xb - m * s.hb
        szl = ((xa - r * xb) / b_bar, (s.ha - r * s.hb) / b_bar)
        cxx = xx - x * x / k
        cxh = x - x * s.h / k
        chh = s.h - s.h * s.h / k
    return _Group(
        units=s.units,
        mean=float(r),
        sll=float(sll),
        szl=(float(szl[0]), float(szl[1])),
        czz=((float(cxx), float(cxh)), (float(cxh), float(chh))),
        z_sum=(float(x), float(s.h)),
        results=s.results,
    )


def _solve(czz: Matrix, czl: tuple[float, float]) -> tuple[float, float] | None:
    """theta from the pooled normal equations; the indicator drops out when every unit (or no
    unit) of a variant has the covariate, or when it is collinear with X."""
    (cxx, cxh), (_, chh) = czz
    if cxx <= 0:
        return None
    det = cxx * chh - cxh * cxh
    if chh > 0 and det > 1e-12 * cxx * chh:
        return (
            (chh * czl[0] - cxh * czl[1]) / det,
            (cxx * czl[1] - cxh * czl[0]) / det,
        )
    return (czl[0] / cxx, 0.0)


def availability_p_value(counts: Mapping[int, tuple[int, int]]) -> float | None:
    """Pearson's chi-square test of independence (no continuity correction) of the variant and
    having a covariate, on the variants x (with, without) table of units; None when every
    unit or none has one, or fewer than two variants have units."""
    rows = [(w, n - w) for w, n in counts.values() if n > 0]
    if len(rows) < 2 or all(w == 0 for w, _ in rows) or all(o == 0 for _, o in rows):
        return None
    from scipy.stats import chi2_contingency  # the analysis path only, never the hot path

    return float(chi2_contingency(rows, correction=False).pvalue)


def fit(
    groups: Mapping[int, UnitSums], threshold: float = COVARIATE_AVAILABILITY_THRESHOLD
) -> CupedFit:
    """Adjusted summaries of every variant of one metric, or the reason there are none."""
    units = sum(s.units for s in groups.values())
    with_covariate = int(sum(s.h for s in groups.values()))
    counts = {vid: (int(s.h), s.units) for vid, s in groups.items()}
    if with_covariate == 0:
        return CupedFit(None, {}, units, 0, NO_COVARIATE, counts)
    if any(s.units < 2 or s.b == 0 for s in groups.values()):
        return CupedFit(None, {}, units, with_covariate, TOO_FEW_UNITS, counts)
    p = availability_p_value(counts)
    if p is not None and p < threshold:
        return CupedFit(None, {}, units, with_covariate, COVARIATE_AVAILABILITY, counts, p)
    m = pooled_covariate_mean(groups)
    parts = {vid: _group(s, m) for vid, s in groups.items()}
    czz = tuple(tuple(sum(g.czz[i][j] for g in parts.values()) for j in range(2)) for i in range(2))
    czl = tuple(sum(g.szl[i] for g in parts.values()) for i in range(2))
    theta = _solve(czz, czl)  # type: ignore[arg-type]
    if theta is None:
        return CupedFit(None, {}, units, with_covariate, COVARIATE_CONSTANT, counts, p)
    z_bar = tuple(sum(g.z_sum[i] for g in parts.values()) / units for i in range(2))
    adjusted = {vid: _adjusted(g, theta, z_bar) for vid, g in parts.items()}  # type: ignore[arg-type]
    return CupedFit(theta, adjusted, units, with_covariate, None, counts, p)


def _adjusted(g: _Group, theta: tuple[float, float], z_bar: tuple[float, float]) -> Summary:
    """r - theta . (Z_bar_g - Z_bar), with the variance of the adjusted linearised values."""
    k = g.units
    shift = sum(theta[i] * (g.z_sum[i] / k - z_bar[i]) for i in range(2))
    quad = sum(theta[i] * g.czz[i][j] * theta[j] for i in range(2) for j in range(2))
    ss = max(g.sll - 2 * (theta[0] * g.szl[0] + theta[1] * g.szl[1]) + quad, 0.0)
    unit_var = ss / (k - 1)
    return Summary(
        results=g.results,
        units=k,
        mean=g.mean - shift,
        var_mean=unit_var / k,
        unit_variance=unit_var,
    )
