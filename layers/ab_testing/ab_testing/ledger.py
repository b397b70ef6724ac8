"""Results and running totals: one read and one transaction per result (or per group of a
batch), counted exactly once.

The transaction writes, all or nothing:
  1. the raw result in ab_results (condition: its result_id is new; the idempotency key),
  2. the running totals of (experiment, variant, metric[, shard]) in ab_variants,
  3. the unit's own running sum and count in its ab_assignments item (optimistic condition),
  4. for each ratio metric the result's metric is part of, the ratio's own totals item: the
     cross sum sum_i N_i D_i (from the unit's sums of both metrics, both guarded by the
     condition of step 3) and the units with a result of either metric,
so raw results and totals never disagree, and a retried request cannot count twice.
With a covariate (CUPED), the unit's value X, stored once in its assignment item, adds the
covariate sums to the totals in the same ADD; a covariate sent with the unit's first result
is stored by step 3 under attribute_not_exists(x) and an empty results map.

A batch (``record_many``, for record-results) folds its results by totals item: one read of
the batch's units, then per (experiment, variant, metric, shard) one read (its units, the
totals item) and ONE transaction holding every result's put (1), one update per unit with
its results added in order (3), and a single totals update (2) with the group's sums, its
lowest and highest value (min/max move out only from the values read). At most 100 actions a
transaction (49 results of distinct units; bigger groups are split); an item is never named
twice in one (a result_id repeated in the batch waits for its first copy, and is answered as
its duplicate). A put refused as existing answers that result (duplicate, or recorded when
the stored copy has our write token) and the others go again at once; conflicts and moved
units re-read and retry with backoff as ``record`` does. A unit without results whose batch
carries a covariate writes its first result alone first, so the covariate kept is the one
sent first. Units with a ratio metric, and a group whose sums would pass 38 digits, use
``record`` one result at a time. docs/capacity.md gives the measured calls and units.
"""

from __future__ import annotations

import random
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from decimal import Decimal, localcontext
from typing import Any

from ab_testing import dynamo
from ab_testing.errors import InvalidInput, StoreUnavailable
from ab_testing.records import ratio_sk, totals_sk
from ab_testing.store import Store

_ATTEMPTS = 12
_MAX_ACTIONS = 100  # DynamoDB's limit on a transaction, and on the keys of a BatchGetItem
TOTALS_FIELDS = (
    "results",
    "total",
    "total_sq",
    "units",
    "unit_sum_sq",
    "unit_count_sq",
    "unit_sum_count",
    "cov_units",
    "cov_sum",
    "cov_sum_sq",
    "cov_x_sum",
    "cov_x_count",
    "cov_h_sum",
    "cov_h_count",
)
RATIO_FIELDS = ("units", "cross", "cov_units", "cov_sum", "cov_sum_sq")


@dataclass(frozen=True)
class ResultWrite:
    experiment_id: int
    unit: str
    metric: str
    value: Decimal
    result_id: str
    item: dict[str, Any]  # the raw result's other attributes (times, key, answer)
    # (ratio name, the other metric of the ratio, True when this metric is the numerator)
    ratios: tuple[tuple[str, str, bool], ...] = ()
    covariate: Decimal | None = None  # sent with this result; stored if the unit has none


