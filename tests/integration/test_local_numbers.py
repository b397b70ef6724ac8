"""The local DynamoDB keeps numbers as DynamoDB does: 38 significant digits, the rest refused.

moto adds numbers in Python's default decimal context (28 digits, rounded silently); DynamoDB
keeps 38 and refuses a result that would need more. Both ways of reaching moto (the shortcuts
and moto's own path) are checked.
"""

from __future__ import annotations

import decimal
from collections.abc import Iterator
from decimal import Decimal
from typing import Any

import pytest
from scipy import stats

from ab_testing.analysis import ExperimentAnalysis
from ab_testing.records import summed_totals
from emulator import moto_shortcuts
from tests.conftest import guide_experiment

KEY = {"experiment_id": {"N": "999"}, "sk": {"S": "numbers"}}
CONTROL = ["999999999.000001", "999999999.000003", "999999999.000002"]
TREATMENT = ["999999999.000002", "999999999.000004", "999999999.000003"]


@pytest.fixture(params=["shortcuts", "moto's own path"])
def path(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    moto_shortcuts.forget()
    monkeypatch.setenv("AB_MOTO_FAST", "1" if request.param == "shortcuts" else "0")
    yield request.param
    moto_shortcuts.forget()


def add(aws: Any, value: str) -> Any:
    return aws.update_item(
        TableName="ab_variants",
        Key=KEY,
        UpdateExpression="ADD #t :v",
        ExpressionAttributeNames={"#t": "total"},
        ExpressionAttributeValues={":v": {"N": value}},
    )


def total(aws: Any) -> Decimal:
    item = aws.get_item(TableName="ab_variants", Key=KEY, ConsistentRead=True)["Item"]
    return Decimal(item["total"]["N"])


def test_sums_keep_38_digits_and_a_39th_is_refused(path: str, aws: Any) -> None:
    # Given sums of squares of values near 1e9 with six decimals (31 significant digits)
    with decimal.localcontext(decimal.Context(prec=80, traps=[decimal.Inexact])):
        squares = [Decimal(v) ** 2 for v in CONTROL]
        exact = sum(squares, Decimal(0))
    for square in squares:
        add(aws, str(square))
    # Then the stored total is the exact sum (moto alone keeps 28 digits of it)
    assert total(aws) == exact
    assert len(total(aws).as_tuple().digits) > 28

    # When an ADD would need a 39th significant digit
    before = total(aws)
    with pytest.raises(aws.exceptions.ClientError) as refused:
        add(aws, "0.0000000000000000000001")
    # Then DynamoDB's error, and nothing changed
    assert refused.value.response["Error"]["Code"] == "ValidationException"
    assert "38 significant digits" in refused.value.response["Error"]["Message"]
    assert total(aws) == before

    # And inside a transaction: refused as a whole, the other update not applied either
    other = {"experiment_id": {"N": "999"}, "sk": {"S": "other"}}
    with pytest.raises(aws.exceptions.ClientError) as cancelled:
        aws.transact_write_items(
            TransactItems=[
                {
                    "Update": {
                        "TableName": "ab_variants",
                        "Key": other,
                        "UpdateExpression": "ADD n :one",
                        "ExpressionAttributeValues": {":one": {"N": "1"}},
                    }
                },
                {
                    "Update": {
                        "TableName": "ab_variants",
                        "Key": KEY,
                        "UpdateExpression": "ADD #t :v",
                        "ExpressionAttributeNames": {"#t": "total"},
                        # (moto reads a number without a point as an integer: "1E-30" fails)
                        "ExpressionAttributeValues": {
                            ":v": {"N": "0.000000000000000000000000000001"}
                        },
                    }
                },
            ]
        )
    assert cancelled.value.response["Error"]["Code"] == "ValidationException"
    assert total(aws) == before
    assert "Item" not in aws.get_item(TableName="ab_variants", Key=other, ConsistentRead=True)


def test_an_experiment_of_values_near_1e9_reads_as_the_numbers_do(path: str, service: Any) -> None:
    # Given a metric with six decimals, three users per variant
    metric = {"name": "latency_ms", "decimals": 6, "lower": 0, "upper": 1e9}
    body = guide_experiment(metrics=[metric], primary_metric="latency_ms")
    experiment_id = int(service.create_experiment(body)["id"])
    service.start_experiment(experiment_id)
    values: dict[int, list[str]] = {}
    user = 0
    while len(values.get(1, [])) < 3 or len(values.get(2, [])) < 3:
        variant = service.get_variant({"experiment_id": experiment_id, "user_id": user})
        variant_id = int(variant["variant"]["id"])
        own = values.setdefault(variant_id, [])
        if len(own) < 3:
            series = CONTROL if variant_id == 1 else TREATMENT
            own.append(series[len(own)])
            result = {
                "experiment_id": experiment_id,
                "user_id": user,
                "metric_name": "latency_ms",
                "metric_value": Decimal(series[len(own) - 1]),
            }
            assert service.record(result)["recorded"] is True
        user += 1

    # Then the running totals are the exact Decimal sums (in a context wide enough for them)
    items = service.store.query_experiment_items(experiment_id, prefix="totals#")
    stored = {v: t for (v, m), t in summed_totals(items).items() if m == "latency_ms"}
    with decimal.localcontext(decimal.Context(prec=80, traps=[decimal.Inexact])):
        for variant_id, own in values.items():
            exact = [Decimal(v) for v in own]
            assert Decimal(stored[variant_id].total) == sum(exact, Decimal(0))
            assert Decimal(stored[variant_id].total_sq) == sum((x * x for x in exact), Decimal(0))

    # And the analysis gives Welch's p of the same numbers (shifted: Welch does not move)
    analysis = ExperimentAnalysis(service).analyze(experiment_id)
    shifted = {
        k: [float(Decimal(v) - Decimal(999999999)) for v in own] for k, own in values.items()
    }
    expected = stats.ttest_ind(shifted[2], shifted[1], equal_var=False).pvalue
    assert "zero_variance" not in str(analysis["metrics"]["latency_ms"])
    assert analysis["p_value"] == pytest.approx(expected, rel=1e-6)
