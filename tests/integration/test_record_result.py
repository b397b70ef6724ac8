"""record-result and record-results on moto: validation, exactly-once counting, sharded totals."""

from __future__ import annotations

import json
import random
from collections import defaultdict
from decimal import Decimal
from typing import Any

import pytest

from ab_testing.errors import IdempotencyKeyReused
from ab_testing.reconcile import FIELDS
from tests.conftest import guide_experiment, invoke

NAME = "Lead Qualification Prompt Test"
DECLARED = ["resolution_rate", "satisfaction_score", "response_time", "response_accuracy"]
RECORD = "/api/v1/experiments/record-result"
RECORD_MANY = "/api/v1/experiments/record-results"


# ---------------------------------------------------------------------- helpers
def started(service: Any, **changes: Any) -> int:
    body = guide_experiment(secondary_metrics=DECLARED[1:])
    body.update(changes)
    experiment_id = int(service.create_experiment(body)["id"])
    service.start_experiment(experiment_id)
    return experiment_id


def assign(service: Any, experiment_id: int, *users: int) -> dict[int, int]:
    """Asks for a variant for each user; returns user -> variant id."""
    variants = {}
    for user in users:
        answer = service.get_variant({"experiment_id": experiment_id, "user_id": user})
        variants[user] = answer["variant"]["id"]
    return variants


def record(**body: Any) -> tuple[int, Any]:
    return invoke("record_result", "POST", RECORD, body=body)


def record_raw(text: str) -> tuple[int, Any]:
    return invoke("record_result", "POST", RECORD, raw_body=text)


def record_many(body: Any) -> tuple[int, Any]:
    return invoke("record_results", "POST", RECORD_MANY, body=body)


def result(**changes: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "experiment_name": NAME,
        "metric_name": "satisfaction_score",
        "metric_value": 4.0,
        "user_id": 123,
    }
    body.update(changes)
    return {k: v for k, v in body.items() if v is not None}


def stored(aws: Any) -> dict[str, Any]:
    """Everything a result can touch: raw results, totals items, and the units' own sums."""
    results = aws.scan(TableName="ab_results")["Items"]
    variants = aws.scan(TableName="ab_variants")["Items"]
    totals = [i for i in variants if i["sk"]["S"].startswith("totals#")]
    units = {i["unit"]["S"]: i.get("m") for i in aws.scan(TableName="ab_assignments")["Items"]}
    return {"results": results, "totals": totals, "units": units}


def nothing_stored(aws: Any) -> dict[str, Any]:
    state = stored(aws)
    assert state["results"] == []
    assert state["totals"] == []
    assert all(m == {"M": {}} for m in state["units"].values()), state["units"]
    return state


def reconcile_clean(service: Any, experiment_id: int) -> bool:
    from ab_testing.reconcile import reconcile

    return bool(reconcile(service.store, experiment_id)["clean"])


def norm(value: Any) -> Decimal | None:
    return None if value is None else Decimal(str(value)).normalize()


def assert_same_totals(have: Any, want: Any) -> None:
    for field in FIELDS:
        assert norm(getattr(have, field)) == norm(getattr(want, field)), field


# ---------------------------------------------------------------------- bad input
BAD_BODIES = [
    pytest.param(
        result(metric_name="token_usage"), "metric_name", "not declared", id="undeclared-metric"
    ),
    pytest.param(result(metric_value="4"), "metric_value", "must be a number", id="string"),
    pytest.param(result(metric_value=True), "metric_value", "must be a number", id="boolean"),
    pytest.param(result(metric_value=5.5), "metric_value", "<= 5", id="satisfaction-5.5"),
    pytest.param(
        result(metric_name="response_accuracy", metric_value=-0.1),
        "metric_value",
        ">= 0",
        id="accuracy-negative",
    ),
    pytest.param(
        result(metric_name="response_time", metric_value=-1),
        "metric_value",
        ">= 0",
        id="response-time-negative",
    ),
    pytest.param(
        result(metric_name="resolution_rate", metric_value=0.5),
        "metric_value",
        "0 or 1",
        id="binary-half",
    ),
    pytest.param(
        {k: v for k, v in result().items() if k != "user_id"}, "body", "user_id", id="no-unit"
    ),
    pytest.param(result(occurred_at="2024-05-01T10:00:00"), "occurred_at", "", id="naive-time"),
    pytest.param(result(occurred_at="yesterday"), "occurred_at", "", id="malformed-time"),
    pytest.param(result(occurred_at="2024-13-45T10:00:00Z"), "occurred_at", "", id="bad-date"),
    pytest.param(result(recorded_at="2024-05-01T10:00:00Z"), "recorded_at", "", id="recorded-at"),
]


