"""Answers that follow HTTP: 405 with Allow, 409s, the paginated list, raw rows out."""

from __future__ import annotations

import csv
import io
import json
from typing import Any

import pytest

from emulator.events import FakeLambdaContext, api_gateway_event
from emulator.routing import Router
from emulator.template import api_routes, load_template
from tests.conftest import guide_experiment, invoke, load_handler

E = "/api/v1/experiments"


def create(name: str, **changes: Any) -> int:
    status, answer = invoke(
        "create_experiment", "POST", E, body=guide_experiment(name=name, **changes)
    )
    assert status == 201, answer
    return int(answer["id"])


def listing(**query: str) -> tuple[int, Any]:
    return invoke("list_experiments", "GET", E, resource=E, query=query)


def raw(function: str, method: str, path: str, resource: str, **query: str) -> dict[str, Any]:
    event = api_gateway_event(
        method,
        path,
        resource=resource,
        path_parameters={"id": path.split("/")[4]} if "{id}" in resource else None,
        query={k: [v] for k, v in query.items()},
        body=None,
    )
    answer: dict[str, Any] = load_handler(function).handler(event, FakeLambdaContext(function))
    return answer


def test_a_known_path_with_another_method_is_a_405_with_allow() -> None:
    # Given the template's routes, as API Gateway resolves them
    router = Router(api_routes(load_template()))
    # When a method the resource does not define is sent
    match = router.match("DELETE", f"{E}/7")
    # Then the resource's ANY fallback takes it, and it answers 405 naming the methods
    assert match is not None and match.route.function_id == "MethodNotAllowedFunction"
    assert router.match("GET", f"{E}/7").route.function_id == "GetExperimentFunction"  # type: ignore[union-attr]
    answer = raw("method_not_allowed", "DELETE", f"{E}/7", f"{E}/{{id}}")
    assert answer["statusCode"] == 405
    assert answer["headers"]["Allow"] == "GET, PATCH, OPTIONS"
    body = json.loads(answer["body"])
    assert body["error"] == "method_not_allowed"
    assert body["allowed_methods"] == ["GET", "PATCH", "OPTIONS"]
    # And an unknown path is still the gateway's 404
    assert router.match("DELETE", "/api/v1/nothing") is None


def test_the_list_pages_with_an_opaque_cursor_and_filters_by_name_prefix(aws: Any) -> None:
    # Given five experiments
    ids = [create(n) for n in ("alpha one", "alpha two", "beta", "alpha three", "gamma")]
    # When the list is read two at a time
    seen: list[int] = []
    cursor: str | None = None
    pages = 0
    while True:
        status, page = listing(limit="2", **({"cursor": cursor} if cursor else {}))
        assert status == 200 and page["count"] == len(page["experiments"]) <= 2
        seen += [e["id"] for e in page["experiments"]]
        pages += 1
        cursor = page["next_cursor"]
        if cursor is None:
            break
    # Then every experiment comes once, oldest first, in three pages
    assert (seen, pages) == (ids, 3)
    # And the default page holds them all; a name prefix keeps the alphas
    assert [e["id"] for e in listing()[1]["experiments"]] == ids
    _, alphas = listing(name="alpha")
    assert [e["name"] for e in alphas["experiments"]] == ["alpha one", "alpha two", "alpha three"]
    _, page = listing(name="alpha", limit="1")
    assert page["next_cursor"] is not None
    _, nothing = listing(name="zeta", status="draft")
    assert nothing == {"experiments": [], "count": 0, "next_cursor": None}


def test_the_list_shows_each_experiments_summary_fields(aws: Any) -> None:
    # Given an experiment created with a description, and started
    experiment_id = create("described", description="why it runs", secondary_metrics=["latency_ms"])
    path = {"id": str(experiment_id)}
    assert invoke("start_experiment", "POST", "/x", path_parameters=path)[0] == 200
    # When the list is read
    (entry,) = listing()[1]["experiments"]
    # Then the entry carries what the experiment was created with, and its times
    expected = guide_experiment(description="why it runs", secondary_metrics=["latency_ms"])
    for field in ("description", "experiment_type", "primary_metric", "secondary_metrics"):
        assert entry[field] == expected[field], field
    assert (entry["id"], entry["name"], entry["status"]) == (experiment_id, "described", "running")
    for field in ("target_percentage", "min_sample_size", "confidence_level"):
        assert entry[field] == pytest.approx(float(expected[field])), field
    assert entry["created_at"] and entry["started_at"]
    assert (entry["stopped_at"], entry["winner_variant_id"]) == (None, None)


@pytest.mark.parametrize(
    ("query", "field"),
    [
        ({"stauts": "running"}, "stauts"),
        ({"limit": "0"}, "limit"),
        ({"limit": "101"}, "limit"),
        ({"cursor": "bm90LWEtY3Vyc29y"}, "cursor"),
        ({"status": "finished"}, "status"),
    ],
)
def test_the_list_refuses_what_it_does_not_know(
    aws: Any, query: dict[str, str], field: str
) -> None:
    status, answer = listing(**query)
    assert status == 400
    assert answer["error"] == "validation_error" and answer["field"] == field
    if field == "stauts":
        assert answer["unknown_parameters"] == ["stauts"]
        assert "stauts" in answer["message"]


