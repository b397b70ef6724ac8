"""Seeded simulations: false-positive rates with and without peeking, interval coverage."""

from __future__ import annotations

import pytest

from tests.unit.stats_helpers import simulate_coverage, simulate_looks


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
