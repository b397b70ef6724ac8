"""Odd and hostile input: always a 4xx that names the problem, never a 500, nothing stored."""

from __future__ import annotations

import json
from typing import Any

import pytest

from tests.conftest import guide_experiment, invoke

NAME = guide_experiment()["name"]
CREATE = ("create_experiment", "POST", "/api/v1/experiments/")


def started(**changes: Any) -> int:
    status, created = invoke(*CREATE, body=guide_experiment(**changes))
    assert status == 201, created
    experiment_id = str(created["id"])
    assert invoke("start_experiment", "POST", "/x", path_parameters={"id": experiment_id})[0] == 200
    return int(experiment_id)


def get_variant(**body: Any) -> tuple[int, Any]:
    return invoke("get_variant", "POST", "/api/v1/experiments/get-variant", body=body)


def record(**body: Any) -> tuple[int, Any]:
    return invoke("record_result", "POST", "/api/v1/experiments/record-result", body=body)


def stored(aws: Any, table: str) -> int:
    return int(aws.scan(TableName=table)["Count"])


@pytest.mark.parametrize(
    "changes",
    [
        {
            "variants": [
                dict(v, traffic_allocation=1e-300 if v["is_control"] else 100)
                for v in guide_experiment()["variants"]
            ]
        },
        {
            "variants": [
                dict(v, config={"blob": "x" * 70_000}) for v in guide_experiment()["variants"]
            ]
        },
        {"variants": [dict(v, description="d" * 2001) for v in guide_experiment()["variants"]]},
        {
            "metrics": [{"name": "quality", "lower": 5, "upper": 1}],
            "secondary_metrics": ["quality"],
        },
        {"overrides": {"123": "Control", "user:123": "Control"}},
        {"confidence_level": 1e-300},
        {"max_duration_days": 3, "min_duration_days": 7},
    ],
)
def test_create_refuses_what_dynamodb_could_not_store(aws: Any, changes: dict[str, Any]) -> None:
    status, answer = invoke(*CREATE, body=guide_experiment(**changes))
    assert status == 400, answer
    assert answer["error"] == "validation_error"
    assert stored(aws, "ab_experiments") == 0


@pytest.mark.parametrize(
    "raw",
    ["[" * 100_000 + "]" * 100_000, '{"a": 1e400}', '{"name": "x", "config": {"v": -1e999}}'],
)
def test_bodies_that_json_cannot_hold_are_a_400(aws: Any, raw: str) -> None:
    status, answer = invoke(*CREATE, raw_body=raw)
    assert (status, answer["field"]) == (400, "body")


@pytest.mark.parametrize(
    "unit",
    [
        {"user_id": 10**20},
        {"user_id": True},
        {"user_id": 1.5},
        {"session_id": "😀" * 200},
        {"user_id": "u" * 600},
    ],
)
def test_units_that_cannot_be_keys_are_a_400(aws: Any, unit: dict[str, Any]) -> None:
    started()
    status, answer = get_variant(experiment_name=NAME, **unit)
    assert status == 400, answer
    assert stored(aws, "ab_assignments") == 0


def test_metric_values_beyond_float_range_are_a_400_also_in_a_batch(aws: Any) -> None:
    # Given an assigned user
    experiment_id = started()
    get_variant(experiment_id=experiment_id, user_id=1)
    huge = {
        "experiment_id": experiment_id,
        "user_id": 1,
        "metric_name": "token_usage",
        "metric_value": 10**400,
    }
    # When a value too large for a float arrives alone and in a batch beside a good one
    secondary = guide_experiment()["secondary_metrics"]
    assert "token_usage" not in secondary  # undeclared is refused first, so declare it
    experiment_id = started(name="tokens", secondary_metrics=["token_usage"])
    get_variant(experiment_id=experiment_id, user_id=1)
    huge["experiment_id"] = experiment_id
    status, answer = record(**huge)
    good = dict(huge, metric_value=1200)
    _, batch = invoke("record_results", "POST", "/x", body={"results": [good, huge]})
    # Then both answers name the value; only the good item was stored
    assert (status, answer["field"]) == (400, "metric_value")
    assert [item["status"] for item in batch["results"]] == [201, 400]
    assert stored(aws, "ab_results") == 1


def test_one_request_id_keys_every_metric_it_records(aws: Any) -> None:
    experiment_id = started()
    get_variant(experiment_id=experiment_id, user_id=1)
    get_variant(experiment_id=experiment_id, user_id=2)
    common = {"experiment_id": experiment_id, "idempotency_key": "req-1"}
    first = record(**common, user_id=1, metric_name="resolution_rate", metric_value=1)
    second = record(**common, user_id=1, metric_name="satisfaction_score", metric_value=4.5)
    other_user = record(**common, user_id=2, metric_name="resolution_rate", metric_value=0)
    repeat = record(**common, user_id=1, metric_name="satisfaction_score", metric_value=4.5)
    assert [a[0] for a in (first, second, other_user, repeat)] == [201, 201, 201, 200]
    assert repeat[1]["duplicate"] is True and repeat[1]["metric_value"] == 4.5
    assert stored(aws, "ab_results") == 3


