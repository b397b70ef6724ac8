"""Transactions that cost the same whatever the size of the tables.

To roll back a failed TransactWriteItems, moto deep-copies every table the transaction
touches, so each transaction costs time in proportion to the data already stored: recording
50,000 results locally would take hours. ``apply()`` makes moto back up only the items the
transaction names and put those back on failure; what a transaction does is unchanged.
"""

from __future__ import annotations

import copy
import functools
import threading
from typing import Any

_state = threading.local()
_applied = False
_replaced: Any = None  # emulator.moto_shortcuts.Replacements, once applied


def apply() -> None:
    """Patch moto's DynamoDB backend (idempotent; `restore` undoes it)."""
    global _applied, _replaced
    if _applied:
        return
    from moto.dynamodb.models import DynamoDBBackend
    from moto.dynamodb.models.table import Table

    from emulator.moto_shortcuts import Replacements

    original = vars(DynamoDBBackend)["transact_write_items"]

    @functools.wraps(original)
    def transact_write_items(self: Any, transact_items: list[dict[str, Any]]) -> Any:
        backups = _backup(self, transact_items)
        _state.share_tables = True
        try:
            return original(self, transact_items)
        except Exception:
            _restore(backups)
            raise
        finally:
            _state.share_tables = False

    def table_deepcopy(self: Any, memo: dict[int, Any]) -> Any:
        if getattr(_state, "share_tables", False):
            return self  # inside a transaction: the item backups above replace the copy
        clone = self.__class__.__new__(self.__class__)
        memo[id(self)] = clone
        for name, value in self.__dict__.items():
            setattr(clone, name, copy.deepcopy(value, memo))
        return clone

    _replaced = Replacements()
    _replaced.set(Table, "__deepcopy__", table_deepcopy)
    _replaced.set(DynamoDBBackend, "transact_write_items", transact_write_items)
    _applied = True


def restore() -> None:
    """moto as it was before `apply` (idempotent)."""
    global _applied
    if _replaced is not None:
        _replaced.undo()
    _applied = False


def _backup(backend: Any, transact_items: list[dict[str, Any]]) -> list[tuple[Any, ...]]:
    from moto.dynamodb.models.dynamo_type import DynamoType

    backups = []
    for entry in transact_items:
        op = next(iter(entry.values()))
        table = backend.tables.get(op.get("TableName"))
        key = op.get("Key") or op.get("Item")
        if table is None or not key or table.hash_key_attr not in key:
            continue
        hash_key = DynamoType(key[table.hash_key_attr])
        range_key = None
        if table.range_key_attr and table.range_key_attr in key:
            range_key = DynamoType(key[table.range_key_attr])
            current = table.items[hash_key].get(range_key) if hash_key in table.items else None
        else:
            current = table.items.get(hash_key)
        backups.append((table, hash_key, range_key, copy.deepcopy(current)))
    return backups


def _restore(backups: list[tuple[Any, ...]]) -> None:
    for table, hash_key, range_key, item in reversed(backups):
        if range_key is None:
            if item is None:
                table.items.pop(hash_key, None)
            else:
                table.items[hash_key] = item
            continue
        bucket = table.items[hash_key]
        if item is None:
            bucket.pop(range_key, None)
            if not bucket:
                table.items.pop(hash_key, None)
        else:
            bucket[range_key] = item
