"""Small DynamoDB helpers: the client factory and conversions between Python and DynamoDB JSON."""

from __future__ import annotations

import os
from decimal import Decimal
from functools import lru_cache
from typing import Any

import boto3
from boto3.dynamodb.types import TypeDeserializer
from botocore.config import Config

_deserializer = TypeDeserializer()

# Standard retry mode backs off on throttling; the service adds its own loop for contention.
# A local stack on a busy machine may answer a large Query slowly: it can wait longer.
_CONFIG = Config(
    retries={"max_attempts": 5, "mode": "standard"},
    connect_timeout=2,
    read_timeout=float(os.environ.get("AB_DYNAMODB_READ_TIMEOUT") or 5),
    tcp_keepalive=True,
)


@lru_cache(maxsize=4)
def client(region: str | None = None) -> Any:
    """One low-level client per process (thread-safe, unlike boto3 resources)."""
    return boto3.client("dynamodb", region_name=region, config=_CONFIG)


MAX_DIGITS = 38  # DynamoDB's precision


def plain_client(region: str | None, endpoint_url: str | None) -> Any:
    return boto3.client("dynamodb", region_name=region, endpoint_url=endpoint_url, config=_CONFIG)


_SMALLEST = Decimal("1E-130")  # the smallest magnitude DynamoDB stores


def number_text(value: int | float | Decimal) -> str:
    """A number as DynamoDB text: exact, never in exponent form (9E-8 -> 0.00000009).

    boto3's serializer writes str(Decimal), which switches to exponent form for small and
    large values; DynamoDB Local and moto then fail arithmetic on them, so numbers are
    written here in plain positional form.
    """
    if isinstance(value, bool):
        raise TypeError("a bool is not a number")
    if isinstance(value, int):
        return str(value)
    number = Decimal(repr(value)) if isinstance(value, float) else value
    if not number.is_finite():
        raise ValueError("DynamoDB cannot store NaN or Infinity")
    number = number.normalize()
    if number and abs(number) < _SMALLEST:
        # Below DynamoDB's range ("Number underflow"): only computed figures get here (a
        # p-value of 1e-200, say), as every input is bounded; they are stored as 0.
        return "0"
    if len(number.as_tuple().digits) > MAX_DIGITS:
        raise ValueError(f"{value} has more than {MAX_DIGITS} significant digits")
    text = format(number, "f")
    return text if text not in ("-0",) else "0"


def serialize_value(value: Any) -> dict[str, Any]:
    """One Python value as DynamoDB JSON."""
    if value is None:
        return {"NULL": True}
    if isinstance(value, bool):
        return {"BOOL": value}
    if isinstance(value, int | float | Decimal):
        return {"N": number_text(value)}
    if isinstance(value, str):
        return {"S": value}
    if isinstance(value, dict):
        return {"M": {str(k): serialize_value(v) for k, v in value.items()}}
    if isinstance(value, list | tuple):
        return {"L": [serialize_value(v) for v in value]}
    if isinstance(value, bytes):
        return {"B": value}
    raise TypeError(f"cannot store a {type(value).__name__} in DynamoDB")


def serialize(item: dict[str, Any]) -> dict[str, Any]:
    """An item as DynamoDB JSON; attributes set to None are left out."""
    return {k: serialize_value(v) for k, v in item.items() if v is not None}


def deserialize(item: dict[str, Any]) -> dict[str, Any]:
    return {k: _deserializer.deserialize(v) for k, v in item.items()}


def plain(value: Any) -> Any:
    """Decimals back to int/float (for pydantic models and JSON), recursively."""
    if isinstance(value, Decimal):
        return int(value) if value == value.to_integral_value() else float(value)
    if isinstance(value, dict):
        return {k: plain(v) for k, v in value.items()}
    if isinstance(value, list):
        return [plain(v) for v in value]
    return value


def cancellation_codes(exc: Exception) -> list[str]:
    reasons = getattr(exc, "response", {}).get("CancellationReasons", [])
    return [r.get("Code", "None") for r in reasons]


def cancellation_item(exc: Exception, index: int) -> dict[str, Any] | None:
    reasons = getattr(exc, "response", {}).get("CancellationReasons", [])
    if index < len(reasons) and "Item" in reasons[index]:
        return deserialize(reasons[index]["Item"])
    return None
