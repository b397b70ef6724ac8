"""What a batch of 100 results costs in DynamoDB calls and request units, one by one or folded.

Runs entirely under moto (no AWS account):

    .venv/bin/python benchmarks/bench_batch.py [--units 50] [--metrics 2]

The product guide's experiment (2 variants) with ``--units`` assigned users; each batch holds
one result per (user, metric) (50 users x 2 metrics = 100 results). Two batches are sent (the
first for units without results yet, the second for the same units again), each in two modes:

- one by one: every result through ``ExperimentService.record`` (a BatchGetItem and a
  TransactWriteItems each), which is what record-results did before it folded;
- folded: ``ExperimentService.record_many``, one transaction per (variant, metric, shard).

Counted with botocore's hooks: the calls by operation, the actions of committed transactions
and their write request units (2 WRU per action per KB of the item, sizes computed from the
items as stored), and the keys read strongly consistent (1 RRU each: every item is under
4 KB). Wall time under moto is printed but says little about DynamoDB's latency. Both modes
must leave identical running totals, and reconciliation must find no difference.
"""

from __future__ import annotations

import argparse
import contextlib
import math
import time
from collections import Counter
from collections.abc import Iterator
from decimal import Decimal
from typing import Any

import _local  # noqa: F401  (first: sys.path and fake AWS credentials)

from ab_testing import assignment
from ab_testing.reconcile import reconcile
from ab_testing.service import ExperimentService
from ab_testing.settings import Settings
from ab_testing.store import Store
from tests.conftest import guide_experiment, local_dynamodb

METRICS = ("resolution_rate", "satisfaction_score", "response_time")


def value_size(value: dict[str, Any]) -> int:
    """DynamoDB's size of one attribute value (numbers: about 1 byte per 2 digits, + 1)."""
    kind, inner = next(iter(value.items()))
    if kind == "S":
        return len(inner.encode())
    if kind == "N":
        digits = len(inner.lstrip("-").replace(".", "").strip("0")) or 1
        return math.ceil(digits / 2) + 1
    if kind == "M":
        return 3 + sum(len(k.encode()) + value_size(v) + 1 for k, v in inner.items())
    if kind == "L":
        return 3 + sum(value_size(v) + 1 for v in inner)
    return 1  # BOOL, NULL


def item_size(item: dict[str, Any]) -> int:
    return sum(len(name.encode()) + value_size(value) for name, value in item.items())


class Meter:
    """DynamoDB calls, committed transaction actions, WRU and RRU, through botocore hooks."""

    def __init__(self, client: Any) -> None:
        self.client = client
        self.calls: Counter[str] = Counter()
        self.actions = 0
        self.wru = 0
        self.rru = 0
        self.cancelled = 0
        self._sent: dict[str, Any] = {}
        self._paused = False
        events = client.meta.events
        events.register("provide-client-params.dynamodb", self._params)
        events.register("after-call.dynamodb", self._after)

    def _params(self, params: dict[str, Any], model: Any, **_: Any) -> None:
        if not self._paused:
            self._sent = {"op": model.name, "params": params}

    def _after(self, http_response: Any, model: Any, **_: Any) -> None:
        if self._paused:
            return
        self.calls[model.name] += 1
        params = self._sent.get("params", {})
        if model.name == "BatchGetItem":
            self.rru += sum(len(t["Keys"]) for t in params["RequestItems"].values())
        if model.name != "TransactWriteItems":
            return
        if http_response.status_code != 200:
            self.cancelled += 1
            return
        for entry in params["TransactItems"]:
            self.actions += 1
            op = next(iter(entry.values()))
            size = item_size(op["Item"]) if "Item" in op else self._stored_size(op)
            self.wru += 2 * max(1, math.ceil(size / 1024))

    def _stored_size(self, op: dict[str, Any]) -> int:
        self._paused = True
        try:
            found = self.client.get_item(TableName=op["TableName"], Key=op["Key"])
        finally:
            self._paused = False
        return item_size(found.get("Item", {}))

    @contextlib.contextmanager
    def measuring(self) -> Iterator[dict[str, Any]]:
        self.calls.clear()
        self.actions = self.wru = self.rru = self.cancelled = 0
        figures: dict[str, Any] = {}
        start = time.perf_counter()
        yield figures
        figures.update(
            calls=dict(self.calls),
            total_calls=sum(self.calls.values()),
            actions=self.actions,
            wru=self.wru,
            rru=self.rru,
            cancelled=self.cancelled,
            ms=(time.perf_counter() - start) * 1000,
        )


