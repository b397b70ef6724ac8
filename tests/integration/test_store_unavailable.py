"""When DynamoDB refuses (throttling, contention) or a transport retry repeats a write.

Refusals are injected on the handlers' own boto3 client with a botocore ``before-call`` hook
(the request never reaches moto), lost answers with a ``before-send`` hook that lets moto
commit and then drops the answer, so botocore's retry sends the same request again.
Every path that gives up answers 503 with Retry-After and stores nothing.
"""

from __future__ import annotations

import errno
import json
import os
from collections.abc import Iterator
from contextlib import contextmanager
from types import SimpleNamespace
from typing import Any

import pytest
from botocore.exceptions import ReadTimeoutError

from ab_testing import runtime
from tests.conftest import guide_experiment, invoke, load_handler

EXPERIMENTS = "/api/v1/experiments/"


class Refusal:
    """A before-call hook answering an operation with a DynamoDB error, ``times`` times."""

    def __init__(self, code: str, reasons: list[str] | None = None, times: int | None = None):
        self.code = code
        self.reasons = reasons
        self.times = times
        self.calls = 0

    def __call__(self, **_: Any) -> Any:
        if self.times is not None and self.calls >= self.times:
            return None  # let the request through to moto
        self.calls += 1
        parsed: dict[str, Any] = {
            "Error": {"Code": self.code, "Message": "injected by the test"},
            "ResponseMetadata": {"HTTPStatusCode": 400},
        }
        if self.reasons is not None:
            parsed["CancellationReasons"] = [{"Code": r} for r in self.reasons]
        return SimpleNamespace(status_code=400, headers={}), parsed


def store_client() -> Any:
    return runtime.service().store.client


@contextmanager
def hooked(event: str, handler: Any) -> Iterator[None]:
    """`handler` on the handlers' client for `event`, first of its handlers, inside the block."""
    events = store_client().meta.events
    events.register_first(event, handler)
    try:
        yield
    finally:
        events.unregister(event, handler)


@contextmanager
def refusing(operation: str, refusal: Refusal) -> Iterator[Refusal]:
    with hooked(f"before-call.dynamodb.{operation}", refusal):
        yield refusal


def create(name: str) -> tuple[int, Any]:
    return invoke(
        "create_experiment",
        "POST",
        EXPERIMENTS,
        resource="/api/v1/experiments",
        body=guide_experiment(name=name),
    )


def by_id(function_dir: str, method: str, experiment_id: int, action: str = "", **kw: Any) -> Any:
    suffix = f"/{action}" if action else ""
    return invoke(
        function_dir,
        method,
        f"{EXPERIMENTS}{experiment_id}{suffix}",
        resource=f"/api/v1/experiments/{{id}}{suffix}",
        path_parameters={"id": str(experiment_id)},
        **kw,
    )


def raw_invoke(function_dir: str, body: dict[str, Any]) -> dict[str, Any]:
    """A handler's whole answer (status, headers and body) for a POST."""
    from emulator.events import FakeLambdaContext, api_gateway_event
    from tests.conftest import load_handler

    event = api_gateway_event(
        "POST", "/x", resource="/x", path_parameters=None, body=json.dumps(body), headers={}
    )
    answer: dict[str, Any] = load_handler(function_dir).handler(
        event, FakeLambdaContext(function_dir)
    )
    return answer


def running(name: str) -> int:
    status, created = create(name)
    assert status == 201
    assert by_id("start_experiment", "POST", created["id"], "start")[0] == 200
    return int(created["id"])


def assigned(experiment_id: int, user: int) -> None:
    status, _ = invoke(
        "get_variant",
        "POST",
        "/api/v1/experiments/get-variant",
        body={"experiment_id": experiment_id, "user_id": user},
    )
    assert status == 200


def result(experiment_id: int, user: int, key: str = "k1") -> dict[str, Any]:
    return {
        "experiment_id": experiment_id,
        "user_id": user,
        "metric_name": "resolution_rate",
        "metric_value": 1,
        "idempotency_key": key,
    }


def assert_unavailable(answer: dict[str, Any], message: str | None = None) -> None:
    assert answer["statusCode"] == 503, answer
    assert answer["headers"]["Retry-After"] == "1"
    body = json.loads(answer["body"])
    assert body["error"] == "unavailable"
    if message is not None:
        assert body["message"] == message


def summary(experiment_id: int) -> dict[str, Any]:
    status, body = by_id("experiment_summary", "GET", experiment_id, "summary")
    assert status == 200
    return dict(body)


