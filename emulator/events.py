"""Lambda events and context, shaped like the ones AWS hands to a Python handler."""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterable, Mapping
from datetime import UTC, datetime
from typing import Any

from emulator.template import DEFAULT_ACCOUNT, DEFAULT_REGION

HeaderInput = Mapping[str, str] | Mapping[str, list[str]] | Iterable[tuple[str, str]]

LOCAL_API_ID = "local"


def _header_pairs(headers: HeaderInput | None) -> list[tuple[str, str]]:
    if headers is None:
        return []
    if isinstance(headers, Mapping):
        pairs: list[tuple[str, str]] = []
        for name, value in headers.items():
            values = value if isinstance(value, list) else [value]
            pairs.extend((str(name), str(v)) for v in values)
        return pairs
    return [(str(name), str(value)) for name, value in headers]


def _multi_dict(pairs: Iterable[tuple[str, str]]) -> dict[str, list[str]]:
    multi: dict[str, list[str]] = {}
    for name, value in pairs:
        multi.setdefault(name, []).append(value)
    return multi


def _header_value(multi: Mapping[str, list[str]], name: str) -> str | None:
    for key, values in multi.items():
        if key.lower() == name.lower() and values:
            return values[-1]
    return None


def api_gateway_event(
    method: str,
    path: str,
    *,
    resource: str,
    path_parameters: Mapping[str, str] | None,
    query: Mapping[str, list[str]] | None = None,
    headers: HeaderInput | None = None,
    body: str | None,
    stage: str = "local",
    is_base64_encoded: bool = False,
    source_ip: str = "127.0.0.1",
) -> dict[str, Any]:
    """An API Gateway REST API (v1) Lambda proxy integration event.

    As API Gateway does: the single-value dicts keep the last value of a repeated
    header or query parameter, and empty query/path parameters are None, not {}.
    """
    multi_headers = _multi_dict(_header_pairs(headers))
    single_headers = {name: values[-1] for name, values in multi_headers.items()}
    multi_query = {name: list(values) for name, values in (query or {}).items() if values}
    now = datetime.now(UTC)
    request_id = str(uuid.uuid4())
    return {
        "resource": resource,
        "path": path,
        "httpMethod": method.upper(),
        "headers": single_headers or None,
        "multiValueHeaders": multi_headers or None,
        "queryStringParameters": {k: v[-1] for k, v in multi_query.items()} or None,
        "multiValueQueryStringParameters": multi_query or None,
        "pathParameters": dict(path_parameters) if path_parameters else None,
        "stageVariables": None,
        "requestContext": {
            "resourceId": "local",
            "resourcePath": resource,
            "httpMethod": method.upper(),
            "extendedRequestId": request_id,
            "requestTime": now.strftime("%d/%b/%Y:%H:%M:%S +0000"),
            "path": f"/{stage}{path}",
            "accountId": DEFAULT_ACCOUNT,
            "protocol": "HTTP/1.1",
            "stage": stage,
            "domainPrefix": "localhost",
            "requestTimeEpoch": int(now.timestamp() * 1000),
            "requestId": request_id,
            "identity": _identity(multi_headers, source_ip),
            "domainName": _header_value(multi_headers, "Host") or "localhost",
            "apiId": LOCAL_API_ID,
        },
        "body": body,
        "isBase64Encoded": is_base64_encoded,
    }


def _identity(multi_headers: Mapping[str, list[str]], source_ip: str) -> dict[str, Any]:
    api_key = _header_value(multi_headers, "x-api-key")
    return {
        "cognitoIdentityPoolId": None,
        "accountId": None,
        "cognitoIdentityId": None,
        "caller": None,
        "apiKey": api_key,
        "apiKeyId": "local" if api_key else None,
        "sourceIp": source_ip,
        "principalOrgId": None,
        "accessKey": None,
        "cognitoAuthenticationType": None,
        "cognitoAuthenticationProvider": None,
        "userArn": None,
        "userAgent": _header_value(multi_headers, "User-Agent"),
        "user": None,
    }


def scheduled_event(
    rule_name: str = "local-schedule",
    *,
    region: str = DEFAULT_REGION,
    account: str = DEFAULT_ACCOUNT,
    when: datetime | None = None,
) -> dict[str, Any]:
    """An EventBridge "Scheduled Event", as a schedule rule delivers it to Lambda."""
    when = when or datetime.now(UTC)
    return {
        "version": "0",
        "id": str(uuid.uuid4()),
        "detail-type": "Scheduled Event",
        "source": "aws.events",
        "account": account,
        "time": when.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "region": region,
        "resources": [f"arn:aws:events:{region}:{account}:rule/{rule_name}"],
        "detail": {},
    }


class FakeLambdaContext:
    """Enough of `awslambdaric`'s LambdaContext for handlers and Powertools."""

    def __init__(
        self,
        function_name: str,
        *,
        memory_limit_in_mb: int = 128,
        timeout_seconds: float = 3.0,
        region: str = DEFAULT_REGION,
        account: str = DEFAULT_ACCOUNT,
        aws_request_id: str | None = None,
    ) -> None:
        self.function_name = function_name
        self.function_version = "$LATEST"
        self.memory_limit_in_mb = int(memory_limit_in_mb)
        self.invoked_function_arn = f"arn:aws:lambda:{region}:{account}:function:{function_name}"
        self.aws_request_id = aws_request_id or str(uuid.uuid4())
        self.log_group_name = f"/aws/lambda/{function_name}"
        self.log_stream_name = datetime.now(UTC).strftime("%Y/%m/%d/[$LATEST]") + uuid.uuid4().hex
        self.identity = None
        self.client_context = None
        self._deadline = time.monotonic() + float(timeout_seconds)

    def get_remaining_time_in_millis(self) -> int:
        return max(0, int((self._deadline - time.monotonic()) * 1000))


LambdaContext = FakeLambdaContext
