"""Results by segment: values kept at assignment, each segment analysed alone, Holm across."""

from __future__ import annotations

import random
from collections import defaultdict
from typing import Any

import pytest
from scipy import stats
from statsmodels.stats.multitest import multipletests

from ab_testing.errors import InvalidInput
from ab_testing.segments import breakdown
from ab_testing.service import ExperimentService
from ab_testing.settings import Settings
from ab_testing.store import Store
from tests.conftest import guide_experiment, invoke

PLANS = ("free", "pro", "team")


def running(service: Any, **changes: Any) -> Any:
    created = service.create_experiment(
        guide_experiment(name="segmented", segment_attributes=["plan", "client.locale"], **changes)
    )
    service.start_experiment(created["id"])
    return service.get_experiment(created["id"])


def test_each_segment_is_analysed_alone_and_holm_adjusts_across_them(aws: Any) -> None:
    # Given 900 users on three plans, where the treatment helps only the "pro" plan
    service = ExperimentService(Store(Settings(), client=aws), cache_ttl_seconds=600)
    experiment = running(service)
    control_id = experiment.control.id
    rng = random.Random(11)
    truth: dict[tuple[str, int], list[float]] = defaultdict(list)
    for user in range(900):
        plan = PLANS[user % 3]
        attributes = {"plan": plan, "client": {"locale": "en-GB"}, "email": f"u{user}@x.io"}
        answer = service.get_variant(
            {"experiment_name": experiment.name, "user_id": user, "attributes": attributes}
        )
        variant_id = answer["variant"]["id"]
        rate = 0.75 if plan == "pro" and variant_id != control_id else 0.45
        value = 1.0 if rng.random() < rate else 0.0
        service.record(
            {
                "experiment_name": experiment.name,
                "user_id": user,
                "metric_name": experiment.primary_metric,
                "metric_value": value,
            }
        )
        truth[(plan, variant_id)].append(value)

    # When the primary metric is broken down by plan
    answer = breakdown(service.store, experiment, "plan")

    # Then there is one segment per plan, with the units of each variant
    by_name = {s["segment"]: s for s in answer["segments"]}
    assert set(by_name) == set(PLANS)
    treatment_id = next(v.id for v in experiment.variants if not v.is_control)
    p_values = []
    for plan in PLANS:
        segment = by_name[plan]
        for variant_id in (control_id, treatment_id):
            assert segment["units"][str(variant_id)] == len(truth[(plan, variant_id)])
        # And each segment's p-value is Welch's t-test on the same units (one result each)
        (comparison,) = segment["comparisons"]
        expected = stats.ttest_ind(
            truth[(plan, treatment_id)], truth[(plan, control_id)], equal_var=False
        ).pvalue
        assert comparison["p_value"] == pytest.approx(expected, rel=1e-9)
        control_mean = sum(truth[(plan, control_id)]) / len(truth[(plan, control_id)])
        treated_mean = sum(truth[(plan, treatment_id)]) / len(truth[(plan, treatment_id)])
        assert comparison["relative_lift"] == pytest.approx(
            treated_mean / control_mean - 1, rel=1e-12
        )
        assert segment["srm"]["p_value"] is not None
        p_values.append(comparison["p_value"])

    # And the Holm adjustment across the three segments is statsmodels' on the same p-values
    holm = multipletests(p_values, method="holm")[1]
    for plan, adjusted in zip(PLANS, holm, strict=True):
        assert by_name[plan]["comparisons"][0]["p_value_holm"] == pytest.approx(adjusted)
    assert answer["multiple_testing"]["method"] == "holm"
    print({plan: round(p, 6) for plan, p in zip(PLANS, holm, strict=True)})
    assert by_name["pro"]["comparisons"][0]["significant_after_holm"] is True
    assert by_name["free"]["comparisons"][0]["significant_after_holm"] is False

    # And only the declared attributes were kept with the assignment
    stored = service.store.get_assignment(experiment.id, "user:1")
    assert stored is not None
    assert stored["seg"] == {"plan": "pro", "client.locale": "en-GB"}


def test_kept_values_are_bounded_and_missing_ones_are_a_segment_of_their_own(
    service: Any,
) -> None:
    # Given units sent with a long plan name, a numeric plan, and no attributes at all
    experiment = running(service)
    for user, attributes in ((1, {"plan": "p" * 100}), (2, {"plan": 3}), (3, None)):
        body: dict[str, Any] = {"experiment_name": experiment.name, "user_id": user}
        if attributes is not None:
            body["attributes"] = attributes
        service.get_variant(body)

    # Then the long value is cut to 64 characters, the number kept as its JSON text
    assert service.store.get_assignment(experiment.id, "user:1")["seg"] == {"plan": "p" * 64}
    assert service.store.get_assignment(experiment.id, "user:2")["seg"] == {"plan": "3"}
    assert "seg" not in service.store.get_assignment(experiment.id, "user:3")
    # And the breakdown puts the unit without a value in "(none)"
    segments = {s["segment"] for s in breakdown(service.store, experiment, "plan")["segments"]}
    assert segments == {"p" * 64, "3", "(none)"}


def test_a_breakdown_by_an_undeclared_attribute_or_metric_is_a_400(service: Any) -> None:
    experiment = running(service)
    with pytest.raises(InvalidInput, match="segment_attributes"):
        breakdown(service.store, experiment, "country")
    with pytest.raises(InvalidInput, match="not a declared metric"):
        breakdown(service.store, experiment, "plan", "cost_usd")
    with pytest.raises(InvalidInput, match="segment_attributes"):
        service.create_experiment(
            guide_experiment(name="too many", segment_attributes=list("abcdef"))
        )


def test_the_segments_route_answers_through_its_handler(aws: Any) -> None:
    # Given a running experiment with one unit, through the Lambda handlers (IAM enforced)
    body = guide_experiment(segment_attributes=["plan"])
    status, created = invoke("create_experiment", "POST", "/api/v1/experiments/", body=body)
    assert status == 201, created
    path = f"/api/v1/experiments/{created['id']}"
    ids = {"id": str(created["id"])}
    invoke("start_experiment", "POST", path + "/start", path_parameters=ids)
    invoke(
        "get_variant",
        "POST",
        "/api/v1/experiments/get-variant",
        body={"experiment_id": created["id"], "user_id": 5, "attributes": {"plan": "pro"}},
    )

    def segments(attribute: str) -> tuple[int, Any]:
        return invoke(
            "experiment_segments",
            "GET",
            path + "/segments",
            resource="/api/v1/experiments/{id}/segments",
            query={"attribute": attribute},
            path_parameters=ids,
        )

    # When the breakdown is asked for, and for an attribute not declared
    status, answer = segments("plan")
    refused, error = segments("country")

    # Then the first answers the one segment, the second is a 400 that says why
    assert status == 200, answer
    assert [s["segment"] for s in answer["segments"]] == ["pro"]
    assert refused == 400 and "segment_attributes" in error["message"]
