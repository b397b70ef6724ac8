"""record-results folds a batch into one transaction per (variant, metric, shard).

The folded batch must leave the store exactly as recording the same results one by one does:
the same running totals (Decimal-exact, every field), the same units' sums, the same answers.
"""

from __future__ import annotations

import random
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import pytest

from ab_testing.errors import DomainError, as_unavailable
from tests.conftest import guide_experiment

CLOCK = "2026-11-29T12:00:00.000Z"
RATIO = {
    "name": "cost_per_resolution",
    "numerator": "cost_usd",
    "denominator": "resolution_rate",
    "direction": "lower",
}
KEYS = ["k0", "k1", "k2", "k3", "k4"]


@contextmanager
def fresh_service(shards: int, monkeypatch: pytest.MonkeyPatch) -> Iterator[Any]:
    """A new moto store and a service whose salts and clock are fixed (same variants and
    timestamps in every run)."""
    from ab_testing import assignment
    from ab_testing.service import ExperimentService
    from ab_testing.settings import Settings
    from ab_testing.store import Store
    from tests.conftest import local_dynamodb

    monkeypatch.setattr(assignment, "new_salt", lambda: "0123456789abcdef")
    with local_dynamodb() as client:
        yield ExperimentService(
            Store(Settings(totals_shards=shards), client=client),
            clock=lambda: CLOCK,
            cache_ttl_seconds=60,
        )


