"""The interval of the relative lift mean_t / mean_c - 1 that agrees with the test.

Fieller (1954), "Some problems in interval estimation", J. R. Stat. Soc. B 16: for independent
estimates m_t, m_c with variances v_t, v_c, the set of ratios theta with

    (m_t - theta m_c)^2 <= q^2 (v_t + theta^2 v_c)

is a 1 - alpha confidence set for mu_t / mu_c. At theta = 1 the inequality is the Welch test of
m_t - m_c = 0 with the same quantile q, so the lift interval excludes 0 exactly when the test
rejects: the two never contradict each other. Expanding gives a theta^2 + b theta + c <= 0 with
a = m_c^2 - q^2 v_c, b = -2 m_t m_c, c = m_t^2 - q^2 v_t. When a > 0 (the control mean is
itself significantly away from 0) the set is the bounded interval between the two roots.

When a <= 0 the Fieller set is unbounded; for positive means we then fall back to the delta
method on the log ratio (Katz et al. 1978, Biometrics 34), exp(log(m_t/m_c) +/- q se) - 1 with
se^2 = v_t / m_t^2 + v_c / m_c^2, which stays above -100%. For a metric that cannot be negative
the ratio cannot be either, so the interval is cut at -100% (intersecting a confidence set with
the parameter space keeps its coverage).
"""

from __future__ import annotations

import math


def fieller_ratio(
    mean_t: float, mean_c: float, var_t: float, var_c: float, quantile: float
) -> tuple[float, float] | None:
    """The bounded Fieller interval of mu_t / mu_c, or None when the set is unbounded."""
    q2 = quantile * quantile
    a = mean_c * mean_c - q2 * var_c
    if not a > 0:
        return None
    b = -2.0 * mean_t * mean_c
    c = mean_t * mean_t - q2 * var_t
    disc = max(b * b - 4.0 * a * c, 0.0)
    root = math.sqrt(disc)
    # The numerically stable pair of roots (Press et al., Numerical Recipes, sec. 5.6).
    big = -0.5 * (b + math.copysign(root, b))
    if big == 0.0:
        return (0.0, 0.0)
    r1, r2 = big / a, c / big
    return (min(r1, r2), max(r1, r2))


def log_ratio(
    mean_t: float, mean_c: float, var_t: float, var_c: float, quantile: float
) -> tuple[float, float] | None:
    """Delta-method interval on log(mu_t / mu_c), for positive means only."""
    if not (mean_t > 0 and mean_c > 0):
        return None
    centre = math.log(mean_t / mean_c)
    half = quantile * math.sqrt(var_t / (mean_t * mean_t) + var_c / (mean_c * mean_c))
    return (math.exp(centre - half), math.exp(centre + half))


def lift_interval(
    mean_t: float,
    mean_c: float,
    var_t: float,
    var_c: float,
    quantile: float,
    non_negative: bool,
) -> tuple[float, float] | None:
    """The relative lift's interval (Fieller, else log-ratio), or None when neither exists."""
    ratio = fieller_ratio(mean_t, mean_c, var_t, var_c, quantile)
    if ratio is None:
        ratio = log_ratio(mean_t, mean_c, var_t, var_c, quantile)
    if ratio is None or not all(math.isfinite(r) for r in ratio):
        return None
    lo, hi = ratio[0] - 1.0, ratio[1] - 1.0
    if non_negative:
        lo, hi = max(lo, -1.0), max(hi, -1.0)
    return (lo, hi)