def batch(experiment_id: int, units: int, metrics: int, round_: int) -> list[dict[str, Any]]:
    return [
        {
            "experiment_id": experiment_id,
            "user_id": user,
            "metric_name": metric,
            "metric_value": (user * 7 + round_ * 3 + m) % 2
            if metric == "resolution_rate"
            else Decimal((user * 13 + round_ * 5 + m) % 50) / 10,
            "idempotency_key": f"r{round_}",
        }
        for user in range(units)
        for m, metric in enumerate(METRICS[:metrics])
    ]


def run(mode: str, units: int, metrics: int) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    with local_dynamodb() as client:
        service = ExperimentService(Store(Settings(), client=client), cache_ttl_seconds=60)
        experiment_id = int(service.create_experiment(guide_experiment())["id"])
        service.start_experiment(experiment_id)
        for user in range(units):
            service.get_variant({"experiment_id": experiment_id, "user_id": user})
        meter = Meter(client)
        rows = []
        for round_ in (1, 2):
            items = batch(experiment_id, units, metrics, round_)
            service.record({**items[0], "idempotency_key": f"warm{round_}"})  # cache the experiment
            with meter.measuring() as figures:
                if mode == "folded":
                    answers = service.record_many({"results": items})["results"]
                else:
                    answers = [service.record(item) for item in items]
            assert all(a["recorded"] and not a.get("duplicate") for a in answers)
            rows.append({"mode": mode, "batch": round_, "results": len(items), **figures})
        totals = {
            str(item["sk"]): item
            for item in service.store.query_experiment_items(experiment_id, prefix="totals")
        }
        assert reconcile(service.store, experiment_id)["differences"] == []
        return rows, totals


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--units", type=int, default=50)
    parser.add_argument("--metrics", type=int, default=2, choices=range(1, 4))
    args = parser.parse_args()
    if args.units * args.metrics > 100:
        parser.error("a batch holds at most 100 results: units x metrics <= 100")
    salt = assignment.new_salt()
    assignment.new_salt = lambda: salt  # the same variants in both runs
    one, one_totals = run("one by one", args.units, args.metrics)
    folded, folded_totals = run("folded", args.units, args.metrics)
    assert one_totals == folded_totals, "folded totals differ from one by one"
    print(
        f"batches of {args.units} units x {args.metrics} metrics on 2 variants "
        "(moto; batch 1: units without results, batch 2: the same units again)"
    )
    print(
        f"{'mode':<11} {'batch':>5} {'calls':>6} {'BatchGet':>9} {'Transact':>9} "
        f"{'actions':>8} {'WRU':>5} {'RRU':>5} {'WRU/result':>11} {'moto ms':>8}"
    )
    for row in one + folded:
        calls = row["calls"]
        print(
            f"{row['mode']:<11} {row['batch']:>5} {row['total_calls']:>6} "
            f"{calls.get('BatchGetItem', 0):>9} {calls.get('TransactWriteItems', 0):>9} "
            f"{row['actions']:>8} {row['wru']:>5} {row['rru']:>5} "
            f"{row['wru'] / row['results']:>11.2f} {row['ms']:>8.0f}"
        )
    print("running totals identical in both modes; reconciliation clean")


if __name__ == "__main__":
    main()
