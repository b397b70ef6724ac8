"""Results and running totals: one read and one transaction per result, counted exactly once.

The transaction writes, all or nothing:
  1. the raw result in ab_results (condition: its result_id is new; the idempotency key),
  2. the running totals of (experiment, variant, metric[, shard]) in ab_variants,
  3. the unit's own running sum and count in its ab_assignments item (optimistic condition),
so raw results and totals never disagree, and a retried request cannot count twice.
"""

from __future__ import annotations

import random
import time
from collections.abc import Iterator
from dataclasses import dataclass
from decimal import Decimal, localcontext
from typing import Any

from ab_testing import dynamo
from ab_testing.errors import InvalidInput, StoreUnavailable
from ab_testing.records import totals_sk
from ab_testing.store import Store

_ATTEMPTS = 12
TOTALS_FIELDS = (
    "results",
    "total",
    "total_sq",
    "units",
    "unit_sum_sq",
    "unit_count_sq",
    "unit_sum_count",
)


@dataclass(frozen=True)
class ResultWrite:
    experiment_id: int
    unit: str
    metric: str
    value: Decimal
    result_id: str
    item: dict[str, Any]  # the raw result's other attributes (times, key, answer)


@dataclass(frozen=True)
class Outcome:
    status: str  # "recorded" | "duplicate" | "no_assignment"
    variant_id: int | None
    item: dict[str, Any] | None  # the stored result (for duplicates: the first one)


class Ledger:
    def __init__(self, store: Store) -> None:
        self.store = store
        self.client = store.client

    def record(self, write: ResultWrite, variant_ids: list[int], shard: int) -> Outcome:
        for attempt in range(_ATTEMPTS):
            assignment, totals = self._read(write, variant_ids, shard)
            if assignment is None:
                return Outcome("no_assignment", None, None)
            variant_id = int(assignment["variant_id"])
            state = (assignment.get("m") or {}).get(write.metric)
            with localcontext(prec=60):  # exact: inputs have <= 16 digits, results <= 38
                items = self._items(write, variant_id, state, totals.get(variant_id, {}), shard)
            try:
                self.client.transact_write_items(TransactItems=items)
                return Outcome("recorded", variant_id, write.item)
            except self.client.exceptions.TransactionCanceledException as exc:
                codes = dynamo.cancellation_codes(exc)
                if set(codes) - {"None", "ConditionalCheckFailed", "TransactionConflict"}:
                    raise  # a refusal that no retry can fix (a validation error): let it show
                if codes[:1] == ["ConditionalCheckFailed"]:
                    first = dynamo.cancellation_item(exc, 0) or self._result(write) or {}
                    # A transport retry of our own committed transaction finds our own item.
                    mine = first.get("write_token") == write.item.get("write_token")
                    stored_variant = int(first.get("variant_id", variant_id))
                    return Outcome("recorded" if mine else "duplicate", stored_variant, first)
            # A concurrent result moved the unit's sums or the extremes: read and try again.
            time.sleep(random.uniform(0, 0.004 * (attempt + 1)))
        raise StoreUnavailable("the result could not be written under contention, please retry")

    def _read(
        self, write: ResultWrite, variant_ids: list[int], shard: int
    ) -> tuple[dict[str, Any] | None, dict[int, dict[str, Any]]]:
        """One BatchGetItem: the unit's assignment and this shard's totals of every variant."""
        store = self.store
        request: dict[str, Any] = {
            store.assignments: {
                "Keys": [
                    dynamo.serialize({"experiment_id": write.experiment_id, "unit": write.unit})
                ],
                "ConsistentRead": True,
            },
            store.variants: {
                "Keys": [
                    dynamo.serialize(
                        {
                            "experiment_id": write.experiment_id,
                            "sk": totals_sk(v, write.metric, shard),
                        }
                    )
                    for v in variant_ids
                ],
                "ConsistentRead": True,
            },
        }
        assignment: dict[str, Any] | None = None
        totals: dict[int, dict[str, Any]] = {}
        while request:
            answer = self.client.batch_get_item(RequestItems=request)
            for item in answer.get("Responses", {}).get(store.assignments, []):
                assignment = dynamo.deserialize(item)
            for item in answer.get("Responses", {}).get(store.variants, []):
                found = dynamo.deserialize(item)
                totals[int(found["variant_id"])] = found
            request = answer.get("UnprocessedKeys") or {}
        return assignment, totals

    def _items(
        self,
        write: ResultWrite,
        variant_id: int,
        state: dict[str, Any] | None,
        totals: dict[str, Any],
        shard: int,
    ) -> list[dict[str, Any]]:
        store, y = self.store, write.value
        old_sum = Decimal(state["s"]) if state else Decimal(0)
        old_count = int(state["c"]) if state else 0
        new_sum, new_count = old_sum + y, old_count + 1
        deltas = {
            ":results": 1,
            ":total": y,
            ":total_sq": y * y,
            ":units": 0 if old_count else 1,
            ":unit_sum_sq": new_sum * new_sum - old_sum * old_sum,
            ":unit_count_sq": 2 * old_count + 1,
            ":unit_sum_count": new_sum * new_count - old_sum * old_count,
        }
        _check_precision(write.metric, totals, deltas)
        totals_update, totals_condition, totals_values = _extremes(totals, y)
        totals_values.update(deltas)
        totals_values.update({":v": variant_id, ":m": write.metric})
        update_totals: dict[str, Any] = {
            "TableName": store.variants,
            "Key": dynamo.serialize(
                {
                    "experiment_id": write.experiment_id,
                    "sk": totals_sk(variant_id, write.metric, shard),
                }
            ),
            # Every attribute through a name placeholder: "total" is a reserved word.
            "UpdateExpression": "ADD "
            + ", ".join(f"#{f} :{f}" for f in TOTALS_FIELDS)
            + " SET #variant_id = :v, #metric = :m"
            + totals_update,
            "ExpressionAttributeNames": {
                f"#{f}": f for f in (*TOTALS_FIELDS, "variant_id", "metric")
            },
            "ExpressionAttributeValues": dynamo.serialize(totals_values),
        }
        if totals_condition:
            update_totals["ConditionExpression"] = totals_condition
        unit_condition = (
            "attribute_not_exists(#m.#metric)" if state is None else "#m.#metric.#c = :old_count"
        )
        unit_values: dict[str, Any] = {":state": {"s": new_sum, "c": new_count}}
        if state is not None:
            unit_values[":old_count"] = old_count
        result_item = {
            "experiment_id": write.experiment_id,
            "result_id": write.result_id,
            "variant_id": variant_id,
            "metric_name": write.metric,
            "metric_value": y,
            "unit": write.unit,
            **write.item,
        }
        return [
            {
                "Put": {
                    "TableName": store.results,
                    "Item": dynamo.serialize(result_item),
                    "ConditionExpression": "attribute_not_exists(result_id)",
                    "ReturnValuesOnConditionCheckFailure": "ALL_OLD",
                }
            },
            {"Update": update_totals},
            {
                "Update": {
                    "TableName": store.assignments,
                    "Key": dynamo.serialize(
                        {"experiment_id": write.experiment_id, "unit": write.unit}
                    ),
                    "UpdateExpression": "SET #m.#metric = :state",
                    "ConditionExpression": unit_condition,
                    "ExpressionAttributeNames": {
                        "#m": "m",
                        "#metric": write.metric,
                        **({"#c": "c"} if state else {}),
                    },
                    "ExpressionAttributeValues": dynamo.serialize(unit_values),
                }
            },
        ]

    def _result(self, write: ResultWrite) -> dict[str, Any] | None:
        return self.store.get_item(
            self.store.results,
            {"experiment_id": write.experiment_id, "result_id": write.result_id},
            True,
        )

    def raw_results(self, experiment_id: int) -> Iterator[dict[str, Any]]:
        """Every raw result of an experiment (a Query, for reconciliation and export)."""
        return self.store.query_all(
            {
                "TableName": self.store.results,
                "KeyConditionExpression": "experiment_id = :e",
                "ExpressionAttributeValues": dynamo.serialize({":e": experiment_id}),
            }
        )


