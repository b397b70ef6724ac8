"""Small DynamoDB helpers: the client factory and conversions between Python and DynamoDB JSON."""

from __future__ import annotations

import math
from decimal import Decimal
from functools import lru_cache
from typing import Any

import boto3
from boto3.dynamodb.types import TypeDeserializer, TypeSerializer
from botocore.config import Config

_serializer = TypeSerializer()
_deserializer = TypeDeserializer()

# Standard retry mode backs off on throttling; the service adds its own loop for contention.
_CONFIG = Config(
    retries={"max_attempts": 5, "mode": "standard"},
    connect_timeout=2,
    read_timeout=5,
    tcp_keepalive=True,
)


@lru_cache(maxsize=4)
def client(region: str | None = None) -> Any:
    """One low-level client per process (thread-safe, unlike boto3 resources)."""
    return boto3.client("dynamodb", region_name=region, config=_CONFIG)


def plain_decimal(value: Decimal) -> Decimal:
    """The same number without an exponent (0E-12 -> 0, 1E+2 -> 100, 1.500 -> 1.5)."""
    return Decimal(format(value.normalize(), "f"))


def to_dynamo_value(value: Any) -> Any:
    """Python values ready for TypeSerializer: floats as exact Decimals, no exponents."""
    if isinstance(value, float):
        if not math.isfinite(value):
            raise ValueError("DynamoDB cannot store NaN or Infinity")
        return plain_decimal(Decimal(repr(value)))
    if isinstance(value, Decimal):
        return plain_decimal(value)
    if isinstance(value, dict):
        return {k: to_dynamo_value(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [to_dynamo_value(v) for v in value]
    return value


def serialize(item: dict[str, Any]) -> dict[str, Any]:
    return {k: _serializer.serialize(to_dynamo_value(v)) for k, v in item.items() if v is not None}


def serialize_value(value: Any) -> Any:
    return _serializer.serialize(to_dynamo_value(value))


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
