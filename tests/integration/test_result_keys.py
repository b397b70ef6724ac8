"""Result ids that cannot collide, and the migration of items stored under the old keys."""

from __future__ import annotations

from typing import Any

from ab_testing import dynamo, migrate_keys
from tests.conftest import guide_experiment, invoke

RECORD = "/api/v1/experiments/record-result"


def _record(user: str, key: str, value: float = 4.0) -> dict[str, Any]:
    status, answer = invoke(
        "record_result",
        "POST",
        RECORD,
        body={
            "experiment_name": "Lead Qualification Prompt Test",
            "metric_name": "satisfaction_score",
            "metric_value": value,
            "user_id": user,
            "idempotency_key": key,
        },
    )
    assert status in (200, 201), answer
    return dict(answer)


def _started(service: Any, *users: str) -> int:
    experiment_id = int(service.create_experiment(guide_experiment())["id"])
    service.start_experiment(experiment_id)
    for user in users:
        service.get_variant({"experiment_id": experiment_id, "user_id": user})
    return experiment_id


def test_the_old_collision_is_two_distinct_results(service: Any, aws: Any) -> None:
    # Given users "x#y" and "x", both assigned
    experiment_id = _started(service, "x#y", "x")
    # When "x#y" records with key "z" and "x" with key "y#z"
    first = _record("x#y", "z")
    second = _record("x", "y#z")
    # Then both count, under different ids, and both raw results are stored
    assert first["duplicate"] is False and second["duplicate"] is False
    assert first["result_id"] != second["result_id"]
    stored = list(service.ledger.raw_results(experiment_id))
    assert sorted(i["unit"] for i in stored) == ["user:x", "user:x#y"]
    # And a retry of each is still a duplicate of its own
    assert _record("x#y", "z")["duplicate"] is True
    assert _record("x", "y#z")["duplicate"] is True


def _old_result_id(item: dict[str, Any]) -> str:
    return f"key#{item['metric_name']}#{item['unit']}#{item['idempotency_key']}"


def test_migration_moves_old_ids_and_retries_stay_duplicates(service: Any, aws: Any) -> None:
    # Given results stored before escaping: ids built by plain joining, including a chain
    # where one item's new id is another item's old id
    experiment_id = _started(service, "a#b", "a%23b", "plain")
    for user in ("a#b", "a%23b", "plain"):
        _record(user, "k1")
    store = service.store
    for item in list(service.ledger.raw_results(experiment_id)):
        old = _old_result_id(item)
        if old != item["result_id"]:
            key = {"experiment_id": experiment_id, "result_id": item["result_id"]}
            store.client.delete_item(TableName=store.results, Key=dynamo.serialize(key))
            store.client.put_item(
                TableName=store.results, Item=dynamo.serialize({**item, "result_id": old})
            )
    # An experiment name with a separator, locked under its old key
    named = int(service.create_experiment(guide_experiment(name="A#B 50%"))["id"])
    store.client.delete_item(
        TableName=store.experiments, Key=dynamo.serialize({"pk": "name#A%23B 50%25"})
    )
    store.client.put_item(
        TableName=store.experiments,
        Item=dynamo.serialize({"pk": "name#A#B 50%", "experiment_id": named}),
    )
    # When the migration runs (a dry run first changes nothing)
    assert migrate_keys.migrate(store, dry_run=True).moved == 3
    report = migrate_keys.migrate(store)
    # Then the items moved, a second run finds nothing, and retries are still duplicates
    assert (report.moved, report.conflicts) == (3, 0)
    assert migrate_keys.migrate(store).moved == 0
    for user in ("a#b", "a%23b", "plain"):
        assert _record(user, "k1")["duplicate"] is True
    assert len(list(service.ledger.raw_results(experiment_id))) == 3
    assert service.store.experiment_id_by_name("A#B 50%") == named
