"""OpenTelemetry traces in: the real OTel Python SDK and its OTLP/HTTP exporter against the
local API (`make run`), in protobuf and in JSON."""

from __future__ import annotations

import base64
import gzip
import json
import time
import urllib.error
import urllib.request
from decimal import Decimal
from typing import Any

import pytest
from google.protobuf.json_format import MessageToDict
from opentelemetry.exporter.otlp.proto.common.trace_encoder import encode_spans
from opentelemetry.exporter.otlp.proto.http import Compression
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor, SpanExportResult
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from tests.conftest import guide_experiment
from tests.e2e.conftest import LocalApi

pytestmark = pytest.mark.e2e
NAME = "Support bot model"
TRACES = "/api/v1/otlp/v1/traces"
USERS = 100
PRICE_IN, PRICE_OUT = Decimal("1.0"), Decimal("4.0")  # USD per million tokens


def start(api: LocalApi) -> dict[str, Any]:
    body = guide_experiment(
        name=NAME,
        primary_metric="cost_usd",
        secondary_metrics=["input_tokens", "output_tokens", "latency_ms", "judge_score"]
        + ["error_rate"],
        prices={"my-model": {"input_per_million": 1.0, "output_per_million": 4.0}},
    )
    status, created = api.call("POST", "/api/v1/experiments", body)
    assert status == 201, created
    assert api.call("POST", f"/api/v1/experiments/{created['id']}/start")[0] == 200
    for user in range(USERS):
        answer = api.call(
            "POST", "/api/v1/experiments/get-variant", {"experiment_name": NAME, "user_id": user}
        )
        assert answer[1]["reason"] == "assigned"
    return created


def calls(users: range, evaluation: bool = False) -> list[ReadableSpan]:
    """One instrumented model call (or one late judge score) per user, as an app makes them."""
    captured = InMemorySpanExporter()
    provider = TracerProvider(resource=Resource.create({"service.name": "support-bot"}))
    provider.add_span_processor(SimpleSpanProcessor(captured))
    tracer = provider.get_tracer("support-bot")
    for user in users:
        with tracer.start_as_current_span("chat my-model") as span:
            span.set_attribute("ab_testing.experiment", NAME)
            span.set_attribute("user.id", str(user))
            if evaluation:
                span.add_event(
                    "gen_ai.evaluation.result",
                    {"gen_ai.evaluation.name": "judge_score", "gen_ai.evaluation.score.value": 0.8},
                )
                continue
            span.set_attribute("gen_ai.operation.name", "chat")
            span.set_attribute("gen_ai.request.model", "my-model")
            span.set_attribute("gen_ai.usage.input_tokens", 100 + user)
            span.set_attribute("gen_ai.usage.output_tokens", 20 + user % 7)
    provider.shutdown()
    return list(captured.get_finished_spans())


def results_by_metric(api: LocalApi, experiment_id: int) -> dict[str, int]:
    status, summary = api.call("GET", f"/api/v1/experiments/{experiment_id}/summary")
    assert status == 200
    totals: dict[str, int] = {}
    for variant in summary["variants"]:
        for metric, count in variant["results_by_metric"].items():
            totals[metric] = totals.get(metric, 0) + count
    return totals


def stored_costs(api: LocalApi, experiment_id: int) -> dict[str, str]:
    status, page = api.call("GET", f"/api/v1/experiments/{experiment_id}/results?limit=1000")
    assert status == 200
    return {
        r["user_id"]: r["metric_value"] for r in page["results"] if r["metric_name"] == "cost_usd"
    }


