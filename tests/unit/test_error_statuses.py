"""Each domain error answers its own status (README: bad input 400, unknown ids 404, illegal
transitions 409; DynamoDB still refusing after retries 503 with Retry-After; anything else 500).

The table is written by hand, so mapping every error to one status fails here.
"""

from __future__ import annotations

import json
from typing import Any

import pytest
from botocore.exceptions import (
    ClientError,
    ConnectTimeoutError,
    EndpointConnectionError,
    ReadTimeoutError,
)

from ab_testing.errors import Conflict, DomainError, InvalidInput, NotFound, StoreUnavailable
from ab_testing.http import ApiRequest, api

# error raised -> (HTTP status, "error" in the body, Retry-After header or None)
TABLE: list[tuple[Exception, int, str, str | None]] = [
    (InvalidInput("bad", field="variants"), 400, "validation_error", None),
    (NotFound("no experiment 9", field="id"), 404, "not_found", None),
    (Conflict("cannot start", status="running"), 409, "conflict", None),
    (StoreUnavailable("busy"), 503, "unavailable", "1"),
    (RuntimeError("a bug"), 500, "internal_error", None),
]


def answer_to(error: Exception) -> dict[str, Any]:
    @api
    def handler(request: ApiRequest) -> dict[str, Any]:
        raise error

    result: dict[str, Any] = handler({"httpMethod": "GET", "path": "/x"}, None)
    return result


@pytest.mark.parametrize(
    ("error", "status", "code", "retry_after"),
    TABLE,
    ids=[type(row[0]).__name__ for row in TABLE],
)
def test_each_error_answers_its_own_status(
    error: Exception, status: int, code: str, retry_after: str | None
) -> None:
    answer = answer_to(error)
    body = json.loads(answer["body"])
    assert answer["statusCode"] == status
    assert body["error"] == code
    assert answer["headers"]["Content-Type"] == "application/json"
    assert answer["headers"].get("Retry-After") == retry_after


def test_the_table_has_one_status_per_error() -> None:
    statuses = [status for _, status, _, _ in TABLE]
    assert len(set(statuses)) == len(statuses)


def test_the_body_names_the_field_and_carries_the_details() -> None:
    body = json.loads(
        answer_to(Conflict("cannot pause", status="draft", allowed=["start"]))["body"]
    )
    assert body == {
        "error": "conflict",
        "message": "cannot pause",
        "status": "draft",
        "allowed": ["start"],
    }
    body = json.loads(
        answer_to(InvalidInput("allocations must sum to 100", field="variants"))["body"]
    )
    assert body == {
        "error": "validation_error",
        "message": "allocations must sum to 100",
        "field": "variants",
    }
    assert "field" not in json.loads(answer_to(NotFound("gone"))["body"])


def test_an_internal_error_does_not_leak_its_message() -> None:
    body = json.loads(answer_to(RuntimeError("secret table name"))["body"])
    assert "secret" not in body["message"]


def client_error(code: str, reasons: list[str] | None = None) -> ClientError:
    response: dict[str, Any] = {"Error": {"Code": code, "Message": "from DynamoDB"}}
    if reasons is not None:
        response["CancellationReasons"] = [{"Code": r} for r in reasons]
    return ClientError(response, "TransactWriteItems")  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("error", "status"),
    [
        (client_error("ThrottlingException"), 503),
        (client_error("ProvisionedThroughputExceededException"), 503),
        (client_error("RequestLimitExceeded"), 503),
        (client_error("TransactionConflictException"), 503),
        (client_error("TransactionInProgressException"), 503),
        (client_error("InternalServerError"), 503),
        (client_error("TransactionCanceledException", ["None", "ThrottlingError"]), 503),
        (client_error("TransactionCanceledException", ["TransactionConflict"]), 503),
        (client_error("TransactionCanceledException", ["ValidationError"]), 500),
        (client_error("ValidationException"), 500),
        (client_error("ResourceNotFoundException"), 500),
    ],
    ids=lambda v: v.response["Error"]["Code"] if isinstance(v, ClientError) else str(v),
)
def test_dynamodb_errors_that_a_retry_can_get_past_are_503(error: ClientError, status: int) -> None:
    answer = answer_to(error)
    assert answer["statusCode"] == status
    assert ("Retry-After" in answer["headers"]) is (status == 503)


@pytest.mark.parametrize(
    "error",
    [
        ReadTimeoutError(endpoint_url="http://dynamodb"),
        ConnectTimeoutError(endpoint_url="http://dynamodb"),
        EndpointConnectionError(endpoint_url="http://dynamodb"),
    ],
    ids=lambda e: type(e).__name__,
)
def test_dynamodb_not_answering_after_retries_is_503(error: Exception) -> None:
    answer = answer_to(error)
    assert (answer["statusCode"], answer["headers"]["Retry-After"]) == (503, "1")


def test_domain_errors_share_one_base() -> None:
    for error, _, _, _ in TABLE[:-1]:
        assert isinstance(error, DomainError)


def test_a_503_says_what_happened_and_to_retry() -> None:
    busy = json.loads(answer_to(client_error("ThrottlingException"))["body"])
    late = json.loads(answer_to(ReadTimeoutError(endpoint_url="http://dynamodb"))["body"])
    failed = json.loads(answer_to(client_error("InternalServerError"))["body"])
    assert busy == {
        "error": "unavailable",
        "message": "DynamoDB is busy (throttled or contended), please retry",
    }
    assert late["message"] == "DynamoDB did not answer in time, please retry"
    assert failed["message"] == "DynamoDB failed on this call (InternalServerError), please retry"


def test_errors_without_a_dynamodb_answer_are_not_503() -> None:
    assert answer_to(ClientError({}, "GetItem"))["statusCode"] == 500  # type: ignore[arg-type]
    assert answer_to(ValueError("no response attribute"))["statusCode"] == 500


def test_a_domain_error_reads_as_its_message() -> None:
    # the scheduled job reports a failed experiment with str(error)
    assert str(NotFound("experiment 9 not found", field="id")) == "experiment 9 not found"
