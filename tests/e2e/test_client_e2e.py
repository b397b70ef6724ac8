"""The Python client against the local API: local assignment agrees with the ledger, a
rebalance moves no one, and lost answers count nothing twice."""

from __future__ import annotations

from typing import Any

import pytest

from ab_testing_client import ABTestingClient
from tests.conftest import guide_experiment
from tests.e2e.conftest import LocalApi
from tests.e2e.fault_proxy import FaultProxy

pytestmark = pytest.mark.e2e
NAME = "Lead Qualification Prompt Test"
GET_VARIANT = "/api/v1/experiments/get-variant"


def start(api: LocalApi, **changes: Any) -> dict[str, Any]:
    status, created = api.call("POST", "/api/v1/experiments", guide_experiment(**changes))
    assert status == 201, created
    assert api.call("POST", f"/api/v1/experiments/{created['id']}/start")[0] == 200
    return created


def ledger(client: ABTestingClient, users: list[int]) -> dict[int, int]:
    """What the server's ledger holds for each user (get-variant answers from it)."""
    held: dict[int, int] = {}
    for user in users:
        answer = client.api.call("POST", GET_VARIANT, {"experiment_name": NAME, "user_id": user})
        body = answer.json()
        assert body["reason"] == "existing_assignment", (user, body)
        held[user] = body["variant"]["id"]
    return held


def units_per_variant(api: LocalApi, experiment_id: int) -> dict[int, int]:
    status, summary = api.call("GET", f"/api/v1/experiments/{experiment_id}/summary")
    assert status == 200
    return {v["variant_id"]: v["units_assigned"] for v in summary["variants"]}


def counted(*served: dict[int, int]) -> dict[int, int]:
    counts: dict[int, int] = {}
    for answers in served:
        for variant_id in answers.values():
            counts[variant_id] = counts.get(variant_id, 0) + 1
    return counts


def served(client: ABTestingClient, users: range) -> dict[int, int]:
    answers = {user: client.get_variant(NAME, user_id=user) for user in users}
    assert all(v is not None for v in answers.values())
    return {user: v.id for user, v in answers.items() if v is not None}


def local_client(url: str) -> ABTestingClient:
    # Generous timeouts: this checks agreement, not latency, on a busy test machine.
    return ABTestingClient(url, strict=True, background=False, refresh_interval=3600, timeout=30)


def test_local_assignment_matches_the_ledger_and_survives_a_rebalance(local_api: LocalApi) -> None:
    # Given a running 50/50 experiment and a client evaluating locally
    created = start(local_api)
    experiment_id = created["id"]
    remote = ABTestingClient(local_api.url, local_evaluation=False, strict=True, timeout=30)
    early = local_client(local_api.url)
    sample = list(range(0, 1000, 10))

    # When 1,000 users are assigned by the client and the exposures are sent
    first = served(early, range(1000))
    assert early.flush() is True
    # Then the ledger holds exactly the variants the client served: every exposure was
    # written as served, the ledger's counts per variant are the client's, and a sample
    # read back through get-variant agrees unit by unit
    assert early.stats.requests == 1 + 10  # the definitions, then 10 batches of 100
    assert (early.stats.exposures_sent, early.stats.conflicts, early.stats.refused) == (1000, 0, 0)
    assert units_per_variant(local_api, experiment_id) == counted(first)
    assert ledger(remote, sample) == {u: first[u] for u in sample}

    # When the experiment is rebalanced to 20/80
    control, treatment = _variants(local_api, experiment_id)
    status, _ = local_api.call(
        "PATCH",
        f"/api/v1/experiments/{experiment_id}",
        {
            "variants": [
                {"id": control["id"], "traffic_allocation": 20.0},
                {"id": treatment["id"], "traffic_allocation": 80.0},
            ]
        },
    )
    assert status == 200
    # and a fresh client serves the same units, the early client (not yet refreshed) serves
    # new ones by the old ranges, and the fresh one serves other new ones by the new ranges
    fresh = local_client(local_api.url)
    again = served(fresh, range(1000))
    asked = fresh.stats.requests - 1
    late_old = served(early, range(1000, 1150))
    late_new = served(fresh, range(1150, 1300))
    assert early.flush() is True and fresh.flush() is True

    # Then no exposed unit changed variant in either client or in the ledger
    assert again == first == served(early, range(1000))
    assert ledger(remote, sample) == {u: first[u] for u in sample}
    # and the units served around the rebalance are held as they were served
    assert units_per_variant(local_api, experiment_id) == counted(first, late_old, late_new)
    assert fresh.stats.conflicts == early.stats.conflicts == 0
    # and only units in the moved span (30% of the draws) were asked of the server
    assert 0.25 * 1000 < asked < 0.35 * 1000
    # and the new units follow the new weights
    share = sum(1 for v in late_new.values() if v == treatment["id"]) / len(late_new)
    assert 0.65 < share < 0.95
    for client in (remote, early, fresh):
        client.close()


def _variants(api: LocalApi, experiment_id: int) -> list[dict[str, Any]]:
    status, experiment = api.call("GET", f"/api/v1/experiments/{experiment_id}")
    assert status == 200
    variants: list[dict[str, Any]] = experiment["variants"]
    return variants


def test_lost_answers_count_every_result_exactly_once(local_api: LocalApi) -> None:
    # Given a proxy that loses 20% of the answers after the server has acted
    created = start(local_api)
    with FaultProxy(local_api.url, drop_share=0.2) as proxy:
        client = ABTestingClient(proxy.url, background=False, attempts=8, batch_size=25, timeout=30)

        # When 150 users are assigned locally and each records two results
        for user in range(150):
            run_variant = client.get_variant(NAME, user_id=user)
            assert run_variant is not None
            client.record(NAME, "resolution_rate", float(user % 2), user_id=user)
            client.record(NAME, "satisfaction_score", 4.0, user_id=user)
        rounds = 0
        while not client.flush():
            rounds += 1
            assert rounds < 10
        client.close()

    # Then answers were lost, and still every unit and every result counted exactly once
    assert proxy.dropped > 0
    status, summary = local_api.call("GET", f"/api/v1/experiments/{created['id']}/summary")
    assert status == 200
    assert summary["users_assigned"] == 150
    assert summary["results_collected"] == 300
    by_metric: dict[str, int] = {}
    for variant in summary["variants"]:
        for metric, count in variant["results_by_metric"].items():
            if count:
                by_metric[metric] = by_metric.get(metric, 0) + count
    assert by_metric == {"resolution_rate": 150, "satisfaction_score": 150}
    assert client.stats.refused == 0 and client.stats.dropped == 0
