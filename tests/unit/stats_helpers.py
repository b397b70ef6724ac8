"""Builders of analyzer inputs for the stats tests."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

import numpy as np

from ab_testing.stats.inputs import (
    AnalysisInput,
    MetricSpec,
    MetricTotals,
    RatioSpec,
    VariantInput,
)

# A support bot's metrics: resolution (0/1), cost per conversation, and cost per resolution.
RESOLUTION = MetricSpec("resolution_rate", "binary", "higher", 0, 1)
COST = MetricSpec("cost_usd", "continuous", "lower", 0, 1000, decimals=12)
RATIO_SPEC = MetricSpec("cost_per_resolution", "ratio", "lower")
RATIO = RatioSpec("cost_per_resolution", "cost_usd", "resolution_rate", "lower")


def rescaled(n: int, mean: float, sd: float, seed: int) -> np.ndarray:
    """n normal draws shifted and scaled to have exactly this sample mean and sd (ddof=1)."""
    z = np.random.default_rng(seed).standard_normal(n)
    z = (z - z.mean()) / z.std(ddof=1)
    return mean + sd * z


def one_per_unit(values: Iterable[Any]) -> MetricTotals:
    """Totals where every result comes from its own unit."""
    return MetricTotals.from_units([[float(v)] for v in values])


def variant(
    variant_id: int,
    metrics: dict[str, MetricTotals],
    *,
    is_control: bool = False,
    allocation: float = 50.0,
    units_assigned: int | None = None,
) -> VariantInput:
    """A variant; units_assigned defaults to the largest unit count of its metrics."""
    if units_assigned is None:
        units_assigned = max((m.units for m in metrics.values()), default=0)
    name = "control" if is_control else f"variant-{variant_id}"
    return VariantInput(variant_id, name, is_control, allocation, units_assigned, metrics)


def experiment(
    variants: Sequence[VariantInput],
    primary: MetricSpec | None = None,
    secondary: Sequence[MetricSpec] = (),
    **kwargs: Any,
) -> AnalysisInput:
    return AnalysisInput(
        experiment_id=1,
        primary_metric=primary or MetricSpec("score"),
        variants=list(variants),
        secondary_metrics=list(secondary),
        **kwargs,
    )


def two_groups(
    control: Iterable[Any],
    treatment: Iterable[Any],
    spec: MetricSpec | None = None,
    **kwargs: Any,
) -> AnalysisInput:
    """A control (id 1) and one treatment (id 2) on the metric ``spec`` (default "score")."""
    spec = spec or MetricSpec("score")
    return experiment(
        [
            variant(1, {spec.name: one_per_unit(control)}, is_control=True),
            variant(2, {spec.name: one_per_unit(treatment)}),
        ],
        primary=spec,
        **kwargs,
    )


# --- seeded simulations over the package's own formulas (also used by the benchmark) ----------


def simulate_looks(
    reps: int = 2000,
    looks: int = 20,
    per_look: int = 50,
    seed: int = 2024,
    alpha: float = 0.05,
    t_star: int = 200,
) -> dict[str, float]:
    """A/A experiments with N(0, 1) data checked at ``looks`` equally spaced looks.

    Sufficient statistics are computed with numpy (cumulative sums); the tests are the
    package's ``welch_test`` and ``always_valid_p_value``. Returns the false-positive rates of
    a fixed-horizon test at the last look only, of fixed-horizon tests at every look (stop at
    the first p < alpha), and of the always-valid p-value at every look.
    """
    from ab_testing.stats.frequentist import welch_test
    from ab_testing.stats.sequential import always_valid_p_value, optimal_rho

    rng = np.random.default_rng(seed)
    n = per_look * np.arange(1, looks + 1)
    idx = n - 1
    moments = []
    for _ in range(2):
        y = rng.standard_normal((reps, int(n[-1])))
        s = np.cumsum(y, axis=1)[:, idx]
        ss = np.cumsum(y * y, axis=1)[:, idx]
        moments.append((s / n, (ss - s * s / n) / (n - 1)))
    (mean_c, var_c), (mean_t, var_t) = moments
    diff = mean_t - mean_c
    res = welch_test(diff, var_c / n, n - 1, var_t / n, n - 1, 1 - alpha)
    p_seq = always_valid_p_value(diff, res.se, 2 * n, optimal_rho(t_star, alpha))
    return {
        "fixed_single_look": float(np.mean(res.p_value[:, -1] < alpha)),
        "fixed_every_look": float(np.mean((res.p_value < alpha).any(axis=1))),
        "sequential_every_look": float(np.mean((p_seq < alpha).any(axis=1))),
    }


def simulate_coverage(
    reps: int = 2000,
    n_c: int = 150,
    n_t: int = 250,
    seed: int = 7,
    confidence: float = 0.95,
) -> float:
    """Share of Welch intervals (the package's ``welch_test``) covering the true difference.

    Unequal sizes and variances (sd 1 vs 2), true difference 0.3.
    """
    from ab_testing.stats.frequentist import welch_test

    rng = np.random.default_rng(seed)
    c = rng.normal(0.0, 1.0, (reps, n_c))
    t = rng.normal(0.3, 2.0, (reps, n_t))
    diff = t.mean(axis=1) - c.mean(axis=1)
    v_c, v_t = c.var(axis=1, ddof=1) / n_c, t.var(axis=1, ddof=1) / n_t
    res = welch_test(diff, v_c, n_c - 1, v_t, n_t - 1, confidence)
    return float(np.mean((res.ci_low <= 0.3) & (0.3 <= res.ci_high)))


def simulate_unequal_split(
    reps: int = 2000,
    units: int = 6000,
    every: int = 5,
    control_share: float = 0.1,
    sigma: float = 1.0,
    t_star: int = 2000,
    min_units: int = 0,
    seed: int = 11,
    alpha: float = 0.05,
    chunk: int = 250,
) -> float:
    """False-positive rate of the always-valid test over A/A experiments with a skewed metric.

    Each unit enters the control with probability ``control_share`` and has a lognormal(0,
    ``sigma``) value; the test (the package's ``welch_test`` standard error and
    ``always_valid_p_value``) looks after every ``every`` units from the first, and counts a
    look only once both arms hold ``min_units`` units (at least 2). Returns the share of
    experiments rejected at some look.
    """
    from ab_testing.stats.sequential import always_valid_p_value, optimal_rho

    rng = np.random.default_rng(seed)
    looks = np.arange(every, units + 1, every)
    rho = optimal_rho(t_star, alpha)
    rejected = 0
    for start in range(0, reps, chunk):
        size = min(chunk, reps - start)
        in_control = rng.random((size, units)) < control_share
        y = rng.lognormal(0.0, sigma, (size, units))
        arms = []
        for arm in (in_control, ~in_control):
            k = np.cumsum(arm, axis=1)[:, looks - 1].astype(float)
            s = np.cumsum(np.where(arm, y, 0.0), axis=1)[:, looks - 1]
            ss = np.cumsum(np.where(arm, y * y, 0.0), axis=1)[:, looks - 1]
            with np.errstate(divide="ignore", invalid="ignore"):
                arms.append((k, s / k, (ss - s * s / k) / (k - 1)))
        (k_c, m_c, v_c), (k_t, m_t, v_t) = arms
        counted = np.minimum(k_c, k_t) >= max(min_units, 2)
        with np.errstate(divide="ignore", invalid="ignore"):
            se = np.sqrt(v_c / k_c + v_t / k_t)
            p = always_valid_p_value(m_t - m_c, se, k_c + k_t, rho)
        counted &= np.isfinite(p) & (se > 0)
        rejected += int(np.any(counted & (p < alpha), axis=1).sum())
    return rejected / reps