@pytest.mark.parametrize(("body", "field", "words"), BAD_BODIES)
def test_bad_input_is_a_400_and_stores_nothing(
    aws: Any, service: Any, body: dict[str, Any], field: str, words: str
) -> None:
    # Given a running experiment and an assigned user who already has one result
    experiment_id = started(service)
    assign(service, experiment_id, 123)
    assert service.record(result(metric_value=3.0))["recorded"] is True
    before = stored(aws)

    # When a result with one problem is posted
    status, answer = record(**body)

    # Then a 400 names the problem
    assert status == 400, answer
    assert answer["error"] == "validation_error"
    assert answer["field"] == field
    assert words in answer["message"]
    # And nothing was stored: no raw result, no totals, the unit's own sums unchanged
    assert stored(aws) == before


def test_undeclared_metric_lists_the_declared_ones(aws: Any, service: Any) -> None:
    # Given a running experiment and an assigned user
    experiment_id = started(service)
    assign(service, experiment_id, 123)

    # When a metric the experiment does not declare is recorded
    status, answer = record(**result(metric_name="token_usage", metric_value=10))

    # Then the answer lists the declared metrics, and nothing was stored
    assert status == 400
    assert answer["declared_metrics"] == DECLARED
    assert "token_usage" in answer["message"]
    nothing_stored(aws)


@pytest.mark.parametrize("constant", ["NaN", "Infinity", "-Infinity"])
def test_non_finite_json_constants_are_refused(aws: Any, service: Any, constant: str) -> None:
    # Given a running experiment and an assigned user
    experiment_id = started(service)
    assign(service, experiment_id, 123)

    # When the JSON body carries NaN / Infinity as the value
    text = json.dumps(result(metric_value=0.0)).replace("0.0", constant)
    assert constant in text
    status, answer = record_raw(text)

    # Then a 400 names the constant, and nothing was stored
    assert status == 400
    assert answer["field"] == "body"
    assert constant.lstrip("-") in answer["message"]
    nothing_stored(aws)


@pytest.mark.parametrize("value", [float("nan"), float("inf"), float("-inf")])
def test_non_finite_floats_are_refused_by_the_service(aws: Any, service: Any, value: float) -> None:
    from ab_testing.errors import InvalidInput

    # Given a running experiment and an assigned user
    experiment_id = started(service)
    assign(service, experiment_id, 123)

    # When the service is called with a non-finite float
    with pytest.raises(InvalidInput) as refused:
        service.record(result(metric_value=value))

    # Then it names the problem, and nothing was stored
    assert refused.value.field == "metric_value"
    assert "finite" in refused.value.message
    nothing_stored(aws)


@pytest.mark.parametrize("text", ["{not json", '{"metric_name": ', "[1, 2]", ""])
def test_malformed_json_is_a_400(aws: Any, service: Any, text: str) -> None:
    # Given a running experiment and an assigned user
    experiment_id = started(service)
    assign(service, experiment_id, 123)

    # When the body is not a JSON object
    status, answer = record_raw(text)

    # Then a 400 about the body, and nothing was stored
    assert status == 400
    assert answer["field"] == "body"
    nothing_stored(aws)


@pytest.mark.parametrize(
    ("sent", "kept"),
    [
        (1e-200, "0"),
        (5e-324, "0"),
        (0.0000004, "0"),
        (0.00100049, "0.001"),
        (4.1234567, "4.123457"),
    ],
)
def test_values_are_kept_to_six_decimal_places(
    aws: Any, service: Any, sent: float, kept: str
) -> None:
    # Given a running experiment and an assigned user
    experiment_id = started(service)
    assign(service, experiment_id, 123)

    # When a value with more than six decimals (even below DynamoDB's range) is posted
    status, answer = record(**result(metric_value=sent))

    # Then it is recorded, rounded to six decimal places (never a 500)
    assert status == 201, answer
    [item] = stored(aws)["results"]
    assert Decimal(item["metric_value"]["N"]) == Decimal(kept)
    assert norm(answer["metric_value"]) == Decimal(kept)


