"""The HTTP glue on its own: ids, flags, query values, JSON bodies and JSON answers.

README: non-numeric ids are 400, errors are JSON naming the field, nothing a client sends is a
500, and ``?declare_winner=true`` style flags.
"""

from __future__ import annotations

import base64
import json
import math
from decimal import Decimal
from typing import Any

import pytest

from ab_testing.errors import InvalidInput
from ab_testing.http import ApiRequest, api, json_safe, respond
from ab_testing.queries import StopQuery


def request(**event: Any) -> ApiRequest:
    return ApiRequest(event)


# ------------------------------------------------------------------ path ids


@pytest.mark.parametrize(
    ("raw", "expected"), [("1", 1), ("42", 42), ("999999999999999", 999999999999999)]
)
def test_path_ids_are_positive_integers_of_up_to_15_digits(raw: str, expected: int) -> None:
    assert request(pathParameters={"id": raw}).path_id() == expected


@pytest.mark.parametrize(
    "raw", ["0", "01", "-1", "1.5", "1e3", "abc", " 1", "1000000000000000", "", "١"]
)
def test_other_path_ids_are_a_400_naming_the_parameter(raw: str) -> None:
    with pytest.raises(InvalidInput) as caught:
        request(pathParameters={"id": raw}).path_id()
    assert caught.value.field == "id"
    assert repr(raw) in caught.value.message


def test_a_missing_path_id_is_a_400() -> None:
    with pytest.raises(InvalidInput) as missing:
        request(pathParameters=None).path_id()
    assert missing.value.message == "id must be a positive integer, got ''"
    with pytest.raises(InvalidInput) as caught:
        request(pathParameters={"id": "1"}).path_id("experiment_id")
    assert caught.value.field == "experiment_id"


def test_an_event_without_method_or_path_reads_them_as_empty() -> None:
    bare = request()
    assert (bare.method, bare.path, bare.path_parameters, bare.query_parameters) == ("", "", {}, {})


# ------------------------------------------------------------------ headers


def test_headers_are_found_whatever_their_case() -> None:
    """API Gateway passes header names as the client wrote them; HTTP names ignore case."""
    req = request(headers={"if-none-match": '"abc"', "X-Count": 3})
    assert req.header("If-None-Match") == '"abc"'
    assert req.header("IF-NONE-MATCH") == '"abc"'
    assert req.header("x-count") == "3"
    assert req.header("Accept") is None
    assert request(headers=None).header("If-None-Match") is None
    assert request().header("Accept") is None


# ------------------------------------------------------------------ query values and flags


def test_query_values_and_empty_ones() -> None:
    req = request(queryStringParameters={"status": "running", "experiment_type": ""})
    assert req.query("status") == "running"
    assert req.query("experiment_type") is None
    assert req.query("absent") is None
    assert request(queryStringParameters=None).query("status") is None


def stop_query(**query: str) -> StopQuery:
    return request(queryStringParameters=query or None).params(StopQuery)


@pytest.mark.parametrize("raw", ["true", "1", "yes", "", " TRUE ", "Yes"])
def test_flags_that_mean_yes(raw: str) -> None:
    assert stop_query(declare_winner=raw).declare_winner is True


@pytest.mark.parametrize("raw", ["false", "0", "no", "FALSE", " no "])
def test_flags_that_mean_no(raw: str) -> None:
    assert stop_query(promote=raw).promote is False


def test_an_absent_flag_is_no_and_an_unknown_parameter_is_named() -> None:
    assert stop_query().promote is False
    with pytest.raises(InvalidInput) as caught:
        stop_query(other="true")
    assert caught.value.field == "other"


def test_any_other_flag_value_is_a_400_naming_it() -> None:
    with pytest.raises(InvalidInput) as caught:
        stop_query(promote="maybe")
    assert caught.value.field == "promote"
    assert "'maybe'" in caught.value.message


# ------------------------------------------------------------------ JSON bodies


def test_a_json_body_is_parsed() -> None:
    assert request(body='{"a": [1, 2.5, "x", null]}').json() == {"a": [1, 2.5, "x", None]}


def test_a_base64_body_is_decoded_first() -> None:
    raw = base64.b64encode('{"name": "café"}'.encode()).decode()
    assert request(body=raw, isBase64Encoded=True).json() == {"name": "café"}