# ------------------------------------------------------------------ experiment ids


def test_create_gives_up_with_503_when_the_id_counter_stays_contended(aws: Any) -> None:
    # Given a counter that every attempt finds taken by another create
    assert running("warm up") == 1
    contended = Refusal(
        "TransactionCanceledException", reasons=["ConditionalCheckFailed", "None", "None"]
    )
    # When an experiment is created
    with refusing("TransactWriteItems", contended):
        answer = raw_invoke("create_experiment", guide_experiment(name="never stored"))
    # Then, after its retries, it answers 503 with Retry-After and stores nothing
    assert_unavailable(answer, "could not allocate an experiment id, please retry")
    assert contended.calls == 8
    code, listed = invoke("list_experiments", "GET", EXPERIMENTS, resource="/api/v1/experiments")
    assert code == 200
    assert [e["name"] for e in listed["experiments"]] == ["warm up"]


def test_create_retries_past_a_contended_counter(aws: Any) -> None:
    # Given a counter contended twice, then free
    running("warm up")
    contended = Refusal("TransactionCanceledException", reasons=["TransactionConflict"], times=2)
    # When an experiment is created
    with refusing("TransactWriteItems", contended):
        status, created = create("second")
    # Then it is created with the next id
    assert (status, created["id"]) == (201, 2)
    assert contended.calls == 2


# ------------------------------------------------------------------ throttling anywhere


def test_throttled_reads_answer_503_with_retry_after(aws: Any) -> None:
    # Given a running experiment, and DynamoDB throttling every GetItem
    experiment_id = running("throttled")
    throttled = Refusal("ProvisionedThroughputExceededException")
    # When get-variant is asked
    with refusing("GetItem", throttled):
        answer = raw_invoke("get_variant", {"experiment_id": experiment_id, "user_id": 1})
    # Then it answers 503 with Retry-After, not 500
    assert_unavailable(answer)
    assert throttled.calls >= 1


def test_throttled_lifecycle_update_answers_503(aws: Any) -> None:
    experiment_id = running("throttled update")
    with refusing("UpdateItem", Refusal("ThrottlingException")):
        code, body = by_id("pause_experiment", "POST", experiment_id, "pause")
    assert (code, body["error"]) == (503, "unavailable")
    code, body = by_id("get_experiment", "GET", experiment_id)
    assert body["status"] == "running"


def test_a_validation_refusal_is_a_500_not_a_503(aws: Any) -> None:
    # Given DynamoDB refusing a request as malformed (a bug, not load)
    experiment_id = running("malformed")
    with refusing("GetItem", Refusal("ValidationException")):
        answer = raw_invoke("get_variant", {"experiment_id": experiment_id, "user_id": 1})
    # Then retrying would not help: it is an internal error, without Retry-After
    assert answer["statusCode"] == 500
    assert "Retry-After" not in answer["headers"]


# ------------------------------------------------------------------ assignments


def test_assignment_gives_up_with_503_under_contention(aws: Any) -> None:
    # Given every assignment transaction cancelled by a conflict on the exposure counter
    experiment_id = running("busy variant")
    conflict = Refusal("TransactionCanceledException", reasons=["None", "TransactionConflict"])
    with refusing("TransactWriteItems", conflict):
        answer = raw_invoke("get_variant", {"experiment_id": experiment_id, "user_id": 7})
    # Then 503 after its retries, and no unit was counted
    assert_unavailable(answer, "the assignment could not be written under contention, retry")
    assert conflict.calls == 5
    assert summary(experiment_id)["users_assigned"] == 0


def test_assignment_survives_one_conflict(aws: Any) -> None:
    experiment_id = running("one conflict")
    conflict = Refusal(
        "TransactionCanceledException", reasons=["None", "TransactionConflict"], times=1
    )
    reads: list[str] = []

    def note(params: Any, **_: Any) -> None:
        reads.append(json.loads(params["body"])["TableName"])

    with hooked("before-call.dynamodb.GetItem", note):
        with refusing("TransactWriteItems", conflict):
            answer = raw_invoke("get_variant", {"experiment_id": experiment_id, "user_id": 7})
    assert answer["statusCode"] == 200
    assert json.loads(answer["body"])["reason"] == "assigned"
    assert summary(experiment_id)["users_assigned"] == 1
    # A conflict on the exposure item says nothing of the assignment: it is not read again
    assignments = runtime.service().store.assignments
    assert [t for t in reads if t == assignments] == [assignments]  # the lookup before, only


