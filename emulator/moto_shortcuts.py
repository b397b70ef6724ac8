"""The shortcuts into moto's internals, and the check that decides whether they are used.

moto documents its decorators and its server mode, not the classes behind them. The local
DynamoDB (emulator.dynamo) always works through moto's own server app (`MotoApp`); three
modules reach further in, because each buys what a long-running local service needs:

- emulator.moto_transactions: a failed TransactWriteItems backs up only the items it names,
  where moto deep-copies every table it touches (a cost that grows with the data);
- emulator.moto_answers: item calls handed to moto's DynamoDB handler directly, without the
  WSGI request and the model-driven parsing and serializing around it, and moto's list of
  every Item it ever made (two per update, for as long as the process lives) no longer kept;
- emulator.moto_expressions: update and condition expressions parsed once per text.

`fast_path` decides once per process. The modules are imported (every name they use must
exist) and applied, and a probe (every item call the service makes, successes, refusals and
a transaction that rolls back, on a table of its own) is answered through the shortcuts and
through moto's own path: the answers and the items left behind must be equal. If anything
differs or raises, the shortcuts are undone, one line names the moto version and the reason,
and every call takes moto's own path: slower, never wrong. ``AB_MOTO_FAST=0`` chooses moto's
own path without a check. README ("The local DynamoDB and moto") has what each buys.
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Callable
from importlib import import_module
from importlib.metadata import version
from typing import Any

from emulator.dynamo import ITEM_OPERATIONS, JSON_CONTENT, TARGET_PREFIX, MotoApp

LOGGER = logging.getLogger("emulator.moto")
MODULES = ("emulator.moto_transactions", "emulator.moto_answers", "emulator.moto_expressions")
PROBE_TABLE = "ab_moto_shortcut_probe"
# None: not decided yet in this process; "": the shortcuts passed; else why they did not.
_verdict: str | None = None


class Replacements:
    """Attributes set on moto's modules and classes, each with what it held before, so that
    `undo` puts moto back as it was installed."""

    _ABSENT = object()

    def __init__(self) -> None:
        self._made: list[tuple[Any, str, Any]] = []

    def set(self, owner: Any, name: str, value: Any) -> None:
        self._made.append((owner, name, vars(owner).get(name, self._ABSENT)))
        setattr(owner, name, value)

    def undo(self) -> None:
        while self._made:
            owner, name, value = self._made.pop()
            if value is self._ABSENT:
                delattr(owner, name)
            else:
                setattr(owner, name, value)


def wanted() -> bool:
    """Whether the environment lets the shortcuts be tried (``AB_MOTO_FAST=0`` does not)."""
    return os.environ.get("AB_MOTO_FAST", "1").strip() != "0"


def fast_path(region: str, plain: MotoApp) -> FastPath | None:
    """The shortcuts, applied, when they are wanted and passed their check; else None, with
    moto exactly as it is installed."""
    global _verdict
    if not wanted():
        restore()
        return None
    if _verdict is None:
        _verdict = check(region, plain)
        if _verdict:
            LOGGER.warning(
                "moto %s: the local DynamoDB's shortcuts do not fit this moto (%s); every "
                "call takes moto's own path (slower, same answers)",
                moto_version(),
                _verdict,
            )
    if _verdict:
        return None
    apply()
    return FastPath(region, plain)


def forget() -> None:
    """Decide again at the next `fast_path` (tests that change moto under it)."""
    global _verdict
    _verdict = None
    restore()


def moto_version() -> str:
    try:
        return version("moto")
    except Exception:  # noqa: BLE001 - a version is only named in a log line
        return "(unknown version)"


def apply() -> None:
    for name in MODULES:
        import_module(name).apply()


def restore() -> None:
    """moto as installed: every shortcut that was applied, undone (those never imported
    were never applied)."""
    import sys

    for name in reversed(MODULES):
        module = sys.modules.get(name)
        if module is not None:
            module.restore()


def check(region: str, plain: MotoApp) -> str:
    """ "" when the shortcuts answer the probe as moto's own path does; else the reason."""
    try:
        restore()
        expected = _probe(_on_moto(plain), plain)
        apply()
        fast = FastPath(region, plain)
        got = _probe(fast.answer, plain, fast.table_items)
    except Exception as exc:  # noqa: BLE001 - any failure means: do not use them
        restore()
        _drop_probe_table(plain)
        return f"{type(exc).__name__}: {exc}"
    restore()
    for (operation, want), (_, have) in zip(expected, got, strict=True):
        if want != have:
            return f"{operation} answered {have!r} through them, {want!r} through moto"
    return ""