def one_by_one(service: Any, items: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Each item through ``record``, answered as record-results answered before folding."""
    answers = []
    for index, item in enumerate(items):
        try:
            answer = service.record(item)
            code = 201 if answer["recorded"] and not answer.get("duplicate") else 200
            answers.append({"index": index, "status": code, **answer})
        except DomainError as exc:
            answers.append({"index": index, "status": exc.status, **exc.body()})
        except Exception as exc:
            unavailable = as_unavailable(exc)
            assert unavailable is not None, exc
            answers.append({"index": index, "status": 503, **unavailable.body()})
    return answers


def comparable(answers: list[dict[str, Any]], items: list[dict[str, Any]]) -> list[Any]:
    """Answers without the random result ids of results sent without a key."""
    shown = []
    for answer, item in zip(answers, items, strict=True):
        answer = dict(answer)
        if not item.get("idempotency_key"):
            answer.pop("result_id", None)
            answer.get("stored", {}).pop("result_id", None)
        shown.append(answer)
    return shown


def state(service: Any, experiment_ids: list[int]) -> dict[str, Any]:
    """Every totals and ratio item, and every unit's sums and covariate, as stored."""
    store = service.store
    found: dict[str, Any] = {}
    for eid in experiment_ids:
        for item in store.query_experiment_items(eid):
            if str(item["sk"]).startswith(("totals", "ratio")):
                found[f"{eid}/{item['sk']}"] = item
        for item in store.query_all(
            {
                "TableName": store.assignments,
                "KeyConditionExpression": "experiment_id = :e",
                "ExpressionAttributeValues": {":e": {"N": str(eid)}},
            }
        ):
            found[f"{eid}/unit/{item['unit']}"] = (item.get("m"), item.get("x"))
    return found


def setup(service: Any) -> tuple[int, int]:
    """Experiment A: a covariate, three plain metrics. Experiment B: a ratio metric.

    Users 0-5 are assigned with a covariate, 6-11 without; sessions s0 and s1 are assigned
    (users 20 and 21 log in from them); users 12 and 13 are never assigned.
    """
    a = service.create_experiment(
        guide_experiment(
            name="A",
            secondary_metrics=["satisfaction_score", "response_time"],
            covariate="prior_resolution_rate",
        )
    )["id"]
    b = service.create_experiment(
        guide_experiment(
            name="B",
            secondary_metrics=["cost_usd", "latency_ms", "cost_per_resolution"],
            ratio_metrics=[RATIO],
        )
    )["id"]
    for eid in (a, b):
        service.start_experiment(eid)
    for user in range(12):
        body: dict[str, Any] = {"experiment_id": a, "user_id": user}
        if user < 6:
            body["covariates"] = {"prior_resolution_rate": user / 10}
        service.get_variant(body)
        service.get_variant({"experiment_id": b, "user_id": user})
    for session in ("s0", "s1"):
        service.get_variant({"experiment_id": a, "session_id": session})
    return int(a), int(b)


def random_items(rng: random.Random, a: int, b: int, count: int) -> list[dict[str, Any]]:
    """Units repeating, several metrics, keys from a small pool (repeats with the same value
    and, now and then, another), covariates on some, sessions, bad and unassigned items."""
    values: dict[tuple[int, Any, str, str], Any] = {}
    items = []
    for _ in range(count):
        roll = rng.random()
        item: dict[str, Any]
        if roll < 0.65:
            user = rng.choice([*range(14), 20, 21])
            metric = rng.choice(["resolution_rate", "satisfaction_score", "response_time"])
            value: Any = {
                "resolution_rate": rng.choice([0, 1]),
                "satisfaction_score": rng.randint(0, 5000) / 1000,
                "response_time": rng.randint(1, 90000) / 100,
            }[metric]
            item = {"experiment_id": a, "user_id": user, "metric_name": metric}
            if user in (20, 21) and rng.random() < 0.6:
                item["session_id"] = f"s{user - 20}"
            if rng.random() < 0.3:
                item["covariates"] = {"prior_resolution_rate": rng.randint(0, 100) / 100}
        elif roll < 0.95:
            user = rng.randrange(8)
            metric = rng.choice(["cost_usd", "resolution_rate", "latency_ms", "latency_ms"])
            value = {
                "cost_usd": rng.randint(1, 5000) / 10000,
                "resolution_rate": rng.choice([0, 1]),
                "latency_ms": rng.randint(1, 5000),
            }[metric]
            item = {"experiment_id": b, "user_id": user, "metric_name": metric}
        else:
            item = {"experiment_id": a, "user_id": 1, "metric_name": "resolution_rate"}
            metric, value = "resolution_rate", rng.choice([7, "high"])  # refused: 400
        if rng.random() < 0.5:
            key = rng.choice(KEYS)
            scoped = (item["experiment_id"], item["user_id"], metric, key)
            if scoped in values and rng.random() < 0.8:
                value = values[scoped]  # a retry: a duplicate
            values.setdefault(scoped, value)
            item["idempotency_key"] = key
        item["metric_value"] = value
        items.append(item)
    return items


@pytest.mark.parametrize(("seed", "shards"), [(0, 1), (1, 1), (2, 2), (3, 1), (4, 3)])
def test_a_folded_batch_stores_exactly_what_one_by_one_stores(
    monkeypatch: pytest.MonkeyPatch, seed: int, shards: int
) -> None:
    from ab_testing.analysis import ExperimentAnalysis

    rng = random.Random(seed)
    stored_first = random_items(rng, 1, 2, 15)  # keys already stored before the batch
    batch = random_items(rng, 1, 2, 100)
    outcome: dict[str, Any] = {}
    for mode in ("one by one", "folded"):
        with fresh_service(shards, monkeypatch) as service:
            # Given the same experiments, units and earlier results
            a, b = setup(service)
            assert (a, b) == (1, 2)
            one_by_one(service, stored_first)
            # When the batch is recorded one by one, or folded
            answers = (
                one_by_one(service, batch)
                if mode == "one by one"
                else service.record_many({"results": batch})["results"]
            )
            outcome[mode] = (comparable(answers, batch), state(service, [a, b]))
            if mode == "folded":
                # And the raw results reconcile with the totals
                for eid in (a, b):
                    report = ExperimentAnalysis(service).reconcile(eid)
                    assert report["differences"] == []
    # Then the answers and every stored number are the same
    statuses = {a["status"] for a in outcome["folded"][0]}
    assert {200, 201} <= statuses
    assert outcome["folded"][0] == outcome["one by one"][0]
    assert outcome["folded"][1] == outcome["one by one"][1]


def test_a_group_over_49_results_is_split_and_exact(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # Given 160 assigned users; 70 of them in the same variant
    def scenario(service: Any) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
        eid = service.create_experiment(guide_experiment(name="big group"))["id"]
        service.start_experiment(eid)
        variant = {
            user: service.get_variant({"experiment_id": eid, "user_id": user})["variant"]["id"]
            for user in range(160)
        }
        control = [user for user in range(160) if variant[user] == variant[0]][:70]
        assert len(control) == 70
        # one result each, then 30 more from the first 30 (one unit twice in a transaction)
        users = control + control[:30]
        items = [
            {
                "experiment_id": eid,
                "user_id": user,
                "metric_name": "resolution_rate",
                "metric_value": (user * 7 + i) % 2,
                "idempotency_key": f"r{i}",
            }
            for i, user in enumerate(users)
        ]
        return items, []

    calls: list[int] = []
    outcome = {}
    for mode in ("one by one", "folded"):
        with fresh_service(1, monkeypatch) as service:
            items, _ = scenario(service)

            def count(params: Any, **_: Any) -> None:
                calls.append(params["body"].count(b'"Put"') + params["body"].count(b'"Update"'))

            events = service.store.client.meta.events
            events.register("before-call.dynamodb.TransactWriteItems", count)
            calls.clear()
            if mode == "folded":
                answers = service.record_many({"results": items})["results"]
            else:
                answers = one_by_one(service, items)
            events.unregister("before-call.dynamodb.TransactWriteItems", count)
            outcome[mode] = (answers, state(service, [1]), list(calls))
    # When the 100 results of one totals item are folded
    answers, stored, actions = outcome["folded"]
    # Then they go in several transactions, none over DynamoDB's 100 actions
    assert len(actions) >= 2 and max(actions) <= 100
    assert sum(actions) < sum(outcome["one by one"][2])
    # And every result counted once, with totals equal to one by one
    assert [a["status"] for a in answers] == [201] * 100
    assert stored == outcome["one by one"][1]


def test_a_repeated_key_in_a_batch_is_counted_once_and_a_new_value_is_a_409(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    with fresh_service(1, monkeypatch) as service:
        eid = service.create_experiment(guide_experiment(name="repeats"))["id"]
        service.start_experiment(eid)
        service.get_variant({"experiment_id": eid, "user_id": 1})
        item = {
            "experiment_id": eid,
            "user_id": 1,
            "metric_name": "resolution_rate",
            "metric_value": 1,
            "idempotency_key": "same",
        }
        answer = service.record_many({"results": [item, item, {**item, "metric_value": 0}]})
        assert [a["status"] for a in answer["results"]] == [201, 200, 409]
        assert answer["results"][1]["duplicate"] is True
        assert answer["results"][2]["stored"]["metric_value"] == 1
        totals = [i for i in service.store.query_experiment_items(eid, prefix="totals")]
        assert [(t["results"], t["total"], t["units"]) for t in totals] == [(1, 1, 1)]


def test_a_user_logging_in_mid_batch_counts_from_then_on(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # Given an assigned session and its user, unassigned: the user's first result comes
    # without the session, the second with it, the third without again
    outcome = {}
    for mode in ("one by one", "folded"):
        with fresh_service(1, monkeypatch) as service:
            eid = service.create_experiment(guide_experiment(name="login"))["id"]
            service.start_experiment(eid)
            service.get_variant({"experiment_id": eid, "session_id": "visit"})
            base = {"experiment_id": eid, "user_id": 9, "metric_name": "resolution_rate"}
            items = [
                {**base, "metric_value": 1},
                {**base, "metric_value": 1, "session_id": "visit"},
                {**base, "metric_value": 0},
            ]
            if mode == "folded":
                answers = service.record_many({"results": items})["results"]
            else:
                answers = one_by_one(service, items)
            outcome[mode] = (comparable(answers, items), state(service, [eid]))
    # Then the first is not counted and the next two are, as one by one
    assert [a["status"] for a in outcome["folded"][0]] == [200, 201, 201]
    assert outcome["folded"] == outcome["one by one"]


@pytest.mark.parametrize("covariate", [0, 0.4])
def test_a_new_units_first_result_decides_its_covariate_as_one_by_one(
    monkeypatch: pytest.MonkeyPatch, covariate: float
) -> None:
    # Given two new units of one variant; the second's first result carries a covariate (0
    # too), and its next result belongs to a group that an earlier result opens
    outcome = {}
    for mode in ("one by one", "folded"):
        with fresh_service(1, monkeypatch) as service:
            eid = service.create_experiment(
                guide_experiment(
                    name="covariate order",
                    secondary_metrics=["satisfaction_score"],
                    covariate="prior_resolution_rate",
                )
            )["id"]
            service.start_experiment(eid)
            variant = {
                u: service.get_variant({"experiment_id": eid, "user_id": u})["variant"]["id"]
                for u in range(40)
            }
            v, u = [user for user in range(40) if variant[user] == variant[0]][:2]
            first = {"experiment_id": eid, "metric_name": "resolution_rate", "metric_value": 1}
            items = [
                {**first, "user_id": v},
                {
                    "experiment_id": eid,
                    "user_id": u,
                    "metric_name": "satisfaction_score",
                    "metric_value": 4.5,
                    "covariates": {"prior_resolution_rate": covariate},
                },
                {**first, "user_id": u},
            ]
            if mode == "folded":
                answers = service.record_many({"results": items})["results"]
            else:
                answers = one_by_one(service, items)
            outcome[mode] = (comparable(answers, items), state(service, [eid]))
    # Then the covariate is stored, and every total is the same as one by one
    assert outcome["folded"] == outcome["one by one"]
    assert any(x is not None for key, value in outcome["folded"][1].items() if "/unit/" in key
               for x in [value[1]])  # fmt: skip


def test_a_unit_past_its_first_result_folds_its_covariate_results_in_one_transaction(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # Given a unit that already has a result, recorded without a covariate
    with fresh_service(1, monkeypatch) as service:
        eid = service.create_experiment(
            guide_experiment(name="late covariate", covariate="prior_resolution_rate")
        )["id"]
        service.start_experiment(eid)
        service.get_variant({"experiment_id": eid, "user_id": "late"})
        first = {"experiment_id": eid, "user_id": "late", "metric_name": "resolution_rate"}
        service.record({**first, "metric_value": 1, "idempotency_key": "k0"})
        writes: list[str] = []
        service.store.client.meta.events.register(
            "before-call.dynamodb.TransactWriteItems", lambda **_: writes.append("w")
        )
        # When a batch brings two more of its results, each with a covariate
        covariates = {"prior_resolution_rate": 0.5}
        items = [
            {**first, "metric_value": v, "idempotency_key": k, "covariates": covariates}
            for v, k in ((0, "k1"), (1, "k2"))
        ]
        answers = service.record_many({"results": items})["results"]
    # Then both are recorded in one transaction: only a unit's first result waits for its own
    assert [a["status"] for a in answers] == [201, 201]
    assert writes == ["w"]


def test_the_ledger_answers_a_folded_batch_as_record_would(service: Any) -> None:
    """Ledger.record_many answers each entry as Ledger.record would have: results folded into
    one transaction are each "recorded" with their variant and stored item, and a key sent
    again is a "duplicate" carrying the first item."""
    eid = service.create_experiment(guide_experiment(name="folded outcomes"))["id"]
    service.start_experiment(eid)
    variant = service.get_variant({"experiment_id": eid, "user_id": 1})["variant"]["id"]
    outcomes: list[Any] = []
    record_many = service.ledger.record_many

    def answered(entries: Any) -> Any:
        these = record_many(entries)
        outcomes.extend(these)
        return these

    service.ledger.record_many = answered
    first = {"experiment_id": eid, "user_id": 1, "metric_name": "resolution_rate"}
    service.record_many(
        {
            "results": [
                {**first, "metric_value": 1, "idempotency_key": "a"},
                {**first, "metric_value": 0, "idempotency_key": "b"},
            ]
        }
    )
    service.record_many({"results": [{**first, "metric_value": 1, "idempotency_key": "a"}]})
    assert [(o.status, o.variant_id) for o in outcomes] == [
        ("recorded", variant),
        ("recorded", variant),
        ("duplicate", variant),
    ]
    assert [o.item["idempotency_key"] for o in outcomes[:2]] == ["a", "b"]
    duplicate = outcomes[2].item
    assert duplicate["recorded_at"] == outcomes[0].item["recorded_at"]
    assert duplicate["metric_value"] == 1