# ------------------------------------------------------------------ results


def test_result_gives_up_with_503_under_contention(aws: Any) -> None:
    # Given an assigned user and every result transaction cancelled by a conflict
    experiment_id = running("busy totals")
    assigned(experiment_id, 3)
    conflict = Refusal(
        "TransactionCanceledException", reasons=["None", "TransactionConflict", "None"]
    )
    with refusing("TransactWriteItems", conflict):
        answer = raw_invoke("record_result", result(experiment_id, 3))
    # Then 503 after its retries, and nothing was counted
    assert_unavailable(answer)
    assert conflict.calls == 12
    assert summary(experiment_id)["results_collected"] == 0


def test_a_duplicate_without_the_stored_item_in_the_refusal_is_read_back(aws: Any) -> None:
    # Given a recorded result
    experiment_id = running("duplicate read back")
    assigned(experiment_id, 3)
    code, first = invoke(
        "record_result", "POST", "/api/v1/experiments/record-result", body=result(experiment_id, 3)
    )
    assert code == 201
    # When it is sent again and the refusal of the write does not carry the stored item
    duplicate = Refusal(
        "TransactionCanceledException", reasons=["ConditionalCheckFailed", "None", "None"], times=1
    )
    with refusing("TransactWriteItems", duplicate):
        code, again = invoke(
            "record_result",
            "POST",
            "/api/v1/experiments/record-result",
            body=result(experiment_id, 3),
        )
    # Then the stored result is read back: the answer is the first one, marked duplicate
    assert duplicate.calls == 1
    assert code == 200
    assert again == {**first, "duplicate": True}
    assert summary(experiment_id)["results_collected"] == 1


def test_an_assignment_without_the_stored_item_in_the_refusal_is_read_back(aws: Any) -> None:
    # Given a user assigned to a variant
    experiment_id = running("assignment read back")
    assigned(experiment_id, 4)
    store = runtime.service().store
    first = store.get_assignment(experiment_id, "user:4")
    assert first is not None
    other = next(
        v.id
        for v in store.get_experiment(experiment_id).variants
        if v.id != int(first["variant_id"])
    )
    # When a second writer's assignment is refused without the stored item in the refusal
    taken = Refusal(
        "TransactionCanceledException", reasons=["ConditionalCheckFailed", "None"], times=1
    )
    with refusing("TransactWriteItems", taken):
        item, created = store.create_assignment(
            experiment_id, "user:4", other, now="2031-01-01T00:00:00.000Z", shard=0
        )
    # Then the stored assignment is read back and answered, not the second writer's
    assert taken.calls == 1
    assert not created
    assert int(item["variant_id"]) == int(first["variant_id"])


def test_a_duplicate_is_answered_from_the_refusal_without_another_read(aws: Any) -> None:
    # Given a recorded result
    experiment_id = running("duplicate from the refusal")
    assigned(experiment_id, 3)
    path = "/api/v1/experiments/record-result"
    code, first = invoke("record_result", "POST", path, body=result(experiment_id, 3))
    assert code == 201
    # When it is sent again, watching the reads of single results
    reads: list[str] = []

    def watch(params: dict[str, Any], **_: Any) -> None:
        reads.append(params["TableName"])

    with hooked("before-call.dynamodb.GetItem", watch):
        code, again = invoke("record_result", "POST", path, body=result(experiment_id, 3))
    # Then the refused write itself returns the stored result: no result is read again
    assert (code, again) == (200, {**first, "duplicate": True})
    assert "ab_results" not in reads


def test_throttled_result_transaction_answers_503(aws: Any) -> None:
    experiment_id = running("throttled totals")
    assigned(experiment_id, 3)
    throttled = Refusal("TransactionCanceledException", reasons=["None", "ThrottlingError", "None"])
    with refusing("TransactWriteItems", throttled):
        answer = raw_invoke("record_result", result(experiment_id, 3))
    assert_unavailable(answer)
    assert summary(experiment_id)["results_collected"] == 0