def _check_precision(metric: str, totals: dict[str, Any], deltas: dict[str, Any]) -> None:
    """DynamoDB refuses a number of more than 38 significant digits: say so before writing."""
    for field in TOTALS_FIELDS:
        new = Decimal(totals.get(field, 0)) + Decimal(deltas[f":{field}"])
        if len(new.normalize().as_tuple().digits) > dynamo.MAX_DIGITS:
            raise InvalidInput(
                f"recording this value would take the running totals of {metric} beyond "
                f"{dynamo.MAX_DIGITS} significant digits; record it with fewer decimals",
                field="metric_value",
            )


def _extremes(totals: dict[str, Any], y: Decimal) -> tuple[str, str, dict[str, Any]]:
    """SET clauses for a new min or max, guarded by the value read (min/max only move out)."""
    sets: list[str] = []
    conditions: list[str] = []
    values: dict[str, Any] = {":y": y}
    for attr, better in (("min_y", lambda old: y < old), ("max_y", lambda old: y > old)):
        old = totals.get(attr)
        if old is None:
            sets.append(f"{attr} = :y")
            conditions.append(f"attribute_not_exists({attr})")
        elif better(old):
            sets.append(f"{attr} = :y")
            conditions.append(f"{attr} = :old_{attr}")
            values[f":old_{attr}"] = old
    clause = (", " + ", ".join(sets)) if sets else ""
    if not sets:
        values.pop(":y")
    return clause, " AND ".join(conditions), values