def test_experiment_name_and_id_must_agree(aws: Any) -> None:
    experiment_id = started()
    status, answer = get_variant(experiment_id=experiment_id, experiment_name="another", user_id=1)
    assert (status, answer["field"]) == (400, "experiment_name")
    assert get_variant(experiment_id=experiment_id, experiment_name=NAME, user_id=1)[0] == 200


def test_query_and_path_oddities(aws: Any) -> None:
    experiment_id = str(started())
    insights = ("experiment_insights", "GET", "/x")
    for limit in ("²", "١", "0", "101", "-1"):
        status, answer = invoke(
            *insights, path_parameters={"id": experiment_id}, query={"limit": limit}
        )
        assert (status, answer["field"]) == (400, "limit"), limit
    for cursor in ("!!!", "a" * 2000, "bm90LWEtc3RhbXA"):
        status, answer = invoke(
            *insights, path_parameters={"id": experiment_id}, query={"cursor": cursor}
        )
        assert (status, answer["field"]) == (400, "cursor"), cursor
    assert invoke("get_experiment", "GET", "/x", path_parameters={"id": "0"})[0] == 400
    # a bare ?declare_winner counts as yes
    status, answer = invoke(
        "stop_experiment",
        "POST",
        "/x",
        path_parameters={"id": experiment_id},
        query={"declare_winner": ""},
    )
    assert status == 200 and "winner_reason" in answer


def test_rebalance_refuses_a_variant_listed_twice(aws: Any) -> None:
    experiment_id = str(started())
    body = {
        "variants": [
            {"id": 1, "traffic_allocation": 50},
            {"name": "Control", "traffic_allocation": 60},
            {"id": 2, "traffic_allocation": 40},
        ]
    }
    status, answer = invoke(
        "rebalance_experiment", "PATCH", "/x", path_parameters={"id": experiment_id}, body=body
    )
    assert status == 400
    body = {"variants": [{"id": 1, "traffic_allocation": 50}, {"id": 1, "traffic_allocation": 50}]}
    assert (
        invoke(
            "rebalance_experiment", "PATCH", "/x", path_parameters={"id": experiment_id}, body=body
        )[0]
        == 400
    )


@pytest.mark.parametrize(
    ("entry", "named"),
    [({"id": 9}, "unknown variant 9"), ({"name": "Nine"}, "unknown variant 'Nine'")],
)
def test_rebalance_names_a_variant_it_does_not_know(
    aws: Any, entry: dict[str, Any], named: str
) -> None:
    # Given a running experiment / When a rebalance names a variant it does not have
    experiment_id = str(started())
    body = {"variants": [{**entry, "traffic_allocation": 50}, {"id": 1, "traffic_allocation": 50}]}
    status, answer = invoke(
        "rebalance_experiment", "PATCH", "/x", path_parameters={"id": experiment_id}, body=body
    )
    # Then it is a 400 that names that variant and the field
    assert status == 400
    assert (answer["message"], answer["field"]) == (named, "variants")


def test_an_id_and_a_name_that_disagree_are_refused_naming_both(aws: Any) -> None:
    # Given a running experiment / When get-variant names it by id and by another name
    experiment_id = started()
    status, answer = get_variant(
        experiment_id=experiment_id, experiment_name="Some Other Test", user_id="u1"
    )
    # Then it is a 400 on the name that says which experiment that id is
    assert status == 400
    assert answer["field"] == "experiment_name"
    assert answer["message"] == (
        f"experiment {experiment_id} is named {NAME!r}, not 'Some Other Test'"
    )


@pytest.mark.parametrize(
    ("variants", "message"),
    [
        (
            [{"id": 1, "traffic_allocation": 50}, {"name": "Control", "traffic_allocation": 50}],
            "variant 'Control' is listed twice",
        ),
        ([{"id": 1, "traffic_allocation": 100}], "give a traffic_allocation for every variant"),
        (
            [{"id": 1, "traffic_allocation": 50}, {"id": 2, "traffic_allocation": 40}],
            "traffic_allocation must sum to 100",
        ),
    ],
)
def test_a_rebalance_that_cannot_be_applied_says_why(
    aws: Any, variants: list[dict[str, Any]], message: str
) -> None:
    # Given a running experiment / When a rebalance lists its variants wrongly
    experiment_id = str(started())
    status, answer = invoke(
        "rebalance_experiment",
        "PATCH",
        "/x",
        path_parameters={"id": experiment_id},
        body={"variants": variants},
    )
    # Then it is a 400 on the variants that says what is wrong
    assert status == 400
    assert (answer["message"], answer["field"]) == (message, "variants")


