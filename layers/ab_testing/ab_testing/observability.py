"""Logging and tracing shared by every layer (neutral: handlers, service and store may all
import it).

Every function's entry point goes through `observed`: each log line of an invocation then
carries the Lambda request id (function_request_id) and, for API calls, the API Gateway
request id (correlation_id, the requestId of the access log). With AB_TRACING=Active (the
template's Tracing parameter) the Powertools Tracer records the invocation and patches
botocore, so every DynamoDB call is an X-Ray subsegment; otherwise nothing of X-Ray loads.
"""

from __future__ import annotations

import functools
import os
from collections.abc import Callable
from typing import Any

from aws_lambda_powertools import Logger
from aws_lambda_powertools.logging import correlation_paths

# The template sets POWERTOOLS_SERVICE_NAME to ab-testing-<stack>, as for the metrics: two
# stacks in one account are told apart in their logs too.
logger = Logger(service=os.environ.get("POWERTOOLS_SERVICE_NAME") or "ab-testing")

API_GATEWAY_REST = correlation_paths.API_GATEWAY_REST
EVENT_BRIDGE = correlation_paths.EVENT_BRIDGE

Handler = Callable[[dict[str, Any], Any], Any]


def tracing_enabled() -> bool:
    return os.environ.get("AB_TRACING", "").strip().lower() == "active"


@functools.lru_cache(maxsize=1)
def tracer() -> Any:
    """The Powertools Tracer (botocore patched), built once and only when tracing is on."""
    from aws_lambda_powertools import Tracer

    return Tracer(patch_modules=("botocore",))


def observed(handler: Handler, correlation_id_path: str | None = None) -> Handler:
    """Wrap a Lambda entry point: request ids on every log line, X-Ray when tracing is on."""
    logged = logger.inject_lambda_context(
        correlation_id_path=correlation_id_path, clear_state=True
    )(handler)
    entry = tracer().capture_lambda_handler(logged) if tracing_enabled() else logged

    @functools.wraps(handler)
    def run(event: dict[str, Any], context: Any = None) -> Any:
        if context is None:  # called directly (scripts, benchmarks): no invocation to log
            return handler(event, context)
        return entry(event, context)

    return run