class FastPath:
    """Item calls through the shortcuts (emulator.moto_answers' handler); every other call
    through moto's own server app."""

    def __init__(self, region: str, plain: MotoApp) -> None:
        from emulator import moto_answers

        self.handler = moto_answers.ItemCallHandler
        self.wire = moto_answers.wire
        self.region = region
        self.url = f"https://dynamodb.{region}.amazonaws.com/"
        self.plain = plain

    def prepare(self, operation: str, target: str, params: bytes) -> Any:
        """moto's handler for an item call, its parameters read (no table is read); or the
        answer, when they cannot be read."""
        from moto.core.exceptions import HTTPException

        try:
            return self.handler.prepare(operation, params, self.region, self.url, target)
        except HTTPException as exc:
            return exc.code, exc.get_headers(), exc.get_body()

    @staticmethod
    def run(handler: Any) -> Any:
        from moto.core.exceptions import HTTPException

        try:
            return handler.call_action()
        except HTTPException as exc:
            return exc.code, exc.get_headers(), exc.get_body()

    def answer(self, operation: str, target: str, params: bytes) -> Any:
        if operation not in ITEM_OPERATIONS:
            headers = {"X-Amz-Target": target, "Content-Type": JSON_CONTENT}
            return self.plain.answer("POST", headers, params)
        prepared = self.prepare(operation, target, params)
        return prepared if isinstance(prepared, tuple) else self.run(prepared)

    def table_items(self, table: str) -> tuple[int, str]:
        """Read from the backend without the Scan's per-item copy and size count, which cost
        more than the rest of a snapshot and would hold every other call back meanwhile."""
        from moto.backends import get_backend
        from moto.core import DEFAULT_ACCOUNT_ID
        from moto.dynamodb.models.utilities import dynamo_to_dict

        account = os.environ.get("MOTO_ACCOUNT_ID") or DEFAULT_ACCOUNT_ID
        items = get_backend("dynamodb")[account][self.region].get_table(table).all_items()
        text = json.dumps(
            [self.wire(dynamo_to_dict(i.attrs)) for i in items], separators=(",", ":")
        )
        return len(items), text


# ---------------------------------------------------------------------------- the probe

Caller = Callable[[str, str, bytes], Any]


def _on_moto(plain: MotoApp) -> Caller:
    def call(operation: str, target: str, params: bytes) -> Any:
        return plain.answer("POST", {"X-Amz-Target": target, "Content-Type": JSON_CONTENT}, params)

    return call


def _probe(
    call: Caller, plain: MotoApp, items: Callable[[str], tuple[int, str]] | None = None
) -> list[tuple[str, Any]]:
    """Each probe call's operation with its status and parsed answer, then the table's
    items, on a table made for it and dropped after."""
    _drop_probe_table(plain)
    answers: list[tuple[str, Any]] = []
    for operation, params in _PROBE_CALLS:
        status, _, body = call(operation, TARGET_PREFIX + operation, json.dumps(params).encode())
        text = body.decode("utf-8") if isinstance(body, bytes) else body
        answers.append((operation, (status, _comparable(json.loads(text) if text else None))))
    count, text = (items or plain.table_items)(PROBE_TABLE)
    answers.append(("table_items", (count, _sorted_items(json.loads(text)))))
    _drop_probe_table(plain)
    return answers


def _comparable(answer: Any) -> Any:
    """An answer without what differs from call to call (the table's creation time)."""
    if isinstance(answer, dict):
        return {k: _comparable(v) for k, v in answer.items() if k != "CreationDateTime"}
    if isinstance(answer, list):
        return [_comparable(v) for v in answer]
    return answer


def _sorted_items(items: list[Any]) -> list[str]:
    return sorted(json.dumps(item, sort_keys=True) for item in items)


def _drop_probe_table(plain: MotoApp) -> None:
    headers = {"X-Amz-Target": TARGET_PREFIX + "DeleteTable", "Content-Type": JSON_CONTENT}
    plain.answer("POST", headers, json.dumps({"TableName": PROBE_TABLE}).encode())


def _key(pk: str, sk: str) -> dict[str, Any]:
    return {"pk": {"S": pk}, "sk": {"S": sk}}


def _add(pk: str, sk: str, **extra: Any) -> dict[str, Any]:
    return {
        "TableName": PROBE_TABLE,
        "Key": _key(pk, sk),
        "UpdateExpression": "ADD n :one, #t :v SET #l = :label",
        "ExpressionAttributeNames": {"#l": "label", "#t": "total"},
        "ExpressionAttributeValues": {
            ":one": {"N": "1"},
            ":v": {"N": "2.5"},
            ":label": {"S": "probe"},
        },
        **extra,
    }


def _page(pk: str, **extra: Any) -> dict[str, Any]:
    """A Query of one partition (`extra` may add a key condition on sk, compared with "2")."""
    values = {":pk": {"S": pk}}
    if "KeyConditionExpression" in extra:
        values[":s"] = {"S": "2"}
    return {
        "TableName": PROBE_TABLE,
        "KeyConditionExpression": "pk = :pk",
        "ExpressionAttributeValues": values,
        **extra,
    }


