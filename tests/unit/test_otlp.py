"""The OTLP reader against the OpenTelemetry SDK's own encoder, and spans to metrics."""

from __future__ import annotations

import json
import random
from decimal import Decimal

import pytest
from google.protobuf.json_format import MessageToDict
from opentelemetry.exporter.otlp.proto.common.trace_encoder import encode_spans
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceResponse
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import Status, StatusCode

from ab_testing import otlp


def sdk_spans() -> list:
    captured = InMemorySpanExporter()
    provider = TracerProvider(resource=Resource.create({"service.name": "bot", "user.id": "r"}))
    provider.add_span_processor(SimpleSpanProcessor(captured))
    tracer = provider.get_tracer("t")
    with tracer.start_as_current_span("chat m") as span:
        span.set_attribute("gen_ai.usage.input_tokens", 1200)
        span.set_attribute("gen_ai.usage.output_tokens", 340)
        span.set_attribute("gen_ai.request.model", "gpt-4o-mini")
        span.set_attribute("score", 0.25)
        span.set_attribute("flags", [True, False])
        span.set_attribute("user.id", "42")
        span.add_event("gen_ai.evaluation.result", {"gen_ai.evaluation.name": "judge_score"})
        span.set_status(Status(StatusCode.ERROR, "boom"))
    provider.shutdown()
    return list(captured.get_finished_spans())


def test_protobuf_and_json_read_what_the_sdk_encodes() -> None:
    # Given spans encoded by the SDK's own OTLP encoder, in protobuf and in OTLP/JSON
    spans = sdk_spans()
    message = encode_spans(spans)
    document = MessageToDict(message)
    for resource in document["resourceSpans"]:
        for scope in resource["scopeSpans"]:
            for span in scope["spans"]:
                for key in ("traceId", "spanId"):
                    span[key] = __import__("base64").b64decode(span[key]).hex()

    # When both are read
    from_protobuf = otlp.decode(message.SerializeToString(), "application/x-protobuf")
    from_json = otlp.decode(json.dumps(document).encode(), "application/json; charset=utf-8")

    # Then both give the same span, as the SDK made it
    assert from_protobuf == from_json
    (span,) = from_protobuf
    original = spans[0]
    assert span.trace_id == f"{original.context.trace_id:032x}"
    assert span.span_id == f"{original.context.span_id:016x}"
    assert (span.start_ns, span.end_ns) == (original.start_time, original.end_time)
    assert span.attributes["gen_ai.usage.input_tokens"] == 1200
    assert span.attributes["score"] == 0.25 and span.attributes["flags"] == [True, False]
    assert span.attribute("user.id") == "42" and span.resource["service.name"] == "bot"
    assert span.status_code == otlp.ERROR_STATUS
    assert span.events[0].name == "gen_ai.evaluation.result"


def test_a_span_gives_tokens_latency_exact_cost_and_errors() -> None:
    (span,) = otlp.decode(encode_spans(sdk_spans()).SerializeToString(), "application/x-protobuf")
    found = otlp.measures(span, {})
    assert found["input_tokens"] == 1200 and found["output_tokens"] == 340
    assert found["latency_ms"] == Decimal(span.end_ns - span.start_ns) / 1_000_000
    # gpt-4o-mini from the table: 0.15 and 0.60 USD per million tokens
    assert found["cost_usd"] == (1200 * Decimal("0.15") + 340 * Decimal("0.60")) / 1_000_000
    assert found["error_rate"] == 1
    # An experiment's own price wins; an unknown model gets no cost
    own = {"gpt-4o-mini": {"input_per_million": 1.0, "output_per_million": 2.0}}
    assert otlp.measures(span, own)["cost_usd"] == Decimal("0.00188")
    unknown = otlp.Span("t", "s", "n", 1, 2, {**span.attributes, "gen_ai.request.model": "x"})
    assert "cost_usd" not in otlp.measures(unknown, {})


def test_the_answer_is_an_export_trace_service_response() -> None:
    answer = {"partial_success": {"rejected_spans": 3, "error_message": "3 spans: why"}}
    parsed = ExportTraceServiceResponse.FromString(otlp.response_protobuf(answer))
    assert parsed.partial_success.rejected_spans == 3
    assert parsed.partial_success.error_message == "3 spans: why"
    assert otlp.response_protobuf({}) == b""  # a full success is an empty message


def test_any_bytes_are_read_or_refused_never_crash() -> None:
    # Given random and truncated bodies
    rng = random.Random(3)
    good = encode_spans(sdk_spans()).SerializeToString()
    bodies = [bytes(rng.randrange(256) for _ in range(rng.randrange(64))) for _ in range(2000)]
    bodies += [good[:cut] for cut in range(len(good))]
    for body in bodies:
        # Then each is either read or refused as malformed
        try:
            otlp.decode(body, "application/x-protobuf")
        except otlp.MalformedTraces:
            pass
    with pytest.raises(otlp.MalformedTraces):
        otlp.decode(b"{}", "text/plain")
    with pytest.raises(otlp.MalformedTraces):
        otlp.decode(b'{"resourceSpans": 3}', "application/json")
