"""The item-level rollback keeps moto's transaction semantics: all or nothing."""

from __future__ import annotations

from typing import Any

import pytest

VARIANT_KEY = {"experiment_id": {"N": "1"}, "sk": {"S": "x"}}
EXPERIMENT_KEY = {"pk": {"S": "a"}}


def three_writes(expected_n: int) -> list[dict[str, Any]]:
    """Raise the variant item, add a new one, raise the experiment item if n is expected_n."""
    one = {":one": {"N": "1"}}
    return [
        {
            "Update": {
                "TableName": "ab_variants",
                "Key": VARIANT_KEY,
                "UpdateExpression": "ADD n :one",
                "ExpressionAttributeValues": one,
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
                "Key": EXPERIMENT_KEY,
                "UpdateExpression": "ADD n :one",
                "ConditionExpression": "n = :want",
                "ExpressionAttributeValues": {**one, ":want": {"N": str(expected_n)}},
            }
        },
    ]


def n_of(aws: Any, table: str, key: dict[str, Any]) -> str:
    return str(aws.get_item(TableName=table, Key=key)["Item"]["n"]["N"])


def test_failed_transaction_changes_nothing_and_success_applies_all(aws: Any) -> None:
    # Given an item in ab_experiments and one in ab_variants, both with n = 1
    aws.put_item(TableName="ab_experiments", Item={**EXPERIMENT_KEY, "n": {"N": "1"}})
    aws.put_item(TableName="ab_variants", Item={**VARIANT_KEY, "n": {"N": "1"}})

    # When the transaction's last condition fails
    with pytest.raises(aws.exceptions.TransactionCanceledException):
        aws.transact_write_items(TransactItems=three_writes(expected_n=2))

    # Then every item is as it was
    assert aws.scan(TableName="ab_variants")["Count"] == 1
    assert n_of(aws, "ab_variants", VARIANT_KEY) == "1"
    assert n_of(aws, "ab_experiments", EXPERIMENT_KEY) == "1"

    # And when the condition holds, all of it applies
    aws.transact_write_items(TransactItems=three_writes(expected_n=1))
    assert aws.scan(TableName="ab_variants")["Count"] == 2
    assert n_of(aws, "ab_variants", VARIANT_KEY) == "2"
    assert n_of(aws, "ab_experiments", EXPERIMENT_KEY) == "2"