def test_small_value_is_recorded(aws: Any, service: Any) -> None:
    # Given a running experiment that declares response_accuracy, and an assigned user
    experiment_id = started(service)
    assign(service, experiment_id, 123)

    # When a small but valid accuracy is posted
    status, answer = record(**result(metric_name="response_accuracy", metric_value=0.0003))

    # Then it is recorded (its square, 9e-8, goes to DynamoDB in positional form)
    assert status == 201, answer
    assert answer["recorded"] is True
    assert reconcile_clean(service, experiment_id)


# ---------------------------------------------------------------------- not counted
def test_unit_without_assignment_is_not_counted(aws: Any, service: Any) -> None:
    # Given a running experiment where user 999 never asked for a variant
    experiment_id = started(service)
    assign(service, experiment_id, 123)

    # When a result is posted for user 999
    status, answer = record(**result(user_id=999))

    # Then it is answered, not counted, and nothing was stored
    assert status == 200
    assert answer["recorded"] is False
    assert answer["reason"] == "no_assignment"
    assert answer["unit"] == "user:999"
    assert answer["message"] == (
        "this unit has no variant in the experiment (it never asked for one, or fell outside "
        "target_percentage); its results would bias the analysis, so they are not counted"
    )
    nothing_stored(aws)


def test_stopped_experiment_does_not_count(aws: Any, service: Any) -> None:
    # Given an experiment with an assigned user, then stopped
    experiment_id = started(service)
    assign(service, experiment_id, 123)
    service.transition(experiment_id, "stop")

    # When a result is posted for that user
    status, answer = record(**result())

    # Then it is not counted, and nothing was stored
    assert status == 200
    assert answer["recorded"] is False
    assert answer["reason"] == "experiment_not_running"
    nothing_stored(aws)


# ---------------------------------------------------------------------- idempotency
def test_same_idempotency_key_counts_once(aws: Any, service: Any) -> None:
    from ab_testing.analysis import ExperimentAnalysis

    # Given a running experiment and an assigned user
    experiment_id = started(service)
    assign(service, experiment_id, 123)
    body = result(metric_value=4.5, idempotency_key="conv-42#satisfaction")

    # When the same result is posted twice with one idempotency key
    first_status, first = record(**body)
    second_status, second = record(**body)

    # Then the second answer is the first one, marked duplicate
    assert (first_status, second_status) == (201, 200)
    assert first["recorded"] is True and first["duplicate"] is False
    assert second == {**first, "duplicate": True}
    # And the result was counted once
    assert len(stored(aws)["results"]) == 1
    _, inp, _ = ExperimentAnalysis(service).snapshot(experiment_id)
    totals = {v.variant_id: v.metrics["satisfaction_score"] for v in inp.variants}
    assert sum(t.results for t in totals.values()) == 1
    assert sum(Decimal(str(t.total)) for t in totals.values()) == Decimal("4.5")


def test_a_reused_key_keeps_the_first_answer_and_refuses_another_value(aws: Any) -> None:
    from ab_testing.analysis import ExperimentAnalysis
    from ab_testing.service import ExperimentService
    from ab_testing.settings import Settings
    from ab_testing.store import Store

    # Given a service whose clock moves on at every call
    ticks = iter(range(10_000))
    service = ExperimentService(
        Store(Settings(), client=aws),
        clock=lambda: f"2030-01-01T00:00:{next(ticks) % 60:02d}.000Z",
        cache_ttl_seconds=0,
    )
    experiment_id = started(service)
    assign(service, experiment_id, 123)

    # When a key is reused later: once with the same value, once with another
    first = service.record(result(metric_value=2.0, idempotency_key="k1"))
    again = service.record(result(metric_value=2.0, idempotency_key="k1"))
    with pytest.raises(IdempotencyKeyReused) as reused:
        service.record(result(metric_value=5.0, idempotency_key="k1"))

    # Then the retry answers the first result (its time and value); the other value is a
    # 409 idempotency_key_reused carrying the stored result; nothing more counted
    assert again == {**first, "duplicate": True}
    assert reused.value.status == 409
    assert reused.value.body()["error"] == "idempotency_key_reused"
    assert reused.value.body()["field"] == "idempotency_key"
    assert reused.value.body()["message"] == (
        "idempotency_key 'k1' was already used for this unit and metric with metric_value 2; "
        "use a new key for a new value"
    )
    assert reused.value.body()["stored"] == {**first, "duplicate": True}
    _, inp, _ = ExperimentAnalysis(service).snapshot(experiment_id)
    totals = [v.metrics["satisfaction_score"] for v in inp.variants]
    assert sum(t.results for t in totals) == 1
    assert max(Decimal(str(t.total)) for t in totals) == Decimal(2)


