"""Moves items stored under the old, unescaped composite keys to the escaped ones.

    python -m ab_testing.migrate_keys [--dry-run]

Before escaping, a result id was ``key#<metric>#<unit>#<key>`` with the parts as given, and a
name lock ``name#<name>``. Only items whose parts hold "#" or "%" have a different key now:
each is moved, in one transaction, from its old key to the new one (a Put of the same item
under the new key, guarded by attribute_not_exists, and a Delete of the old key, guarded by
attribute_exists), so a crash leaves every item either moved or not and a second run finishes the
work. The new key is computed from the attributes the item keeps (metric_name, unit,
idempotency_key; the experiment's own name), never by parsing the old key. Tables come from
the same AB_*_TABLE settings as the functions; the endpoint from the usual AWS settings.
"""

from __future__ import annotations

import argparse
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from ab_testing import dynamo, records
from ab_testing.settings import Settings
from ab_testing.store import Store


@dataclass(frozen=True)
class Move:
    table: str
    key_name: str
    item: dict[str, Any]
    new_key: str


@dataclass
class Report:
    moved: int = 0
    conflicts: int = 0


def pending_moves(store: Store) -> list[Move]:
    """Every item whose stored key differs from the escaped key of its own attributes."""
    moves: list[Move] = []
    for item in _scan(store, store.results):
        key = item.get("idempotency_key")
        if not key:
            continue  # auto ids have no user-supplied part
        new = records.keyed_result_id(item["metric_name"], item["unit"], key)
        if new != item["result_id"]:
            moves.append(Move(store.results, "result_id", item, new))
    for item in _scan(store, store.experiments):
        pk = str(item["pk"])
        if not pk.startswith("name#"):
            continue
        experiment = store.get_item(
            store.experiments, {"pk": records.experiment_pk(int(item["experiment_id"]))}, True
        )
        if experiment is None:
            continue
        new = records.name_pk(str(experiment["name"]))
        if new != pk:
            moves.append(Move(store.experiments, "pk", item, new))
    # A new key may be another item's old key; that item's new key is longer still, so moving
    # the longest new keys first always frees a target before it is needed.
    moves.sort(key=lambda m: len(m.new_key), reverse=True)
    return moves


def migrate(store: Store, dry_run: bool = False) -> Report:
    report = Report()
    for move in pending_moves(store):
        if dry_run:
            report.moved += 1
            continue
        if _apply(store, move):
            report.moved += 1
        else:
            report.conflicts += 1
    return report


def _apply(store: Store, move: Move) -> bool:
    old_key = move.item[move.key_name]
    key = {k: v for k, v in move.item.items() if k in ("experiment_id", move.key_name)}
    if move.key_name == "pk":
        key = {"pk": old_key}
    try:
        store.client.transact_write_items(
            TransactItems=[
                {
                    "Put": {
                        "TableName": move.table,
                        "Item": dynamo.serialize({**move.item, move.key_name: move.new_key}),
                        "ConditionExpression": f"attribute_not_exists({move.key_name})",
                    }
                },
                {
                    "Delete": {
                        "TableName": move.table,
                        "Key": dynamo.serialize(key),
                        "ConditionExpression": f"attribute_exists({move.key_name})",
                    }
                },
            ]
        )
        return True
    except store.client.exceptions.TransactionCanceledException:
        return False  # the new key is taken (reported, left for a person to look at)


def _scan(store: Store, table: str) -> Iterator[dict[str, Any]]:
    params: dict[str, Any] = {"TableName": table, "ConsistentRead": True}
    while True:
        page = store.client.scan(**params)
        for item in page.get("Items", []):
            yield dynamo.deserialize(item)
        if "LastEvaluatedKey" not in page:
            return
        params["ExclusiveStartKey"] = page["LastEvaluatedKey"]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m ab_testing.migrate_keys",
        description="Move items from the old unescaped composite keys to the escaped ones.",
    )
    parser.add_argument("--dry-run", action="store_true", help="count, change nothing")
    args = parser.parse_args(argv)
    report = migrate(Store(Settings.from_env()), dry_run=args.dry_run)
    verb = "would move" if args.dry_run else "moved"
    print(f"{verb} {report.moved} item(s); {report.conflicts} conflict(s)")
    return 1 if report.conflicts else 0


if __name__ == "__main__":
    raise SystemExit(main())
