"""The shortcuts into moto are used only when they answer as moto does; else moto's own path."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from typing import Any

import pytest

from emulator import moto_shortcuts
from emulator.dynamo import InProcessDynamo, configure_aws_environment, dynamodb_client
from tests.conftest import create_keyed_table

FALLBACK = "shortcuts do not fit this moto"


@pytest.fixture(autouse=True)
def decided_afresh(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """Each test decides anew (the shortcuts wanted, whatever the run's AB_MOTO_FAST), and
    leaves the next to decide on moto as installed."""
    monkeypatch.setenv("AB_MOTO_FAST", "1")
    moto_shortcuts.forget()
    yield
    moto_shortcuts.forget()


def quick_start(dynamo: InProcessDynamo) -> dict[str, Any]:
    """A table, a conditional put refused, an ADD, a transaction that rolls back; the item."""
    dynamo.start()
    try:
        client = dynamodb_client(dynamo.region)
        client.create_table(
            TableName="t",
            KeySchema=[{"AttributeName": "pk", "KeyType": "HASH"}],
            AttributeDefinitions=[{"AttributeName": "pk", "AttributeType": "S"}],
            BillingMode="PAY_PER_REQUEST",
        )
        key = {"pk": {"S": "a"}}
        client.put_item(TableName="t", Item=key, ConditionExpression="attribute_not_exists(pk)")
        with pytest.raises(client.exceptions.ConditionalCheckFailedException):
            client.put_item(TableName="t", Item=key, ConditionExpression="attribute_not_exists(pk)")
        add = {"UpdateExpression": "ADD n :v", "ExpressionAttributeValues": {":v": {"N": "1.5"}}}
        client.update_item(TableName="t", Key=key, **add)
        with pytest.raises(client.exceptions.TransactionCanceledException):
            client.transact_write_items(
                TransactItems=[
                    {"Update": {"TableName": "t", "Key": key, **add}},
                    {
                        "Put": {
                            "TableName": "t",
                            "Item": {"pk": {"S": "b"}},
                            "ConditionExpression": "attribute_exists(pk)",
                        }
                    },
                ]
            )
        with dynamo.lock:
            count, _ = dynamo.table_items("t")
        assert count == 1
        item: dict[str, Any] = client.get_item(TableName="t", Key=key, ConsistentRead=True)["Item"]
        return item
    finally:
        dynamo.stop()


def test_the_shortcuts_are_used_when_they_answer_as_moto_does(
    caplog: pytest.LogCaptureFixture,
) -> None:
    configure_aws_environment()
    # Given moto as installed (the lock's version) / When the in-process DynamoDB starts
    with caplog.at_level(logging.WARNING, logger="emulator.moto"):
        dynamo = InProcessDynamo("us-east-1")
    # Then the shortcuts passed their check, nothing was logged, and they answer correctly
    assert dynamo.fast is not None
    assert FALLBACK not in caplog.text
    assert quick_start(dynamo) == {"pk": {"S": "a"}, "n": {"N": "1.5"}}


def test_a_private_name_gone_from_moto_means_motos_own_path(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    import sys

    import moto.utilities.utils

    configure_aws_environment()
    # Given a moto without a name the shortcuts import (moto's own modules hold their own
    # reference to it), and the shortcuts not imported yet in this process
    monkeypatch.delattr(moto.utilities.utils, "get_partition")
    monkeypatch.delitem(sys.modules, "emulator.moto_answers")
    # When the in-process DynamoDB starts
    with caplog.at_level(logging.WARNING, logger="emulator.moto"):
        dynamo = InProcessDynamo("us-east-1")
    # Then one line names the moto version and what failed, and moto's own path answers
    # every call as it should
    assert dynamo.fast is None
    lines = [r.getMessage() for r in caplog.records if FALLBACK in r.getMessage()]
    assert len(lines) == 1
    assert lines[0].startswith(f"moto {moto_shortcuts.moto_version()}: ")
    assert "get_partition" in lines[0]
    assert quick_start(dynamo) == {"pk": {"S": "a"}, "n": {"N": "1.5"}}
    # and moto runs as installed: no shortcut is left applied
    from emulator import moto_answers, moto_expressions, moto_transactions

    assert not (moto_answers._applied or moto_expressions._applied or moto_transactions._applied)


def test_a_shortcut_that_answers_differently_is_not_used(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    from emulator import moto_answers

    configure_aws_environment()
    real_wire = moto_answers.wire

    def rounded(value: Any) -> Any:  # a shortcut gone wrong: numbers lose their fraction
        if isinstance(value, dict) and set(value) == {"N"}:
            return {"N": str(int(float(value["N"])))}
        return real_wire(value)

    # Given a shortcut whose answers differ from moto's (it raises nothing)
    monkeypatch.setattr(moto_answers, "wire", rounded)
    with caplog.at_level(logging.WARNING, logger="emulator.moto"):
        dynamo = InProcessDynamo("us-east-1")
    # Then the probe saw the difference, and the fraction is kept on moto's own path
    assert dynamo.fast is None
    assert "answered" in caplog.text and FALLBACK in caplog.text
    assert quick_start(dynamo)["n"] == {"N": "1.5"}


def test_ab_moto_fast_0_takes_motos_own_path_unpatched(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    from emulator import moto_answers, moto_expressions, moto_transactions

    configure_aws_environment()
    InProcessDynamo("us-east-1")  # the shortcuts applied in this process first
    # Given AB_MOTO_FAST=0 / When the in-process DynamoDB is made
    monkeypatch.setenv("AB_MOTO_FAST", "0")
    with caplog.at_level(logging.WARNING, logger="emulator.moto"):
        dynamo = InProcessDynamo("us-east-1")
    # Then no shortcut is applied, nothing is logged, and moto answers every call
    assert dynamo.fast is None
    assert not (moto_answers._applied or moto_expressions._applied or moto_transactions._applied)
    assert FALLBACK not in caplog.text
    assert quick_start(dynamo) == {"pk": {"S": "a"}, "n": {"N": "1.5"}}


def every_page(dynamo: InProcessDynamo, forward: bool) -> list[Any]:
    """Three partitions of 40 items (one more item elsewhere); each partition read in pages of
    7, forward or backward, with and without a key condition: every answer."""
    dynamo.start()
    try:
        client = dynamodb_client(dynamo.region)
        create_keyed_table(client, "t", range_type="N")
        for pk in ("a", "b", "c"):
            for sk in range(40):  # numbers: the order is numeric, not the order of their text
                item = {"pk": {"S": pk}, "sk": {"N": str(sk * 3 % 40)}, "v": {"S": "x" * sk}}
                client.put_item(TableName="t", Item=item)
        pages = []
        for pk, condition in (("a", ""), ("b", " AND sk > :low"), ("nowhere", "")):
            query: dict[str, Any] = {
                "TableName": "t",
                "KeyConditionExpression": "pk = :pk" + condition,
                "ExpressionAttributeValues": {
                    ":pk": {"S": pk},
                    **({":low": {"N": "12"}} if condition else {}),
                },
                "Limit": 7,
                "ScanIndexForward": forward,
            }
            while True:
                page = client.query(**query)
                page.pop("ResponseMetadata")
                pages.append(page)
                if "LastEvaluatedKey" not in page:
                    break
                query["ExclusiveStartKey"] = page["LastEvaluatedKey"]
        return pages
    finally:
        dynamo.stop()


@pytest.mark.parametrize("forward", [True, False], ids=["forward", "backward"])
def test_a_query_read_page_by_page_answers_as_on_motos_own_path(
    monkeypatch: pytest.MonkeyPatch, forward: bool
) -> None:
    configure_aws_environment()
    # Given the shortcuts (which read a Query's partition only) / When every partition is read
    # in pages, and read again on moto's own path
    fast = InProcessDynamo("us-east-1")
    assert fast.fast is not None
    through_shortcuts = every_page(fast, forward)
    monkeypatch.setenv("AB_MOTO_FAST", "0")
    through_moto = every_page(InProcessDynamo("us-east-1"), forward)
    # Then every page is the same, and together they hold every item once, in key order
    assert through_shortcuts == through_moto
    keys = [int(i["sk"]["N"]) for p in through_shortcuts[:6] for i in p["Items"]]
    assert keys == sorted(range(40), reverse=not forward)


def test_a_query_that_starts_its_page_wrongly_is_not_used(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    import bisect
    import types

    from emulator import moto_answers

    configure_aws_environment()
    # Given a page start one item too early (the last item of the page before, again)
    off_by_one = types.SimpleNamespace(
        bisect_right=lambda keys, key: bisect.bisect_right(keys, key) - 1,
        bisect_left=bisect.bisect_left,
    )
    monkeypatch.setattr(moto_answers, "bisect", off_by_one)
    # When the in-process DynamoDB starts / Then the probe caught it: moto's own path
    with caplog.at_level(logging.WARNING, logger="emulator.moto"):
        dynamo = InProcessDynamo("us-east-1")
    assert dynamo.fast is None
    assert "Query answered" in caplog.text and FALLBACK in caplog.text
