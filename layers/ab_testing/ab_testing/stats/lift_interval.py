"""The interval of the relative lift mean_t / mean_c - 1 that agrees with the Welch test.

Fieller (1954), "Some problems in interval estimation", J. R. Stat. Soc. B 16: for independent
estimates m_t, m_c with variances v_t, v_c, the set of ratios theta with

    (m_t - theta m_c)^2 <= q^2 (v_t + theta^2 v_c)

is a 1 - alpha confidence set for mu_t / mu_c. At theta = 1 the inequality is the Welch test of
m_t - m_c = 0 with the same quantile q, so the lift interval excludes 0 exactly when the test
rejects: the two never contradict each other.

Written for the lift L = theta - 1 and the difference d = m_t - m_c (m_t - theta m_c =
d - L m_c), the inequality is a L^2 - 2 B L + C <= 0 with

    a = m_c^2 - q^2 v_c,   B = m_c d + q^2 v_c,   C = d^2 - q^2 (v_t + v_c),
    B^2 - a C = q^2 (m_t^2 v_c + a v_t)            (expanded: no cancellation),

so the bounds are L = (B -/+ q sqrt(m_t^2 v_c + a v_t)) / a. The textbook b^2 - 4ac on theta
subtracts two numbers of size m^4 to get one of size m^2 se^2: with means near 1e9 and a
standard error 1e-9 of the mean it loses every digit and the interval collapses to a point.
Here d comes from the exact Decimal means, the smaller root is taken as C / (B +/- root)
(Press et al., Numerical Recipes, sec. 5.6) and C, a as products of sums and differences, so the
sign of each bound is the sign the test decides.

When a <= 0 (the control mean is not significantly away from 0 at this level) the Fieller set is
unbounded: the complement of an interval, or every ratio. No finite interval then has the
coverage, and a substitute (such as the delta method on the log ratio) can exclude 0 while the
test does not reject, so the interval is reported as unbounded. For a metric that cannot be
negative the ratio cannot be either, so the interval is cut at -100% (intersecting a confidence
set with the parameter space keeps its coverage).
"""

from __future__ import annotations

import math


def fieller_lift(
    diff: float, mean_c: float, var_t: float, var_c: float, quantile: float
) -> tuple[float, float] | None:
    """The bounded Fieller interval of mu_t / mu_c - 1, or None when the set is unbounded.

    ``diff`` is mean_t - mean_c, computed accurately by the caller (descriptive.mean_difference).
    """
    sd_c = math.sqrt(var_c)
    a = (mean_c - quantile * sd_c) * (mean_c + quantile * sd_c)
    if not a > 0 or not math.isfinite(a):
        return None
    mean_t = mean_c + diff
    q2 = quantile * quantile
    b = mean_c * diff + q2 * var_c
    se = math.sqrt(var_t + var_c)
    c = (diff - quantile * se) * (diff + quantile * se)
    root = quantile * math.sqrt(mean_t * mean_t * var_c + a * var_t)
    big = b + math.copysign(root, b)
    if big == 0.0:  # b = 0 and no spread: both roots are 0
        return (0.0, 0.0)
    r1, r2 = big / a, c / big
    return (min(r1, r2), max(r1, r2))


def lift_interval(
    diff: float,
    mean_c: float,
    var_t: float,
    var_c: float,
    quantile: float,
    non_negative: bool,
) -> tuple[float, float] | None:
    """The relative lift's Fieller interval, or None when it is unbounded (or not finite)."""
    lift = fieller_lift(diff, mean_c, var_t, var_c, quantile)
    if lift is None or not all(math.isfinite(v) for v in lift):
        return None
    lo, hi = lift
    if non_negative:
        lo, hi = max(lo, -1.0), max(hi, -1.0)
    return (lo, hi)
