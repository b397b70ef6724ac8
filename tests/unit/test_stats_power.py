"""Sample-size read-out."""

from __future__ import annotations

import math

import numpy as np
import pytest
from statsmodels.stats.power import NormalIndPower

from ab_testing.stats.descriptive import summarize
from ab_testing.stats.messages import CONTROL_MEAN_ZERO, INVALID_MDE, TOO_FEW_UNITS, ZERO_VARIANCE
from ab_testing.stats.power import required_units
from tests.unit.stats_helpers import one_per_unit


@pytest.mark.parametrize(("mde", "alpha"), [(0.05, 0.05), (0.10, 0.05), (0.02, 0.01)])
def test_required_units_matches_statsmodels(mde: float, alpha: float) -> None:
    # Given an observed control with mean 10 and sd 4
    y = np.random.default_rng(2).normal(10, 4, 400)
    control = summarize(one_per_unit(y))
    # When the units per variant for a relative MDE at 80% power are computed
    res = required_units(control, mde, alpha)
    # Then it is statsmodels' two-sample normal power solution (which also counts the far tail,
    # a negligible difference), rounded up
    effect_size = mde * y.mean() / y.std(ddof=1)
    ref = NormalIndPower().solve_power(effect_size=effect_size, alpha=alpha, power=0.8, ratio=1)
    assert res.reason is None and res.required_units_per_variant is not None
    assert abs(res.required_units_per_variant - math.ceil(ref)) <= 1


def test_power_cannot_be_computed_without_a_mean_or_variance() -> None:
    # Given a zero control mean, a constant control, a single unit and a bad MDE
    # Then no size, with the reason code
    assert required_units(summarize(one_per_unit([0, 0, 1, -1])), 0.1, 0.05).reason == (
        CONTROL_MEAN_ZERO
    )
    assert required_units(summarize(one_per_unit([3.0] * 9)), 0.1, 0.05).reason == ZERO_VARIANCE
    assert required_units(summarize(one_per_unit([3.0])), 0.1, 0.05).reason == TOO_FEW_UNITS
    res = required_units(summarize(one_per_unit([1, 2, 3])), 0.0, 0.05)
    assert res.reason == INVALID_MDE and res.required_units_per_variant is None
