"""Edges the README and docs promise: list filters, ids with whitespace, batches with a bad
item, the 38-digit limit of running totals, and the experiment cache's staleness window."""

from __future__ import annotations

from decimal import Decimal
from types import SimpleNamespace
from typing import Any

import pytest

from ab_testing import dynamo, runtime
from ab_testing.service import ExperimentService
from ab_testing.settings import Settings
from ab_testing.store import Store
from tests.conftest import FakeMonotonic, guide_experiment, invoke

EXPERIMENTS = "/api/v1/experiments/"


def create(name: str, **changes: Any) -> int:
    status, created = invoke(
        "create_experiment",
        "POST",
        EXPERIMENTS,
        resource="/api/v1/experiments",
        body=guide_experiment(name=name, **changes),
    )
    assert status == 201, created
    return int(created["id"])


def by_id(function_dir: str, method: str, raw_id: str, action: str = "", **kw: Any) -> Any:
    suffix = f"/{action}" if action else ""
    return invoke(
        function_dir,
        method,
        f"{EXPERIMENTS}{raw_id}{suffix}",
        resource=f"/api/v1/experiments/{{id}}{suffix}",
        path_parameters={"id": raw_id},
        **kw,
    )


def running(name: str, **changes: Any) -> int:
    experiment_id = create(name, **changes)
    assert by_id("start_experiment", "POST", str(experiment_id), "start")[0] == 200
    return experiment_id


def get_variant(**body: Any) -> tuple[int, Any]:
    return invoke("get_variant", "POST", "/api/v1/experiments/get-variant", body=body)


def record(**body: Any) -> tuple[int, Any]:
    return invoke("record_result", "POST", "/api/v1/experiments/record-result", body=body)


def listing(**query: str) -> tuple[int, Any]:
    return invoke(
        "list_experiments", "GET", EXPERIMENTS, resource="/api/v1/experiments", query=query
    )


def results_collected(experiment_id: int) -> int:
    status, body = by_id("experiment_summary", "GET", str(experiment_id), "summary")
    assert status == 200
    return int(body["results_collected"])


# ------------------------------------------------------------------ list filters


def test_list_filters_by_status_and_type(aws: Any) -> None:
    # Given a running prompt experiment, a draft prompt one and a running model one
    running("prompt running")
    create("prompt draft")
    running("model running", experiment_type="model")
    # Then each filter and their combination select exactly those
    assert [e["name"] for e in listing(status="running")[1]["experiments"]] == [
        "prompt running",
        "model running",
    ]
    both = listing(status="running", experiment_type="prompt")[1]
    assert ([e["name"] for e in both["experiments"]], both["count"]) == (["prompt running"], 1)
    assert [e["name"] for e in listing(experiment_type="model")[1]["experiments"]] == [
        "model running"
    ]
    assert listing()[1]["count"] == 3


@pytest.mark.parametrize(
    ("query", "field"),
    [
        ({"status": "finished"}, "status"),
        ({"status": "RUNNING"}, "status"),
        ({"experiment_type": "banner"}, "experiment_type"),
        ({"status": "running", "experiment_type": "llm"}, "experiment_type"),
    ],
)
def test_an_unknown_list_filter_is_a_400_naming_it(
    aws: Any, query: dict[str, str], field: str
) -> None:
    create("listed")
    status, body = listing(**query)
    assert status == 400
    assert (body["error"], body["field"]) == ("validation_error", field)


# ------------------------------------------------------------------ ids and whitespace


@pytest.mark.parametrize("raw_id", ["abc", " 1", "1 ", "0", "-1", "1.0", "1e3", ""])
def test_a_path_id_that_is_not_a_positive_integer_is_a_400(aws: Any, raw_id: str) -> None:
    create("ids")
    status, body = by_id("get_experiment", "GET", raw_id)
    assert status == 400
    assert body["field"] == "id"


def test_an_unknown_id_is_a_404(aws: Any) -> None:
    create("ids")
    status, body = by_id("get_experiment", "GET", "2")
    assert (status, body["error"], body["field"]) == (404, "not_found", "id")
    assert body["message"] == "experiment 2 not found"


def test_user_and_session_ids_are_stripped_of_surrounding_whitespace(aws: Any) -> None:
    # docs/assignment.md: '" 123 "' is user:123, the same unit as the integer 123
    experiment_id = running("whitespace")
    _, plain = get_variant(experiment_id=experiment_id, user_id=123)
    status, padded = get_variant(experiment_id=experiment_id, user_id=" 123 ")
    assert status == 200
    assert (padded["unit"], padded["reason"]) == ("user:123", "existing_assignment")
    assert padded["variant"]["id"] == plain["variant"]["id"]
    _, session = get_variant(experiment_id=experiment_id, session_id="\tabc \n")
    assert session["unit"] == "session:abc"
    # And a result sent with the padded id counts for that same unit
    status, answer = record(
        experiment_id=experiment_id,
        user_id="  123",
        metric_name="resolution_rate",
        metric_value=1,
    )
    assert (status, answer["unit"], answer["variant_id"]) == (
        201,
        "user:123",
        plain["variant"]["id"],
    )


