"""The fast answers of item calls are exactly what moto's own serializer writes."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest
from botocore.exceptions import ClientError
from moto.core.responses import ActionResult

from emulator.dynamo import ITEM_OPERATIONS, InProcessDynamo, dynamodb_client
from emulator.moto_answers import ItemCallHandler
from tests.conftest import create_keyed_table

KEY = {"pk": {"S": "a"}, "sk": {"S": "1"}}
ITEM = {
    **KEY,
    "b": {"B": b"\x00\xff"},
    "n": {"N": "1.50"},
    "m": {
        "M": {
            "x": {
                "L": [
                    {"B": b"\x01"},
                    {"NULL": True},
                    {"BOOL": False},
                    {"SS": ["a", "b"]},
                    {"NS": ["1", "2"]},
                    {"BS": [b"\x02"]},
                ]
            }
        }
    },
}


@pytest.fixture
def compared(monkeypatch: pytest.MonkeyPatch) -> Iterator[tuple[Any, list[tuple[str, Any, Any]]]]:
    """A client whose every answer is also written by moto's serializer, for comparison."""
    seen: list[tuple[str, Any, Any]] = []
    fast = ItemCallHandler.serialized

    def both(self: ItemCallHandler, action_result: ActionResult) -> Any:
        ours = fast(self, action_result)
        theirs = super(ItemCallHandler, self).serialized(action_result)
        seen.append((self._get_action(), ours, theirs))
        return ours

    monkeypatch.setattr(ItemCallHandler, "serialized", both)
    dynamo = InProcessDynamo("us-east-1")
    dynamo.start()
    client = dynamodb_client("us-east-1")
    create_keyed_table(client, "t")
    try:
        yield client, seen
    finally:
        dynamo.stop()


def every_item_call(client: Any) -> None:
    client.put_item(TableName="t", Item=ITEM)
    client.put_item(TableName="t", Item=ITEM, ReturnValues="ALL_OLD")
    client.get_item(TableName="t", Key=KEY)
    client.get_item(TableName="t", Key={**KEY, "sk": {"S": "2"}})
    add = {"UpdateExpression": "ADD n :one", "ExpressionAttributeValues": {":one": {"N": "1"}}}
    client.update_item(TableName="t", Key=KEY, ReturnValues="ALL_NEW", **add)
    client.update_item(TableName="t", Key=KEY, **add)
    client.query(
        TableName="t",
        KeyConditionExpression="pk = :p",
        ExpressionAttributeValues={":p": {"S": "a"}},
        Limit=1,
    )
    client.scan(TableName="t")
    client.batch_get_item(RequestItems={"t": {"Keys": [KEY]}})
    client.transact_write_items(
        TransactItems=[{"Put": {"TableName": "t", "Item": {**KEY, "sk": {"S": "9"}}}}]
    )
    client.transact_get_items(TransactItems=[{"Get": {"TableName": "t", "Key": KEY}}])
    client.delete_item(TableName="t", Key={**KEY, "sk": {"S": "9"}}, ReturnValues="ALL_OLD")
    client.batch_write_item(
        RequestItems={"t": [{"PutRequest": {"Item": {**KEY, "sk": {"S": "3"}}}}]}
    )
    with pytest.raises(ClientError) as refused:
        client.put_item(
            TableName="t",
            Item=ITEM,
            ConditionExpression="attribute_not_exists(pk)",
            ReturnValuesOnConditionCheckFailure="ALL_OLD",
        )
    assert refused.value.response["Item"]["b"] == {"B": b"\x00\xff"}
    with pytest.raises(ClientError) as cancelled:
        client.transact_write_items(
            TransactItems=[
                {
                    "Put": {
                        "TableName": "t",
                        "Item": ITEM,
                        "ConditionExpression": "attribute_not_exists(pk)",
                        "ReturnValuesOnConditionCheckFailure": "ALL_OLD",
                    }
                }
            ]
        )
    assert cancelled.value.response["CancellationReasons"][0]["Item"]["b"]["B"] == b"\x00\xff"


def test_item_calls_answer_what_motos_serializer_would(
    compared: tuple[Any, list[tuple[str, Any, Any]]],
) -> None:
    # Given a client whose answers are written both ways / When every item call is made
    client, seen = compared
    every_item_call(client)
    # Then every item call was answered, and both ways wrote the same status and JSON
    assert {action for action, _, _ in seen} >= ITEM_OPERATIONS
    for action, ours, theirs in seen:
        assert ours[0] == theirs[0], action
        assert json.loads(ours[2] or "{}") == json.loads(theirs[2] or "{}"), action
    # And the values came back through boto3 intact
    assert client.get_item(TableName="t", Key=KEY)["Item"]["m"] == ITEM["m"]


def motos_parse(operation: str, body: str) -> Any:
    """The parameters moto's own model-driven parser reads from a DynamoDB call's body."""
    from moto.core.parse import PROTOCOL_PARSERS
    from moto.core.utils import get_service_model

    model = get_service_model("dynamodb").operation_model(operation)
    parser = PROTOCOL_PARSERS["json"](model, map_type=dict)
    request = {"method": "POST", "values": {}, "headers": {}, "body": body}
    return parser.parse({**request, "url_path": "/", "url_params": {}})  # type: ignore[typeddict-item]


