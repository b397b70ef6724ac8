"""The product guide's quick start, through the Lambda handlers on moto."""

from __future__ import annotations

from typing import Any

import pytest

from tests.conftest import guide_experiment, invoke
from tests.unit.test_stats_analyzer import GUIDE_KEYS

EXPERIMENTS = "/api/v1/experiments/"


def create(body: dict[str, Any] | None = None) -> tuple[int, Any]:
    return invoke(
        "create_experiment",
        "POST",
        EXPERIMENTS,
        resource="/api/v1/experiments",
        body=body or guide_experiment(),
    )


def by_id(
    function_dir: str, method: str, experiment_id: str, action: str = "", **kw: Any
) -> tuple[int, Any]:
    suffix = f"/{action}" if action else ""
    return invoke(
        function_dir,
        method,
        f"/api/v1/experiments/{experiment_id}{suffix}",
        resource=f"/api/v1/experiments/{{id}}{suffix}",
        path_parameters={"id": experiment_id},
        **kw,
    )


def get_variant(**body: Any) -> tuple[int, Any]:
    return invoke("get_variant", "POST", "/api/v1/experiments/get-variant", body=body)


def record(**body: Any) -> tuple[int, Any]:
    return invoke("record_result", "POST", "/api/v1/experiments/record-result", body=body)


def test_quick_start_end_to_end(aws: Any) -> None:
    # Given the guide's experiment, created and started
    status, created = create()
    assert status == 201
    assert created == {
        "id": 1,
        "name": "Lead Qualification Prompt Test",
        "status": "draft",
        "message": "Experiment created successfully. Use /start endpoint to begin.",
    }
    assert by_id("start_experiment", "POST", "1", "start") == (
        200,
        {"message": "Experiment 1 started successfully"},
    )

    # When user 123 asks twice for a variant
    status, first = get_variant(experiment_name="Lead Qualification Prompt Test", user_id=123)
    _, second = get_variant(experiment_name="Lead Qualification Prompt Test", user_id=123)

    # Then the answer carries the config and sticks
    assert status == 200
    assert first["reason"] == "assigned"
    assert second["reason"] == "existing_assignment"
    assert first["variant"] == second["variant"]
    assert "system_prompt" in first["variant"]["config"]

    # When results are recorded for that user
    status, recorded = record(
        experiment_name="Lead Qualification Prompt Test",
        metric_name="resolution_rate",
        metric_value=1.0,
        user_id=123,
    )
    assert status == 201
    assert recorded["recorded"] is True
    assert recorded["variant_id"] == first["variant"]["id"]
    status, _ = record(
        experiment_name="Lead Qualification Prompt Test",
        metric_name="satisfaction_score",
        metric_value=4.5,
        user_id=123,
    )
    assert status == 201

    # Then analyze answers with every field of the guide
    status, analysis = by_id("analyze_experiment", "GET", "1", "analyze")
    assert status == 200
    for field in GUIDE_KEYS:
        assert field in analysis, field
    assert set(analysis["variant_stats"]) == {"1", "2"}
    assert analysis["current_sample_size"] == 1
    assert analysis["required_sample_size"] == 100

    # And the summary counts the unit and its results
    status, summary = by_id("experiment_summary", "GET", "1", "summary")
    assert status == 200
    assert summary["users_assigned"] == 1
    assert summary["results_collected"] == 2

    # And listing filters by status and type
    _, running = invoke(
        "list_experiments",
        "GET",
        EXPERIMENTS,
        resource="/api/v1/experiments",
        query={"status": "running", "experiment_type": "prompt"},
    )
    assert [e["id"] for e in running["experiments"]] == [1]
    _, drafts = invoke(
        "list_experiments",
        "GET",
        EXPERIMENTS,
        resource="/api/v1/experiments",
        query={"status": "draft"},
    )
    assert drafts["experiments"] == []

    # And stopping with declare_winner stores the decision
    status, stopped = by_id(
        "stop_experiment", "POST", "1", "stop", query={"declare_winner": "true"}
    )
    assert status == 200
    assert stopped["status"] == "stopped"
    assert "winner_reason" in stopped
    _, experiment = by_id("get_experiment", "GET", "1")
    assert experiment["status"] == "stopped"
    assert experiment["winner_reason"] == stopped["winner_reason"]


