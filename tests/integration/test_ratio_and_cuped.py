"""Ratio metrics and CUPED through the service on moto: the ledger's unit-level sums give the
same numbers as a direct computation on the raw per-unit sums."""

from __future__ import annotations

import math
import random
from collections import defaultdict
from decimal import Decimal
from typing import Any

import pytest

from ab_testing.analysis import ExperimentAnalysis
from tests.conftest import guide_experiment, invoke

RATIO = {
    "name": "cost_per_resolution",
    "numerator": "cost_usd",
    "denominator": "resolution_rate",
    "direction": "lower",
}


def _experiment(**changes: Any) -> dict[str, Any]:
    body = guide_experiment(
        name="LLM cost experiment",
        secondary_metrics=["cost_usd", "latency_ms", "cost_per_resolution"],
        guardrail_metrics=["cost_per_resolution"],
        ratio_metrics=[RATIO],
        covariate="prior_resolution_rate",
        min_sample_size=10,
    )
    body.update(changes)
    return body


def _record(service: Any, eid: int, user: int, metric: str, value: float, **extra: Any) -> dict:
    body = {"experiment_id": eid, "user_id": user, "metric_name": metric, "metric_value": value}
    return dict(service.record({**body, **extra}))


def _load(service: Any, eid: int, users: int, seed: int) -> dict[int, dict[str, Any]]:
    """Assigns users (most with a covariate) and records cost and resolution results."""
    rng = random.Random(seed)
    raw: dict[int, dict[str, Any]] = {}
    for user in range(users):
        prior = round(rng.random(), 3)
        body: dict[str, Any] = {"experiment_id": eid, "user_id": user}
        if user % 5:  # every fifth user comes without a covariate
            body["covariates"] = {"prior_resolution_rate": prior, "other": 1}
        variant = service.get_variant(body)["variant"]["id"]
        unit = {"variant": variant, "x": prior if user % 5 else None, "cost": [], "res": []}
        for call in range(rng.randint(1, 3)):
            cost = round(0.0001 + rng.random() * 0.002, 6)
            _record(service, eid, user, "cost_usd", cost, idempotency_key=f"r{call}")
            unit["cost"].append(Decimal(str(cost)))
        if rng.random() < 0.8:
            resolved = 1 if rng.random() < 0.3 + 0.5 * prior else 0
            _record(service, eid, user, "resolution_rate", resolved, idempotency_key="r0")
            unit["res"].append(Decimal(resolved))
        raw[user] = unit
    return raw


def _delta_method(units: list[dict[str, Any]]) -> tuple[float, float]:
    n = [float(sum(u["cost"])) for u in units]
    d = [float(sum(u["res"])) for u in units]
    k = len(units)
    r = sum(n) / sum(d)
    d_bar = sum(d) / k
    resid = sum((a - r * b) ** 2 for a, b in zip(n, d, strict=True))
    return r, math.sqrt(resid / ((k - 1) * k * d_bar**2))