def test_item_call_parameters_are_read_as_motos_parser_reads_them(
    compared: tuple[Any, list[tuple[str, Any, Any]]], monkeypatch: pytest.MonkeyPatch
) -> None:
    from emulator import moto_answers

    # Given every body the item calls send, read both ways
    client, _ = compared
    read: list[tuple[str, Any, Any]] = []
    fast = moto_answers.parse_params

    def both(operation: str, text: str) -> Any:
        read.append((operation, fast(operation, text), motos_parse(operation, text)))
        return read[-1][1]

    monkeypatch.setattr(moto_answers, "parse_params", both)
    # When every item call is made
    every_item_call(client)
    # Then both read the same parameters: same keys in the same order, same types (bytes)
    assert {operation for operation, _, _ in read} >= ITEM_OPERATIONS
    for operation, ours, theirs in read:
        assert repr(ours) == repr(theirs), operation
    first_put = next(ours for operation, ours, _ in read if operation == "PutItem")
    assert first_put["Item"]["b"] == {"B": b"\x00\xff"}


@pytest.mark.parametrize(
    ("operation", "body"),
    [
        ("PutItem", ""),
        ("PutItem", "not json"),
        ("PutItem", '{"TableName": "t", "Unknown": 1, "ReturnValues": null, "Item": {}}'),
        ("PutItem", '{"Item": {"a": {"S": null}, "b": {"B": "AP8=", "S": "x"}}, "TableName": "t"}'),
        ("Query", '{"Limit": "5", "TableName": "t", "ExclusiveStartKey": {"k": {"N": "1"}}}'),
        ("ListBackups", '{"TimeRangeLowerBound": 1700000000, "Limit": 3}'),
        ("DescribeLimits", "{}"),
        ("BatchWriteItem", '{"RequestItems": {"t": [{"DeleteRequest": {"Key": {}}}]}}'),
    ],
)
def test_odd_bodies_are_read_as_motos_parser_reads_them(operation: str, body: str) -> None:
    from emulator.moto_answers import parse_params

    assert repr(parse_params(operation, body)) == repr(motos_parse(operation, body))


def test_a_value_that_looks_like_a_form_is_stored_as_sent(
    compared: tuple[Any, list[tuple[str, Any, Any]]],
) -> None:
    # Given values that moto's request reading took for a form field and an XML request id
    client, _ = compared
    values = ["a&Action=ListTables&b=1", "<RequestId>x</RequestId>"]
    for i, value in enumerate(values):
        # When each is written
        client.put_item(TableName="t", Item={**KEY, "sk": {"S": f"v{i}"}, "v": {"S": value}})
    # Then each is stored and answered as sent (not dispatched as ListTables, not rewritten)
    for i, value in enumerate(values):
        got = client.get_item(TableName="t", Key={**KEY, "sk": {"S": f"v{i}"}})
        assert got["Item"]["v"] == {"S": value}


def test_an_item_call_answers_what_motos_dispatch_answers(monkeypatch: pytest.MonkeyPatch) -> None:
    from emulator.dynamo import JSON_CONTENT, TARGET_PREFIX

    # Given the in-process DynamoDB filing its tables under an account set for moto
    monkeypatch.setenv("MOTO_ACCOUNT_ID", "111122223333")
    dynamo = InProcessDynamo("us-east-1")
    dynamo.start()
    try:
        client = dynamodb_client("us-east-1")
        client.create_table(
            TableName="t",
            KeySchema=[{"AttributeName": "pk", "KeyType": "HASH"}],
            AttributeDefinitions=[{"AttributeName": "pk", "AttributeType": "S"}],
            BillingMode="PAY_PER_REQUEST",
        )
        # When an item is written, and read both ways
        client.put_item(TableName="t", Item={"pk": {"S": "a"}, "b": {"B": b"\x01"}})
        target = TARGET_PREFIX + "GetItem"
        body = b'{"TableName":"t","Key":{"pk":{"S":"a"}}}'
        with dynamo.lock:
            ours = ItemCallHandler.answer("GetItem", body, "us-east-1", dynamo.url, target)
            headers = {"X-Amz-Target": target, "Content-Type": JSON_CONTENT}
            theirs = dynamo.moto.answer("POST", headers, body)
    finally:
        dynamo.stop()
    # Then both found it, and answered the same status, body and the headers botocore reads
    assert ours[0] == theirs[0] == 200
    assert json.loads(ours[2]) == json.loads(theirs[2])
    assert json.loads(ours[2])["Item"]["b"] == {"B": "AQ=="}
    ours_headers = {k.lower(): v for k, v in ours[1].items()}
    theirs_headers = {k.lower(): v for k, v in theirs[1].items()}
    for name in ("content-type", "server"):
        assert ours_headers[name] == theirs_headers[name]
    assert len(ours_headers["x-amzn-requestid"]) == len(theirs_headers["x-amzn-requestid"])


def test_the_copies_moto_makes_of_an_item_are_not_kept(
    compared: tuple[Any, list[tuple[str, Any, Any]]],
) -> None:
    import gc

    from moto.dynamodb.models.dynamo_type import Item

    # Given a stored item / When it is updated many times
    client, _ = compared
    client.put_item(TableName="t", Item=KEY)
    gc.collect()
    listed = len(Item.instances_tracked)
    alive = sum(isinstance(o, Item) for o in gc.get_objects())
    add = {"UpdateExpression": "ADD n :one", "ExpressionAttributeValues": {":one": {"N": "1"}}}
    for _ in range(50):
        client.update_item(TableName="t", Key=KEY, **add)
    gc.collect()
    # Then the item holds every update, and no Item is left over from them: none listed by
    # moto, and no more alive than before
    assert client.get_item(TableName="t", Key=KEY)["Item"]["n"] == {"N": "50"}
    assert len(Item.instances_tracked) == listed
    assert sum(isinstance(o, Item) for o in gc.get_objects()) <= alive
