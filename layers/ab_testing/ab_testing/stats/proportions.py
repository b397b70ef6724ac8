"""One score statistic for small or degenerate binary counts: its p-value and its intervals.

The Welch test leans on a normal approximation of the mean of 0/1 values that fails when a
cell of the 2x2 table is small (0/500 vs 10/500) and gives no p-value at all when both groups
are constant (0/300 vs 300/300). For a binary metric with one result per unit we then use the
score statistic of Miettinen & Nurminen (1985), "Comparative analysis of two rates", Stat. Med.
4:213-226. For a hypothesised difference delta = p_t - p_c (or ratio phi = p_t / p_c)

    z(delta) = (phat_t - phat_c - delta) / sqrt(V(delta)),
    V(delta) = (pt~ (1 - pt~) / n_t + pc~ (1 - pc~) / n_c) * N / (N - 1),

where pt~, pc~ are the maximum-likelihood proportions under the constraint (closed forms below)
and N = n_t + n_c; for the ratio the numerator is phat_t - phi phat_c and the second variance
term carries phi^2. The 1 - alpha intervals are the sets {|z| <= q}, q the normal quantile,
found by root-finding on z, which decreases in delta (and in phi).

At delta = 0 (phi = 1) the constrained proportions are the pooled one and z^2 is Pearson's
chi-square times (N - 1) / N: the 'N - 1' chi-squared test that Campbell (2007), "Chi-squared
and Fisher-Irwin tests of two-by-two tables with small sample recommendations", Stat. Med.
26:3661-3675, recommends for small samples (Fisher's test is conservative). The reported
p-value is that test's, P(|Z| > |z(0)|), so p < alpha exactly when the difference interval
excludes 0 and the ratio interval excludes 1: one statistic for the p-value and both intervals.
(Fisher's p with Newcombe's 1998 interval, used before, could disagree: 1/20 vs 6/20 read
p = 0.09 with a difference interval of [0.008, 0.473].)

Both intervals equal statsmodels' ``confint_proportions_2indep(method="score",
correction=True)`` for ``compare="diff"`` and ``compare="ratio"``; the tests check it. scipy is
imported inside the functions only.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from decimal import Decimal
from statistics import NormalDist

from .descriptive import Summary

# Cochran's (1954) rule: the normal approximation is trusted when every expected count >= 5.
MIN_EXPECTED_COUNT = 5.0
TEST_NAME = "score_n1"  # comparisons[].test of this path
_XTOL = 1e-15  # absolute tolerance of the root-finding (on delta, and on log phi)
_RTOL = 4 * 2.220446049250313e-16  # the smallest relative tolerance brentq accepts
_LOG_RANGE = 700.0  # log phi is searched within +/- this (exp() stays finite)


@dataclass(frozen=True)
class ScoreResult:
    """The score test of p_t = p_c with its two intervals.

    ``p_value``, ``ci`` and ``ratio_ci`` are None when the table has no variance (both groups
    constant and equal). ``ratio_ci`` is the interval of p_t / p_c; its upper bound is infinite
    when the control has no successes.
    """

    difference: float
    p_value: float | None
    ci: tuple[float, float] | None
    ratio_ci: tuple[float, float] | None


def binary_counts(s: Summary) -> tuple[int, int] | None:
    """(successes, trials) of a 0/1 metric with one result per unit, else None."""
    if s.mean_exact is None or s.results <= 0 or s.units != s.results:
        return None
    if s.min is None or s.max is None or s.min < 0 or s.max > 1:
        return None
    successes = s.mean_exact * s.results
    if successes != successes.to_integral_value():
        return None
    return int(successes), s.results


def needs_small_sample_test(control: tuple[int, int], treatment: tuple[int, int]) -> bool:
    """True when an expected cell count is below 5 (or a group is constant)."""
    (x_c, n_c), (x_t, n_t) = control, treatment
    n, x = n_c + n_t, x_c + x_t
    if x in (0, n):
        return True
    expected = [n_c * x / n, n_c * (n - x) / n, n_t * x / n, n_t * (n - x) / n]
    return min(expected) < MIN_EXPECTED_COUNT or x_c in (0, n_c) or x_t in (0, n_t)


def restricted_diff(x_t: int, n_t: int, x_c: int, n_c: int, delta: float) -> tuple[float, float]:
    """Maximum-likelihood (p_t, p_c) under p_t - p_c = delta.

    The closed form (the root of a cubic in p_t) of Miettinen & Nurminen (1985), as written by
    Farrington & Manning (1990), Stat. Med. 9:1447-1454, with theta = n_c / n_t.
    """
    if delta >= 1.0 or delta <= -1.0:
        p_t = 1.0 if delta >= 1.0 else 0.0
        return p_t, p_t - max(min(delta, 1.0), -1.0)
    pt, pc = x_t / n_t, x_c / n_c
    if delta == 0.0:
        pooled = (x_t + x_c) / (n_t + n_c)
        return pooled, pooled
    theta = n_c / n_t
    a = 1.0 + theta
    b = -(1.0 + theta + pt + theta * pc + delta * (theta + 2.0))
    c = delta * delta + delta * (2.0 * pt + theta + 1.0) + pt + theta * pc
    d = -pt * delta * (1.0 + delta)
    b3a = b / (3.0 * a)
    v = b3a**3 - b * c / (6.0 * a * a) + d / (2.0 * a)
    u = math.copysign(math.sqrt(max(b3a * b3a - c / (3.0 * a), 0.0)), v)
    if u == 0.0:
        p_t = -b3a
    else:
        w = (math.pi + math.acos(max(min(v / u**3, 1.0), -1.0))) / 3.0
        p_t = 2.0 * u * math.cos(w) - b3a
    p_t = min(max(p_t, max(delta, 0.0)), min(1.0 + delta, 1.0))
    return p_t, p_t - delta


def restricted_ratio(x_t: int, n_t: int, x_c: int, n_c: int, ratio: float) -> tuple[float, float]:
    """Maximum-likelihood (p_t, p_c) under p_t = ratio * p_c (ratio > 0).

    p_c is the smaller root of N ratio p^2 - (n_t ratio + x_t + n_c + x_c ratio) p + x = 0
    (Miettinen & Nurminen 1985; Farrington & Manning 1990), taken as 2c / (-b + sqrt(disc)) so
    that it neither cancels nor divides by a small leading coefficient.
    """
    n, x = n_t + n_c, x_t + x_c
    minus_b = n_t * ratio + x_t + n_c + x_c * ratio
    disc = max(minus_b * minus_b - 4.0 * n * ratio * x, 0.0)
    p_c = 2.0 * x / (minus_b + math.sqrt(disc))
    return min(ratio * p_c, 1.0), p_c


def _ratio_of(num: float, var: float) -> float:
    """num / sqrt(var), with the limits a zero variance gives."""
    if var > 0:
        return num / math.sqrt(var)
    return 0.0 if num == 0 else math.copysign(math.inf, num)


def score_diff(x_t: int, n_t: int, x_c: int, n_c: int, delta: float) -> float:
    """Miettinen-Nurminen statistic of the hypothesis p_t - p_c = delta (decreasing in delta)."""
    p_t, p_c = restricted_diff(x_t, n_t, x_c, n_c, delta)
    n = n_t + n_c
    var = (p_t * (1.0 - p_t) / n_t + p_c * (1.0 - p_c) / n_c) * n / (n - 1)
    return _ratio_of(x_t / n_t - x_c / n_c - delta, var)


def score_ratio(x_t: int, n_t: int, x_c: int, n_c: int, ratio: float) -> float:
    """Miettinen-Nurminen statistic of the hypothesis p_t / p_c = ratio (decreasing in ratio)."""
    p_t, p_c = restricted_ratio(x_t, n_t, x_c, n_c, ratio)
    n = n_t + n_c
    var = (p_t * (1.0 - p_t) / n_t + ratio * ratio * p_c * (1.0 - p_c) / n_c) * n / (n - 1)
    return _ratio_of(x_t / n_t - ratio * x_c / n_c, var)


def _root(f: Callable[[float], float], lo: float, hi: float) -> float:
    """The crossing of a decreasing f from f(lo) >= 0 to f(hi) <= 0 (Brent's method)."""
    from scipy import optimize

    big = 1e12  # an infinite statistic at an end of the range: any large value brackets it

    def g(x: float) -> float:
        return max(min(f(x), big), -big)

    if g(lo) <= 0:
        return lo
    if g(hi) >= 0:
        return hi
    return float(optimize.brentq(g, lo, hi, xtol=_XTOL, rtol=_RTOL, maxiter=500))


def _diff_interval(x_t: int, n_t: int, x_c: int, n_c: int, q: float) -> tuple[float, float]:
    est = x_t / n_t - x_c / n_c
    lower = _root(lambda d: score_diff(x_t, n_t, x_c, n_c, d) - q, -1.0, est)
    upper = _root(lambda d: score_diff(x_t, n_t, x_c, n_c, d) + q, est, 1.0)
    return max(lower, -1.0), min(upper, 1.0)


def _log_bound(f: Callable[[float], float], start: float) -> float:
    """The crossing of a decreasing f(log phi) from >= 0 to <= 0, bracketed from ``start``."""
    ahead = f(start) >= 0  # the crossing lies above start, else below it
    step, end = 1.0, start
    while abs(end) < _LOG_RANGE:
        end = max(min(start + step if ahead else start - step, _LOG_RANGE), -_LOG_RANGE)
        if (f(end) < 0) == ahead:
            break
        step *= 2.0
    return _root(f, start, end) if ahead else _root(f, end, start)


def _ratio_interval(x_t: int, n_t: int, x_c: int, n_c: int, q: float) -> tuple[float, float]:
    # Start from the ratio of half-corrected proportions: finite whatever the counts.
    start = math.log(((x_t + 0.5) / (n_t + 0.5)) / ((x_c + 0.5) / (n_c + 0.5)))
    lower = 0.0
    if x_t > 0:
        t = _log_bound(lambda s: score_ratio(x_t, n_t, x_c, n_c, math.exp(s)) - q, start)
        lower = math.exp(t)
    upper = math.inf
    if x_c > 0:
        t = _log_bound(lambda s: score_ratio(x_t, n_t, x_c, n_c, math.exp(s)) + q, start)
        upper = math.exp(t)
    return lower, upper


def score_comparison(
    control: tuple[int, int], treatment: tuple[int, int], confidence_level: float
) -> ScoreResult:
    """The 'N - 1' chi-squared p-value and the Miettinen-Nurminen intervals of p_t - p_c and
    p_t / p_c, all from the one score statistic."""
    (x_c, n_c), (x_t, n_t) = control, treatment
    diff = float(Decimal(x_t) / n_t - Decimal(x_c) / n_c)
    if x_t + x_c in (0, n_t + n_c):  # both groups constant and equal: no variance
        return ScoreResult(diff, None, None, None)
    z0 = score_diff(x_t, n_t, x_c, n_c, 0.0)
    p_value = min(max(math.erfc(abs(z0) / math.sqrt(2.0)), 0.0), 1.0)
    q = NormalDist().inv_cdf(0.5 + confidence_level / 2.0)
    return ScoreResult(
        diff,
        p_value,
        _diff_interval(x_t, n_t, x_c, n_c, q),
        _ratio_interval(x_t, n_t, x_c, n_c, q),
    )
