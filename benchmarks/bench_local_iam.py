"""What local IAM enforcement adds to a DynamoDB call: the check alone, and a call on moto.

Prints microseconds per check of record-result's transaction (three items on three tables),
and the time of a moto GetItem made inside a function (checked) against the same call made
outside any function (not checked), as a ratio.
"""

from __future__ import annotations

import time

import _local  # noqa: F401  (the project on sys.path, AWS only moto)
import boto3
from moto import mock_aws

from emulator import iam
from emulator.template import create_tables, load_template

CHECKS = 20_000
CALLS = 2_000
TRANSACTION = {
    "TransactItems": [
        {"Put": {"TableName": "ab_results"}},
        {"Update": {"TableName": "ab_variants"}},
        {"Update": {"TableName": "ab_assignments"}},
    ]
}


def per_check_us(enforcer: iam.Enforcer) -> float:
    start = time.perf_counter()
    for _ in range(CHECKS):
        enforcer.check("RecordResultFunction", "TransactWriteItems", TRANSACTION)
    return (time.perf_counter() - start) / CHECKS * 1e6


def get_items(client: object, checked: bool) -> float:
    key = {"pk": {"S": "experiment#1"}}
    start = time.perf_counter()
    for _ in range(CALLS):
        if checked:
            with iam.acting_as("GetVariantFunction"):
                client.get_item(TableName="ab_experiments", Key=key)  # type: ignore[attr-defined]
        else:
            client.get_item(TableName="ab_experiments", Key=key)  # type: ignore[attr-defined]
    return (time.perf_counter() - start) / CALLS * 1e6


def main() -> None:
    template = load_template()
    enforcer = iam.Enforcer.from_template(template)
    print(f"check of a 3-item transaction: {per_check_us(enforcer):.1f} us")
    iam.install(enforcer)
    with mock_aws():
        client = boto3.client("dynamodb", region_name="us-east-1")
        create_tables(client, template)
        get_items(client, True)  # warm both paths
        plain, checked = get_items(client, False), get_items(client, True)
    print(f"moto GetItem: {plain:.0f} us unchecked, {checked:.0f} us checked")
    print(f"ratio checked/unchecked: {checked / plain:.3f}")


if __name__ == "__main__":
    main()
