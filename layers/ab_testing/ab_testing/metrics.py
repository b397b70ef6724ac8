"""The metric catalogue: the one place that says what each metric is and which way is better.

An experiment may also declare its own metrics at creation; those join the catalogue for that
experiment only. Values are validated here before anything is stored.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from decimal import ROUND_HALF_EVEN, Context, Decimal

from ab_testing.errors import InvalidInput
from ab_testing.stats.inputs import MetricSpec

# DynamoDB numbers hold 38 significant digits. A metric keeps its values to `decimals` places
# (default 6, at most 12) and within its bounds (±1e9 when it declares none). The largest
# running total is a sum of squares (of results, of a unit's sums, of cross products): its
# values have 2 x (integer digits + decimals) digits, and CAPACITY_DIGITS more cover 10^8
# results per variant (for unit-level sums: a sum over units of (results per unit)^2 up to
# 10^8). A metric whose bounds and decimals could overflow that is refused at creation;
# a result that would overflow anyway is refused when it arrives (ab_testing.ledger).
MAX_ABS_VALUE = 1e9
DEFAULT_DECIMALS = 6
MAX_DECIMALS = 12
CAPACITY_DIGITS = 8
STORE_DIGITS = 38
_EXACT = Context(prec=60)


def integer_digits(bound: float) -> int:
    """The least a >= 0 with |bound| <= 10^a: how many integer digits a value can need."""
    magnitude = abs(Decimal(repr(float(bound))))
    digits = 0
    while magnitude > Decimal(10) ** digits:
        digits += 1
    return digits


def magnitude_bound(spec: MetricSpec) -> float:
    bounds = [abs(b) for b in (spec.lower, spec.upper) if b is not None]
    if spec.lower is None or spec.upper is None:
        bounds.append(MAX_ABS_VALUE)
    return max(bounds)


def value_digits(spec: MetricSpec) -> int:
    """Significant digits one value of the metric can need."""
    return integer_digits(magnitude_bound(spec)) + spec.decimals


def precision_problem(spec: MetricSpec) -> str | None:
    """Why the metric's running totals could pass 38 significant digits, or None."""
    needed = 2 * value_digits(spec) + CAPACITY_DIGITS
    if needed <= STORE_DIGITS:
        return None
    room = (STORE_DIGITS - CAPACITY_DIGITS) // 2  # digits one value may have
    widest = room - spec.decimals
    bound = magnitude_bound(spec)
    if widest >= 0:
        fix = (
            f"declare lower and upper within ±{10**widest:g} (now ±{bound:g}), "
            f"or at most {room - integer_digits(bound)} decimals"
        )
    else:
        fix = f"use at most {room - integer_digits(bound)} decimals"
    return (
        f"metric {spec.name!r}: {spec.decimals} decimals with values up to ±{bound:g} could take "
        f"its running totals beyond {STORE_DIGITS} significant digits; {fix}"
    )


def ratio_precision_problem(
    name: str, numerator: MetricSpec, denominator: MetricSpec
) -> str | None:
    """The ratio's cross sum (sum over units of N_i * D_i) must fit as well."""
    needed = value_digits(numerator) + value_digits(denominator) + CAPACITY_DIGITS
    if needed <= STORE_DIGITS:
        return None
    return (
        f"ratio metric {name!r}: the cross sum of {numerator.name} and {denominator.name} "
        f"could pass {STORE_DIGITS} significant digits; tighten the bounds (upper/lower) or "
        "decimals of one of them"
    )


CATALOGUE: dict[str, MetricSpec] = {
    spec.name: spec
    for spec in (
        MetricSpec("resolution_rate", "binary", "higher", 0, 1),
        MetricSpec("satisfaction_score", "continuous", "higher", 0, 5),
        MetricSpec("conversion_rate", "binary", "higher", 0, 1),
        MetricSpec("response_accuracy", "continuous", "higher", 0, 1),
        MetricSpec("escalation_rate", "binary", "lower", 0, 1),
        MetricSpec("response_time", "continuous", "lower", 0, None),
        MetricSpec("token_usage", "count", "lower", 0, None),
        MetricSpec("first_contact_resolution", "binary", "higher", 0, 1),
        MetricSpec("context_relevance", "continuous", "higher", 0, 1),
        # LLM metrics: micro-costs to 12 decimals (so per-call cost is at most $1,000).
        MetricSpec("cost_usd", "continuous", "lower", 0, 1000, decimals=12),
        MetricSpec("input_tokens", "count", "lower", 0, None, decimals=0),
        MetricSpec("output_tokens", "count", "lower", 0, None, decimals=0),
        MetricSpec("latency_ms", "continuous", "lower", 0, None),
        MetricSpec("time_to_first_token_ms", "continuous", "lower", 0, None),
        MetricSpec("judge_score", "continuous", "higher", 0, 1),
        MetricSpec("thumbs_up", "binary", "higher", 0, 1),
        # 1 when a model call failed (a span's error.type or ERROR status: docs/otlp.md)
        MetricSpec("error_rate", "binary", "lower", 0, 1),
    )
}


def resolve(name: str, custom: Iterable[MetricSpec] = ()) -> MetricSpec | None:
    """The spec of a metric: an experiment's own declaration first, then the catalogue."""
    for spec in custom:
        if spec.name == name:
            return spec
    return CATALOGUE.get(name)


def validate_value(spec: MetricSpec, value: object, field: str = "metric_value") -> Decimal:
    """The value as an exact Decimal, or InvalidInput naming the problem."""
    if isinstance(value, bool) or not isinstance(value, int | float | Decimal):
        raise InvalidInput(f"{field} must be a number, got {type(value).__name__}", field=field)
    if isinstance(value, int) and abs(value) > MAX_ABS_VALUE:
        raise InvalidInput(f"{field} must be within ±{MAX_ABS_VALUE:g}", field=field)
    number = float(value)
    if not math.isfinite(number):
        raise InvalidInput(f"{field} must be a finite number, got {value}", field=field)
    if abs(number) > MAX_ABS_VALUE:
        raise InvalidInput(f"{field} must be within ±{MAX_ABS_VALUE:g}", field=field)
    if spec.kind == "binary" and number not in (0.0, 1.0):
        raise InvalidInput(
            f"{spec.name} is a binary metric: {field} must be 0 or 1, got {value}", field=field
        )
    if spec.kind == "count" and number != int(number):
        raise InvalidInput(
            f"{spec.name} is a count: {field} must be a whole number, got {value}", field=field
        )
    if spec.lower is not None and number < spec.lower:
        raise InvalidInput(f"{spec.name} must be >= {spec.lower:g}, got {value}", field=field)
    if spec.upper is not None and number > spec.upper:
        raise InvalidInput(f"{spec.name} must be <= {spec.upper:g}, got {value}", field=field)
    exact = value if isinstance(value, Decimal) else Decimal(repr(value))
    quantum = Decimal(1).scaleb(-spec.decimals)
    return exact.quantize(quantum, rounding=ROUND_HALF_EVEN, context=_EXACT)


COVARIATE = MetricSpec("covariate", "continuous", "higher", None, None)


def covariate_value(experiment: object, covariates: dict[str, object] | None) -> Decimal | None:
    """The experiment's covariate from a request's ``covariates`` (validated), or None.

    Every value sent must be a number (a typo shows); only the one the experiment names is kept.
    """
    found: Decimal | None = None
    name = getattr(experiment, "covariate", None)
    for key, raw in (covariates or {}).items():
        value = validate_value(COVARIATE, raw, field=f"covariates.{key}")
        if key == name:
            found = value
    return found
