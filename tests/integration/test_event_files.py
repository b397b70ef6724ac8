"""Every handler answers its own events/ file (the events `sam local invoke` uses)."""

from __future__ import annotations

import json
from typing import Any

from ab_testing import assignment
from emulator.events import FakeLambdaContext
from tests.conftest import guide_experiment, load_event, load_handler


def call(name: str, event_name: str | None = None) -> tuple[int, Any]:
    answer = load_handler(name).handler(load_event(event_name or name), FakeLambdaContext(name))
    return answer["statusCode"], json.loads(answer["body"])


def test_each_handler_answers_its_event_file_in_lifecycle_order(aws: Any) -> None:
    # Given empty tables, when each event is played in the order a user would
    # Then each answers as documented
    status, created = call("create_experiment")
    assert (status, created["id"]) == (201, 1)
    assert call("get_experiment")[1]["name"] == guide_experiment()["name"]
    assert call("rebalance_experiment")[0] == 200
    assert call("start_experiment")[0] == 200
    assert call("list_experiments")[1]["count"] == 1
    assert call("get_variant")[1]["reason"] == "assigned"
    definitions = call("experiment_definitions")[1]["experiments"]
    assert [e["name"] for e in definitions] == [guide_experiment()["name"]]
    # The event's two exposures: each is written if the hash agrees, else refused (409)
    salt = definitions[0]["salt"]
    exposures = call("record_exposures")[1]["results"]
    written = ["user:123"]
    for answer, unit, claimed in zip(
        exposures, ["user:456", "session:sess-789"], [2, 1], strict=True
    ):
        _, pick = assignment.draws(salt, unit)
        ranges = [(a, b, int(v)) for a, b, v in definitions[0]["ranges"]]
        agrees = assignment.variant_at(pick, ranges) == claimed
        assert answer["status"] == (201 if agrees else 409), answer
        written += [unit] if agrees else []
    assert call("record_result")[0] == 201
    assert call("record_result")[1]["duplicate"] is True  # the same idempotency key
    assert call("record_results")[1]["recorded"] == 2
    assert call("analyze_experiment")[1]["current_sample_size"] == 1
    assert call("experiment_summary")[1]["results_collected"] == 3
    segments = call("experiment_segments")[1]["segments"]
    assert {s["segment"] for s in segments} >= {"pro"}  # get-variant's event sends a plan
    assert call("list_layers")[1] == {"layers": []}
    assert call("pause_experiment")[1]["status"] == "paused"
    assert call("resume_experiment")[1]["status"] == "running"

    summary = load_handler("scheduled_analysis").handler(
        load_event("scheduled_analysis"), FakeLambdaContext("scheduled_analysis")
    )
    assert (summary["analysed"], summary["failed"]) == (1, 0)
    report = load_handler("scheduled_analysis").handler(
        load_event("scheduled_reconciliation"), FakeLambdaContext("scheduled_analysis")
    )
    assert report["reconciled"] == 1 and report["with_differences"] == 0

    results = load_handler("export_results").handler(
        load_event("export_results"), FakeLambdaContext("export_results")
    )
    assert results["statusCode"] == 200 and results["body"].startswith("result_id,")
    assert len(results["body"].splitlines()) == 1 + 3  # the header and three results
    units = load_handler("export_assignments").handler(
        load_event("export_assignments"), FakeLambdaContext("export_assignments")
    )
    exported = [json.loads(line)["unit"] for line in units["body"].splitlines()]
    assert sorted(exported) == sorted(written)
    assert call("otlp_traces") == (200, {})  # a judge's late score, counted
    assert call("api_docs")[1]["openapi"].startswith("3.1")
    method = load_event("method_not_allowed")
    assert load_handler("method_not_allowed").handler(method, None)["statusCode"] == 405

    insights = call("experiment_insights")[1]
    assert len(insights["insights"]) == 1
    page = load_handler("experiment_report").handler(
        load_event("experiment_report"), FakeLambdaContext("experiment_report")
    )
    assert page["statusCode"] == 200 and page["headers"]["Content-Type"].startswith("text/html")
    assert page["body"].startswith("<!DOCTYPE html>") and "<svg" in page["body"]
    assert call("stop_experiment")[1]["status"] == "stopped"
    assert call("archive_experiment")[1]["status"] == "archived"