def test_a_batch_reports_the_unavailable_items_and_records_the_others(aws: Any) -> None:
    # Given three assigned users and a store that refuses the write carrying user 2's result
    # (the batch writes one transaction per (variant, metric): user 2's variant's results)
    experiment_id = running("batch")
    variants = {}
    for user in (1, 2, 3):
        assigned(experiment_id, user)
        variants[user] = invoke(
            "get_variant",
            "POST",
            "/api/v1/experiments/get-variant",
            body={"experiment_id": experiment_id, "user_id": user},
        )[1]["variant"]["id"]
    refused = Refusal("TransactionCanceledException", reasons=["None", "ThrottlingError"])

    def user_2_only(params: Any, **kwargs: Any) -> Any:
        return refused(**kwargs) if b'"user:2"' in params["body"] else None

    with hooked("before-call.dynamodb.TransactWriteItems", user_2_only):
        body = {"results": [result(experiment_id, u, key=f"b{u}") for u in (1, 2, 3)]}
        code, answer = invoke(
            "record_results", "POST", "/api/v1/experiments/record-results", body=body
        )
    # Then the batch answers 200 with a status per item: 503 for those refused, 201 else
    expected = [503 if variants[u] == variants[2] else 201 for u in (1, 2, 3)]
    assert code == 200
    assert [item["status"] for item in answer["results"]] == expected
    assert [item["index"] for item in answer["results"]] == [0, 1, 2]
    assert answer["results"][1]["error"] == "unavailable"
    recorded = expected.count(201)
    assert (answer["recorded"], answer["failed"], answer["not_counted"]) == (
        recorded,
        3 - recorded,
        0,
    )
    assert summary(experiment_id)["results_collected"] == recorded


def test_rebalance_gives_up_with_503_when_its_transaction_is_contended(aws: Any) -> None:
    experiment_id = running("rebalance")
    conflict = Refusal("TransactionCanceledException", reasons=["TransactionConflict", "None"])
    with refusing("TransactWriteItems", conflict):
        code, body = by_id(
            "rebalance_experiment", "PATCH", experiment_id, body={"target_percentage": 50}
        )
    assert (code, body["error"]) == (503, "unavailable")
    assert body["message"] == "the rebalance could not be written, please retry"
    assert by_id("get_experiment", "GET", experiment_id)[1]["target_percentage"] == 100


# ------------------------------------------------------------------ transport retries


class LostAnswer:
    """A before-send hook: the first request reaches moto and commits, its answer is lost."""

    def __init__(self) -> None:
        self.sent = 0

    def __call__(self, request: Any, **kwargs: Any) -> Any:
        from moto.core.models import botocore_stubber

        self.sent += 1
        if self.sent == 1:
            botocore_stubber(request=request, **kwargs)  # DynamoDB did the write...
            raise ReadTimeoutError(endpoint_url=request.url)  # ...but the answer never came
        return None


def test_a_transport_retry_of_a_committed_result_is_recorded_not_duplicate(
    aws_sent: Any,
) -> None:
    # Given an assigned user, and a network that loses the answer to the first write
    experiment_id = running("lost answer")
    assigned(experiment_id, 5)
    lost = LostAnswer()
    with hooked("before-send.dynamodb.TransactWriteItems", lost):
        # When the result is recorded (botocore re-sends the same transaction)
        code, answer = invoke(
            "record_result",
            "POST",
            "/api/v1/experiments/record-result",
            body=result(experiment_id, 5),
        )
    # Then the write was sent twice, and the answer is "recorded" (201), counted once
    assert lost.sent == 2
    assert code == 201, answer
    assert (answer["recorded"], answer["duplicate"]) == (True, False)
    assert summary(experiment_id)["results_collected"] == 1
    # And a real repeat of the request by the client is a duplicate (200)
    code, again = invoke(
        "record_result", "POST", "/api/v1/experiments/record-result", body=result(experiment_id, 5)
    )
    assert (code, again["duplicate"], again["variant_id"]) == (200, True, answer["variant_id"])
    assert summary(experiment_id)["results_collected"] == 1


def test_a_transport_retry_of_a_committed_batch_transaction_is_recorded_not_duplicate(
    aws_sent: Any,
) -> None:
    # Given two results of one user (one transaction), and a network that loses its answer
    experiment_id = running("lost batch answer")
    assigned(experiment_id, 5)
    lost = LostAnswer()
    body = {"results": [result(experiment_id, 5, "a"), result(experiment_id, 5, "b")]}
    with hooked("before-send.dynamodb.TransactWriteItems", lost):
        # When the batch is recorded (botocore re-sends the same transaction)
        code, answer = invoke(
            "record_results", "POST", "/api/v1/experiments/record-results", body=body
        )
    # Then both are "recorded" (201), counted once each
    assert lost.sent == 2
    assert code == 200
    assert [(a["status"], a["duplicate"]) for a in answer["results"]] == [(201, False)] * 2
    assert summary(experiment_id)["results_collected"] == 2
    # And a real repeat of the batch is answered as duplicates (200)
    code, again = invoke("record_results", "POST", "/api/v1/experiments/record-results", body=body)
    assert [(a["status"], a["duplicate"]) for a in again["results"]] == [(200, True)] * 2
    assert summary(experiment_id)["results_collected"] == 2


