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
import zlib
from collections.abc import Callable
from dataclasses import dataclass, field
from decimal import Decimal
from typing import TYPE_CHECKING, Any, TypeVar

from ab_testing.errors import DomainError, InvalidInput, as_unavailable
from ab_testing.observability import API_GATEWAY_REST, logger, observed

if TYPE_CHECKING:
    from pydantic import BaseModel

    M = TypeVar("M", bound=BaseModel)

_ID = re.compile(r"^[1-9][0-9]{0,14}$")
JSON_HEADERS = {"Content-Type": "application/json"}


@dataclass(frozen=True)
class TextAnswer:
    """A non-JSON answer (CSV, JSON Lines, HTML), with its media type and extra headers."""

    body: str
    content_type: str
    headers: dict[str, str] = field(default_factory=dict)
    status: int = 200


@dataclass(frozen=True)
class BinaryAnswer:
    """A binary answer (protobuf), sent base64-encoded as API Gateway expects."""

    body: bytes
    content_type: str
    status: int = 200


class HtmlPage(str):
    """A handler's answer that is an HTML page rather than JSON."""


Answer = dict[str, Any] | list[Any] | tuple[int, Any] | HtmlPage | TextAnswer | BinaryAnswer
MAX_INFLATED_BYTES = 6 * 1024 * 1024  # a gzip body may not inflate past Lambda's own limit


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

    def params(self, model: type[M]) -> M:
        """The query string validated by ``model``; unknown parameters are named in the 400."""
        from ab_testing.validation import parse_query

        return parse_query(model, self.query_parameters)

    def header(self, name: str) -> str | None:
        wanted = name.lower()
        for key, value in (self.event.get("headers") or {}).items():
            if key.lower() == wanted:
                return str(value)
        return None

    def body_bytes(self) -> bytes:
        """The body as bytes (base64-decoded when API Gateway encoded it), inflated when it
        says Content-Encoding: gzip (at most MAX_INFLATED_BYTES)."""
        body = self.event.get("body") or ""
        try:
            raw = base64.b64decode(body) if self.event.get("isBase64Encoded") else body.encode()
        except binascii.Error as exc:
            raise InvalidInput("the body is not valid base64", field="body") from exc
        encoding = (self.header("Content-Encoding") or "identity").strip().lower()
        if encoding == "identity":
            return raw
        if encoding != "gzip":
            raise InvalidInput(f"Content-Encoding {encoding!r}: gzip or none", field="body")
        inflater = zlib.decompressobj(16 + zlib.MAX_WBITS)
        try:
            out = inflater.decompress(raw, MAX_INFLATED_BYTES + 1)
        except zlib.error as exc:
            raise InvalidInput(f"the gzip body is damaged: {exc}", field="body") from exc
        if len(out) > MAX_INFLATED_BYTES or inflater.unconsumed_tail:
            raise InvalidInput(
                f"the gzip body inflates past {MAX_INFLATED_BYTES} bytes", field="body"
            )
        return out

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


def refused(exc: DomainError, request: ApiRequest) -> dict[str, Any]:
    """A domain error as its answer; a 503 says when to retry."""
    logger.info(
        "request refused",
        extra={
            "status": exc.status,
            "error": exc.code,
            "detail": exc.message,
            "path": request.path,
        },
    )
    answer = respond(exc.status, exc.body())
    retry_after = getattr(exc, "retry_after_seconds", None)
    if retry_after is not None:
        answer["headers"]["Retry-After"] = str(retry_after)
    return answer


def api(fn: Callable[[ApiRequest], Answer]) -> Callable[[dict[str, Any], Any], dict[str, Any]]:
    """Wraps a handler body: a dict answer is a 200, a (status, body) tuple is explicit."""

    @functools.wraps(fn)
    def handler(event: dict[str, Any], context: Any = None) -> dict[str, Any]:
        request = ApiRequest(event or {})
        try:
            answer = fn(request)
        except DomainError as exc:
            return refused(exc, request)
        except Exception as exc:
            unavailable = as_unavailable(exc)
            if unavailable is not None:
                return refused(unavailable, request)
            logger.exception("unhandled error", extra={"path": request.path})
            return respond(
                500,
                {
                    "error": "internal_error",
                    "message": "an unexpected error occurred; it has been logged",
                },
            )
        if isinstance(answer, TextAnswer):
            headers = {"Content-Type": answer.content_type, **answer.headers}
            return {"statusCode": answer.status, "headers": headers, "body": answer.body}
        if isinstance(answer, BinaryAnswer):
            return {
                "statusCode": answer.status,
                "headers": {"Content-Type": answer.content_type},
                "body": base64.b64encode(answer.body).decode("ascii"),
                "isBase64Encoded": True,
            }
        if isinstance(answer, HtmlPage):
            return {
                "statusCode": 200,
                "headers": {"Content-Type": "text/html; charset=utf-8"},
                "body": str(answer),
            }
        if isinstance(answer, tuple):
            return respond(answer[0], answer[1])
        return respond(200, answer)

    return observed(handler, API_GATEWAY_REST)