def test_ratio_metric_equals_a_direct_delta_method_computation(service: Any) -> None:
    # Given an experiment declaring cost per resolution, with results of both metrics
    eid = int(service.create_experiment(_experiment())["id"])
    service.start_experiment(eid)
    raw = _load(service, eid, users=40, seed=3)
    # When it is analysed
    analysis = ExperimentAnalysis(service).analyze(eid)
    ratio = analysis["metrics"]["cost_per_resolution"]
    # Then each variant's ratio and the difference's standard error match the raw sums
    by_variant: dict[int, list[dict[str, Any]]] = defaultdict(list)
    for unit in raw.values():
        by_variant[unit["variant"]].append(unit)
    direct = {vid: _delta_method(units) for vid, units in by_variant.items()}
    for vid, (r, _) in direct.items():
        assert ratio["variant_stats"][str(vid)]["mean"] == pytest.approx(r, rel=1e-9)
        assert ratio["variant_stats"][str(vid)]["units"] == len(by_variant[vid])
    control, treatment = sorted(direct)
    comparison = ratio["comparisons"][0]
    assert comparison["absolute_difference"] == pytest.approx(
        direct[treatment][0] - direct[control][0], rel=1e-9
    )
    se = math.hypot(direct[control][1], direct[treatment][1])
    half = (comparison["absolute_ci"][1] - comparison["absolute_ci"][0]) / 2
    assert half / se == pytest.approx(comparison_quantile(comparison["df"]), rel=1e-9)
    # And it is a guardrail like any metric, with a CUPED read-out beside the raw one
    assert any(g["metric"] == "cost_per_resolution" for g in analysis["guardrails"])
    cuped = comparison["cuped"]
    assert cuped["units_with_covariate"] < cuped["units"]
    assert "no covariate" in cuped["note"]
    # And reconciliation recomputes the cross sums and units from the raw results: clean
    report = ExperimentAnalysis(service).reconcile(eid)
    assert report["clean"], report["differences"]
    # A drifted cross sum would show
    items = service.store.query_experiment_items(eid, prefix="ratio#")
    service.store.client.update_item(
        TableName=service.store.variants,
        Key={"experiment_id": {"N": str(eid)}, "sk": {"S": items[0]["sk"]}},
        UpdateExpression="ADD #c :one",
        ExpressionAttributeNames={"#c": "cross"},
        ExpressionAttributeValues={":one": {"N": "1"}},
    )
    drift = ExperimentAnalysis(service).reconcile(eid)["differences"]
    assert [(d["metric"], d["field"]) for d in drift] == [("cost_per_resolution", "cross")]


def test_the_ratio_keeps_the_covariate_sums_of_its_units(service: Any) -> None:
    # Given an experiment with a ratio metric and a covariate, most units having one
    eid = int(service.create_experiment(_experiment())["id"])
    service.start_experiment(eid)
    raw = _load(service, eid, users=30, seed=5)
    # When the ratio's items are read (every shard)
    kept: dict[int, list[Any]] = defaultdict(lambda: [0, Decimal(0), Decimal(0)])
    for item in service.store.query_experiment_items(eid, prefix="ratio#"):
        sums = kept[int(item["variant_id"])]
        sums[0] += int(item.get("cov_units", 0))
        sums[1] += Decimal(item.get("cov_sum", 0))
        sums[2] += Decimal(item.get("cov_sum_sq", 0))
    # Then per variant they count each unit with a covariate once, with its X and X^2
    expected: dict[int, list[Any]] = defaultdict(lambda: [0, Decimal(0), Decimal(0)])
    for unit in raw.values():
        if unit["x"] is not None:
            x = Decimal(str(unit["x"]))
            sums = expected[unit["variant"]]
            sums[0] += 1
            sums[1] += x
            sums[2] += x * x
    assert dict(kept) == dict(expected)


def test_two_ratio_metrics_on_the_same_metrics_keep_their_own_totals(service: Any) -> None:
    # Given two ratios of cost and resolution: cost per resolution and its inverse
    inverse = {
        "name": "resolutions_per_usd",
        "numerator": "resolution_rate",
        "denominator": "cost_usd",
        "direction": "higher",
    }
    body = _experiment(
        secondary_metrics=["cost_usd", "cost_per_resolution", "resolutions_per_usd"],
        ratio_metrics=[RATIO, inverse],
    )
    eid = int(service.create_experiment(body)["id"])
    service.start_experiment(eid)
    raw = _load(service, eid, users=30, seed=11)
    # When it is analysed
    metrics = ExperimentAnalysis(service).analyze(eid)["metrics"]
    # Then each ratio is its own sum over the units of its numerator over its denominator
    by_variant: dict[int, list[dict[str, Any]]] = defaultdict(list)
    for unit in raw.values():
        by_variant[unit["variant"]].append(unit)
    for vid, units in by_variant.items():
        cost = float(sum(sum(u["cost"]) for u in units))
        resolved = float(sum(sum(u["res"]) for u in units))
        stats = {name: metrics[name]["variant_stats"][str(vid)] for name in metrics}
        assert stats["cost_per_resolution"]["mean"] == pytest.approx(cost / resolved, rel=1e-9)
        assert stats["resolutions_per_usd"]["mean"] == pytest.approx(resolved / cost, rel=1e-9)
        assert stats["resolutions_per_usd"]["units"] == len(units)