@pytest.mark.parametrize(
    ("changes", "field"),
    [
        ({"variants": guide_experiment()["variants"][:1]}, "variants"),
        (
            {"variants": [dict(v, is_control=True) for v in guide_experiment()["variants"]]},
            "variants",
        ),
        (
            {
                "variants": [
                    dict(v, traffic_allocation=40.0) for v in guide_experiment()["variants"]
                ]
            },
            "variants",
        ),
        ({"variants": [dict(v, name="Same") for v in guide_experiment()["variants"]]}, "variants"),
        ({"confidence_level": 1.0}, "confidence_level"),
        ({"confidence_level": 0}, "confidence_level"),
        ({"target_percentage": 0}, "target_percentage"),
        ({"target_percentage": 100.5}, "target_percentage"),
        ({"experiment_type": "banner"}, "experiment_type"),
        ({"primary_metric": "made_up"}, "primary_metric"),
        ({"name": ""}, "name"),
    ],
)
def test_create_rejects_bad_input_and_stores_nothing(
    aws: Any, changes: dict[str, Any], field: str
) -> None:
    # Given a body with one problem
    # When it is posted
    status, answer = create(guide_experiment(**changes))
    # Then a 400 names the field, and nothing was stored
    assert status == 400
    assert answer["error"] == "validation_error"
    assert answer["field"].split(".")[0] == field
    for table in ("ab_experiments", "ab_variants"):
        assert aws.scan(TableName=table)["Count"] == 0


def test_duplicate_name_is_refused_without_side_effects(aws: Any) -> None:
    assert create()[0] == 201
    before = aws.scan(TableName="ab_variants")["Count"]
    status, answer = create()
    assert (status, answer["error"], answer["field"]) == (409, "conflict", "name")
    assert aws.scan(TableName="ab_variants")["Count"] == before
    # the next experiment still gets the next id
    status, created = create(guide_experiment(name="Another"))
    assert created["id"] == 2


@pytest.mark.parametrize("raw", ["{not json", "[1, 2]", "", "NaN"])
def test_malformed_body_is_a_400(aws: Any, raw: str) -> None:
    status, answer = invoke("create_experiment", "POST", EXPERIMENTS, raw_body=raw)
    assert status == 400
    assert answer["field"] == "body"


def test_ids_and_lifecycle_errors(aws: Any) -> None:
    assert by_id("get_experiment", "GET", "99")[0] == 404
    assert by_id("get_experiment", "GET", "abc")[0] == 400
    assert by_id("analyze_experiment", "GET", "7", "analyze")[0] == 404
    create()
    assert by_id("start_experiment", "POST", "1", "start")[0] == 200
    status, answer = by_id("start_experiment", "POST", "1", "start")
    assert status == 409
    assert answer["status"] == "running"
    assert by_id("stop_experiment", "POST", "1", "stop")[0] == 200
    assert by_id("start_experiment", "POST", "1", "start")[0] == 409
    assert (
        by_id("stop_experiment", "POST", "1", "stop", query={"declare_winner": "maybe"})[0] == 400
    )


def test_not_running_experiment_gives_clear_answers(aws: Any) -> None:
    # Given a draft experiment
    create()
    # When a unit asks for a variant, or a result arrives
    _, answer = get_variant(experiment_name="Lead Qualification Prompt Test", user_id=1)
    status, result = record(
        experiment_name="Lead Qualification Prompt Test",
        metric_name="resolution_rate",
        metric_value=1,
        user_id=1,
    )
    # Then nothing is assigned or counted, and the answers say why
    assert answer["variant"] is None
    assert answer["reason"] == "experiment_not_running"
    assert status == 200
    assert result["recorded"] is False
    assert result["reason"] == "experiment_not_running"
    assert aws.scan(TableName="ab_assignments")["Count"] == 0
    assert aws.scan(TableName="ab_results")["Count"] == 0
    # and an unknown experiment is a 404
    assert get_variant(experiment_name="nope", user_id=1)[0] == 404
    assert get_variant(experiment_name="Lead Qualification Prompt Test")[0] == 400
