"""Ratio estimates over randomization units, from running totals (delta method).

Every metric here is a ratio of sums over units i: r = sum A_i / sum B_i. For an ordinary
metric A_i is the unit's sum S_i and B_i its count m_i (the mean per result); for a ratio metric
A_i and B_i are the unit's sums N_i and D_i of two metrics (cost per resolution). The totals
needed are sum A, sum B, sum A^2, sum B^2, sum A*B and the number of units K, all of which
the ledger keeps exactly (docs/statistics.md, "Ratio metrics"). With a pre-experiment covariate
X_i (h_i = 1 when the unit has one) the ledger also keeps sum h, sum X, sum X^2, sum X*A,
sum X*B, sum h*A and sum h*B, which ab_testing.stats.cuped uses.
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal, localcontext

from .descriptive import Summary, to_decimal, to_float
from .inputs import MetricTotals, RatioTotals
from .messages import DECIMAL_PRECISION, DENOMINATOR_ZERO, NO_DATA, NUMERIC_OVERFLOW, TOO_FEW_UNITS


@dataclass(frozen=True)
class UnitSums:
    """Sums over the units of one variant: sum A, sum B, sum A^2, sum B^2, sum A*B, and the
    covariate sums (h: has a covariate, X: its value)."""

    units: int
    a: Decimal
    b: Decimal
    aa: Decimal
    bb: Decimal
    ab: Decimal
    results: int = 0
    h: Decimal = Decimal(0)
    x: Decimal = Decimal(0)
    xx: Decimal = Decimal(0)
    xa: Decimal = Decimal(0)
    xb: Decimal = Decimal(0)
    ha: Decimal = Decimal(0)
    hb: Decimal = Decimal(0)


def _d(value: object) -> Decimal:
    return to_decimal(value)  # type: ignore[arg-type]


def from_metric(t: MetricTotals) -> UnitSums:
    """An ordinary metric: A_i = S_i (the unit's sum), B_i = m_i (its number of results)."""
    return UnitSums(
        units=int(t.units),
        a=_d(t.total),
        b=Decimal(int(t.results)),
        aa=_d(t.unit_sum_sq),
        bb=_d(t.unit_count_sq),
        ab=_d(t.unit_sum_count),
        results=int(t.results),
        h=_d(t.cov_units),
        x=_d(t.cov_sum),
        xx=_d(t.cov_sum_sq),
        xa=_d(t.cov_x_sum),
        xb=_d(t.cov_x_count),
        ha=_d(t.cov_h_sum),
        hb=_d(t.cov_h_count),
    )


def from_ratio(num: MetricTotals, den: MetricTotals, ratio: RatioTotals) -> UnitSums:
    """A ratio metric: A_i = N_i and B_i = D_i, the unit's sums of the two metrics.

    Units are those with a result of either metric (a unit without one of them has 0 there);
    sum N_i D_i is the cross sum the ledger keeps in the ratio's own item.
    """
    return UnitSums(
        units=int(ratio.units),
        a=_d(num.total),
        b=_d(den.total),
        aa=_d(num.unit_sum_sq),
        bb=_d(den.unit_sum_sq),
        ab=_d(ratio.cross),
        results=int(num.results) + int(den.results),
        h=_d(ratio.cov_units),
        x=_d(ratio.cov_sum),
        xx=_d(ratio.cov_sum_sq),
        xa=_d(num.cov_x_sum),
        xb=_d(den.cov_x_sum),
        ha=_d(num.cov_h_sum),
        hb=_d(den.cov_h_sum),
    )


def residual_sum_sq(s: UnitSums, r: Decimal) -> Decimal:
    """sum_i (A_i - r B_i)^2 = sum A^2 - 2 r sum A B + r^2 sum B^2 (exact in Decimal)."""
    return max(s.aa - 2 * r * s.ab + r * r * s.bb, Decimal(0))


def ratio_summary(s: UnitSums) -> Summary:
    """r = sum A / sum B and its delta-method variance over units.

    Var(r) ~ sum_i (A_i - r B_i)^2 / ((K - 1) K B_bar^2), B_bar = sum B / K (Cochran 1977,
    Sampling Techniques, sec. 6.3; Deng, Knoblich and Lu 2018, "Applying the Delta Method in
    Metric Analytics", eq. 3). ``unit_variance`` is K times that, ``std`` its square root.
    """
    k = s.units
    if k <= 0:
        return Summary(reason=NO_DATA)
    if s.b == 0:
        return Summary(results=s.results, units=k, reason=DENOMINATOR_ZERO)
    with localcontext() as ctx:
        ctx.prec = DECIMAL_PRECISION
        r = s.a / s.b
        unit_var = var_mean = None
        if k > 1:
            b_bar = s.b / k
            unit_var = residual_sum_sq(s, r) / ((k - 1) * b_bar * b_bar)
            var_mean = unit_var / k
    mean = to_float(r)
    out = Summary(
        results=s.results,
        units=k,
        mean=mean,
        variance=to_float(unit_var),
        std=to_float(unit_var.sqrt()) if unit_var is not None else None,
        var_mean=to_float(var_mean),
        unit_variance=to_float(unit_var),
    )
    if mean is None or (k > 1 and out.var_mean is None):
        return Summary(results=s.results, units=k, mean=mean, reason=NUMERIC_OVERFLOW)
    if k <= 1:
        return Summary(results=s.results, units=k, mean=mean, reason=TOO_FEW_UNITS)
    return out
