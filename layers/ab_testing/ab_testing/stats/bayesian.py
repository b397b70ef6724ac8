"""Bayesian read-out of a comparison under a normal approximation.

Prior: flat (improper) on the difference delta = mu_t - mu_c. With the large-sample likelihood
diff ~ N(delta, se^2) the posterior is delta | data ~ N(diff, se^2) (e.g. Gelman et al. 2013,
Bayesian Data Analysis, 3rd ed., sec. 2.5 and 4.1). No scipy needed: the standard library's
NormalDist gives Phi and phi.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from statistics import NormalDist

from .inputs import Direction

_STD = NormalDist()


@dataclass(frozen=True)
class BayesianResult:
    chance_to_beat_control: float | None
    expected_loss: float | None


def _gain(diff: float, direction: Direction) -> float:
    """The difference signed so that positive is good."""
    return diff if direction == "higher" else -diff


def chance_to_beat_control(diff: float, se: float, direction: Direction = "higher") -> float:
    """P(treatment better than control | data) = Phi(g / se), g the signed gain."""
    g = _gain(diff, direction)
    if se <= 0:
        return 1.0 if g > 0 else 0.0 if g < 0 else 0.5
    return _STD.cdf(g / se)


def expected_loss(diff: float, se: float, direction: Direction = "higher") -> float:
    """Expected loss of shipping the treatment, E[max(0, -G)] with G ~ N(g, se^2).

    Closed form of the normal partial expectation: E[max(0, -G)] = se * phi(g/se) - g * Phi(-g/se)
    (in the metric's units, per result).
    """
    g = _gain(diff, direction)
    if se <= 0:
        return max(0.0, -g)
    z = g / se
    return max(0.0, se * _STD.pdf(z) - g * _STD.cdf(-z))


def bayesian_readout(
    diff: float | None, se: float | None, direction: Direction = "higher"
) -> BayesianResult:
    """Both quantities, or None when the difference or its standard error is unknown."""
    if diff is None or se is None or not (math.isfinite(diff) and math.isfinite(se)):
        return BayesianResult(None, None)
    return BayesianResult(
        chance_to_beat_control(diff, se, direction), expected_loss(diff, se, direction)
    )
