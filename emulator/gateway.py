"""What API Gateway does between the HTTP request and the Lambda proxy integration."""

from __future__ import annotations

import base64
import hmac
import json
import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qs, urlsplit

from emulator.events import api_gateway_event
from emulator.lambdas import FunctionLoader, HttpResponse, invoke_api
from emulator.routing import Router
from emulator.scheduler import ScheduledRunner, to_json
from emulator.template import (
    ADMIN_PLANE,
    DATA_PLANE,
    api_routes,
    function_settings,
    gateway_response,
    missing_route_response,
)

log = logging.getLogger("emulator.gateway")

SCHEDULED_ANALYSIS_PATH = "/_local/scheduled-analysis"
JSON = ("Content-Type", "application/json")


@dataclass
class Request:
    method: str
    target: str  # path and query string, as sent
    headers: list[tuple[str, str]] = field(default_factory=list)
    body: bytes = b""
    source_ip: str = "127.0.0.1"


def json_response(status: int, body: str) -> HttpResponse:
    return HttpResponse(status, [JSON], body.encode("utf-8"))


def _event_body(raw: bytes) -> tuple[str | None, bool]:
    """The event's body and isBase64Encoded: text as is, anything else base64."""
    if not raw:
        return None, False
    try:
        return raw.decode("utf-8"), False
    except UnicodeDecodeError:
        return base64.b64encode(raw).decode("ascii"), True


AMBIGUOUS_KEY = (
    403,
    json.dumps(
        {
            "error": "ambiguous_api_key",
            "message": "More than one x-api-key header: send exactly one.",
        }
    ),
)


class LocalKeys:
    """Two local keys standing in for the two callers of the deployed API.

    The data key stands in for the API key (data plane), the admin key for SigV4 (admin
    plane): data routes take either, admin routes only the admin key. No keys: all open.
    Refusals are the template's gateway responses, as API Gateway sends them.
    """

    def __init__(self, admin: str | None, data: str | None, template: Mapping[str, Any]) -> None:
        if data is not None and admin is None:
            raise ValueError("a data-plane key needs an admin key too (the admin plane's stand-in)")
        self.admin = admin
        self.data = data
        self.unsigned = gateway_response(template, "MISSING_AUTHENTICATION_TOKEN")
        self.invalid_key = gateway_response(template, "INVALID_API_KEY")
        self.denied = gateway_response(template, "ACCESS_DENIED")

    def refusal(self, headers: list[tuple[str, str]], plane: str) -> tuple[int, str] | None:
        """None when the request may pass, else the status and body that refuse it."""
        if self.admin is None:
            return None
        sent = [value for name, value in headers if name.lower() == "x-api-key"]
        if len(sent) > 1:
            return AMBIGUOUS_KEY
        # Whitespace around a header's value is not part of it (RFC 9110's OWS): the HTTP
        # parser drops it before the value, and here it goes after the value too.
        key = sent[0].strip(" \t") if sent else None
        if _same(key, self.admin):
            return None
        if plane == DATA_PLANE:
            return None if _same(key, self.data) else self.invalid_key
        return self.unsigned if key is None else self.denied


def _same(sent: str | None, expected: str | None) -> bool:
    if sent is None or expected is None:
        return False
    return hmac.compare_digest(sent.encode(), expected.encode())


class Gateway:
    """Routes requests to handlers, with the gateway's own responses for what it refuses."""

    def __init__(
        self,
        template: Mapping[str, Any],
        loader: FunctionLoader,
        scheduled: ScheduledRunner | None = None,
        *,
        admin_key: str | None = None,
        data_key: str | None = None,
        parameters: Mapping[str, Any] | None = None,
        stage: str = "local",
    ) -> None:
        self.template = template
        self.loader = loader
        self.router = Router(api_routes(template, parameters))
        self.scheduled = scheduled
        self.keys = LocalKeys(admin_key or None, data_key or None, template)
        self.stage = stage
        self.missing = missing_route_response(template)

    def handle(self, request: Request) -> HttpResponse:
        return self._dispatch(request.method.upper(), request)

    def _dispatch(self, method: str, request: Request) -> HttpResponse:
        url = urlsplit(request.target)
        path = url.path or "/"
        if path.rstrip("/") == SCHEDULED_ANALYSIS_PATH and method == "POST":
            return self._guarded(request, ADMIN_PLANE, lambda: self._run_scheduled())
        if method == "OPTIONS" and "OPTIONS" not in self.router.allowed_methods(path):
            return self._options(path)
        match = self.router.match(self._route_method(method, path), path)
        if match is None:
            return json_response(*self.missing)
        query = parse_qs(url.query, keep_blank_values=True)
        body, is_base64 = _event_body(request.body)
        event = api_gateway_event(
            method,
            path,
            resource=match.route.path,
            path_parameters=match.path_parameters,
            query=query,
            headers=request.headers,
            body=body,
            stage=self.stage,
            is_base64_encoded=is_base64,
            source_ip=request.source_ip,
        )
        settings = function_settings(self.template, match.route.function_id)
        response = self._guarded(
            request,
            match.route.plane,
            lambda: invoke_api(self.loader, match.route, event, settings),
        )
        response.headers.append(("x-amzn-RequestId", event["requestContext"]["requestId"]))
        return response

    def _route_method(self, method: str, path: str) -> str:
        """HEAD is answered by the GET route when the template defines no HEAD."""
        if method == "HEAD" and "HEAD" not in self.router.allowed_methods(path):
            return "GET"
        return method

    def _guarded(
        self, request: Request, plane: str, call: Callable[[], HttpResponse]
    ) -> HttpResponse:
        refusal = self.keys.refusal(request.headers, plane)
        return json_response(*refusal) if refusal else call()

    def _options(self, path: str) -> HttpResponse:
        # An ANY route (a fallback such as the 405 answer) is not a method to advertise.
        methods = [m for m in self.router.allowed_methods(path) if m != "ANY"]
        if not methods:
            return json_response(*self.missing)
        allow = ", ".join([*methods, "OPTIONS"])
        headers = [
            ("Allow", allow),
            ("Access-Control-Allow-Origin", "*"),
            ("Access-Control-Allow-Methods", allow),
            ("Access-Control-Allow-Headers", "Content-Type,X-Api-Key,Authorization"),
        ]
        return HttpResponse(204, headers, b"")

    def _run_scheduled(self) -> HttpResponse:
        if self.scheduled is None or not self.scheduled.functions:
            return json_response(404, '{"message":"The template has no scheduled function."}')
        try:
            result = self.scheduled.run_once()
        except Exception as exc:
            log.exception("scheduled analysis failed")
            return json_response(500, json.dumps({"message": "scheduled run failed: " + str(exc)}))
        return json_response(200, to_json(result))
