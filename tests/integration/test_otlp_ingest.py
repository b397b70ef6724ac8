"""Spans to results through the service on moto: what counts, what is refused, and what a span
costs in DynamoDB calls compared with record-results carrying the same results."""

from __future__ import annotations

from typing import Any

import pytest

from ab_testing import otlp
from ab_testing.analysis import ExperimentAnalysis
from ab_testing.errors import StoreUnavailable
from ab_testing.service import ExperimentService
from ab_testing.settings import Settings
from ab_testing.store import Store
from tests.conftest import guide_experiment

NAME = "traced"
METRICS = ["input_tokens", "output_tokens", "latency_ms", "cost_usd", "error_rate"]


def span(user: int, n: int = 0, **attributes: Any) -> otlp.Span:
    return otlp.Span(
        trace_id=f"{user:032x}",
        span_id=f"{n + 1:016x}",
        name="chat",
        start_ns=1_765_100_000_000_000_000,
        end_ns=1_765_100_000_123_456_789,
        attributes={
            "ab_testing.experiment": NAME,
            "user.id": str(user),
            "gen_ai.request.model": "gpt-4o-mini",
            "gen_ai.usage.input_tokens": 1000 + user,
            "gen_ai.usage.output_tokens": 200,
            **attributes,
        },
    )


def counting(aws: Any) -> list[str]:
    sent: list[str] = []
    aws.meta.events.register("before-call.dynamodb", lambda model, **_: sent.append(model.name))
    return sent


def test_a_span_costs_what_record_results_costs_for_the_same_results(aws: Any) -> None:
    # Given a running experiment declaring five trace metrics, 100 assigned users
    service = ExperimentService(Store(Settings(), client=aws), cache_ttl_seconds=600)
    others = [m for m in METRICS if m != "cost_usd"]
    created = service.create_experiment(
        guide_experiment(name=NAME, primary_metric="cost_usd", secondary_metrics=others)
    )
    service.start_experiment(created["id"])
    for user in range(200):
        service.get_variant({"experiment_name": NAME, "user_id": user})
    sent = counting(aws)

    # When 100 spans are ingested, and the same five results of 100 other users are sent
    # to record-results directly
    answer = otlp.ingest(service, [span(user) for user in range(100)])
    through_traces = len(sent)
    sent.clear()
    direct = [
        {
            "experiment_id": created["id"],
            "user_id": user,
            "metric_name": name,
            "metric_value": value,
            "idempotency_key": f"k-{user}",
        }
        for user in range(100, 200)
        for name, value in otlp.measures(span(user), {}).items()
    ]
    for start in range(0, len(direct), 100):
        service.record_many({"results": direct[start : start + 100]})
    through_results = len(sent)

    # Then every span counted, at the cost of record-results for its results: the batches
    # fold by (variant, metric, shard), so two sets of users differ by a call or two
    assert answer == {}
    per_span = through_traces / 100
    print(f"DynamoDB calls per span (5 metrics each): {per_span:.2f}; direct: {through_results}")
    assert abs(through_traces - through_results) <= 0.05 * through_results

    # And a retry of the same spans counts nothing twice
    summary = ExperimentAnalysis(service).summary
    before = summary(created["id"])["results_collected"]
    assert otlp.ingest(service, [span(user) for user in range(100)]) == {}
    assert summary(created["id"])["results_collected"] == before == 1000


def test_spans_that_cannot_count_are_named_in_partial_success(service: Any) -> None:
    # Given a running experiment with one assigned user
    created = service.create_experiment(
        guide_experiment(name=NAME, primary_metric="cost_usd", secondary_metrics=["error_rate"])
    )
    service.start_experiment(created["id"])
    service.get_variant({"experiment_name": NAME, "user_id": 1})
    spans = [
        span(1),  # counts
        span(2),  # no variant
        span(1, 1, **{"gen_ai.request.model": "unknown-model"}),  # error_rate still counts
        otlp.Span("a", "b", "chat", 1, 2, {"gen_ai.request.model": "m", "user.id": "1"}),
        otlp.Span("a", "c", "GET /", 1, 2, {"http.route": "/"}),  # not a model call: passed over
    ]

    # When they are ingested
    answer = otlp.ingest(service, spans)

    # Then two spans are rejected, each with its reason, and the HTTP span is not mentioned
    partial = answer["partial_success"]
    assert partial["rejected_spans"] == 2
    assert (
        "1 spans: no ab_testing.experiment or ab_testing.experiment_id attribute"
        in (partial["error_message"])
    )
    assert "1 spans: the unit has no variant" in partial["error_message"]


def test_spans_of_a_model_with_no_price_are_counted_and_warned_about(service: Any) -> None:
    # Given an experiment on cost_usd and error_rate, with one assigned user
    created = service.create_experiment(
        guide_experiment(name=NAME, primary_metric="cost_usd", secondary_metrics=["error_rate"])
    )
    service.start_experiment(created["id"])
    service.get_variant({"experiment_name": NAME, "user_id": 1})

    # When two spans of a model with no price arrive, and one of a priced model
    unknown = {"gen_ai.request.model": "in-house-7b"}
    otlp.ingest(service, [span(1, 1, **unknown), span(1, 2, **unknown), span(1, 3)])

    # Then their error_rate counted, their cost did not, and the analysis says why
    assert service.get_experiment(created["id"]).unpriced_spans == {"in-house-7b": 2}
    warnings = ExperimentAnalysis(service).analyze(created["id"])["warnings"]
    assert any("2 span(s) of model 'in-house-7b' had no price" in w for w in warnings)
    totals = ExperimentAnalysis(service).summary(created["id"])["variants"]
    assert sum(v["results_by_metric"]["cost_usd"] for v in totals) == 1
    assert sum(v["results_by_metric"]["error_rate"] for v in totals) == 3


def test_a_busy_store_makes_the_export_a_503_so_the_exporter_retries(
    service: Any, monkeypatch: Any
) -> None:
    # Given a running experiment with an assigned user, and a store that refuses one batch
    created = service.create_experiment(
        guide_experiment(name=NAME, primary_metric="cost_usd", secondary_metrics=["error_rate"])
    )
    service.start_experiment(created["id"])
    service.get_variant({"experiment_name": NAME, "user_id": 1})
    real = service.record_many
    busy = {"left": 1}

    def record_many(body: Any) -> Any:
        answer = real(body)
        if busy["left"]:
            busy["left"] -= 1
            answer["results"][-1] = {"index": 0, "status": 503, "error": "unavailable"}
        return answer

    monkeypatch.setattr(service, "record_many", record_many)

    # When the spans are ingested, then it is a 503 (not a partial success, never retried)
    with pytest.raises(StoreUnavailable):
        otlp.ingest(service, [span(1)])
    # And the exporter's retry counts each result once
    assert otlp.ingest(service, [span(1)]) == {}
    totals = ExperimentAnalysis(service).summary(created["id"])["variants"]
    assert sum(v["results_by_metric"]["cost_usd"] for v in totals) == 1
