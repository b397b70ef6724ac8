"""With OpenTelemetry installed, ``client.run(...)`` is a span that names the experiment and the
unit, so the spans of the model calls inside it reach the traces endpoint already linked."""

from __future__ import annotations

from opentelemetry import trace
from opentelemetry.exporter.otlp.proto.common.trace_encoder import encode_spans
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from ab_testing import otlp
from ab_testing_client import ABTestingClient
from tests.client.fake_service import FakeService

CAPTURED = InMemorySpanExporter()
_PROVIDER = TracerProvider()
_PROVIDER.add_span_processor(SimpleSpanProcessor(CAPTURED))
trace.set_tracer_provider(_PROVIDER)  # once per process, as an app does at start


def test_model_call_spans_inside_run_are_linked_to_the_experiment_and_unit() -> None:
    # Given a client and an app tracer (an instrumentation would make the inner span)
    client = ABTestingClient(
        "http://fake",
        background=False,
        transport=FakeService(),
        sleep=lambda s: None,
        refresh_interval=3600,
    )
    tracer = trace.get_tracer("app")
    CAPTURED.clear()

    # When a model call is made inside client.run for two users
    for user in (7, 8):
        with client.run("Prompt Test", user_id=user), tracer.start_as_current_span("chat") as s:
            s.set_attribute("gen_ai.request.model", "gpt-4o-mini")
            s.set_attribute("gen_ai.usage.input_tokens", 10)
            s.set_attribute("gen_ai.usage.output_tokens", 5)
    client.close()

    # Then each run is a span naming the experiment, the unit and the variant
    finished = CAPTURED.get_finished_spans()
    runs = [s for s in finished if s.name == "ab_testing.run Prompt Test"]
    assert [dict(s.attributes or {})["user.id"] for s in runs] == ["7", "8"]
    assert all(dict(s.attributes or {})["ab_testing.experiment"] == "Prompt Test" for s in runs)
    assert all("ab_testing.variant" in dict(s.attributes or {}) for s in runs)
    # And the service links each model call to its run's experiment and unit
    decoded = otlp.decode(encode_spans(finished).SerializeToString(), "application/x-protobuf")
    calls = [s for s in otlp.with_links(decoded) if s.name == "chat"]
    assert [(s.attribute("ab_testing.experiment"), s.attribute("user.id")) for s in calls] == [
        ("Prompt Test", "7"),
        ("Prompt Test", "8"),
    ]