def test_an_unknown_experiment_name_is_a_404_naming_it(aws: Any) -> None:
    # When get-variant names an experiment that does not exist
    status, answer = get_variant(experiment_name="No Such Test", user_id="u1")
    # Then it is a 404 on the name
    assert status == 404
    assert (answer["message"], answer["field"]) == (
        "no experiment named 'No Such Test'",
        "experiment_name",
    )


def test_sample_ratio_check_follows_a_rebalance(aws: Any) -> None:
    # Given 200 units at 50/50, then a rebalance to 90/10 and 200 more units
    experiment_id = started()
    for unit in range(200):
        get_variant(experiment_id=experiment_id, user_id=unit)
    status, _ = invoke(
        "rebalance_experiment",
        "PATCH",
        "/x",
        path_parameters={"id": str(experiment_id)},
        body={
            "variants": [
                {"name": "Control", "traffic_allocation": 90},
                {"name": "Treatment - Few Shot Examples", "traffic_allocation": 10},
            ]
        },
    )
    assert status == 200
    for unit in range(200, 400):
        get_variant(experiment_id=experiment_id, user_id=unit)
    # When it is analysed
    _, analysis = invoke(
        "analyze_experiment", "GET", "/x", path_parameters={"id": str(experiment_id)}
    )
    # Then the check compares the later units with the new weights: no mismatch
    assert analysis["srm"]["flagged"] is False
    assert sum(analysis["srm"]["observed"].values()) == 200


def nested(depth: int) -> dict[str, Any]:
    """A config of `depth` objects and arrays inside one another."""
    value: Any = {"leaf": 1}
    for level in range(depth - 1):  # from the inside out; the outermost is an object
        value = {"a": value} if (depth - 2 - level) % 2 == 0 else [value]
    assert isinstance(value, dict)
    return value


def test_a_config_nested_too_deep_is_refused_at_create(aws: Any) -> None:
    # Given variants whose config nests 500 levels deep
    variants = [dict(v, config=nested(500)) for v in guide_experiment()["variants"]]
    # When the experiment is created / Then it is a 400 naming the limit, and nothing stored
    status, answer = invoke(*CREATE, body=guide_experiment(variants=variants))
    assert status == 400, answer
    assert "32 levels" in json.dumps(answer)
    assert stored(aws, "ab_experiments") == 0


def test_a_config_at_the_depth_limit_is_stored_and_served(aws: Any) -> None:
    # Given a control variant whose config nests exactly 32 levels deep
    deep = nested(32)
    variants = [
        dict(v, config=deep if v["is_control"] else {}) for v in guide_experiment()["variants"]
    ]
    experiment_id = started(variants=variants, target_percentage=100.0)
    # When users ask for their variant until one gets the control
    answers = [get_variant(experiment_id=experiment_id, user_id=u) for u in range(40)]
    # Then every answer is a 200 and the control's config comes back whole
    assert {status for status, _ in answers} == {200}
    configs = [a["variant"]["config"] for _, a in answers if a["variant"]["config"]]
    assert configs and configs[0] == deep


@pytest.mark.parametrize(
    ("limits", "field_said"),
    [
        ({"cost_usd": 0.1}, "'cost_usd' is not a metric of this experiment"),
        ({"response_time": 0}, "greater than 0"),
        ({"response_time": -0.2}, "greater than 0"),
        ({"response_time": "a lot"}, "valid number"),
    ],
    ids=["unknown-metric", "zero", "negative", "text"],
)
def test_acceptable_regressions_must_name_own_metrics_with_positive_limits(
    aws: Any, limits: dict[str, Any], field_said: str
) -> None:
    # Given a body whose acceptable regressions are not the experiment's, or not a limit
    status, answer = invoke(*CREATE, body=guide_experiment(acceptable_regressions=limits))
    # Then it is a 400 that says so, and nothing is stored
    assert status == 400 and field_said in json.dumps(answer), answer
    assert invoke("list_experiments", "GET", "/api/v1/experiments/")[1]["experiments"] == []


def test_acceptable_regressions_are_stored_and_shown(aws: Any) -> None:
    limits = {"response_time": 0.05, "satisfaction_score": 0.1}
    status, created = invoke(*CREATE, body=guide_experiment(acceptable_regressions=limits))
    assert status == 201
    got = invoke("get_experiment", "GET", "/x", path_parameters={"id": str(created["id"])})[1]
    assert got["acceptable_regressions"] == limits
