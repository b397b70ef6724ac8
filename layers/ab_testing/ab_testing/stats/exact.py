"""Exact test of two proportions for small or degenerate binary counts.

The Welch/Wald test leans on a normal approximation that fails when a cell of the 2x2 table is
small (0/500 vs 10/500) and gives no p-value at all when both groups are constant (0/300 vs
300/300). For a binary metric with one result per unit we then use Fisher's exact test
(Fisher 1935, The Design of Experiments; two-sided by summing the tables no more likely than
the observed one, as scipy.stats.fisher_exact does) and Newcombe's (1998, Stat. Med. 17,
method 10) hybrid score interval for the difference, built from the two Wilson (1927) intervals.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from decimal import Decimal
from statistics import NormalDist

from .descriptive import Summary

# Cochran's (1954) rule: the normal approximation is trusted when every expected count >= 5.
MIN_EXPECTED_COUNT = 5.0


@dataclass(frozen=True)
class ExactResult:
    difference: float
    p_value: float
    ci: tuple[float, float]


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


def needs_exact(control: tuple[int, int], treatment: tuple[int, int]) -> bool:
    """True when an expected cell count is below 5 (or a group is constant)."""
    (x_c, n_c), (x_t, n_t) = control, treatment
    n, x = n_c + n_t, x_c + x_t
    if x in (0, n):
        return True
    expected = [n_c * x / n, n_c * (n - x) / n, n_t * x / n, n_t * (n - x) / n]
    return min(expected) < MIN_EXPECTED_COUNT or x_c in (0, n_c) or x_t in (0, n_t)


def wilson(x: int, n: int, z: float) -> tuple[float, float]:
    """Wilson (1927) score interval of a proportion."""
    p = x / n
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z / (1 + z * z / n) * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n))
    return max(centre - half, 0.0), min(centre + half, 1.0)


def exact_comparison(
    control: tuple[int, int], treatment: tuple[int, int], confidence_level: float
) -> ExactResult:
    """Fisher's exact p-value and Newcombe's interval of p_t - p_c."""
    from scipy import stats

    (x_c, n_c), (x_t, n_t) = control, treatment
    table = [[x_t, n_t - x_t], [x_c, n_c - x_c]]
    p_value = float(stats.fisher_exact(table, alternative="two-sided").pvalue)
    z = NormalDist().inv_cdf(0.5 + confidence_level / 2.0)
    p_t, p_c = x_t / n_t, x_c / n_c
    lo_t, hi_t = wilson(x_t, n_t, z)
    lo_c, hi_c = wilson(x_c, n_c, z)
    diff = float(Decimal(x_t) / n_t - Decimal(x_c) / n_c)
    lower = diff - math.sqrt((p_t - lo_t) ** 2 + (hi_c - p_c) ** 2)
    upper = diff + math.sqrt((hi_t - p_t) ** 2 + (p_c - lo_c) ** 2)
    return ExactResult(diff, min(max(p_value, 0.0), 1.0), (lower, upper))