@pytest.mark.parametrize(
    ("event", "fragment"),
    [
        ({}, "needs a JSON body"),
        ({"body": ""}, "needs a JSON body"),
        ({"body": "{"}, "malformed JSON"),
        ({"body": '{"v": NaN}'}, "malformed JSON: NaN is not a JSON number"),
        ({"body": '{"v": Infinity}'}, "malformed JSON: Infinity is not a JSON number"),
        ({"body": '{"v": 1e400}'}, "too large"),
        ({"body": "[" * 100000 + "]" * 100000}, "nested too deeply"),
        ({"body": "!!!not base64", "isBase64Encoded": True}, "base64"),
        ({"body": base64.b64encode(b"\xff\xfe").decode(), "isBase64Encoded": True}, "base64"),
    ],
    ids=["none", "empty", "truncated", "nan", "infinity", "overflow", "deep", "b64", "utf8"],
)
def test_bodies_that_are_not_json_are_a_400_on_the_body(
    event: dict[str, Any], fragment: str
) -> None:
    with pytest.raises(InvalidInput) as caught:
        request(**event).json()
    assert caught.value.field == "body"
    assert fragment in caught.value.message


@pytest.mark.parametrize(
    ("event", "message"),
    [
        ({"body": None}, "the request needs a JSON body"),
        ({"body": "!!!not base64", "isBase64Encoded": True}, "the body is not valid base64 UTF-8"),
        ({"body": "[" * 100000 + "]" * 100000}, "the JSON body is nested too deeply"),
    ],
    ids=["none", "b64", "deep"],
)
def test_the_400s_on_a_body_say_what_is_wrong_in_full(event: dict[str, Any], message: str) -> None:
    with pytest.raises(InvalidInput) as caught:
        request(**event).json()
    assert caught.value.message == message


# ------------------------------------------------------------------ JSON answers


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (Decimal("3"), 3),
        (Decimal("-7"), -7),
        (Decimal("2.5"), 2.5),
        (Decimal("1E+3"), 1000),
        (Decimal(2**53 + 1), float(2**53 + 1)),
        (Decimal("NaN"), None),
        (Decimal("Infinity"), None),
        (math.nan, None),
        (-math.inf, None),
        (0.1, 0.1),
        ("text", "text"),
        (True, True),
        (None, None),
    ],
    ids=repr,
)
def test_json_safe_numbers(value: Any, expected: Any) -> None:
    got = json_safe(value)
    assert got == expected or (got is None and expected is None)
    assert type(got) is type(expected)


def test_json_safe_is_recursive_and_keys_become_strings() -> None:
    value = {1: [Decimal("1"), (math.nan, Decimal("0.5"))], "k": {"n": Decimal("2")}}
    assert json_safe(value) == {"1": [1, [None, 0.5]], "k": {"n": 2}}


def test_respond_writes_compact_json_with_its_content_type() -> None:
    answer = respond(201, {"a": Decimal("1"), "b": [math.inf]})
    assert answer == {
        "statusCode": 201,
        "headers": {"Content-Type": "application/json"},
        "body": '{"a":1,"b":[null]}',
    }


def test_a_handler_answer_is_200_or_the_status_it_gives() -> None:
    @api
    def plain(req: ApiRequest) -> dict[str, Any]:
        return {"path": req.path, "method": req.method}

    @api
    def created(req: ApiRequest) -> tuple[int, Any]:
        return 201, [1]

    answer = plain({"httpMethod": "GET", "path": "/p"}, None)
    assert (answer["statusCode"], json.loads(answer["body"])) == (
        200,
        {"path": "/p", "method": "GET"},
    )
    assert created({}, None)["statusCode"] == 201
    assert json.loads(created(None, None)["body"]) == [1]  # type: ignore[arg-type]
    assert "Retry-After" not in answer["headers"]


def test_a_handler_logs_with_the_api_gateway_request_id_as_correlation_id() -> None:
    """README (operations): every log line of an API call carries the requestId of the
    API Gateway access log, so one request can be followed from the gateway to the store."""
    from ab_testing.observability import logger
    from emulator.events import FakeLambdaContext, api_gateway_event

    @api
    def seen(req: ApiRequest) -> dict[str, Any]:
        return {"correlation_id": logger.get_correlation_id()}

    event = api_gateway_event(
        "GET", "/experiments", resource="/experiments", path_parameters=None, body=None
    )
    answer = seen(event, FakeLambdaContext("ListExperimentsFunction"))
    request_id = event["requestContext"]["requestId"]
    assert request_id
    assert json.loads(answer["body"]) == {"correlation_id": request_id}