_PROBE_CALLS: list[tuple[str, dict[str, Any]]] = [
    (
        "CreateTable",
        {
            "TableName": PROBE_TABLE,
            "KeySchema": [
                {"AttributeName": "pk", "KeyType": "HASH"},
                {"AttributeName": "sk", "KeyType": "RANGE"},
            ],
            "AttributeDefinitions": [
                {"AttributeName": "pk", "AttributeType": "S"},
                {"AttributeName": "sk", "AttributeType": "S"},
            ],
            "BillingMode": "PAY_PER_REQUEST",
        },
    ),
    (
        "PutItem",
        {
            "TableName": PROBE_TABLE,
            "Item": {
                **_key("a", "1"),
                "config": {"M": {"x": {"L": [{"N": "1"}, {"B": "AAE="}, {"NULL": True}]}}},
                "tags": {"SS": ["p", "q"]},
            },
            "ConditionExpression": "attribute_not_exists(pk)",
        },
    ),
    (
        "PutItem",
        {
            "TableName": PROBE_TABLE,
            "Item": _key("a", "1"),
            "ConditionExpression": "attribute_not_exists(pk)",
            "ReturnValuesOnConditionCheckFailure": "ALL_OLD",
        },
    ),
    ("UpdateItem", _add("a", "2", ReturnValues="ALL_NEW")),
    ("UpdateItem", _add("a", "2", ReturnValues="UPDATED_OLD")),
    (
        "UpdateItem",
        _add(
            "a",
            "2",
            ConditionExpression="n < :one",
            ReturnValuesOnConditionCheckFailure="ALL_OLD",
        ),
    ),
    (
        "TransactWriteItems",
        {
            "TransactItems": [
                {"Update": _add("b", "1")},
                {"Put": {"TableName": PROBE_TABLE, "Item": _key("b", "2")}},
            ]
        },
    ),
    (
        "TransactWriteItems",
        {
            "TransactItems": [
                {"Update": _add("b", "1")},
                {
                    "Put": {
                        "TableName": PROBE_TABLE,
                        "Item": _key("a", "1"),
                        "ConditionExpression": "attribute_not_exists(pk)",
                        "ReturnValuesOnConditionCheckFailure": "ALL_OLD",
                    }
                },
            ]
        },
    ),
    ("GetItem", {"TableName": PROBE_TABLE, "Key": _key("b", "1"), "ConsistentRead": True}),
    (
        "BatchGetItem",
        {"RequestItems": {PROBE_TABLE: {"Keys": [_key("a", "1"), _key("z", "9")]}}},
    ),
    (
        "Query",
        {
            "TableName": PROBE_TABLE,
            "KeyConditionExpression": "pk = :pk AND sk >= :s",
            "FilterExpression": "attribute_exists(n) OR size(tags) > :zero",
            "ExpressionAttributeValues": {":pk": {"S": "a"}, ":s": {"S": "0"}, ":zero": {"N": "0"}},
            "ScanIndexForward": False,
        },
    ),
    *(("PutItem", {"TableName": PROBE_TABLE, "Item": _key("q", sk)}) for sk in "1234"),
    *(
        ("Query", _page("q", **extra))
        for extra in (
            {"Limit": 2},
            {"Limit": 2, "ExclusiveStartKey": _key("q", "2")},
            {"Limit": 2, "ExclusiveStartKey": _key("q", "25")},
            {"Limit": 2, "ExclusiveStartKey": _key("q", "3"), "ScanIndexForward": False},
            {"ExclusiveStartKey": _key("q", "9")},
            {"ExclusiveStartKey": _key("a", "1")},
            {"KeyConditionExpression": "pk = :pk AND sk > :s", "Limit": 1},
            {"KeyConditionExpression": "pk = :pk AND begins_with(sk, :s)"},
            {"ProjectionExpression": "sk", "ScanIndexForward": False},
        )
    ),
    ("Query", _page("no such partition")),
    (
        "BatchWriteItem",
        {
            "RequestItems": {
                PROBE_TABLE: [
                    {"PutRequest": {"Item": {**_key("c", "1"), "n": {"N": "7"}}}},
                    {"DeleteRequest": {"Key": _key("b", "2")}},
                ]
            }
        },
    ),
    ("DeleteItem", {"TableName": PROBE_TABLE, "Key": _key("c", "1"), "ReturnValues": "ALL_OLD"}),
    (
        "TransactGetItems",
        {"TransactItems": [{"Get": {"TableName": PROBE_TABLE, "Key": _key("a", "2")}}]},
    ),
    ("Scan", {"TableName": PROBE_TABLE, "ConsistentRead": True}),
    (
        "UpdateItem",
        {"TableName": PROBE_TABLE, "Key": _key("a", "1"), "UpdateExpression": "ADD total :v"},
    ),
    ("GetItem", {"TableName": "ab_moto_no_such_table", "Key": _key("a", "1")}),
]
