"""Per-metric decimals: micro-costs kept exactly; bounds that could overflow refused at create."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import pytest

from ab_testing import metrics
from ab_testing.analysis import ExperimentAnalysis
from ab_testing.errors import InvalidInput
from ab_testing.records import summed_totals
from ab_testing.stats.inputs import MetricTotals
from tests.conftest import guide_experiment, invoke

CREATE = "/api/v1/experiments/"


def test_every_catalogue_metric_fits_in_dynamodb_numbers() -> None:
    assert {name: metrics.precision_problem(spec) for name, spec in metrics.CATALOGUE.items()} == {
        name: None for name in metrics.CATALOGUE
    }
    assert metrics.CATALOGUE["cost_usd"].decimals == 12


@pytest.mark.parametrize(
    ("definition", "expected"),
    [
        # 12 decimals with the default bound of ±1e9: the upper bound must come down
        ({"name": "micro", "decimals": 12}, "declare lower and upper within ±1000"),
        ({"name": "micro", "decimals": 12, "lower": 0, "upper": 5000}, "within ±1000"),
        ({"name": "huge", "decimals": 6, "upper": 1e14, "lower": 0}, "at most 1 decimals"),
    ],
)
def test_create_refuses_decimals_and_bounds_that_could_overflow(
    aws: Any, definition: dict[str, Any], expected: str
) -> None:
    # Given a custom metric whose running totals could pass 38 significant digits
    body = guide_experiment(metrics=[definition], secondary_metrics=[definition["name"]])
    # When the experiment is created
    status, answer = invoke("create_experiment", "POST", CREATE, body=body)
    # Then it is refused, naming the bound to tighten, and nothing is stored
    assert status == 400
    assert expected in str(answer), answer
    assert "38 significant digits" in str(answer)
    status, listing = invoke("list_experiments", "GET", CREATE)
    assert status == 200 and listing["experiments"] == []


def test_a_metric_within_its_digits_is_accepted(aws: Any) -> None:
    definition = {"name": "micro", "decimals": 12, "lower": 0, "upper": 1000}
    body = guide_experiment(metrics=[definition], secondary_metrics=["micro"])
    status, _ = invoke("create_experiment", "POST", CREATE, body=body)
    assert status == 201


def test_ten_thousand_micro_costs_sum_exactly() -> None:
    # Given 10,000 costs of $0.000137 as clients send them (floats), validated as cost_usd
    spec = metrics.CATALOGUE["cost_usd"]
    values = [metrics.validate_value(spec, 0.000137) for _ in range(10_000)]
    # When summed into running totals, 100 units of 100 results (as reconciliation does)
    totals = MetricTotals.from_units([values[i : i + 100] for i in range(0, 10_000, 100)])
    # Then the sums are exact where floats are not
    assert sum([0.000137] * 10_000) != 1.37
    assert totals.total == Decimal("1.37")
    assert totals.total_sq == Decimal("0.000000018769") * 10_000
    assert totals.unit_sum_sq == (Decimal("0.000137") * 100) ** 2 * 100


@pytest.mark.slow
def test_two_thousand_micro_costs_recorded_through_dynamodb_sum_exactly(service: Any) -> None:
    # Given an experiment recording cost_usd (12 decimals) and 100 assigned users
    body = guide_experiment(secondary_metrics=["cost_usd"])
    experiment_id = int(service.create_experiment(body)["id"])
    service.start_experiment(experiment_id)
    for user in range(100):
        service.get_variant({"experiment_id": experiment_id, "user_id": user})
    # When 2,000 results of $0.000137 arrive as floats, in 20 batches of 100 (20 per user)
    for call in range(20):
        batch = [
            {
                "experiment_id": experiment_id,
                "user_id": user,
                "metric_name": "cost_usd",
                "metric_value": 0.000137,
                "idempotency_key": f"call-{call}",
            }
            for user in range(100)
        ]
        assert service.record_many({"results": batch})["recorded"] == 100
    # And one more of $0.000000000001 per user: the twelfth decimal is kept too
    tiny = [
        {"experiment_id": experiment_id, "user_id": user, "metric_name": "cost_usd",
         "metric_value": 1e-12, "idempotency_key": "tiny"}
        for user in range(100)
    ]  # fmt: skip
    assert service.record_many({"results": tiny})["recorded"] == 100
    # Then DynamoDB holds the exact totals where floats drift
    assert sum([0.000137] * 2_000) != 0.274
    items = service.store.query_experiment_items(experiment_id, prefix="totals#")
    stored = [t for (_, m), t in summed_totals(items).items() if m == "cost_usd"]
    total = sum((Decimal(t.total) for t in stored), Decimal(0))
    assert total == Decimal("0.274") + Decimal("0.0000000001")
    assert sum(t.results for t in stored) == 2_100
    # And the analysis reports the mean per call at full precision
    analysis = ExperimentAnalysis(service).analyze(experiment_id)
    means = [s["mean"] for s in analysis["metrics"]["cost_usd"]["variant_stats"].values()]
    expected = (0.274 + 1e-10) / 2_100
    assert means == [pytest.approx(expected, rel=1e-12)] * len(means)


def test_a_late_score_counts_for_the_same_unit_under_the_request_id(service: Any) -> None:
    # Given a call recorded with its cost under the request id as idempotency key
    body = guide_experiment(secondary_metrics=["cost_usd", "judge_score", "thumbs_up"])
    experiment_id = int(service.create_experiment(body)["id"])
    service.start_experiment(experiment_id)
    service.get_variant({"experiment_id": experiment_id, "user_id": 5})
    unit = {"experiment_id": experiment_id, "user_id": 5, "idempotency_key": "req-1"}
    cost = service.record({**unit, "metric_name": "cost_usd", "metric_value": 0.000137})
    # When the LLM judge's score and a thumbs-up arrive later under the same request id
    judged = service.record({**unit, "metric_name": "judge_score", "metric_value": 0.82})
    thumbs = service.record({**unit, "metric_name": "thumbs_up", "metric_value": 1})
    retried = service.record({**unit, "metric_name": "judge_score", "metric_value": 0.82})
    # Then each counts once, for the same unit and variant; the judge's retry is a duplicate
    assert [a["duplicate"] for a in (cost, judged, thumbs, retried)] == [False, False, False, True]
    assert len({a["variant_id"] for a in (cost, judged, thumbs)}) == 1
    # And values outside the catalogue's bounds are refused
    with pytest.raises(InvalidInput, match="judge_score must be <= 1"):
        service.record({**unit, "metric_name": "judge_score", "metric_value": 1.5})
