"""Seeded simulations: false-positive rates with and without peeking, interval coverage."""

from __future__ import annotations

import pytest

from tests.unit.stats_helpers import simulate_coverage, simulate_looks, simulate_unequal_split


@pytest.mark.slow
def test_false_positive_rates_with_and_without_peeking() -> None:
    # Given 2,000 seeded A/A experiments, 50 units per arm added between each of 20 looks
    rates = simulate_looks(reps=2000, looks=20, per_look=50, seed=2024)
    print(rates)
    # Then a single fixed-horizon look is calibrated (5% +/- 3 binomial standard errors)
    assert 0.035 <= rates["fixed_single_look"] <= 0.065
    # And peeking with the fixed-horizon test inflates the error well beyond 5%
    assert rates["fixed_every_look"] > 0.08
    # While the always-valid p-value keeps it at most 5% over all 20 looks
    assert rates["sequential_every_look"] <= 0.05


@pytest.mark.slow
def test_welch_interval_coverage() -> None:
    # Given 4,000 seeded experiments with unequal sizes and variances
    coverage = simulate_coverage(reps=4000, seed=7)
    print(f"coverage={coverage:.4f}")
    # Then the 95% interval covers the true difference 95% of the time (+/- ~4 standard errors)
    assert 0.935 <= coverage <= 0.965


@pytest.mark.slow
@pytest.mark.parametrize("t_star", [500, 2000])
def test_sequential_at_a_10_90_split_with_a_skewed_metric(t_star: int) -> None:
    from ab_testing.stats.sequential import MIN_UNITS_PER_ARM

    # Given 2,000 seeded A/A experiments: 10% of units in the control, a lognormal(0, 1)
    # metric, a look every 5 units from the first unit to 6,000 units
    settings = {"reps": 2000, "units": 6000, "every": 5, "control_share": 0.1, "t_star": t_star}
    # When every look counts, the small arm's early variance estimates reject too often
    unguarded = simulate_unequal_split(**settings, min_units=0)
    # And when a look counts only once each arm holds the package's minimum
    guarded = simulate_unequal_split(**settings, min_units=MIN_UNITS_PER_ARM)
    print(
        f"t*={t_star}: every look {unguarded:.2%}, from {MIN_UNITS_PER_ARM} per arm {guarded:.2%}"
    )
    # Then the guarded rate is at most 5% and the unguarded one is not
    assert guarded <= 0.05
    assert unguarded > 0.05