def test_a_reused_idempotency_key_with_another_value_is_a_409_with_the_stored_result(
    aws: Any,
) -> None:
    # Given a running experiment and an assigned user with one result under key k1
    experiment_id = create("keys")
    invoke("start_experiment", "POST", f"{E}/1/start", path_parameters={"id": "1"})
    invoke(
        "get_variant",
        "POST",
        f"{E}/get-variant",
        body={"experiment_id": experiment_id, "user_id": 5},
    )
    body = {"experiment_id": experiment_id, "user_id": 5, "metric_name": "satisfaction_score"}
    first = invoke(
        "record_result",
        "POST",
        f"{E}/record-result",
        body=body | {"metric_value": 4, "idempotency_key": "k1"},
    )
    # When the same key is sent again, with the same value and with another
    retry = invoke(
        "record_result",
        "POST",
        f"{E}/record-result",
        body=body | {"metric_value": 4.0, "idempotency_key": "k1"},
    )
    reused = invoke(
        "record_result",
        "POST",
        f"{E}/record-result",
        body=body | {"metric_value": 5, "idempotency_key": "k1"},
    )
    other_metric = invoke(
        "record_result",
        "POST",
        f"{E}/record-result",
        body=body | {"metric_name": "resolution_rate", "metric_value": 1, "idempotency_key": "k1"},
    )
    # Then the retry answers the original; the other value is refused with the stored result
    assert first[0] == 201
    assert retry == (200, {**first[1], "duplicate": True})
    assert reused[0] == 409
    assert reused[1]["error"] == "idempotency_key_reused"
    assert reused[1]["stored"] == {**first[1], "duplicate": True}
    # And the key stays scoped to the metric
    assert other_metric[0] == 201
    _, summary = invoke("experiment_summary", "GET", f"{E}/1/summary", path_parameters={"id": "1"})
    assert summary["results_collected"] == 2


def test_raw_results_and_assignments_come_out_in_pages_and_formats(aws: Any) -> None:
    # Given a running experiment with three users and four results
    experiment_id = create("export")
    invoke("start_experiment", "POST", f"{E}/1/start", path_parameters={"id": "1"})
    for user in (1, 2, 3):
        invoke(
            "get_variant",
            "POST",
            f"{E}/get-variant",
            body={"experiment_id": experiment_id, "user_id": user},
        )
    invoke(
        "get_variant",
        "POST",
        f"{E}/get-variant",
        body={"experiment_id": experiment_id, "session_id": "s-9"},
    )
    for user, value in ((1, 1), (2, 0), (3, 1), (1, 0)):
        body = {"experiment_id": experiment_id, "user_id": user, "metric_name": "resolution_rate"}
        assert (
            invoke(
                "record_result", "POST", f"{E}/record-result", body=body | {"metric_value": value}
            )[0]
            == 201
        )
    path, resource = f"{E}/1/results", f"{E}/{{id}}/results"
    # When the results are read as JSON two at a time
    rows: list[dict[str, Any]] = []
    cursor: dict[str, str] = {}
    while True:
        answer = json.loads(
            raw("export_results", "GET", path, resource, limit="2", **cursor)["body"]
        )
        rows += answer["results"]
        if answer["next_cursor"] is None:
            break
        cursor = {"cursor": answer["next_cursor"]}
    # Then every result comes once, with its unit, variant, metric, value and times
    assert len(rows) == len({r["result_id"] for r in rows}) == 4
    assert sorted((r["user_id"], r["metric_value"]) for r in rows) == [
        ("1", 0),
        ("1", 1),
        ("2", 0),
        ("3", 1),
    ]
    assert all(r["metric_name"] == "resolution_rate" and r["recorded_at"] for r in rows)
    # And CSV and JSON Lines carry the same rows
    as_csv = raw("export_results", "GET", path, resource, format="csv")
    assert as_csv["headers"]["Content-Type"].startswith("text/csv")
    table = list(csv.DictReader(io.StringIO(as_csv["body"])))
    assert sorted(r["result_id"] for r in table) == sorted(r["result_id"] for r in rows)
    lines = raw("export_results", "GET", path, resource, format="jsonl")["body"].splitlines()
    assert sorted(json.loads(line)["result_id"] for line in lines) == sorted(
        r["result_id"] for r in rows
    )
    # And the assignments list users and the session, with a cursor header when paged
    first = raw(
        "export_assignments",
        "GET",
        f"{E}/1/assignments",
        f"{E}/{{id}}/assignments",
        format="jsonl",
        limit="3",
    )
    assert len(first["body"].splitlines()) == 3 and first["headers"]["X-Next-Cursor"]
    _, units = invoke(
        "export_assignments",
        "GET",
        f"{E}/1/assignments",
        resource=f"{E}/{{id}}/assignments",
        path_parameters={"id": "1"},
    )
    assert sorted(a["unit"] for a in units["assignments"]) == [
        "session:s-9",
        "user:1",
        "user:2",
        "user:3",
    ]
    assert {a["session_id"] for a in units["assignments"]} == {None, "s-9"}
    # And an unknown experiment is a 404, an unknown format a 400
    assert raw("export_results", "GET", f"{E}/9/results", resource)["statusCode"] == 404
    assert raw("export_results", "GET", path, resource, format="xml")["statusCode"] == 400
