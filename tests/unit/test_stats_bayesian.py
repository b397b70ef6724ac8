"""Bayesian read-out under a flat prior: chance to beat control and expected loss."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import integrate, stats

from ab_testing.stats.bayesian import bayesian_readout, chance_to_beat_control, expected_loss


def test_chance_to_beat_is_posterior_probability_of_improvement() -> None:
    # Given a posterior N(0.3, 0.2^2) on the difference
    # Then P(delta > 0) for higher-is-better, P(delta < 0) for lower-is-better
    assert chance_to_beat_control(0.3, 0.2) == pytest.approx(stats.norm.cdf(1.5), rel=1e-12)
    assert chance_to_beat_control(0.3, 0.2, "lower") == pytest.approx(stats.norm.cdf(-1.5))
    assert chance_to_beat_control(0.0, 1.0) == pytest.approx(0.5)


@pytest.mark.parametrize(
    ("diff", "se", "direction"),
    [(0.3, 0.2, "higher"), (-0.1, 0.05, "higher"), (0.3, 0.2, "lower"), (0.0, 1.0, "higher")],
)
def test_expected_loss_equals_numerical_integral(diff: float, se: float, direction: str) -> None:
    # Given the posterior N(diff, se^2)
    sign = 1.0 if direction == "higher" else -1.0
    # When E[max(0, -gain)] is integrated numerically
    ref, _ = integrate.quad(
        lambda d: max(0.0, -sign * d) * stats.norm.pdf(d, diff, se),
        diff - 12 * se,
        diff + 12 * se,
        points=[0.0],
        limit=200,
    )
    # Then the closed form agrees
    assert expected_loss(diff, se, direction) == pytest.approx(ref, rel=1e-7, abs=1e-12)  # type: ignore[arg-type]


def test_degenerate_posteriors() -> None:
    # Given a zero standard error or unknown quantities; then no exception and sensible values
    assert chance_to_beat_control(1.0, 0.0) == 1.0 and expected_loss(1.0, 0.0) == 0.0
    assert chance_to_beat_control(-1.0, 0.0) == 0.0 and expected_loss(-1.0, 0.0) == 1.0
    assert bayesian_readout(None, 0.1).chance_to_beat_control is None
    assert bayesian_readout(0.1, float("inf")).expected_loss is None
    assert np.isfinite(expected_loss(50.0, 1.0))
