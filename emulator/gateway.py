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
from emulator.template import api_routes, function_settings, missing_route_response

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


class Gateway:
    """Routes requests to handlers, with the gateway's own responses for what it refuses."""

    def __init__(
        self,
        template: Mapping[str, Any],
        loader: FunctionLoader,
        scheduled: ScheduledRunner | None = None,
        *,
        api_key: str | None = None,
        stage: str = "local",
    ) -> None:
        self.template = template
        self.loader = loader
        self.router = Router(api_routes(template))
        self.scheduled = scheduled
        self.api_key = api_key or None
        self.stage = stage
        self.missing = missing_route_response(template)

    def handle(self, request: Request) -> HttpResponse:
        return self._dispatch(request.method.upper(), request)

    def _dispatch(self, method: str, request: Request) -> HttpResponse:
        url = urlsplit(request.target)
        path = url.path or "/"
        if path.rstrip("/") == SCHEDULED_ANALYSIS_PATH and method == "POST":
            return self._guarded(request, lambda: self._run_scheduled())
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
            request, lambda: invoke_api(self.loader, match.route, event, settings)
        )
        response.headers.append(("x-amzn-RequestId", event["requestContext"]["requestId"]))
        return response

    def _route_method(self, method: str, path: str) -> str:
        """HEAD is answered by the GET route when the template defines no HEAD."""
        if method == "HEAD" and "HEAD" not in self.router.allowed_methods(path):
            return "GET"
        return method

    def _guarded(self, request: Request, call: Callable[[], HttpResponse]) -> HttpResponse:
        if self.api_key is not None and not self._key_matches(request):
            return json_response(403, '{"message":"Forbidden"}')
        return call()

    def _key_matches(self, request: Request) -> bool:
        sent = [value for name, value in request.headers if name.lower() == "x-api-key"]
        expected = str(self.api_key).encode()
        return bool(sent) and hmac.compare_digest(sent[-1].encode(), expected)

    def _options(self, path: str) -> HttpResponse:
        methods = self.router.allowed_methods(path)
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