def test_a_batch_transaction_in_conflict_is_read_again_and_retried(aws: Any) -> None:
    # Given two assigned users and a store that cancels the first two writes in conflict
    experiment_id = running("batch conflict")
    for user in (1, 2):
        assigned(experiment_id, user)
    conflict = Refusal(
        "TransactionCanceledException",
        reasons=["None", "None", "TransactionConflict", "None", "None"],
        times=2,
    )
    body = {"results": [result(experiment_id, u, key=f"c{u}") for u in (1, 2, 1)]}
    body["results"][2]["metric_name"] = "satisfaction_score"
    with refusing("TransactWriteItems", conflict):
        code, answer = invoke(
            "record_results", "POST", "/api/v1/experiments/record-results", body=body
        )
    # Then every result is recorded once after the retries
    assert conflict.calls == 2
    assert [a["status"] for a in answer["results"]] == [201, 201, 201]
    assert summary(experiment_id)["results_collected"] == 3


def test_a_batch_under_lasting_contention_answers_503_for_its_items(aws: Any) -> None:
    experiment_id = running("batch contended")
    assigned(experiment_id, 1)
    conflict = Refusal("TransactionCanceledException", reasons=["None", "TransactionConflict"])
    body = {"results": [result(experiment_id, 1, key="x"), result(experiment_id, 1, key="y")]}
    with refusing("TransactWriteItems", conflict):
        code, answer = invoke(
            "record_results", "POST", "/api/v1/experiments/record-results", body=body
        )
    assert conflict.calls == 12  # one transaction, retried as record retries
    assert [(a["status"], a["error"]) for a in answer["results"]] == [(503, "unavailable")] * 2
    assert summary(experiment_id)["results_collected"] == 0


def test_a_batch_whose_assignment_keeps_moving_answers_503_for_its_items(aws: Any) -> None:
    # Given an assigned user, and reads that see the assignment move between the batch's
    # read of the round and its read before the write, every time
    experiment_id = running("batch moving")
    assigned(experiment_id, 1)
    reads = []

    def moved(parsed: Any, **_: Any) -> None:
        reads.append(1)
        if len(reads) % 2 == 0:  # the write's read: another variant than the round's read
            for items in parsed.get("Responses", {}).values():
                for item in items:
                    if "variant_id" in item and "unit" in item:
                        item["variant_id"] = {"N": "999999"}

    with hooked("after-call.dynamodb.BatchGetItem", moved):
        body = {"results": [result(experiment_id, 1, key="m1"), result(experiment_id, 1, key="m2")]}
        code, answer = invoke(
            "record_results", "POST", "/api/v1/experiments/record-results", body=body
        )
    # Then the batch gives up on them after its rounds: 503 each, and nothing is counted
    assert code == 200
    assert [(a["status"], a["error"]) for a in answer["results"]] == [(503, "unavailable")] * 2
    assert answer["results"][0]["message"] == "the batch could not be written, please retry"
    assert summary(experiment_id)["results_collected"] == 0


def test_a_read_answer_that_leaves_out_a_table_with_nothing_found_is_read_as_empty(
    aws: Any,
) -> None:
    # Given an assigned user with no result yet, and BatchGetItem answers that leave out a
    # table when none of its keys was found (DynamoDB does not promise an empty list)
    experiment_id = running("sparse answers")
    assigned(experiment_id, 1)

    def sparse(parsed: Any, **_: Any) -> None:
        responses = parsed.get("Responses", {})
        for table in [t for t, items in responses.items() if not items]:
            del responses[table]

    with hooked("after-call.dynamodb.BatchGetItem", sparse):
        # When the user's first result is recorded
        answer = raw_invoke("record_result", result(experiment_id, 1))
    # Then it is recorded and counted
    assert answer["statusCode"] == 201, answer
    assert summary(experiment_id)["results_collected"] == 1


