"""Many clients at once through the local API: one assignment per unit, each result once."""

from __future__ import annotations

import random
from collections import Counter, defaultdict
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest

from tests.conftest import guide_experiment
from tests.e2e.conftest import LocalApi

pytestmark = pytest.mark.e2e


def started(api: LocalApi, name: str) -> int:
    status, created = api.call("POST", "/api/v1/experiments/", guide_experiment(name=name))
    assert status == 201
    assert api.call("POST", f"/api/v1/experiments/{created['id']}/start")[0] == 200
    return int(created["id"])


def test_concurrent_get_variant_is_sticky_and_stored_once(local_api: LocalApi) -> None:
    # Given a running experiment and 2,000 requests for 200 units, shuffled
    experiment_id = started(local_api, "concurrency")
    requests = [unit for unit in range(200) for _ in range(10)]
    random.Random(7).shuffle(requests)

    def ask(unit: int) -> tuple[int, int, Any]:
        status, answer = local_api.call(
            "POST",
            "/api/v1/experiments/get-variant",
            {"experiment_id": experiment_id, "user_id": unit},
        )
        return unit, status, answer["variant"]["id"]

    # When 16 threads send them at once
    with ThreadPoolExecutor(max_workers=16) as pool:
        answers = list(pool.map(ask, requests))

    # Then every request succeeded, every unit got one and the same variant
    assert {status for _, status, _ in answers} == {200}
    seen: dict[int, set[int]] = defaultdict(set)
    for unit, _, variant in answers:
        seen[unit].add(variant)
    assert all(len(variants) == 1 for variants in seen.values())
    assert len(seen) == 200
    # And exactly one assignment per unit was stored and counted
    _, summary = local_api.call("GET", f"/api/v1/experiments/{experiment_id}/summary")
    assert summary["users_assigned"] == 200
    per_variant = Counter(next(iter(v)) for v in seen.values())
    assert {v["variant_id"]: v["units_assigned"] for v in summary["variants"]} == per_variant


def test_concurrent_results_with_retries_count_exactly_once(local_api: LocalApi) -> None:
    # Given 100 assigned users and 1,000 results, 10% of them sent twice with the same key
    experiment_id = started(local_api, "ingestion")
    variant_of: dict[int, int] = {}
    for user in range(100):
        _, answer = local_api.call(
            "POST",
            "/api/v1/experiments/get-variant",
            {"experiment_id": experiment_id, "user_id": user},
        )
        variant_of[user] = answer["variant"]["id"]
    rng = random.Random(11)
    results = [
        {
            "experiment_id": experiment_id,
            "user_id": rng.randrange(100),
            "metric_name": "satisfaction_score",
            "metric_value": rng.choice([1, 2.5, 3, 4.5, 5]),
            "idempotency_key": f"result-{i}",
        }
        for i in range(1000)
    ]
    sends = results + rng.sample(results, 100)
    rng.shuffle(sends)

    def send(body: dict[str, Any]) -> tuple[int, Any]:
        return local_api.call("POST", "/api/v1/experiments/record-result", body)

    # When 8 threads send them at once
    with ThreadPoolExecutor(max_workers=8) as pool:
        answers = list(pool.map(send, sends))

    # Then 1,000 were recorded once and the 100 repeats were answered as duplicates
    statuses = Counter(status for status, _ in answers)
    assert statuses == {201: 1000, 200: 100}
    assert sum(1 for _, a in answers if a.get("duplicate")) == 100
    _, summary = local_api.call("GET", f"/api/v1/experiments/{experiment_id}/summary")
    assert summary["results_collected"] == 1000
    # And the analysis's per-variant statistics equal a recomputation from what was sent
    _, analysis = local_api.call("GET", f"/api/v1/experiments/{experiment_id}/analyze")
    stats = analysis["metrics"]["satisfaction_score"]["variant_stats"]
    by_variant: dict[int, list[dict[str, Any]]] = defaultdict(list)
    for r in results:
        by_variant[variant_of[r["user_id"]]].append(r)
    assert set(stats) == {str(v) for v in set(variant_of.values())}
    for variant_id, sent in by_variant.items():
        values = [r["metric_value"] for r in sent]
        got = stats[str(variant_id)]
        assert got["count"] == len(values)
        assert got["units"] == len({r["user_id"] for r in sent})
        assert got["count"] * got["mean"] == pytest.approx(sum(values))
        assert (got["min"], got["max"]) == (min(values), max(values))
    status, report = local_api.call("GET", f"/api/v1/experiments/{experiment_id}/reconciliation")
    assert status == 200
    assert report["results_read"] == 1000
    assert report["differences"] == []


def test_concurrent_batches_on_the_same_units_count_exactly_once(local_api: LocalApi) -> None:
    # Given 20 assigned users and 600 results on two metrics, 60 of them sent twice, packed in
    # batches of 50: every batch touches most users, so their transactions collide
    experiment_id = started(local_api, "folded batches")
    for user in range(20):
        local_api.call(
            "POST",
            "/api/v1/experiments/get-variant",
            {"experiment_id": experiment_id, "user_id": user},
        )
    rng = random.Random(5)
    results = []
    for i in range(600):
        metric = rng.choice(["resolution_rate", "satisfaction_score"])
        value = rng.choice([0, 1]) if metric == "resolution_rate" else rng.randint(0, 50) / 10
        results.append(
            {
                "experiment_id": experiment_id,
                "user_id": rng.randrange(20),
                "metric_name": metric,
                "metric_value": value,
                "idempotency_key": f"batch-result-{i}",
            }
        )
    sends = results + rng.sample(results, 60)
    rng.shuffle(sends)
    batches = [sends[i : i + 50] for i in range(0, len(sends), 50)]

    def send(batch: list[dict[str, Any]]) -> list[int]:
        """Sends a batch, and again the items answered 503 (as a client retries)."""
        statuses: dict[int, int] = {}
        todo = list(range(len(batch)))
        for _ in range(20):
            status, answer = local_api.call(
                "POST", "/api/v1/experiments/record-results", {"results": [batch[i] for i in todo]}
            )
            assert status == 200, answer
            for index, item in zip(todo, answer["results"], strict=True):
                statuses[index] = item["status"]
            todo = [i for i in todo if statuses[i] == 503]
            if not todo:
                break
        return [statuses[i] for i in range(len(batch))]

    # When 6 threads send the batches at once
    with ThreadPoolExecutor(max_workers=6) as pool:
        answered = [s for statuses in pool.map(send, batches) for s in statuses]

    # Then each result was recorded once and each repeat answered as a duplicate
    assert Counter(answered) == {201: 600, 200: 60}
    _, summary = local_api.call("GET", f"/api/v1/experiments/{experiment_id}/summary")
    assert summary["results_collected"] == 600
    # And the running totals equal a recomputation from the raw results
    status, report = local_api.call("GET", f"/api/v1/experiments/{experiment_id}/reconciliation")
    assert status == 200
    assert report["results_read"] == 600
    assert report["differences"] == []