@dataclass(frozen=True)
class BatchEntry:
    """One result of a batch, with what ``record`` takes besides it."""

    write: ResultWrite
    variant_ids: tuple[int, ...]
    shard: int


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
            unit = _UnitState.of(assignment, write)
            with localcontext(prec=60):  # exact: inputs have <= 16 digits, results <= 38
                items = self._items(write, variant_id, unit, totals.get(variant_id, {}), shard)
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

    def record_many(self, entries: Sequence[BatchEntry]) -> list[Outcome | Exception]:
        """Records a batch: one transaction per (experiment, variant, metric, shard) of it.

        Answers each entry as ``record`` would have, in order (an Outcome, or the error that
        ``record`` would have raised). Results of units with a ratio metric go one by one.
        """
        done: dict[int, Outcome | Exception] = {}
        stored: dict[tuple[int, str], dict[str, Any]] = {}  # result -> its stored item
        units: dict[tuple[int, str], list[int]] = {}
        for index, entry in enumerate(entries):
            units.setdefault(_unit_key(entry.write), []).append(index)
        one_by_one = sorted(
            index
            for indexes in units.values()
            if any(entries[i].write.ratios for i in indexes)
            for index in indexes
        )
        pending = sorted(set(range(len(entries))) - set(one_by_one))
        # Each round settles at least the first pending result of every unit.
        for _ in range(len(entries) + _ATTEMPTS):
            _settle_repeats(entries, pending, done, stored)
            pending = [i for i in pending if i not in done]
            if not pending:
                break
            try:
                assignments, _ = self._read_many({_unit_key(entries[i].write) for i in pending})
            except Exception as exc:  # noqa: BLE001  (each entry answers with the error)
                done.update(dict.fromkeys(pending, exc))
                break
            for chunk, variant_id in self._chunks(entries, pending, assignments, done):
                try:
                    self._write_chunk(entries, chunk, variant_id, done, stored)
                except Exception as exc:  # noqa: BLE001
                    for index in chunk:
                        done.setdefault(index, exc)
            pending = [i for i in pending if i not in done]
        for index in pending:
            done[index] = StoreUnavailable("the batch could not be written, please retry")
        for index in one_by_one:
            done[index] = self._record_one(entries[index])
        return [done[i] for i in range(len(entries))]

    def _record_one(self, entry: BatchEntry) -> Outcome | Exception:
        try:
            return self.record(entry.write, list(entry.variant_ids), entry.shard)
        except Exception as exc:  # noqa: BLE001
            return exc

    def _chunks(
        self,
        entries: Sequence[BatchEntry],
        pending: list[int],
        assignments: dict[tuple[int, str], dict[str, Any]],
        done: dict[int, Outcome | Exception],
    ) -> Iterator[tuple[list[int], int]]:
        """This round's results, grouped by totals item and cut to fit one transaction.

        A repeated result_id waits for a later round (one action per item in a transaction).
        A unit that has no results yet while one of its results carries a covariate sends only
        its first result in a round: that result decides the unit's covariate, as in order.
        """
        with_covariate = {
            _unit_key(entries[i].write) for i in pending if entries[i].write.covariate is not None
        }
        taken: set[tuple[int, str]] = set()
        first_only: set[tuple[int, str]] = set()
        groups: dict[tuple[int, int, str, int], list[int]] = {}
        for index in pending:
            write = entries[index].write
            unit = _unit_key(write)
            found = assignments.get(unit)
            if found is None:
                done[index] = Outcome("no_assignment", None, None)
                continue
            if (write.experiment_id, write.result_id) in taken or unit in first_only:
                continue
            taken.add((write.experiment_id, write.result_id))
            if unit in with_covariate and found.get("x") is None and not found.get("m"):
                first_only.add(unit)
            variant_id = int(found["variant_id"])
            group = (write.experiment_id, variant_id, write.metric, entries[index].shard)
            groups.setdefault(group, []).append(index)
        for (_, variant_id, _, _), members in groups.items():
            chunk: list[int] = []
            chunk_units: set[str] = set()
            for index in members:
                unit_name = entries[index].write.unit
                actions = len(chunk) + 1 + len(chunk_units | {unit_name}) + 1  # + the totals
                if actions > _MAX_ACTIONS:
                    yield chunk, variant_id
                    chunk, chunk_units = [], set()
                chunk.append(index)
                chunk_units.add(unit_name)
            yield chunk, variant_id

    def _write_chunk(
        self,
        entries: Sequence[BatchEntry],
        members: list[int],
        variant_id: int,
        done: dict[int, Outcome | Exception],
        stored: dict[tuple[int, str], dict[str, Any]],
    ) -> None:
        """One transaction for results of one totals item: their puts, one update per unit
        and one totals update with their folded sums; retried as ``record`` retries."""
        first = entries[members[0]]
        experiment_id, metric, shard = first.write.experiment_id, first.write.metric, first.shard
        attempt = 0
        while members:
            units = {(experiment_id, entries[i].write.unit) for i in members}
            sk = totals_sk(variant_id, metric, shard)
            assignments, totals = self._read_many(units, (experiment_id, sk))
            # An assignment gone or moved since the round read: left to the next round.
            members = [
                i
                for i in members
                if int(assignments.get(_unit_key(entries[i].write), {}).get("variant_id", -1))
                == variant_id
            ]
            if not members:
                return
            writes = [entries[i].write for i in members]
            try:
                with localcontext(prec=60):
                    items = self._chunk_items(writes, variant_id, shard, assignments, totals)
            except InvalidInput:
                # Past 38 digits together: one by one, so the result that overflows says so.
                for index in members:
                    done[index] = self._record_one(entries[index])
                return
            try:
                self.client.transact_write_items(TransactItems=items)
            except self.client.exceptions.TransactionCanceledException as exc:
                codes = dynamo.cancellation_codes(exc)
                if set(codes) - {"None", "ConditionalCheckFailed", "TransactionConflict"}:
                    raise
                existing = self._existing(exc, entries, members, variant_id, done, stored)
                if existing:
                    members = [i for i in members if i not in done]
                    continue  # the others at once, on a fresh read
                # A concurrent result moved a unit's sums or the extremes: read and try again.
                attempt += 1
                if attempt >= _ATTEMPTS:
                    break
                time.sleep(random.uniform(0, 0.004 * attempt))
                continue
            for index, write in zip(members, writes, strict=True):
                done[index] = Outcome("recorded", variant_id, write.item)
                item = dynamo.deserialize(dynamo.serialize(_result_item(write, variant_id)))
                stored[(experiment_id, write.result_id)] = item
            return
        for index in members:
            done[index] = StoreUnavailable(
                "the result could not be written under contention, please retry"
            )

    def _existing(
        self,
        exc: Exception,
        entries: Sequence[BatchEntry],
        members: list[int],
        variant_id: int,
        done: dict[int, Outcome | Exception],
        stored: dict[tuple[int, str], dict[str, Any]],
    ) -> bool:
        """Settles the results whose put was refused: already stored (the puts come first)."""
        codes = dynamo.cancellation_codes(exc)
        found = False
        for position, index in enumerate(members):
            if codes[position : position + 1] != ["ConditionalCheckFailed"]:
                continue
            found = True
            write = entries[index].write
            item = dynamo.cancellation_item(exc, position) or self._result(write) or {}
            # A transport retry of our own committed transaction finds our own item.
            mine = item.get("write_token") == write.item.get("write_token")
            stored_variant = int(item.get("variant_id", variant_id))
            done[index] = Outcome("recorded" if mine else "duplicate", stored_variant, item)
            if item:
                stored[(write.experiment_id, write.result_id)] = item
        return found

    def _chunk_items(
        self,
        writes: list[ResultWrite],
        variant_id: int,
        shard: int,
        assignments: dict[tuple[int, str], dict[str, Any]],
        totals: dict[str, Any],
    ) -> list[dict[str, Any]]:
        """The puts, then one totals update with the folded deltas, then one update per unit
        (its results added in order: the unit-level deltas telescope to its final sums)."""
        deltas: dict[str, Any] = {f":{f}": Decimal(0) for f in TOTALS_FIELDS}
        by_unit: dict[str, list[ResultWrite]] = {}
        for write in writes:
            by_unit.setdefault(write.unit, []).append(write)
        unit_updates = []
        for unit_writes in by_unit.values():
            head = unit_writes[0]
            unit = _UnitState.of(assignments[_unit_key(head)], head)
            total = Decimal(unit.state["s"]) if unit.state else Decimal(0)
            count = int(unit.state["c"]) if unit.state else 0
            for write in unit_writes:
                for name, change in _result_deltas(unit.x, write.value, total, count).items():
                    deltas[name] += change
                total, count = total + write.value, count + 1
            unit_updates.append({"Update": self._unit_update(head, unit, total, count)})
        values = [write.value for write in writes]
        _check_precision(writes[0].metric, totals, deltas)
        update = self._totals_update(
            writes[0], variant_id, shard, totals, deltas, (min(values), max(values))
        )
        return [
            *({"Put": self._put(write, variant_id)} for write in writes),
            {"Update": update},
            *unit_updates,
        ]

    def _read_many(
        self, units: set[tuple[int, str]], totals: tuple[int, str] | None = None
    ) -> tuple[dict[tuple[int, str], dict[str, Any]], dict[str, Any]]:
        """Strongly consistent BatchGetItems, at most 100 keys a call: the assignments of the
        (experiment, unit)s, and the totals item (experiment, sk) when asked ({} if none)."""
        store = self.store
        keys = [(store.assignments, {"experiment_id": e, "unit": u}) for e, u in sorted(units)]
        if totals is not None:
            keys.append((store.variants, {"experiment_id": totals[0], "sk": totals[1]}))
        assignments: dict[tuple[int, str], dict[str, Any]] = {}
        found_totals: dict[str, Any] = {}
        for start in range(0, len(keys), _MAX_ACTIONS):
            request: dict[str, Any] = {}
            for table, key in keys[start : start + _MAX_ACTIONS]:
                entry = request.setdefault(table, {"Keys": [], "ConsistentRead": True})
                entry["Keys"].append(dynamo.serialize(key))
            while request:
                answer = self.client.batch_get_item(RequestItems=request)
                responses = answer.get("Responses", {})
                for raw in responses.get(store.assignments, []):
                    item = dynamo.deserialize(raw)
                    assignments[(int(item["experiment_id"]), str(item["unit"]))] = item
                for raw in responses.get(store.variants, []):
                    found_totals = dynamo.deserialize(raw)
                request = answer.get("UnprocessedKeys") or {}
        return assignments, found_totals

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
        unit: _UnitState,
        totals: dict[str, Any],
        shard: int,
    ) -> list[dict[str, Any]]:
        state = unit.state
        old_sum = Decimal(state["s"]) if state else Decimal(0)
        old_count = int(state["c"]) if state else 0
        deltas = _result_deltas(unit.x, write.value, old_sum, old_count)
        _check_precision(write.metric, totals, deltas)
        return [
            {"Put": self._put(write, variant_id)},
            {"Update": self._totals_update(write, variant_id, shard, totals, deltas)},
            {"Update": self._unit_update(write, unit, old_sum + write.value, old_count + 1)},
            *(
                {"Update": self._ratio_update(write, variant_id, unit, ratio, shard)}
                for ratio in write.ratios
            ),
        ]

    def _put(self, write: ResultWrite, variant_id: int) -> dict[str, Any]:
        """The raw result, written only if its result_id (the idempotency key) is new."""
        return {
            "TableName": self.store.results,
            "Item": dynamo.serialize(_result_item(write, variant_id)),
            "ConditionExpression": "attribute_not_exists(result_id)",
            "ReturnValuesOnConditionCheckFailure": "ALL_OLD",
        }

    def _totals_update(
        self,
        write: ResultWrite,
        variant_id: int,
        shard: int,
        totals: dict[str, Any],
        deltas: dict[str, Any],
        extremes: tuple[Decimal, Decimal] | None = None,
    ) -> dict[str, Any]:
        """ADD the deltas to the (variant, metric, shard) totals; min/max move out only from
        the values read (``extremes``: the lowest and highest value added, default the one)."""
        low, high = extremes or (write.value, write.value)
        totals_update, totals_condition, totals_values = _extremes(totals, low, high)
        totals_values.update(deltas)
        totals_values.update({":v": variant_id, ":m": write.metric})
        update: dict[str, Any] = {
            "TableName": self.store.variants,
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
            update["ConditionExpression"] = totals_condition
        return update

    def _unit_update(
        self, write: ResultWrite, unit: _UnitState, new_sum: Decimal, new_count: int
    ) -> dict[str, Any]:
        """The unit's new (sum, count) of the metric, guarded by the counts read of this metric
        and of every metric it forms a ratio with (their sums went into the cross sums)."""
        names: dict[str, str] = {"#m": "m"}
        values: dict[str, Any] = {":state": {"s": new_sum, "c": new_count}}
        conditions = []
        watched = [write.metric, *dict.fromkeys(other for _, other, _ in write.ratios)]
        for i, metric in enumerate(watched):
            names[f"#w{i}"] = metric
            seen = unit.states.get(metric)
            if seen is None:
                conditions.append(f"attribute_not_exists(#m.#w{i})")
            else:
                conditions.append(f"#m.#w{i}.#c = :c{i}")
                names["#c"] = "c"
                values[f":c{i}"] = int(seen["c"])
        expression = "SET #m.#w0 = :state"
        if unit.store_x:
            # A covariate with the unit's first result: stored once, only while it has none.
            names["#x"] = "x"
            values.update({":x": unit.x, ":none": 0})
            expression += ", #x = :x"
            conditions += ["attribute_not_exists(#x)", "size(#m) = :none"]
        return {
            "TableName": self.store.assignments,
            "Key": dynamo.serialize({"experiment_id": write.experiment_id, "unit": write.unit}),
            "UpdateExpression": expression,
            "ConditionExpression": " AND ".join(conditions),
            "ExpressionAttributeNames": names,
            "ExpressionAttributeValues": dynamo.serialize(values),
        }

    def _ratio_update(
        self,
        write: ResultWrite,
        variant_id: int,
        unit: _UnitState,
        ratio: tuple[str, str, bool],
        shard: int,
    ) -> dict[str, Any]:
        """ADD to the ratio's item: y times the unit's sum of the other metric (the change of
        N_i D_i), and the unit itself when this is its first result of either metric."""
        name, other, _ = ratio
        other_state = unit.states.get(other)
        other_sum = Decimal(other_state["s"]) if other_state else Decimal(0)
        new_unit = unit.state is None and other_state is None
        x = unit.x if new_unit else None
        deltas = {
            ":units": 1 if new_unit else 0,
            ":cross": write.value * other_sum,
            ":cov_units": 0 if x is None else 1,
            ":cov_sum": x if x is not None else 0,
            ":cov_sum_sq": x * x if x is not None else 0,
        }
        return {
            "TableName": self.store.variants,
            "Key": dynamo.serialize(
                {"experiment_id": write.experiment_id, "sk": ratio_sk(variant_id, name, shard)}
            ),
            "UpdateExpression": "ADD "
            + ", ".join(f"#{f} :{f}" for f in RATIO_FIELDS)
            + " SET #variant_id = :v, #ratio = :r",
            "ExpressionAttributeNames": {
                f"#{f}": f for f in (*RATIO_FIELDS, "variant_id", "ratio")
            },
            "ExpressionAttributeValues": dynamo.serialize({**deltas, ":v": variant_id, ":r": name}),
        }

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


@dataclass(frozen=True)
class _UnitState:
    """What the transaction needs of the unit's assignment item, as read."""

    states: dict[str, Any]  # metric -> {"s": sum, "c": count}
    state: dict[str, Any] | None  # of the result's metric
    x: Decimal | None  # the unit's covariate (stored, or sent with its first result)
    store_x: bool  # True when this transaction stores the covariate

    @classmethod
    def of(cls, assignment: dict[str, Any], write: ResultWrite) -> _UnitState:
        states = dict(assignment.get("m") or {})
        stored = assignment.get("x")
        store_x = stored is None and write.covariate is not None and not states
        x = Decimal(stored) if stored is not None else (write.covariate if store_x else None)
        return cls(states, states.get(write.metric), x, store_x)


def _unit_key(write: ResultWrite) -> tuple[int, str]:
    return (write.experiment_id, write.unit)


def _settle_repeats(
    entries: Sequence[BatchEntry],
    pending: list[int],
    done: dict[int, Outcome | Exception],
    stored: dict[tuple[int, str], dict[str, Any]],
) -> None:
    """A result_id repeated in the batch is a duplicate of the copy already settled."""
    for index in pending:
        write = entries[index].write
        item = stored.get((write.experiment_id, write.result_id))
        if item is not None and index not in done:
            mine = item.get("write_token") == write.item.get("write_token")
            status = "recorded" if mine else "duplicate"
            done[index] = Outcome(status, int(item["variant_id"]), item)


def _result_item(write: ResultWrite, variant_id: int) -> dict[str, Any]:
    return {
        "experiment_id": write.experiment_id,
        "result_id": write.result_id,
        "variant_id": variant_id,
        "metric_name": write.metric,
        "metric_value": write.value,
        "unit": write.unit,
        **write.item,
    }


def _result_deltas(
    x: Decimal | None, y: Decimal, old_sum: Decimal, old_count: int
) -> dict[str, Any]:
    """What one result adds to the totals, given the unit's sum and count of the metric
    before it (the unit-level fields telescope: added in order they give the final sums)."""
    new_sum, new_count = old_sum + y, old_count + 1
    return {
        ":results": 1,
        ":total": y,
        ":total_sq": y * y,
        ":units": 0 if old_count else 1,
        ":unit_sum_sq": new_sum * new_sum - old_sum * old_sum,
        ":unit_count_sq": 2 * old_count + 1,
        ":unit_sum_count": new_sum * new_count - old_sum * old_count,
        **_covariate_deltas(x, y, first=not old_count),
    }


def _covariate_deltas(x: Decimal | None, y: Decimal, first: bool) -> dict[str, Any]:
    """Changes of sum h, sum X, sum X^2 (on the unit's first result of the metric) and of
    sum X*S, sum X*m, sum h*S, sum h*m: all 0 for a unit without a covariate."""
    if x is None:
        return {f":{f}": 0 for f in TOTALS_FIELDS if f.startswith("cov_")}
    return {
        ":cov_units": 1 if first else 0,
        ":cov_sum": x if first else 0,
        ":cov_sum_sq": x * x if first else 0,
        ":cov_x_sum": x * y,
        ":cov_x_count": x,
        ":cov_h_sum": y,
        ":cov_h_count": 1,
    }


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


def _extremes(
    totals: dict[str, Any], low: Decimal, high: Decimal
) -> tuple[str, str, dict[str, Any]]:
    """SET clauses for a new min or max, guarded by the value read (min/max only move out)."""
    sets: list[str] = []
    conditions: list[str] = []
    values: dict[str, Any] = {}
    for attr, y, better in (
        ("min_y", low, lambda old: low < old),
        ("max_y", high, lambda old: high > old),
    ):
        old = totals.get(attr)
        placeholder = f":{attr}"
        if old is None:
            sets.append(f"{attr} = {placeholder}")
            conditions.append(f"attribute_not_exists({attr})")
        elif better(old):
            sets.append(f"{attr} = {placeholder}")
            conditions.append(f"{attr} = :old_{attr}")
            values[f":old_{attr}"] = old
        else:
            continue
        values[placeholder] = y
    clause = (", " + ", ".join(sets)) if sets else ""
    return clause, " AND ".join(conditions), values