@pytest.mark.parametrize(
    ("sent", "kept"),
    [
        ("2024-05-01T10:00:00Z", "2024-05-01T10:00:00+00:00"),
        ("2024-05-01T12:00:00+02:00", "2024-05-01T12:00:00+02:00"),
        ("2024-05-01T10:00:00.250-05:00", "2024-05-01T10:00:00.250000-05:00"),
    ],
)
def test_occurred_at_with_timezone_is_kept_and_recorded_at_is_server_time(
    aws: Any, sent: str, kept: str
) -> None:
    from ab_testing.service import ExperimentService
    from ab_testing.settings import Settings
    from ab_testing.store import Store

    # Given a service whose clock says 2031-02-03T04:05:06.789Z
    now = "2031-02-03T04:05:06.789Z"
    service = ExperimentService(
        Store(Settings(), client=aws), clock=lambda: now, cache_ttl_seconds=0
    )
    experiment_id = started(service)
    assign(service, experiment_id, 123)

    # When a result says when it happened
    answer = service.record(result(occurred_at=sent))

    # Then recorded_at is the server's time, occurred_at the client's
    assert answer["recorded"] is True
    assert answer["recorded_at"] == now
    [item] = stored(aws)["results"]
    assert item["recorded_at"] == {"S": now}
    assert item["occurred_at"] == {"S": kept}


# ---------------------------------------------------------------------- custom metrics
def test_custom_metric_within_bounds_only(aws: Any, service: Any) -> None:
    from ab_testing.analysis import ExperimentAnalysis
    from ab_testing.errors import InvalidInput

    # Given an experiment that declares its own response_quality metric (0..10)
    experiment_id = started(
        service,
        metrics=[
            {
                "name": "response_quality",
                "kind": "continuous",
                "direction": "higher",
                "lower": 0,
                "upper": 10,
            }
        ],
        secondary_metrics=["satisfaction_score", "response_quality"],
    )
    variant = assign(service, experiment_id, 123)[123]

    # When values inside and outside its bounds are recorded
    for value in (0, 7.5, 10):
        status, answer = record(**result(metric_name="response_quality", metric_value=value))
        assert (status, answer["recorded"]) == (201, True)
    for value in (10.5, -0.5):
        with pytest.raises(InvalidInput) as refused:
            service.record(result(metric_name="response_quality", metric_value=value))
        assert "response_quality" in refused.value.message

    # Then only the three in bounds were counted
    _, inp, _ = ExperimentAnalysis(service).snapshot(experiment_id)
    [mine] = [v for v in inp.variants if v.variant_id == variant]
    quality = mine.metrics["response_quality"]
    assert (quality.results, norm(quality.total)) == (3, Decimal("17.5"))
    assert (norm(quality.min), norm(quality.max)) == (Decimal(0), Decimal(10))
    assert len(stored(aws)["results"]) == 3


# ---------------------------------------------------------------------- batch
def test_batch_answers_each_item_and_stores_only_the_good_ones(aws: Any, service: Any) -> None:
    # Given a running experiment with two assigned users
    experiment_id = started(service)
    assign(service, experiment_id, 1, 2)

    # When a batch mixes good and bad items
    status, answer = record_many(
        {
            "results": [
                result(user_id=1, metric_value=4.0),
                result(user_id=1, metric_name="token_usage", metric_value=3),
                result(user_id=2, metric_value="high"),
                result(user_id=999, metric_value=3.0),
                result(user_id=2, metric_name="resolution_rate", metric_value=1),
                result(user_id=2, metric_name="resolution_rate", metric_value=0.5),
            ]
        }
    )

    # Then each item has its own status
    assert status == 200
    statuses = [(a["index"], a["status"]) for a in answer["results"]]
    assert statuses == [(0, 201), (1, 400), (2, 400), (3, 200), (4, 201), (5, 400)]
    assert answer["results"][1]["declared_metrics"] == DECLARED
    assert answer["results"][3]["reason"] == "no_assignment"
    assert (answer["recorded"], answer["failed"], answer["not_counted"]) == (2, 3, 1)
    # And only the good ones were stored
    raw = stored(aws)["results"]
    assert sorted((i["unit"]["S"], i["metric_name"]["S"]) for i in raw) == [
        ("user:1", "satisfaction_score"),
        ("user:2", "resolution_rate"),
    ]


