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
    )
}

# DynamoDB numbers hold 38 significant digits. Values are kept to 6 decimal places and within
# ±1e9, so a square has at most 30 digits and sums of squares over 10^8 results stay exact.
MAX_ABS_VALUE = 1e9
QUANTUM = Decimal("0.000001")
_EXACT = Context(prec=60)


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
    return exact.quantize(QUANTUM, rounding=ROUND_HALF_EVEN, context=_EXACT)
