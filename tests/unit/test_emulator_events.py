"""Events and context handed to the handlers."""

from __future__ import annotations

import time
import uuid

from emulator.events import FakeLambdaContext, api_gateway_event, scheduled_event


def test_api_gateway_event_has_the_rest_proxy_shape() -> None:
    # Given a request with repeated headers and query parameters
    # When the event is built
    event = api_gateway_event(
        "post",
        "/api/v1/experiments/42/start/",
        resource="/api/v1/experiments/{id}/start",
        path_parameters={"id": "42"},
        query={"a": ["1", "2"], "b": [""]},
        headers=[
            ("Host", "localhost:8000"),
            ("X-Tag", "one"),
            ("X-Tag", "two"),
            ("x-api-key", "k"),
        ],
        body='{"x": 1}',
    )
    # Then it has every key of an API Gateway REST (v1) proxy event
    assert set(event) == {
        "resource",
        "path",
        "httpMethod",
        "headers",
        "multiValueHeaders",
        "queryStringParameters",
        "multiValueQueryStringParameters",
        "pathParameters",
        "stageVariables",
        "requestContext",
        "body",
        "isBase64Encoded",
    }
    assert event["resource"] == "/api/v1/experiments/{id}/start"
    assert event["path"] == "/api/v1/experiments/42/start/"
    assert event["httpMethod"] == "POST"
    # And single-value dicts keep the last value, as API Gateway does
    assert event["headers"]["X-Tag"] == "two"
    assert event["multiValueHeaders"]["X-Tag"] == ["one", "two"]
    assert event["queryStringParameters"] == {"a": "2", "b": ""}
    assert event["multiValueQueryStringParameters"] == {"a": ["1", "2"], "b": [""]}
    assert event["pathParameters"] == {"id": "42"}
    assert event["stageVariables"] is None
    assert event["body"] == '{"x": 1}' and event["isBase64Encoded"] is False


def test_request_context_fields() -> None:
    # Given a request on stage "local" / When the event is built
    before = int(time.time() * 1000)
    event = api_gateway_event(
        "GET",
        "/api/v1/experiments",
        resource="/api/v1/experiments",
        path_parameters=None,
        headers={"x-api-key": "secret", "User-Agent": "tests"},
        body=None,
        source_ip="10.1.2.3",
    )
    ctx = event["requestContext"]
    # Then the context carries the resource, stage path, request id, time and identity
    assert ctx["resourcePath"] == "/api/v1/experiments"
    assert ctx["httpMethod"] == "GET"
    assert ctx["path"] == "/local/api/v1/experiments"
    assert ctx["stage"] == "local"
    uuid.UUID(ctx["requestId"])
    assert before <= ctx["requestTimeEpoch"] <= int(time.time() * 1000)
    assert ctx["identity"]["sourceIp"] == "10.1.2.3"
    assert ctx["identity"]["apiKey"] == "secret"
    assert ctx["identity"]["userAgent"] == "tests"


def test_empty_parameters_are_none_like_api_gateway() -> None:
    # Given a request without query string, path parameters or body
    # When the event is built
    event = api_gateway_event(
        "GET", "/x", resource="/x", path_parameters={}, query={}, headers=None, body=None
    )
    # Then those keys are None, not empty dicts
    assert event["queryStringParameters"] is None
    assert event["multiValueQueryStringParameters"] is None
    assert event["pathParameters"] is None
    assert event["body"] is None
    assert event["requestContext"]["identity"]["apiKey"] is None


def test_scheduled_event_shape() -> None:
    # Given / When a scheduled event is built for a rule
    event = scheduled_event("Nightly", region="eu-west-1", account="111122223333")
    # Then it looks like EventBridge's "Scheduled Event"
    assert event["detail-type"] == "Scheduled Event"
    assert event["source"] == "aws.events"
    assert event["resources"] == ["arn:aws:events:eu-west-1:111122223333:rule/Nightly"]
    assert event["detail"] == {} and event["time"].endswith("Z")
    assert event["region"] == "eu-west-1" and event["account"] == "111122223333"


def test_fake_lambda_context() -> None:
    # Given a context for a function with a 2 s timeout
    context = FakeLambdaContext("MyFunction", memory_limit_in_mb=256, timeout_seconds=2)
    # When / Then it has what handlers and Powertools read
    assert context.function_name == "MyFunction"
    assert context.memory_limit_in_mb == 256
    assert context.invoked_function_arn.endswith(":function:MyFunction")
    uuid.UUID(context.aws_request_id)
    assert 0 < context.get_remaining_time_in_millis() <= 2000
