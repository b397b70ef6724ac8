"""The item-level rollback keeps moto's transaction semantics: all or nothing."""

from __future__ import annotations

from typing import Any

import pytest


def test_failed_transaction_changes_nothing_and_success_applies_all(aws: Any) -> None:
    # Given an item in ab_experiments and one in ab_variants
    aws.put_item(TableName="ab_experiments", Item={"pk": {"S": "a"}, "n": {"N": "1"}})
    aws.put_item(
        TableName="ab_variants",
        Item={"experiment_id": {"N": "1"}, "sk": {"S": "x"}, "n": {"N": "1"}},
    )

    # When a transaction updates both, adds a new item, and then fails a condition
    with pytest.raises(aws.exceptions.TransactionCanceledException):
        aws.transact_write_items(
            TransactItems=[
                {
                    "Update": {
                        "TableName": "ab_variants",
                        "Key": {"experiment_id": {"N": "1"}, "sk": {"S": "x"}},
                        "UpdateExpression": "ADD n :one",
                        "ExpressionAttributeValues": {":one": {"N": "1"}},
                    }
                },
                {
                    "Put": {
                        "TableName": "ab_variants",
                        "Item": {"experiment_id": {"N": "1"}, "sk": {"S": "new"}},
                    }
                },
                {
                    "Update": {
                        "TableName": "ab_experiments",
                        "Key": {"pk": {"S": "a"}},
                        "UpdateExpression": "ADD n :one",
                        "ConditionExpression": "n = :two",
                        "ExpressionAttributeValues": {":one": {"N": "1"}, ":two": {"N": "2"}},
                    }
                },
            ]
        )

    # Then every item is as it was
    assert aws.scan(TableName="ab_variants")["Count"] == 1
    got = aws.get_item(
        TableName="ab_variants", Key={"experiment_id": {"N": "1"}, "sk": {"S": "x"}}
    )["Item"]
    assert got["n"] == {"N": "1"}

    # And when the condition holds, all of it applies
    aws.transact_write_items(
        TransactItems=[
            {
                "Update": {
                    "TableName": "ab_variants",
                    "Key": {"experiment_id": {"N": "1"}, "sk": {"S": "x"}},
                    "UpdateExpression": "ADD n :one",
                    "ExpressionAttributeValues": {":one": {"N": "1"}},
                }
            },
            {
                "Update": {
                    "TableName": "ab_experiments",
                    "Key": {"pk": {"S": "a"}},
                    "UpdateExpression": "ADD n :one",
                    "ConditionExpression": "n = :n1",
                    "ExpressionAttributeValues": {":one": {"N": "1"}, ":n1": {"N": "1"}},
                }
            },
        ]
    )
    assert aws.get_item(TableName="ab_experiments", Key={"pk": {"S": "a"}})["Item"]["n"] == {
        "N": "2"
    }
