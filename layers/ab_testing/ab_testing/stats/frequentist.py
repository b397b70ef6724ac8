"""Fixed-horizon comparison of a treatment with the control (Welch's unequal-variance t-test).

The core functions (``welch_satterthwaite_df``, ``welch_test``, ``z_test``)
are plain arithmetic plus scipy distributions, so they accept floats or numpy arrays; the
simulations in the test-suite call them on arrays. ``compare`` is the scalar entry point that
handles degenerate inputs. scipy is imported inside the functions, never at module import.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, NamedTuple

from .descriptive import Summary, mean_difference
from .inputs import MetricKind
from .lift_interval import lift_interval
from .messages import (
    CONTROL_MEAN_ZERO,
    NO_CONTROL_DATA,
    NO_DATA,
    NUMERIC_OVERFLOW,
    RELATIVE_CI_UNBOUNDED,
    TOO_FEW_UNITS,
    ZERO_VARIANCE,
)
from .proportions import TEST_NAME as SCORE_TEST
from .proportions import binary_counts, needs_small_sample_test, score_comparison

ArrayLike = Any  # a float or a numpy array of floats


class WelchResult(NamedTuple):
    se: ArrayLike
    df: ArrayLike
    p_value: ArrayLike
    ci_low: ArrayLike
    ci_high: ArrayLike
    quantile: ArrayLike  # t quantile used for the interval


def welch_satterthwaite_df(
    var_c: ArrayLike, df_c: ArrayLike, var_t: ArrayLike, df_t: ArrayLike
) -> ArrayLike:
    """Welch (1947) / Satterthwaite (1946) degrees of freedom.

    nu = (v_c + v_t)^2 / (v_c^2 / df_c + v_t^2 / df_t), with v the variances of the two means and
    df = units - 1. Written with the weight w = v_c / (v_c + v_t) so that tiny or huge
    variances neither underflow nor overflow: nu = 1 / (w^2 / df_c + (1 - w)^2 / df_t).
    """
    w = var_c / (var_c + var_t)
    return 1.0 / (w * w / df_c + (1.0 - w) * (1.0 - w) / df_t)


def welch_test(
    diff: ArrayLike,
    var_c: ArrayLike,
    df_c: ArrayLike,
    var_t: ArrayLike,
    df_t: ArrayLike,
    confidence_level: float,
) -> WelchResult:
    """Two-sided Welch t-test and t interval of ``diff`` = mean_t - mean_c.

    se = sqrt(v_c + v_t); t = diff / se ~ Student t(nu) under H0 (Welch 1947); the p-value is
    2 * P(T_nu > |t|) and the interval diff +/- t_{nu, (1+c)/2} * se.
    """
    from scipy import stats

    se = (var_c + var_t) ** 0.5
    df = welch_satterthwaite_df(var_c, df_c, var_t, df_t)
    p_value = 2.0 * stats.t.sf(abs(diff / se), df)
    q = stats.t.ppf(0.5 + confidence_level / 2.0, df)
    return WelchResult(se, df, p_value, diff - q * se, diff + q * se, q)


def z_test(diff: ArrayLike, se: ArrayLike, confidence_level: float) -> tuple[Any, Any, Any]:
    """Large-sample (Wald) z-test and interval: (p_value, ci_low, ci_high).

    p = 2 * (1 - Phi(|diff| / se)), interval diff +/- z_{(1+c)/2} * se. With the unpooled
    binomial variance p(1 - p) / n per group this is the Wald test of two proportions.
    """
    from scipy import stats

    p_value = 2.0 * stats.norm.sf(abs(diff / se))
    q = stats.norm.ppf(0.5 + confidence_level / 2.0)
    return p_value, diff - q * se, diff + q * se


@dataclass(frozen=True)
class Comparison:
    """Welch (or score) comparison of one treatment with the control on one metric.

    ``relative_ci_reason`` says why ``relative_ci`` is None when the comparison was tested
    (``relative_ci_unbounded``, ``control_mean_zero`` or ``numeric_overflow``).
    """

    difference: float | None = None
    se: float | None = None
    df: float | None = None
    p_value: float | None = None
    ci: tuple[float, float] | None = None
    relative_lift: float | None = None
    relative_ci: tuple[float, float] | None = None
    reason: str | None = None
    test: str = "welch"  # or "score_n1" for small or degenerate binary counts (proportions)
    relative_ci_reason: str | None = None

    @property
    def tested(self) -> bool:
        return self.p_value is not None


def _finite(*values: float | None) -> bool:
    return all(v is not None and math.isfinite(v) for v in values)


def _untestable_reason(control: Summary, treatment: Summary) -> str | None:
    if control.mean is None:
        return NO_CONTROL_DATA if control.reason in (None, NO_DATA) else control.reason
    if treatment.mean is None:
        return treatment.reason or NO_DATA
    if not control.testable:
        return control.reason or TOO_FEW_UNITS
    if not treatment.testable:
        return treatment.reason or TOO_FEW_UNITS
    return None


def _relative(
    control: Summary, treatment: Summary, diff: float, quantile: float | None
) -> Comparison:
    """Relative lift diff / mean_c with its Fieller interval (see lift_interval), or the reason
    either is undefined. ``diff`` is the accurate mean_t - mean_c (mean_difference)."""
    mean_c = control.mean
    if mean_c is None or treatment.mean is None:
        return Comparison()
    if mean_c == 0:
        return Comparison(reason=CONTROL_MEAN_ZERO, relative_ci_reason=CONTROL_MEAN_ZERO)
    try:
        lift = diff / mean_c
        if not _finite(lift):
            return Comparison(reason=NUMERIC_OVERFLOW, relative_ci_reason=NUMERIC_OVERFLOW)
        if quantile is None or control.var_mean is None or treatment.var_mean is None:
            return Comparison(relative_lift=lift)
        non_negative = all(v is not None and v >= 0 for v in (control.min, treatment.min))
        ci = lift_interval(
            diff, mean_c, treatment.var_mean, control.var_mean, quantile, non_negative
        )
    except (ZeroDivisionError, OverflowError):  # |control mean| below ~1e-154 or above 1e154
        return Comparison(reason=NUMERIC_OVERFLOW, relative_ci_reason=NUMERIC_OVERFLOW)
    why = None if ci is not None else RELATIVE_CI_UNBOUNDED
    return Comparison(relative_lift=lift, relative_ci=ci, relative_ci_reason=why)


def _small_counts(
    control: Summary, treatment: Summary, diff: float, confidence_level: float, kind: MetricKind
) -> Comparison | None:
    """The score comparison (proportions.py) when a binary metric's counts are small or
    degenerate: the 'N - 1' chi-squared p-value with the Miettinen-Nurminen intervals of the
    difference and of the ratio, which agree with it by construction."""
    if kind != "binary":
        return None
    counts_c, counts_t = binary_counts(control), binary_counts(treatment)
    if counts_c is None or counts_t is None or not needs_small_sample_test(counts_c, counts_t):
        return None
    res = score_comparison(counts_c, counts_t, confidence_level)
    se = None
    if control.var_mean is not None and treatment.var_mean is not None:
        total = control.var_mean + treatment.var_mean
        se = math.sqrt(total) if total > 0 else None
    rel = _relative(control, treatment, diff, None)
    if res.p_value is None:  # both groups constant and equal
        return Comparison(
            difference=diff,
            relative_lift=rel.relative_lift,
            reason=ZERO_VARIANCE,
            test=SCORE_TEST,
        )
    relative_ci, why = None, rel.relative_ci_reason
    if rel.relative_lift is not None and res.ratio_ci is not None:
        lo, hi = res.ratio_ci
        relative_ci = (max(lo - 1.0, -1.0), hi - 1.0)  # the control has successes: hi is finite
    return Comparison(
        difference=diff,
        se=se,
        p_value=res.p_value,
        ci=res.ci,
        relative_lift=rel.relative_lift,
        relative_ci=relative_ci,
        reason=rel.reason,
        test=SCORE_TEST,
        relative_ci_reason=why,
    )


def compare(
    control: Summary,
    treatment: Summary,
    confidence_level: float,
    kind: MetricKind = "continuous",
) -> Comparison:
    """Welch comparison of ``treatment`` with ``control`` (the score test of proportions.py for
    small or degenerate binary counts); never raises.

    Degenerate data (empty group, fewer than 2 units, no variance, values too large for floats)
    gives a Comparison with ``reason`` set and the quantities that are still defined.
    """
    reason = _untestable_reason(control, treatment)
    if reason in (NO_DATA, NO_CONTROL_DATA) or control.mean is None or treatment.mean is None:
        return Comparison(reason=reason)
    diff = mean_difference(control, treatment)
    if diff is None or not math.isfinite(diff):
        return Comparison(reason=NUMERIC_OVERFLOW)
    small = _small_counts(control, treatment, diff, confidence_level, kind)
    if small is not None:
        return small
    rel = _relative(control, treatment, diff, None)
    partial = Comparison(difference=diff, relative_lift=rel.relative_lift, reason=reason)
    if reason is not None or control.var_mean is None or treatment.var_mean is None:
        return partial
    var_c, var_t = control.var_mean, treatment.var_mean
    if var_c + var_t <= 0:
        return Comparison(difference=diff, relative_lift=rel.relative_lift, reason=ZERO_VARIANCE)
    res = welch_test(diff, var_c, control.df_basis, var_t, treatment.df_basis, confidence_level)
    se, df, p, lo, hi, q = (float(x) for x in res)
    if not _finite(se, df, p, lo, hi, q):
        return Comparison(difference=diff, relative_lift=rel.relative_lift, reason=NUMERIC_OVERFLOW)
    rel = _relative(control, treatment, diff, q)
    return Comparison(
        difference=diff,
        se=se,
        df=df,
        p_value=min(max(p, 0.0), 1.0),
        ci=(lo, hi),
        relative_lift=rel.relative_lift,
        relative_ci=rel.relative_ci,
        reason=rel.reason,
        relative_ci_reason=rel.relative_ci_reason,
    )
