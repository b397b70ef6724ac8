"""Descriptive statistics of one metric in one variant, from its running totals.

Every centered sum is formed in a high-precision Decimal context before any conversion to
float: with values around 1e15 the textbook ``sum(y^2) - sum(y)^2 / n`` in float64 loses every
significant digit (catastrophic cancellation), while 60 decimal digits keep it exact.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace
from decimal import Decimal, InvalidOperation, localcontext

from .inputs import MetricTotals, Number
from .messages import DECIMAL_PRECISION, NO_DATA, NON_FINITE, NUMERIC_OVERFLOW, TOO_FEW_UNITS


def to_decimal(value: Number | None) -> Decimal:
    """Exact-enough Decimal of a stored number (floats go through their shortest repr)."""
    if value is None:
        return Decimal(0)
    if isinstance(value, Decimal):
        return value
    if isinstance(value, bool | int):
        return Decimal(int(value))
    return Decimal(repr(float(value)))


def to_float(value: Decimal | None) -> float | None:
    """Float of a Decimal, or None when it is not finite or does not fit in a float."""
    if value is None or not value.is_finite():
        return None
    out = float(value)
    return out if math.isfinite(out) else None


@dataclass(frozen=True)
class Summary:
    """What the tests need of one metric in one variant.

    ``mean`` is the mean per result, the ratio sum(S_i) / sum(m_i) over units. ``variance`` and
    ``std`` are the sample variance and standard deviation of the results (ddof=1).
    ``var_mean`` is the cluster-robust variance of ``mean`` (delta method over units) and
    ``unit_variance = units * var_mean`` the per-unit variance used for sample sizes.
    """

    results: int = 0
    units: int = 0
    mean: float | None = None
    variance: float | None = None
    std: float | None = None
    min: float | None = None
    max: float | None = None
    var_mean: float | None = None
    unit_variance: float | None = None
    units_missing: bool = False  # no unit-level totals: each result counted as its own unit
    reason: str | None = None
    # The mean as the exact Decimal quotient: differences of means are taken on these, since
    # two float means near 1e15 round to the same float whatever their true difference.
    mean_exact: Decimal | None = None

    @property
    def df_basis(self) -> int:
        """Degrees of freedom of the variance estimate: units - 1."""
        return max(self.units - 1, 0)

    @property
    def testable(self) -> bool:
        """True when the mean and its variance are both known."""
        return self.mean is not None and self.var_mean is not None


def _finite_decimals(totals: MetricTotals) -> list[Decimal] | None:
    """The Decimal totals, or None if one of them is NaN or infinite."""
    values = [
        to_decimal(v)
        for v in (
            totals.total,
            totals.total_sq,
            totals.unit_sum_sq,
            totals.unit_count_sq,
            totals.unit_sum_count,
        )
    ]
    try:
        return values if all(v.is_finite() for v in values) else None
    except InvalidOperation:  # pragma: no cover - signalling NaN
        return None


def _min_max(totals: MetricTotals) -> tuple[float | None, float | None]:
    lo = to_float(to_decimal(totals.min)) if totals.min is not None else None
    hi = to_float(to_decimal(totals.max)) if totals.max is not None else None
    return lo, hi


def summarize(totals: MetricTotals) -> Summary:
    """Mean, variance, standard deviation and the cluster-robust variance of the mean.

    Never raises: an empty or degenerate metric gives a Summary with ``reason`` set.
    """
    n = int(totals.results)
    if n <= 0:
        return Summary(reason=NO_DATA)
    decimals = _finite_decimals(totals)
    lo, hi = _min_max(totals)
    if decimals is None:
        return Summary(results=n, units=int(totals.units), min=lo, max=hi, reason=NON_FINITE)
    total, total_sq, unit_sum_sq, unit_count_sq, unit_sum_count = decimals
    k = int(totals.units)
    units_missing = k <= 0
    if units_missing:  # one result per unit: S_i = y_i, m_i = 1
        k, unit_sum_sq, unit_count_sq, unit_sum_count = n, total_sq, Decimal(n), total

    with localcontext() as ctx:
        ctx.prec = DECIMAL_PRECISION
        mean = total / n
        # Sample variance of the results, ddof=1: (sum y^2 - (sum y)^2 / n) / (n - 1).
        centered = max(total_sq - total * total / n, Decimal(0))
        variance = centered / (n - 1) if n > 1 else None
        var_mean = unit_var = None
        if k > 1:
            # Ratio estimator r = sum S / sum m (Cochran 1977, Sampling Techniques, sec. 6.3):
            # its linearised residuals d_i = S_i - r m_i sum to 0, and
            # sum d_i^2 = sum S^2 - 2 r sum S m + r^2 sum m^2, so with m_bar = sum m / K
            # Var(r) ~ (s_S^2 - 2 r s_Sm + r^2 s_m^2) / (K m_bar^2) = sum d^2 / ((K-1) K m_bar^2).
            # With m_i = 1 this is exactly s_y^2 / K, the variance of a mean in Welch's test.
            resid_sq = unit_sum_sq - 2 * mean * unit_sum_count + mean * mean * unit_count_sq
            resid_sq = max(resid_sq, Decimal(0))
            m_bar = Decimal(n) / k
            unit_var = resid_sq / ((k - 1) * m_bar * m_bar)
            var_mean = unit_var / k

    out = Summary(
        results=n,
        units=k,
        mean=to_float(mean),
        variance=to_float(variance),
        std=to_float(variance.sqrt()) if variance is not None else None,
        min=lo,
        max=hi,
        var_mean=to_float(var_mean),
        unit_variance=to_float(unit_var),
        units_missing=units_missing,
        mean_exact=mean,
    )
    return _with_reason(out, var_mean is not None)


def mean_difference(control: Summary, treatment: Summary) -> float | None:
    """mean_t - mean_c, taken on the exact Decimal means and rounded to float once."""
    if control.mean_exact is None or treatment.mean_exact is None:
        if control.mean is None or treatment.mean is None:
            return None
        return treatment.mean - control.mean
    with localcontext() as ctx:
        ctx.prec = DECIMAL_PRECISION
        return to_float(treatment.mean_exact - control.mean_exact)


def _with_reason(summary: Summary, variance_formed: bool) -> Summary:
    """Attach the reason a summary cannot be tested, if any."""
    if summary.mean is None or (variance_formed and summary.var_mean is None):
        reason: str | None = NUMERIC_OVERFLOW
    elif not variance_formed:
        reason = TOO_FEW_UNITS
    else:
        return summary
    return replace(summary, reason=reason)
