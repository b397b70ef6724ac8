"""Asymptotic confidence sequence: tuning, p-value/interval duality, vectorisation."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import optimize, stats

from ab_testing.stats.sequential import (
    always_valid_p_value,
    confidence_sequence,
    half_width,
    optimal_rho,
)


def test_optimal_rho_minimises_width_at_t_star() -> None:
    # Given a target of 1,000 units and alpha = 0.05
    rho = optimal_rho(1000, 0.05)
    # When the half-width at t* is minimised numerically over rho
    best = optimize.minimize_scalar(
        lambda r: half_width(1.0, 1000, 0.05, r),
        bounds=(1e-4, 1.0),
        method="bounded",
        options={"xatol": 1e-10},
    )
    # Then the closed form agrees, and the paper's first-iterate formula is close to it
    assert rho == pytest.approx(best.x, rel=1e-4)
    big_l = -2 * math.log(0.05)
    paper = math.sqrt((big_l + math.log(big_l + 1)) / 1000)
    assert paper == pytest.approx(rho, rel=0.05)


@pytest.mark.parametrize("z", [0.0, 0.5, 1.96, 2.5, 3.0, 4.0, 6.0])
def test_p_value_is_the_smallest_alpha_excluding_zero(z: float) -> None:
    # Given an estimate z standard errors from 0 after 500 units
    rho, se, t = optimal_rho(400, 0.05), 0.2, 500
    p = always_valid_p_value(z * se, se, t, rho)
    # Then the CS at level p just touches 0, and at any alpha the duality holds
    if 0 < p < 1:
        assert half_width(se, t, p, rho) == pytest.approx(z * se, rel=1e-9)
    for alpha in (0.01, 0.05, 0.1, 0.2):
        _, lo, hi = confidence_sequence(z * se, se, t, alpha, rho)
        assert (p < alpha) == (lo > 0 or hi < 0)


def test_sequence_is_wider_than_the_fixed_horizon_interval() -> None:
    # Given the same standard error
    rho = optimal_rho(200, 0.05)
    for t in (50, 200, 5000, 10**6):
        # Then the always-valid interval is wider than the normal one (the price of peeking)
        assert half_width(1.0, t, 0.05, rho) > stats.norm.ppf(0.975)


def test_scalar_and_array_inputs_agree() -> None:
    # Given arrays of looks
    rho = optimal_rho(300, 0.05)
    diff, se, t = np.array([0.1, -0.4, 2.0]), np.array([0.1, 0.2, 0.5]), np.array([80, 300, 4000])
    p, lo, hi = confidence_sequence(diff, se, t, 0.05, rho)
    # Then each entry is the scalar computation
    for i in range(3):
        ps, los, his = confidence_sequence(float(diff[i]), float(se[i]), int(t[i]), 0.05, rho)
        assert (p[i], lo[i], hi[i]) == pytest.approx((ps, los, his), rel=1e-12)


def test_the_sequential_test_waits_for_its_minimum_units_per_arm() -> None:
    from ab_testing.stats import messages as msg
    from ab_testing.stats.analyzer import StatisticalAnalyzer
    from ab_testing.stats.sequential import MIN_UNITS_PER_ARM
    from tests.unit.stats_helpers import experiment, one_per_unit, rescaled, variant

    def analyse(control_units: int) -> dict:
        # A 10/90 split with a clear effect (one standard deviation), sequential analysis
        control = one_per_unit(rescaled(control_units, 10.0, 1.0, seed=1))
        treatment = one_per_unit(rescaled(9 * control_units, 11.0, 1.0, seed=2))
        inp = experiment(
            [
                variant(1, {"score": control}, is_control=True, allocation=10.0),
                variant(2, {"score": treatment}, allocation=90.0),
            ],
            analysis_method="sequential",
            min_sample_size=10,
        )
        return StatisticalAnalyzer(sequential_t_star=2000).analyze(inp)

    # Given a control one unit short of the minimum
    short = analyse(MIN_UNITS_PER_ARM - 1)
    comparison = short["metrics"]["score"]["comparisons"][0]
    # Then there is no sequential read-out, and the answer says why
    assert comparison["sequential"]["p_value"] is None
    assert comparison["sequential"]["ci"] is None
    assert comparison["sequential"]["reason"] == msg.SEQUENTIAL_TOO_FEW
    assert short["recommended_winner_id"] is None
    assert str(MIN_UNITS_PER_ARM) in short["recommendation_reason"]
    # While the fixed-horizon read-out is still reported beside it
    assert comparison["p_value"] < 1e-10

    # Given the minimum reached, the test counts and the effect is found
    enough = analyse(MIN_UNITS_PER_ARM)
    comparison = enough["metrics"]["score"]["comparisons"][0]
    assert comparison["sequential"]["reason"] is None
    assert comparison["sequential"]["p_value"] < 0.05
    assert enough["recommended_winner_id"] == 2
