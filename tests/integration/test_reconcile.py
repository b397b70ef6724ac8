"""Reconciliation: clean after normal traffic, and it finds a tampered totals item exactly."""

from __future__ import annotations

import random
from decimal import Decimal
from typing import Any

from tests.conftest import guide_experiment

USERS = list(range(1, 13))


def traffic(service: Any, experiment_id: int, seed: int = 3, count: int = 80) -> None:
    """Ordinary traffic: every user asks for a variant, then reports a few results."""
    rng = random.Random(seed)
    for user in USERS:
        service.get_variant({"experiment_id": experiment_id, "user_id": user})
    for _ in range(count):
        metric, value = rng.choice(
            [
                ("resolution_rate", rng.choice([0, 1])),
                ("satisfaction_score", rng.randint(0, 10) / 2),
                ("response_time", rng.randint(50, 4000) / 100),
            ]
        )
        answer = service.record(
            {
                "experiment_id": experiment_id,
                "user_id": rng.choice(USERS),
                "metric_name": metric,
                "metric_value": value,
            }
        )
        assert answer["recorded"] is True


def started(service: Any) -> int:
    experiment_id = int(service.create_experiment(guide_experiment())["id"])
    service.start_experiment(experiment_id)
    return experiment_id


def totals_item(aws: Any, experiment_id: int, metric: str) -> dict[str, Any]:
    items = aws.query(
        TableName="ab_variants",
        KeyConditionExpression="experiment_id = :e AND begins_with(sk, :p)",
        ExpressionAttributeValues={":e": {"N": str(experiment_id)}, ":p": {"S": "totals#"}},
    )["Items"]
    return next(i for i in items if i["metric"]["S"] == metric)


def test_clean_after_normal_traffic(aws: Any, service: Any) -> None:
    from ab_testing.reconcile import reconcile

    # Given a running experiment with ordinary traffic
    experiment_id = started(service)
    traffic(service, experiment_id)

    # When it is reconciled
    report = reconcile(service.store, experiment_id)

    # Then every total matches the raw results
    assert report["clean"] is True
    assert report["differences"] == []
    assert report["results_read"] == 80
    raw = aws.scan(TableName="ab_results")["Items"]
    pairs = {(i["variant_id"]["N"], i["metric_name"]["S"]) for i in raw}
    assert report["totals_checked"] == len(pairs)  # at most 2 variants x 3 metrics


def test_reports_exactly_the_tampered_field(aws: Any, service: Any) -> None:
    from ab_testing.reconcile import reconcile

    # Given a clean experiment
    experiment_id = started(service)
    traffic(service, experiment_id)
    assert reconcile(service.store, experiment_id)["clean"]

    # When someone adds 1 to a totals item's result count directly in DynamoDB
    item = totals_item(aws, experiment_id, "satisfaction_score")
    before = int(item["results"]["N"])
    aws.update_item(
        TableName="ab_variants",
        Key={"experiment_id": item["experiment_id"], "sk": item["sk"]},
        UpdateExpression="ADD results :one",
        ExpressionAttributeValues={":one": {"N": "1"}},
    )

    # Then reconciliation reports exactly that difference
    report = reconcile(service.store, experiment_id)
    assert report["clean"] is False
    [difference] = report["differences"]
    assert difference == {
        "variant_id": int(item["variant_id"]["N"]),
        "metric": "satisfaction_score",
        "field": "results",
        "from_results": difference["from_results"],
        "stored": difference["stored"],
    }
    assert Decimal(difference["from_results"]) == before
    assert Decimal(difference["stored"]) == before + 1


def test_reports_a_tampered_total_and_a_lost_extreme(aws: Any, service: Any) -> None:
    from ab_testing.reconcile import reconcile

    # Given a clean experiment
    experiment_id = started(service)
    traffic(service, experiment_id)

    # When a total is changed and a max is removed
    item = totals_item(aws, experiment_id, "response_time")
    total, high = item["total"]["N"], item["max_y"]["N"]
    aws.update_item(
        TableName="ab_variants",
        Key={"experiment_id": item["experiment_id"], "sk": item["sk"]},
        UpdateExpression="ADD #t :d REMOVE max_y",
        ExpressionAttributeNames={"#t": "total"},
        ExpressionAttributeValues={":d": {"N": "0.25"}},
    )

    # Then both differences are reported, and nothing else
    report = reconcile(service.store, experiment_id)
    variant = int(item["variant_id"]["N"])
    assert [(d["variant_id"], d["metric"], d["field"]) for d in report["differences"]] == [
        (variant, "response_time", "total"),
        (variant, "response_time", "max"),
    ]
    total_diff, max_diff = report["differences"]
    assert Decimal(total_diff["from_results"]) == Decimal(total)
    assert Decimal(total_diff["stored"]) == Decimal(total) + Decimal("0.25")
    assert Decimal(max_diff["from_results"]) == Decimal(high)
    assert max_diff["stored"] is None


def test_differences_show_round_numbers_plainly(aws: Any, service: Any) -> None:
    from ab_testing.reconcile import reconcile

    # Given one user with exactly 10 results on one metric
    experiment_id = started(service)
    service.get_variant({"experiment_id": experiment_id, "user_id": 1})
    for _ in range(10):
        service.record(
            {
                "experiment_id": experiment_id,
                "user_id": 1,
                "metric_name": "resolution_rate",
                "metric_value": 1,
            }
        )

    # When its result count is tampered with
    item = totals_item(aws, experiment_id, "resolution_rate")
    aws.update_item(
        TableName="ab_variants",
        Key={"experiment_id": item["experiment_id"], "sk": item["sk"]},
        UpdateExpression="ADD results :one",
        ExpressionAttributeValues={":one": {"N": "1"}},
    )

    # Then the difference reads 10 against 11
    [difference] = reconcile(service.store, experiment_id)["differences"]
    assert (difference["from_results"], difference["stored"]) == ("10", "11")


def test_clean_after_full_precision_float_values(service: Any) -> None:
    from ab_testing.reconcile import reconcile

    # Given a running experiment
    experiment_id = started(service)
    for user in USERS:
        service.get_variant({"experiment_id": experiment_id, "user_id": user})

    # When clients send floats with every digit (e.g. a computed satisfaction average)
    rng = random.Random(1)
    for index in range(120):
        service.record(
            {
                "experiment_id": experiment_id,
                "user_id": USERS[index % len(USERS)],
                "metric_name": "satisfaction_score",
                "metric_value": rng.uniform(0, 5),
            }
        )

    # Then reconciliation is still clean (values are kept to six decimal places)
    report = reconcile(service.store, experiment_id)
    assert report["clean"], report["differences"]