COVARIATE_FIELDS = (
    "cov_units",
    "cov_sum",
    "cov_sum_sq",
    "cov_x_sum",
    "cov_x_count",
    "cov_h_sum",
    "cov_h_count",
)


def test_a_metric_keeps_the_covariate_sums_of_its_units(service: Any) -> None:
    # Given an experiment with a covariate, most units having one, 1 to 3 costs per unit
    eid = int(service.create_experiment(_experiment())["id"])
    service.start_experiment(eid)
    raw = _load(service, eid, users=30, seed=7)
    # When the running totals of cost_usd are read (every shard)
    kept: dict[int, dict[str, Decimal]] = defaultdict(lambda: dict.fromkeys(COVARIATE_FIELDS, 0))
    for item in service.store.query_experiment_items(eid, prefix="totals#"):
        if item["metric"] == "cost_usd":
            for field in COVARIATE_FIELDS:
                kept[int(item["variant_id"])][field] += Decimal(item.get(field, 0))
    # Then over the units with a covariate X, with sum S and count m of their results, they
    # hold: the units, sum X, sum X^2, sum X*S, sum X*m, sum S and sum m
    expected: dict[int, dict[str, Decimal]] = defaultdict(
        lambda: dict.fromkeys(COVARIATE_FIELDS, 0)
    )
    for unit in raw.values():
        if unit["x"] is None:
            continue
        x, total, count = Decimal(str(unit["x"])), sum(unit["cost"]), len(unit["cost"])
        sums = expected[unit["variant"]]
        for field, value in zip(
            COVARIATE_FIELDS, (1, x, x * x, x * total, x * count, total, count), strict=True
        ):
            sums[field] += value
    assert dict(kept) == dict(expected)


def comparison_quantile(df: float) -> float:
    from scipy import stats

    return float(stats.t.ppf(0.975, df))


def test_a_ratio_metric_cannot_be_recorded_and_bad_ratios_are_refused(service: Any) -> None:
    eid = int(service.create_experiment(_experiment())["id"])
    service.start_experiment(eid)
    service.get_variant({"experiment_id": eid, "user_id": 1})
    status, answer = invoke(
        "record_result",
        "POST",
        "/api/v1/experiments/record-result",
        body={
            "experiment_id": eid,
            "user_id": 1,
            "metric_name": "cost_per_resolution",
            "metric_value": 1,
        },
    )
    assert status == 400 and "cost_usd and resolution_rate" in answer["message"]
    # A ratio of a metric the experiment does not record is refused at creation
    bad = _experiment(name="bad", secondary_metrics=["cost_per_resolution"], guardrail_metrics=[])
    status, answer = invoke("create_experiment", "POST", "/api/v1/experiments/", body=bad)
    assert status == 400 and "cost_usd" in json_text(answer)


def json_text(answer: Any) -> str:
    import json

    return json.dumps(answer)


def test_a_covariate_is_stored_once_and_a_bad_one_is_refused(service: Any) -> None:
    eid = int(service.create_experiment(_experiment())["id"])
    service.start_experiment(eid)
    body = {"experiment_id": eid, "user_id": 7, "covariates": {"prior_resolution_rate": 0.62}}
    service.get_variant(body)
    service.get_variant({**body, "covariates": {"prior_resolution_rate": 0.1}})
    assert service.store.get_assignment(eid, "user:7")["x"] == Decimal("0.62")
    status, answer = invoke(
        "get_variant",
        "POST",
        "/api/v1/experiments/get-variant",
        body={**body, "user_id": 8, "covariates": {"prior_resolution_rate": "high"}},
    )
    assert status == 400 and "covariates.prior_resolution_rate" in json_text(answer)
    assert service.store.get_assignment(eid, "user:8") is None
    # Sent with the unit's first result instead: stored then, and only then
    service.get_variant({"experiment_id": eid, "user_id": 9})
    _record(service, eid, 9, "cost_usd", 0.001, covariates={"prior_resolution_rate": 0.4})
    _record(service, eid, 9, "cost_usd", 0.001, covariates={"prior_resolution_rate": 0.9})
    assert service.store.get_assignment(eid, "user:9")["x"] == Decimal("0.4")