def test_the_otel_sdks_protobuf_exporter_delivers_results_once(local_api: LocalApi) -> None:
    # Given a running experiment and its 100 assigned users, each making one model call
    created = start(local_api)
    spans = calls(range(USERS))
    exporter = OTLPSpanExporter(endpoint=local_api.url + TRACES, timeout=60)

    # When the SDK's OTLP/HTTP exporter (protobuf, its default) sends them
    began = time.perf_counter()
    assert exporter.export(spans) == SpanExportResult.SUCCESS
    seconds = time.perf_counter() - began
    print(f"{USERS} spans in {seconds:.2f} s: {USERS / seconds:.0f} spans/s through the local API")

    # Then each declared metric has one result per span, split over the variants
    counted = results_by_metric(local_api, created["id"])
    for metric in ("cost_usd", "input_tokens", "output_tokens", "latency_ms", "error_rate"):
        assert counted[metric] == USERS, (metric, counted)
    # And cost_usd is tokens times the declared prices, exactly
    costs = stored_costs(local_api, created["id"])
    for user in range(USERS):
        expected = ((100 + user) * PRICE_IN + (20 + user % 7) * PRICE_OUT) / 1_000_000
        assert Decimal(str(costs[str(user)])) == expected

    # When the same spans are exported again (an exporter's retry), gzip-compressed this time
    gzipped = OTLPSpanExporter(
        endpoint=local_api.url + TRACES, timeout=60, compression=Compression.Gzip
    )
    assert gzipped.export(spans) == SpanExportResult.SUCCESS
    # Then nothing changes
    assert results_by_metric(local_api, created["id"]) == counted

    # When an LLM judge's scores arrive later, as evaluation events on their own spans
    assert exporter.export(calls(range(USERS), evaluation=True)) == SpanExportResult.SUCCESS
    # Then there is one judge_score result per user
    assert results_by_metric(local_api, created["id"])["judge_score"] == USERS
    exporter.shutdown()


def otlp_json(spans: list[ReadableSpan]) -> bytes:
    """The OTLP/JSON body of the spans: the protobuf JSON mapping with ids in hex, as the
    OTLP specification asks."""
    document = MessageToDict(encode_spans(spans))
    for resource_spans in document["resourceSpans"]:
        for scope in resource_spans["scopeSpans"]:
            for span in scope["spans"]:
                for key in ("traceId", "spanId", "parentSpanId"):
                    if key in span:
                        span[key] = base64.b64decode(span[key]).hex()
    return json.dumps(document).encode()


def post(
    api: LocalApi, body: bytes, compressed: bool = False, media: str = "application/json"
) -> tuple[int, dict[str, Any]]:
    headers = {"Content-Type": media}
    if compressed:
        body, headers["Content-Encoding"] = gzip.compress(body), "gzip"
    request = urllib.request.Request(api.url + TRACES, body, headers, method="POST")
    try:
        with urllib.request.urlopen(request, timeout=60) as answer:
            assert answer.headers["Content-Type"].startswith("application/json")
            return answer.status, dict(json.loads(answer.read()))
    except urllib.error.HTTPError as refused:
        return refused.code, dict(json.loads(refused.read()))


def test_the_same_through_otlp_json(local_api: LocalApi) -> None:
    # Given a running experiment and its assigned users
    created = start(local_api)
    spans = calls(range(USERS))
    body = otlp_json(spans)

    # When the spans are posted as OTLP/JSON, twice
    first = post(local_api, body)
    again = post(local_api, body)

    # Then every span counted once, and the answers are full successes
    assert first == (200, {}) and again == (200, {})
    counted = results_by_metric(local_api, created["id"])
    assert counted["cost_usd"] == USERS and counted["output_tokens"] == USERS

    # And spans that belong to no experiment are reported in partial_success, not counted
    stranger = calls(range(USERS, USERS + 3))
    status, answer = post(local_api, otlp_json(stranger))
    assert status == 200 and answer["partialSuccess"]["rejectedSpans"] == "3"
    assert "no variant" in answer["partialSuccess"]["errorMessage"]
    assert results_by_metric(local_api, created["id"]) == counted

    # And gzip-compressed JSON is refused, as API Gateway would damage it deployed
    status, refused = post(local_api, body, compressed=True)
    assert status == 400 and "uncompressed" in refused["message"]
    # (a media type is case-insensitive and may carry parameters: the same rule holds)
    status, refused = post(
        local_api, body, compressed=True, media="Application/JSON; charset=utf-8"
    )
    assert status == 400 and "uncompressed" in refused["message"]
