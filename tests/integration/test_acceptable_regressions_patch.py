"""PATCH of the declared trade-off rule while an experiment runs: replaced whole, each change
kept with its time, checked like the create body, and read by the next analysis."""

from __future__ import annotations

from typing import Any

from tests.conftest import guide_experiment, invoke

CREATE = ("create_experiment", "POST", "/api/v1/experiments/")


def patch(experiment_id: int, body: Any) -> tuple[int, Any]:
    return invoke(
        "rebalance_experiment", "PATCH", "/x", path_parameters={"id": str(experiment_id)}, body=body
    )


def get(experiment_id: int) -> dict[str, Any]:
    status, answer = invoke(
        "get_experiment", "GET", "/x", path_parameters={"id": str(experiment_id)}
    )
    assert status == 200
    return answer


def running(**changes: Any) -> int:
    status, created = invoke(*CREATE, body=guide_experiment(**changes))
    assert status == 201, created
    experiment_id = int(created["id"])
    started = invoke("start_experiment", "POST", "/x", path_parameters={"id": str(experiment_id)})
    assert started[0] == 200
    return experiment_id


def test_limits_change_while_running_and_every_change_is_kept(aws: Any) -> None:
    # Given a running experiment that declared a 10% limit on cost_usd at create
    experiment_id = running(
        secondary_metrics=["cost_usd", "response_time"],
        acceptable_regressions={"cost_usd": 0.10},
    )
    allocations = [(v["id"], v["traffic_allocation"]) for v in get(experiment_id)["variants"]]

    # When the team changes its mind twice
    first = patch(experiment_id, {"acceptable_regressions": {"cost_usd": 0.25}})
    second = patch(
        experiment_id, {"acceptable_regressions": {"cost_usd": 0.25, "response_time": 0.05}}
    )

    # Then each PATCH answers the new rule with its history, oldest first
    assert first[0] == 200 and second[0] == 200, (first, second)
    history = second[1]["acceptable_regressions_history"]
    assert [(h["from"], h["to"]) for h in history] == [
        ({"cost_usd": 0.10}, {"cost_usd": 0.25}),
        ({"cost_usd": 0.25}, {"cost_usd": 0.25, "response_time": 0.05}),
    ]
    assert history[0]["changed_at"] <= history[1]["changed_at"]
    # And the experiment holds it, with its allocations untouched (no rebalance happened)
    experiment = get(experiment_id)
    assert experiment["acceptable_regressions"] == {"cost_usd": 0.25, "response_time": 0.05}
    assert experiment["acceptable_regressions_history"] == history
    assert [(v["id"], v["traffic_allocation"]) for v in experiment["variants"]] == allocations
    assert experiment["rebalanced_at"] is None
    # And the next analysis decides with it
    status, analysis = invoke(
        "analyze_experiment", "GET", "/x", path_parameters={"id": str(experiment_id)}
    )
    assert status == 200
    assert analysis["decision"]["acceptable_regressions"] == {
        "cost_usd": 0.25,
        "response_time": 0.05,
    }


def test_a_bad_limit_is_refused_and_nothing_changes(aws: Any) -> None:
    experiment_id = running(
        secondary_metrics=["cost_usd"], acceptable_regressions={"cost_usd": 0.1}
    )
    for body, said in [
        ({"acceptable_regressions": {"latency_ms": 0.1}}, "'latency_ms' is not a metric"),
        ({"acceptable_regressions": {"cost_usd": 0}}, "acceptable_regressions"),
        ({"acceptable_regressions": {"cost_usd": "a lot"}}, "acceptable_regressions"),
        ({}, "acceptable_regressions"),
    ]:
        status, answer = patch(experiment_id, body)
        assert status == 400, (body, answer)
        assert said in str(answer), answer
    experiment = get(experiment_id)
    assert experiment["acceptable_regressions"] == {"cost_usd": 0.1}
    assert experiment["acceptable_regressions_history"] == []


def test_a_stopped_experiment_keeps_the_rule_it_ended_with(aws: Any) -> None:
    experiment_id = running(secondary_metrics=["cost_usd"])
    assert (
        invoke("stop_experiment", "POST", "/x", path_parameters={"id": str(experiment_id)})[0]
        == 200
    )
    status, answer = patch(experiment_id, {"acceptable_regressions": {"cost_usd": 0.5}})
    assert status == 409, answer
    assert get(experiment_id)["acceptable_regressions"] == {}