@pytest.mark.parametrize("field", ["user_id", "session_id"])
def test_a_blank_id_is_a_400(aws: Any, field: str) -> None:
    experiment_id = running("blank")
    status, body = get_variant(experiment_id=experiment_id, **{field: "   "})
    assert status == 400
    assert body["error"] == "validation_error"


def test_experiment_names_are_matched_after_stripping_whitespace(aws: Any) -> None:
    experiment_id = running("Padded Name")
    status, answer = get_variant(experiment_name="  Padded Name ", user_id=1)
    assert (status, answer["experiment_id"]) == (200, experiment_id)


# ------------------------------------------------------------------ batches


def test_a_failing_item_inside_a_batch_does_not_stop_the_others(aws: Any) -> None:
    # Given an assigned user and a batch with a good item, three bad ones and a repeat
    experiment_id = running("batch")
    get_variant(experiment_id=experiment_id, user_id=1)
    good = {
        "experiment_id": experiment_id,
        "user_id": 1,
        "metric_name": "resolution_rate",
        "metric_value": 1,
        "idempotency_key": "a",
    }
    items = [
        good,
        {**good, "metric_name": "token_usage", "idempotency_key": "b"},  # not declared
        {**good, "metric_value": 7, "idempotency_key": "c"},  # out of bounds for binary
        {**good, "experiment_id": 99, "idempotency_key": "d"},  # unknown experiment
        good,  # the same key again
        {**good, "user_id": 2, "idempotency_key": "e"},  # never assigned
    ]
    # When the batch is recorded
    status, answer = invoke(
        "record_results", "POST", "/api/v1/experiments/record-results", body={"results": items}
    )
    # Then each item has its own status, and only the good one counted
    assert status == 200
    assert [r["status"] for r in answer["results"]] == [201, 400, 400, 404, 200, 200]
    assert [r["index"] for r in answer["results"]] == list(range(6))
    assert answer["results"][1]["field"] == "metric_name"
    assert answer["results"][2]["field"] == "metric_value"
    assert answer["results"][4]["duplicate"] is True
    assert answer["results"][5]["reason"] == "no_assignment"
    assert (answer["recorded"], answer["failed"], answer["not_counted"]) == (1, 3, 2)
    assert results_collected(experiment_id) == 1


def test_an_unexpected_failure_of_one_write_is_reported_and_the_rest_recorded(
    aws: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Given a batch whose write for user 2 fails for an unexpected reason; the batch writes
    # one transaction per (variant, metric), so the failure takes user 2's variant's results
    experiment_id = running("batch crash")
    variants = {u: get_variant(experiment_id=experiment_id, user_id=u)[1]["variant"]["id"]
                for u in (1, 2, 3)}  # fmt: skip
    ledger = runtime.service().ledger
    original = ledger._chunk_items

    def flaky(writes: Any, *args: Any) -> Any:
        if any(w.unit == "user:2" for w in writes):
            raise RuntimeError("disk on fire")
        return original(writes, *args)

    monkeypatch.setattr(ledger, "_chunk_items", flaky)
    items = [
        {"experiment_id": experiment_id, "user_id": u, "metric_name": "resolution_rate",
         "metric_value": 0}
        for u in (1, 2, 3)
    ]  # fmt: skip
    status, answer = invoke(
        "record_results", "POST", "/api/v1/experiments/record-results", body={"results": items}
    )
    assert status == 200
    expected = [500 if variants[u] == variants[2] else 201 for u in (1, 2, 3)]
    assert [r["status"] for r in answer["results"]] == expected
    assert answer["results"][1] == {
        "index": 1,
        "status": 500,
        "error": "internal_error",
        "message": "this item failed unexpectedly; it has been logged",
    }
    assert "disk on fire" not in str(answer)
    assert results_collected(experiment_id) == expected.count(201)


def test_a_batch_of_one_item_for_a_draft_is_answered_as_not_counted(aws: Any) -> None:
    # Given an experiment that was never started
    experiment_id = create("batch of one")
    item = {"experiment_id": experiment_id, "user_id": 1, "metric_name": "resolution_rate",
            "metric_value": 1}  # fmt: skip
    # When a batch of exactly one result is sent for it
    status, answer = invoke(
        "record_results", "POST", "/api/v1/experiments/record-results", body={"results": [item]}
    )
    # Then the one item is answered as record-result would, with its index, and not counted
    assert status == 200
    assert answer["results"] == [
        {
            "index": 0,
            "status": 200,
            "experiment_id": experiment_id,
            "metric_name": "resolution_rate",
            "unit": "user:1",
            "recorded": False,
            "reason": "experiment_not_running",
            "message": f"experiment {experiment_id} is draft; "
            "results count only while it is running or paused",
        }
    ]
    assert (answer["recorded"], answer["failed"], answer["not_counted"]) == (0, 0, 1)


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ({"results": []}, "results must hold 1 to 100 items, got 0"),
        ({"results": [{}] * 101}, "results must hold 1 to 100 items, got 101"),
        ({"results": "x"}, 'the body must be {"results": [ ... ]}'),
        ([{"a": 1}], 'the body must be {"results": [ ... ]}'),
    ],
)
def test_a_batch_outside_1_to_100_items_is_a_400(aws: Any, body: Any, message: str) -> None:
    status, answer = invoke(
        "record_results", "POST", "/api/v1/experiments/record-results", body=body
    )
    # Then the answer says what shape was expected, or how many items were sent
    assert (status, answer["field"], answer["message"]) == (400, "results", message)