@pytest.mark.parametrize("batch", [False, True], ids=["record-result", "record-results"])
def test_keys_a_read_leaves_unprocessed_are_read_again_before_the_write(
    aws: Any, batch: bool
) -> None:
    """BatchGetItem may leave keys unprocessed (throttling, an answer's size limit). The ledger
    asks for them again before it writes, instead of writing from half a read: the result is
    recorded with a single transaction."""
    # Given a user whose variant's totals item exists (the user's first result)
    experiment_id = running("unprocessed keys")
    assigned(experiment_id, 2)
    assert raw_invoke("record_result", result(experiment_id, 2, key="k0"))["statusCode"] == 201
    held_back: list[dict[str, Any]] = []
    transactions: list[int] = []

    def unprocessed(parsed: Any, **_: Any) -> None:
        """The first answer that found totals leaves them unprocessed instead."""
        responses = parsed.get("Responses", {})
        totals = [i for i in responses.get("ab_variants", []) if i["sk"]["S"].startswith("totals")]
        if held_back or not totals:
            return
        held_back.extend(totals)
        responses["ab_variants"] = [i for i in responses["ab_variants"] if i not in totals]
        keys = [{"experiment_id": i["experiment_id"], "sk": i["sk"]} for i in totals]
        parsed["UnprocessedKeys"] = {"ab_variants": {"Keys": keys, "ConsistentRead": True}}

    # When the user's next result is recorded while a read leaves the totals unprocessed
    with (
        hooked("after-call.dynamodb.BatchGetItem", unprocessed),
        hooked("before-call.dynamodb.TransactWriteItems", lambda **_: transactions.append(1)),
    ):
        if batch:
            body = {"results": [result(experiment_id, 2), result(experiment_id, 2, key="k2")]}
            code, answer = invoke(
                "record_results", "POST", "/api/v1/experiments/record-results", body=body
            )
            assert code == 200
            assert [r["recorded"] for r in answer["results"]] == [True, True]
        else:
            assert raw_invoke("record_result", result(experiment_id, 2))["statusCode"] == 201
    # Then the held-back keys were asked for again and the first transaction was the last
    assert held_back
    assert transactions == [1]
    assert summary(experiment_id)["results_collected"] == (3 if batch else 2)


class RefusingLog:
    """The local store's journal on a full disk: every write refused with ENOSPC."""

    def __init__(self) -> None:
        self.refused = 0

    def append(self, operation: str, params: bytes) -> int:
        self.refused += 1
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    def retract(self, position: int) -> None:
        raise AssertionError("nothing was written, nothing to take back")

    def position(self) -> int:
        return 0

    def wait_durable(self, position: int) -> None:
        return None


def handler_answer(function_dir: str, path: str, body: Any) -> dict[str, Any]:
    from emulator.events import FakeLambdaContext, api_gateway_event

    event = api_gateway_event(
        "POST", path, resource=path, body=json.dumps(body), path_parameters=None,
        query={}, headers={"Content-Type": "application/json"},
    )  # fmt: skip
    answer: dict[str, Any] = load_handler(function_dir).handler(
        event, FakeLambdaContext(function_dir)
    )
    return answer


def test_while_the_journal_refuses_writes_they_answer_503_and_reads_go_on(aws: Any) -> None:
    from emulator import dynamo

    # Given an assigned user, and the local store's journal on a disk that is full
    experiment_id = running("full disk")
    assigned(experiment_id, 5)
    local = dynamo._active
    assert isinstance(local, dynamo.InProcessDynamo)
    disk = RefusingLog()
    local.write_log = disk
    try:
        # When a result is recorded, and a new user asks for a variant
        recorded = handler_answer("record_result", "/api/v1/experiments/record-result",
                                  result(experiment_id, 5))  # fmt: skip
        new_user = handler_answer("get_variant", "/api/v1/experiments/get-variant",
                                  {"experiment_id": experiment_id, "user_id": 6})  # fmt: skip
        # Then both are a 503 to retry later, and reads go on
        read = summary(experiment_id)
    finally:
        local.write_log = None
    assert disk.refused >= 2
    for answer in (recorded, new_user):
        assert answer["statusCode"] == 503, answer
        assert answer["headers"]["Retry-After"] == "1"
        assert json.loads(answer["body"])["error"] == "unavailable"
    assert read["results_collected"] == 0
    # And once the disk takes writes again, the same result is recorded, not a duplicate
    code, again = invoke(
        "record_result", "POST", "/api/v1/experiments/record-result", body=result(experiment_id, 5)
    )
    assert (code, again["duplicate"]) == (201, False)
    assert summary(experiment_id)["results_collected"] == 1