@pytest.mark.parametrize(
    ("body", "words"),
    [
        ({"results": [result(metric_value=1.0)] * 101}, "got 101"),
        ({"results": []}, "got 0"),
        ({"results": "nope"}, "results"),
        ([result()], "results"),
    ],
    ids=["101-items", "empty", "not-a-list", "not-an-object"],
)
def test_batch_too_big_or_empty_is_a_400_and_stores_nothing(
    aws: Any, service: Any, body: Any, words: str
) -> None:
    # Given a running experiment and an assigned user
    experiment_id = started(service)
    assign(service, experiment_id, 123)

    # When the batch is empty, too big, or not a list
    status, answer = record_many(body)

    # Then a 400, and nothing was stored
    assert status == 400
    assert answer["field"] == "results"
    assert words in answer["message"]
    nothing_stored(aws)


def test_batch_of_exactly_100_is_accepted(aws: Any, service: Any) -> None:
    experiment_id = started(service)
    assign(service, experiment_id, 123)
    status, answer = record_many({"results": [result(metric_value=1.0)] * 100})
    assert status == 200
    assert answer["recorded"] == 100
    assert len(stored(aws)["results"]) == 100


# ---------------------------------------------------------------------- sharding
def test_sharded_totals_add_up_to_the_batch_computation(aws: Any) -> None:
    from ab_testing.analysis import ExperimentAnalysis
    from ab_testing.reconcile import reconcile
    from ab_testing.service import ExperimentService
    from ab_testing.settings import Settings
    from ab_testing.stats.inputs import MetricTotals
    from ab_testing.store import Store

    # Given a service that spreads running totals over 4 shards
    service = ExperimentService(Store(Settings(totals_shards=4), client=aws), cache_ttl_seconds=0)
    experiment_id = started(service)
    users = list(range(1, 41))
    assign(service, experiment_id, *users)

    # When 40 users record several results on two metrics
    rng = random.Random(7)
    log: dict[tuple[int, str], dict[str, list[Decimal]]] = defaultdict(lambda: defaultdict(list))
    for _ in range(240):
        user = rng.choice(users)
        if rng.random() < 0.5:
            metric, value = "resolution_rate", rng.choice([0, 1])
        else:
            metric, value = "satisfaction_score", rng.randint(0, 50) / 10
        answer = service.record(result(user_id=user, metric_name=metric, metric_value=value))
        assert answer["recorded"] is True
        log[(answer["variant_id"], metric)][answer["unit"]].append(Decimal(str(value)))

    # Then each (variant, metric) is spread over several shard items
    shards: dict[tuple[str, str], set[str]] = defaultdict(set)
    for item in stored(aws)["totals"]:
        _, variant, metric, shard = item["sk"]["S"].split("#")
        shards[(variant, metric)].add(shard)
    assert len(shards) == 4
    assert all(len(s) >= 2 for s in shards.values()), shards

    # And the analysis input equals the unsharded batch computation
    _, inp, items_read = ExperimentAnalysis(service).snapshot(experiment_id)
    for variant in inp.variants:
        for metric in ("resolution_rate", "satisfaction_score"):
            want = MetricTotals.from_units(log[(variant.variant_id, metric)].values())
            assert_same_totals(variant.metrics[metric], want)
    assert sum(v.units_assigned for v in inp.variants) == len(users)
    assert items_read >= 2 + sum(len(s) for s in shards.values())
    # And reconciliation finds nothing to report
    report = reconcile(service.store, experiment_id)
    assert report["results_read"] == 240
    assert report["clean"], report["differences"]
