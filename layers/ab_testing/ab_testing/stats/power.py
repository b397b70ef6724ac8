"""Sample size read-out: units per variant needed to detect the minimum detectable effect."""

from __future__ import annotations

import math
from dataclasses import dataclass
from statistics import NormalDist

from .descriptive import Summary
from .messages import (
    CONTROL_MEAN_ZERO,
    DEFAULT_POWER,
    INVALID_MDE,
    NO_CONTROL_DATA,
    NUMERIC_OVERFLOW,
    TOO_FEW_UNITS,
    ZERO_VARIANCE,
)


@dataclass(frozen=True)
class PowerResult:
    required_units_per_variant: int | None
    reason: str | None = None


def units_per_variant(
    unit_variance: float, effect: float, alpha: float, power: float = DEFAULT_POWER
) -> float:
    """n = 2 sigma^2 (z_{1-alpha/2} + z_{power})^2 / delta^2 per variant, two equal groups.

    Normal-approximation sample size of a two-sided two-sample test (e.g. Chow, Shao & Wang
    2008, Sample Size Calculations in Clinical Research, sec. 3.2.1), with sigma^2 the per-unit
    variance and delta the absolute effect.
    """
    z = NormalDist().inv_cdf(1.0 - alpha / 2.0) + NormalDist().inv_cdf(power)
    return 2.0 * unit_variance * z * z / (effect * effect)


def required_units(
    control: Summary, minimum_detectable_effect: float, alpha: float, power: float = DEFAULT_POWER
) -> PowerResult:
    """Units per variant to detect a relative change of ``minimum_detectable_effect`` of the
    control mean, from the control's observed per-unit (cluster-robust) variance.

    Returns a None size with a reason code when it cannot be computed.
    """
    mde = minimum_detectable_effect
    if not (isinstance(mde, int | float) and math.isfinite(mde) and mde > 0):
        return PowerResult(None, INVALID_MDE)
    if control.mean is None:
        return PowerResult(None, NO_CONTROL_DATA)
    if control.unit_variance is None:
        return PowerResult(None, control.reason or TOO_FEW_UNITS)
    if control.mean == 0:
        return PowerResult(None, CONTROL_MEAN_ZERO)
    if control.unit_variance <= 0:
        return PowerResult(None, ZERO_VARIANCE)
    effect = abs(control.mean) * mde
    try:
        n = units_per_variant(control.unit_variance, effect, alpha, power)
    except (ZeroDivisionError, OverflowError):
        return PowerResult(None, NUMERIC_OVERFLOW)
    if not math.isfinite(n) or n > 1e15:
        return PowerResult(None, NUMERIC_OVERFLOW)
    return PowerResult(max(2, math.ceil(n)))
