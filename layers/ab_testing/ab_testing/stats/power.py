"""Sample size read-out: units per variant needed to detect the minimum detectable effect, and
the power the experiment has at its planned size (``min_sample_size`` units per variant)."""

from __future__ import annotations

import math
from dataclasses import dataclass
from statistics import NormalDist

from .descriptive import Summary
from .inputs import Direction, MetricKind
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
    power_at_planned_size: float | None = None


@dataclass(frozen=True)
class EffectVariances:
    """The absolute effect delta and the per-unit variances of the two arms under it."""

    effect: float
    var_control: float
    var_treatment: float


def units_per_variant(
    var_control: float,
    effect: float,
    alpha: float,
    power: float = DEFAULT_POWER,
    var_treatment: float | None = None,
) -> float:
    """n = (z_{1-alpha/2} + z_{power})^2 (s_c^2 + s_t^2) / delta^2 per variant, equal groups.

    Normal-approximation sample size of a two-sided two-sample test (Chow, Shao & Wang 2008,
    Sample Size Calculations in Clinical Research, sec. 3.2.1 for means, 4.2 for proportions,
    where s^2 = p (1 - p) in each arm). Without a treatment variance the arms are taken equal.
    """
    var_t = var_control if var_treatment is None else var_treatment
    z = NormalDist().inv_cdf(1.0 - alpha / 2.0) + NormalDist().inv_cdf(power)
    return z * z * (var_control + var_t) / (effect * effect)


def power_at(n: float, ev: EffectVariances, alpha: float) -> float:
    """Power of the two-sided normal test with n units per variant (both tails counted, as
    statsmodels' NormalIndPower does): Phi(d - z) + Phi(-d - z), d = delta / se(n)."""
    norm = NormalDist()
    z = norm.inv_cdf(1.0 - alpha / 2.0)
    d = abs(ev.effect) / math.sqrt((ev.var_control + ev.var_treatment) / n)
    return norm.cdf(d - z) + norm.cdf(-d - z)


def effect_variances(
    control: Summary, mde: float, kind: MetricKind, direction: Direction
) -> EffectVariances | str:
    """The planned effect and both arms' variances, or the reason code they are undefined."""
    if not (isinstance(mde, int | float) and math.isfinite(mde) and mde > 0):
        return INVALID_MDE
    if control.mean is None:
        return NO_CONTROL_DATA
    if control.mean == 0:
        return CONTROL_MEAN_ZERO
    effect = abs(control.mean) * mde
    if kind == "binary" and 0 < control.mean < 1:
        p_c = control.mean
        # The alternative in the good direction, the other one when it would leave [0, 1].
        p_t = p_c + effect if direction == "higher" else p_c - effect
        if not 0 < p_t < 1:
            p_t = p_c - effect if direction == "higher" else p_c + effect
        if not 0 < p_t < 1:
            return INVALID_MDE
        return EffectVariances(effect, p_c * (1 - p_c), p_t * (1 - p_t))
    if control.unit_variance is None:
        return control.reason or TOO_FEW_UNITS
    if control.unit_variance <= 0:
        return ZERO_VARIANCE
    return EffectVariances(effect, control.unit_variance, control.unit_variance)


def required_units(
    control: Summary,
    minimum_detectable_effect: float,
    alpha: float,
    power: float = DEFAULT_POWER,
    *,
    kind: MetricKind = "continuous",
    direction: Direction = "higher",
    planned_units: int | None = None,
) -> PowerResult:
    """Units per variant to detect a relative change of ``minimum_detectable_effect`` of the
    control mean, and the power at ``planned_units`` per variant.

    A binary metric uses the variance of each arm under the alternative, p (1 - p); other
    metrics use the control's observed per-unit (cluster-robust) variance for both arms.
    Returns a None size with a reason code when it cannot be computed.
    """
    ev = effect_variances(control, minimum_detectable_effect, kind, direction)
    if isinstance(ev, str):
        return PowerResult(None, ev)
    try:
        n = units_per_variant(ev.var_control, ev.effect, alpha, power, ev.var_treatment)
        planned = power_at(planned_units, ev, alpha) if planned_units else None
    except (ZeroDivisionError, OverflowError, ValueError):
        return PowerResult(None, NUMERIC_OVERFLOW)
    if not math.isfinite(n) or n > 1e15:
        return PowerResult(None, NUMERIC_OVERFLOW)
    return PowerResult(max(2, math.ceil(n)), None, planned)
