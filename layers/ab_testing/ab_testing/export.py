"""Raw rows out, for analysts: ab_results and ab_assignments of one experiment, a page at a time.

Each page is one DynamoDB Query in key order (never a Scan); the cursor is the last key of the
page, encoded, so a client pages through without knowing the key layout.
"""

from __future__ import annotations

import base64
import binascii
import csv
import io
import json
from typing import Any

from ab_testing import dynamo
from ab_testing.errors import InvalidInput
from ab_testing.http import TextAnswer, json_safe
from ab_testing.queries import ExportQuery
from ab_testing.store import Store

RESULT_COLUMNS = (
    "result_id",
    "experiment_id",
    "variant_id",
    "unit",
    "user_id",
    "session_id",
    "metric_name",
    "metric_value",
    "idempotency_key",
    "occurred_at",
    "recorded_at",
)
ASSIGNMENT_COLUMNS = (
    "experiment_id",
    "unit",
    "user_id",
    "session_id",
    "variant_id",
    "assigned_at",
    "source",
)
MEDIA = {"jsonl": "application/x-ndjson", "csv": "text/csv; charset=utf-8"}


def split_unit(unit: str) -> tuple[str | None, str | None]:
    """(user_id, session_id) of a unit key: "user:42" -> ("42", None)."""
    kind, _, value = unit.partition(":")
    return (value, None) if kind == "user" else (None, value if kind == "session" else None)


def result_row(item: dict[str, Any]) -> dict[str, Any]:
    user, session = split_unit(str(item["unit"]))
    row = {k: item.get(k) for k in RESULT_COLUMNS}
    row.update(user_id=user, session_id=session)
    return dict(json_safe(row))


def assignment_row(item: dict[str, Any]) -> dict[str, Any]:
    user, session = split_unit(str(item["unit"]))
    row = {k: item.get(k) for k in ASSIGNMENT_COLUMNS}
    row.update(user_id=user, session_id=session, source=item.get("source") or "hash")
    return dict(json_safe(row))


def _encode(key: str) -> str:
    return base64.urlsafe_b64encode(json.dumps({"after": key}).encode()).decode()


def _decode(cursor: str) -> str:
    try:
        data = json.loads(base64.urlsafe_b64decode(cursor.encode()).decode())
    except (binascii.Error, UnicodeDecodeError, ValueError) as exc:
        raise InvalidInput("cursor is not valid", field="cursor") from exc
    if not isinstance(data, dict) or not isinstance(data.get("after"), str) or not data["after"]:
        raise InvalidInput("cursor is not valid", field="cursor")
    return str(data["after"])


def page(
    store: Store, table: str, sort_key: str, experiment_id: int, query: ExportQuery
) -> tuple[list[dict[str, Any]], str | None]:
    """One Query page of an experiment's items in ``table`` and the cursor after it."""
    store.get_experiment(experiment_id)  # a 404 for an unknown experiment
    params: dict[str, Any] = {
        "TableName": table,
        "KeyConditionExpression": "experiment_id = :e",
        "ExpressionAttributeValues": dynamo.serialize({":e": experiment_id}),
        "Limit": query.limit,
    }
    if query.cursor:
        params["ExclusiveStartKey"] = dynamo.serialize(
            {"experiment_id": experiment_id, sort_key: _decode(query.cursor)}
        )
    answer = store.client.query(**params)
    items = [dynamo.deserialize(i) for i in answer.get("Items", [])]
    last = answer.get("LastEvaluatedKey")
    return items, _encode(str(dynamo.deserialize(last)[sort_key])) if last else None


def results(store: Store, experiment_id: int, query: ExportQuery) -> dict[str, Any] | TextAnswer:
    items, cursor = page(store, store.results, "result_id", experiment_id, query)
    rows = [result_row(i) for i in items]
    return _answer("results", experiment_id, rows, cursor, query, RESULT_COLUMNS)


def assignments(
    store: Store, experiment_id: int, query: ExportQuery
) -> dict[str, Any] | TextAnswer:
    items, cursor = page(store, store.assignments, "unit", experiment_id, query)
    rows = [assignment_row(i) for i in items]
    return _answer("assignments", experiment_id, rows, cursor, query, ASSIGNMENT_COLUMNS)


def _answer(
    name: str,
    experiment_id: int,
    rows: list[dict[str, Any]],
    cursor: str | None,
    query: ExportQuery,
    columns: tuple[str, ...],
) -> dict[str, Any] | TextAnswer:
    if query.format == "json":
        return {
            "experiment_id": experiment_id,
            name: rows,
            "count": len(rows),
            "next_cursor": cursor,
        }
    headers = {"X-Next-Cursor": cursor} if cursor else {}
    if query.format == "jsonl":
        body = "".join(json.dumps(row, separators=(",", ":")) + "\n" for row in rows)
    else:
        buffer = io.StringIO()
        writer = csv.DictWriter(buffer, fieldnames=columns, lineterminator="\n")
        writer.writeheader()
        writer.writerows(rows)
        body = buffer.getvalue()
    return TextAnswer(body, MEDIA[query.format], headers)