# ------------------------------------------------------------------ 38 significant digits


def set_total_sq(experiment_id: int, metric: str, value: Decimal) -> None:
    """Puts a running total where the next result would cross DynamoDB's 38 digits."""
    store = runtime.service().store
    items = store.query_experiment_items(experiment_id, prefix="totals")
    mine = [i for i in items if i.get("metric") == metric]
    assert len(mine) == 1
    store.client.update_item(
        TableName=store.variants,
        Key=dynamo.serialize({"experiment_id": experiment_id, "sk": mine[0]["sk"]}),
        UpdateExpression="SET total_sq = :v",
        ExpressionAttributeValues=dynamo.serialize({":v": value}),
    )


@pytest.mark.parametrize(
    ("existing", "status"),
    [
        (Decimal(10) ** 35, 201),  # 10^35 + 6.25 has 38 significant digits: stored exactly
        (Decimal(10) ** 36, 400),  # 10^36 + 6.25 would need 39: refused
    ],
)
def test_a_result_that_would_take_a_total_beyond_38_digits_is_refused(
    aws: Any, existing: Decimal, status: int
) -> None:
    # Given a user with one result, and the variant's sum of squares pushed near the limit
    experiment_id = running("digits")
    get_variant(experiment_id=experiment_id, user_id=1)
    first = {"experiment_id": experiment_id, "user_id": 1, "metric_name": "satisfaction_score"}
    assert record(**first, metric_value=1)[0] == 201
    set_total_sq(experiment_id, "satisfaction_score", existing)
    # When a value of 2.5 is recorded (2.5^2 = 6.25)
    code, body = record(**first, metric_value=2.5, idempotency_key="second")
    # Then it is stored only if the new total keeps 38 significant digits or fewer
    assert code == status, body
    if status == 400:
        assert (body["error"], body["field"]) == ("validation_error", "metric_value")
        assert "38 significant digits" in body["message"]
        assert "the running totals of satisfaction_score" in body["message"]
        assert results_collected(experiment_id) == 1
        report = by_id("reconcile_experiment", "GET", str(experiment_id), "reconciliation")[1]
        assert report["results_read"] == 1  # no raw result was stored either
    else:
        assert results_collected(experiment_id) == 2


# ------------------------------------------------------------------ the experiment cache


def test_a_warm_instance_trusts_its_copy_for_cache_ttl_seconds(
    aws: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Given two instances (two warm Lambdas) with a 5 s cache, and an injected clock
    clock = FakeMonotonic()
    monkeypatch.setattr("ab_testing.service.time", SimpleNamespace(monotonic=clock.monotonic))
    warm = ExperimentService(Store(Settings(), client=aws), cache_ttl_seconds=5)
    other = ExperimentService(Store(Settings(), client=aws), cache_ttl_seconds=5)
    experiment_id = running("cached")
    assert warm.get_variant({"experiment_id": experiment_id, "user_id": 1})["reason"] == "assigned"
    # When the other instance pauses the experiment
    other.transition(experiment_id, "pause")
    # Then the warm one still sees it running for just under 5 seconds...
    clock.now += 4.999
    assert warm.get_variant({"experiment_id": experiment_id, "user_id": 2})["reason"] == "assigned"
    # ...and sees the pause from 5 seconds on
    clock.now = 1005.0
    answer = warm.get_variant({"experiment_id": experiment_id, "user_id": 3})
    assert (answer["reason"], answer["variant"]) == ("experiment_not_running", None)
    # And the instance that made a change sees it at once
    other.transition(experiment_id, "resume")
    assert other.get_variant({"experiment_id": experiment_id, "user_id": 4})["reason"] == (
        "assigned"
    )


def test_the_cache_is_per_name_and_id_and_a_zero_ttl_always_reads(
    aws: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    clock = FakeMonotonic()
    monkeypatch.setattr("ab_testing.service.time", SimpleNamespace(monotonic=clock.monotonic))
    fresh = ExperimentService(Store(Settings(), client=aws), cache_ttl_seconds=0)
    other = ExperimentService(Store(Settings(), client=aws), cache_ttl_seconds=0)
    experiment_id = running("uncached")
    body = {"experiment_name": "uncached", "user_id": 1}
    assert fresh.get_variant(body)["reason"] == "assigned"
    other.transition(experiment_id, "pause")
    assert fresh.get_variant({**body, "user_id": 2})["reason"] == "experiment_not_running"
