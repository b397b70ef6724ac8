"""The glue between API Gateway proxy events and the service: parse, call, answer.

Domain errors become HTTP answers here and only here; nothing a client sends yields a 500.
"""

from __future__ import annotations

import base64
import binascii
import functools
import json
import math
import re
from collections.abc import Callable
from decimal import Decimal
from typing import Any

from ab_testing.errors import DomainError, InvalidInput
from ab_testing.observability import API_GATEWAY_REST, logger, observed

_ID = re.compile(r"^[1-9][0-9]{0,14}$")
_TRUE = {"true", "1", "yes", ""}  # a bare ?declare_winner means yes
_FALSE = {"false", "0", "no"}
JSON_HEADERS = {"Content-Type": "application/json"}

Answer = dict[str, Any] | list[Any] | tuple[int, Any]


class ApiRequest:
    """What a handler needs from an API Gateway REST proxy event."""

    def __init__(self, event: dict[str, Any]) -> None:
        self.event = event
        self.method: str = event.get("httpMethod", "")
        self.path: str = event.get("path", "")
        self.path_parameters: dict[str, str] = event.get("pathParameters") or {}
        self.query_parameters: dict[str, str] = event.get("queryStringParameters") or {}

    def path_id(self, name: str = "id") -> int:
        raw = self.path_parameters.get(name, "")
        if not _ID.match(raw):
            raise InvalidInput(f"{name} must be a positive integer, got {raw!r}", field=name)
        return int(raw)

    def query(self, name: str) -> str | None:
        value = self.query_parameters.get(name)
        return value if value not in (None, "") else None

    def flag(self, name: str) -> bool:
        if name not in self.query_parameters:
            return False
        raw = (self.query_parameters.get(name) or "").strip().lower()
        if raw in _TRUE:
            return True
        if raw in _FALSE:
            return False
        raise InvalidInput(f"{name} must be true or false, got {raw!r}", field=name)

    def json(self) -> Any:
        body = self.event.get("body")
        if body is None or body == "":
            raise InvalidInput("the request needs a JSON body", field="body")
        if self.event.get("isBase64Encoded"):
            try:
                body = base64.b64decode(body).decode("utf-8")
            except (binascii.Error, UnicodeDecodeError) as exc:
                raise InvalidInput("the body is not valid base64 UTF-8", field="body") from exc
        try:
            return json.loads(body, parse_constant=_reject_constant, parse_float=_finite_float)
        except RecursionError as exc:
            raise InvalidInput("the JSON body is nested too deeply", field="body") from exc
        except (json.JSONDecodeError, ValueError) as exc:
            raise InvalidInput(f"malformed JSON: {exc}", field="body") from exc


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not a JSON number")


def _finite_float(text: str) -> float:
    number = float(text)
    if not math.isfinite(number):
        raise ValueError(f"{text} is too large for a number")
    return number


def json_safe(value: Any) -> Any:
    """Decimals as numbers, NaN and Infinity as null: the JSON stays valid everywhere."""
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, Decimal):
        number = float(value)
        return (
            int(value)
            if value == value.to_integral_value() and abs(number) < 2**53
            else (number if math.isfinite(number) else None)
        )
    if isinstance(value, dict):
        return {str(k): json_safe(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [json_safe(v) for v in value]
    return value


def respond(status: int, body: Any) -> dict[str, Any]:
    return {
        "statusCode": status,
        "headers": dict(JSON_HEADERS),
        "body": json.dumps(json_safe(body), allow_nan=False, separators=(",", ":")),
    }


def api(fn: Callable[[ApiRequest], Answer]) -> Callable[[dict[str, Any], Any], dict[str, Any]]:
    """Wraps a handler body: a dict answer is a 200, a (status, body) tuple is explicit."""

    @functools.wraps(fn)
    def handler(event: dict[str, Any], context: Any = None) -> dict[str, Any]:
        request = ApiRequest(event or {})
        try:
            answer = fn(request)
        except DomainError as exc:
            logger.info(
                "request refused",
                extra={
                    "status": exc.status,
                    "error": exc.code,
                    "detail": exc.message,
                    "path": request.path,
                },
            )
            return respond(exc.status, exc.body())
        except Exception:
            logger.exception("unhandled error", extra={"path": request.path})
            return respond(
                500,
                {
                    "error": "internal_error",
                    "message": "an unexpected error occurred; it has been logged",
                },
            )
        if isinstance(answer, tuple):
            return respond(answer[0], answer[1])
        return respond(200, answer)

    return observed(handler, API_GATEWAY_REST)
