"""The definitions and exposures endpoints, and range-preserving rebalancing, on moto."""

from __future__ import annotations

import json
from typing import Any

from ab_testing import assignment
from emulator.events import FakeLambdaContext, api_gateway_event
from tests.conftest import guide_experiment, invoke, load_handler

NAME = "Lead Qualification Prompt Test"
DEFINITIONS = "/api/v1/experiments/definitions"
EXPOSURES = "/api/v1/experiments/exposures"


def started(service: Any, **changes: Any) -> Any:
    created = service.create_experiment(guide_experiment(**changes))
    service.start_experiment(created["id"])
    return service.get_experiment(created["id"])


def definitions(etag: str | None = None) -> tuple[int, dict[str, str], Any]:
    event = api_gateway_event(
        "GET",
        DEFINITIONS,
        resource=DEFINITIONS,
        path_parameters=None,
        body=None,
        headers={"If-None-Match": etag} if etag else {},
    )
    answer = load_handler("experiment_definitions").handler(event, FakeLambdaContext("d"))
    body = json.loads(answer["body"]) if answer["body"] else None
    return answer["statusCode"], answer["headers"], body


def expose(*items: dict[str, Any]) -> tuple[int, Any]:
    return invoke("record_exposures", "POST", EXPOSURES, body={"exposures": list(items)})


def hashed(experiment: Any, unit: str) -> int:
    _, pick = assignment.draws(experiment.salt, unit)
    return assignment.variant_at(pick, experiment.ranges())


def test_definitions_publish_running_and_promoted_experiments_with_an_etag(service: Any) -> None:
    # Given one running experiment, one draft, and one stopped with a promoted winner
    running = started(service, overrides={"qa": "Control"})
    service.create_experiment(guide_experiment(name="Draft"))
    promoted = started(service, name="Promoted")
    winner = promoted.variants[1].id
    service.transition(promoted.id, "stop", winner_variant_id=winner, promoted=True)

    # When the definitions are fetched, then fetched again with their ETag
    status, headers, document = definitions()
    again = definitions(headers["ETag"])

    # Then the running and the promoted experiment are there, with what assignment needs
    assert status == 200 and document["algorithm"] == "sha256-53bit-ranges-v1"
    by_name = {e["name"]: e for e in document["experiments"]}
    assert set(by_name) == {NAME, "Promoted"}
    published = by_name[NAME]
    assert published["salt"] == running.salt and published["status"] == "running"
    assert published["ranges"] == [
        [0.0, 50.0, running.variants[0].id],
        [50.0, 100.0, running.variants[1].id],
    ]
    assert published["changed_ranges"] == [] and published["max_target_percentage"] == 100.0
    assert published["overrides"] == {"user:qa": running.variants[0].id}
    assert published["metrics"] == [running.primary_metric, *running.secondary_metrics]
    assert by_name["Promoted"]["promoted"] is True
    assert by_name["Promoted"]["winner_variant_id"] == winner
    # And an unchanged document costs a 304 with no body
    assert again[0] == 304 and again[2] is None and again[1]["ETag"] == headers["ETag"]


def test_an_exposure_is_written_with_the_same_conditional_put_as_get_variant(
    service: Any,
) -> None:
    experiment = started(service)
    unit_variant = hashed(experiment, "user:42")
    other = next(v.id for v in experiment.variants if v.id != unit_variant)

    # When a client reports user 42 twice, and a wrong variant for user 43's hash
    first = expose({"experiment_id": experiment.id, "user_id": 42, "variant_id": unit_variant})
    second = expose(
        {"experiment_id": experiment.id, "user_id": 42, "variant_id": unit_variant},
        {"experiment_id": experiment.id, "user_id": 42, "variant_id": other},
    )

    # Then the first writes, the repeat finds it, a contradicting claim is refused
    assert first[1]["results"][0] | {} == first[1]["results"][0]
    assert (first[1]["results"][0]["status"], first[1]["results"][0]["reason"]) == (201, "assigned")
    assert [(r["status"], r.get("reason")) for r in second[1]["results"]] == [
        (200, "existing_assignment"),
        (409, "variant_mismatch"),
    ]
    assert second[1]["results"][1]["expected_variant_id"] == unit_variant
    # And get-variant answers from the same ledger item, counted once
    answer = service.get_variant({"experiment_name": NAME, "user_id": 42})
    assert (answer["reason"], answer["variant"]["id"]) == ("existing_assignment", unit_variant)
    exposures = service.store.query_experiment_items(experiment.id, prefix="exposure#")
    assert sum(int(i.get("units_assigned", 0)) for i in exposures) == 1


def test_exposures_refuse_what_get_variant_would_not_assign(service: Any) -> None:
    experiment = started(service, target_percentage=30.0, overrides={"qa": "Control"})
    outside = next(
        u for u in range(1000) if assignment.draws(experiment.salt, f"user:{u}")[0] * 100 >= 30
    )
    some = experiment.variants[0].id
    status, body = expose(
        {"experiment_id": experiment.id, "user_id": outside, "variant_id": some},
        {"experiment_id": experiment.id, "user_id": "qa", "variant_id": some},
        {"experiment_id": experiment.id, "user_id": 1, "variant_id": 999},
        {"experiment_id": experiment.id, "user_id": 1, "session_id": "s", "variant_id": some},
    )
    assert status == 200
    assert [(r["status"], r.get("reason") or r.get("error")) for r in body["results"]] == [
        (409, "not_in_target"),
        (200, "override"),
        (400, "validation_error"),
        (400, "validation_error"),
    ]
    assert service.store.get_assignment(experiment.id, "user:qa") is None
    assert expose()[0] == 400  # an empty batch
    too_many = [
        {"experiment_id": experiment.id, "user_id": u, "variant_id": some} for u in range(101)
    ]
    assert expose(*too_many)[0] == 400


def test_a_rebalance_moves_only_the_changed_span_and_publishes_it(service: Any) -> None:
    # Given 60 units assigned at 50/50
    experiment = started(service)
    before = {
        u: service.get_variant({"experiment_name": NAME, "user_id": u})["variant"]["id"]
        for u in range(60)
    }

    # When rebalanced to 20/80 and the same units ask again, and 60 new ones arrive
    control, treatment = experiment.variants
    service.rebalance(
        experiment.id,
        {
            "variants": [
                {"id": control.id, "traffic_allocation": 20.0},
                {"id": treatment.id, "traffic_allocation": 80.0},
            ]
        },
    )
    after = {
        u: service.get_variant({"experiment_name": NAME, "user_id": u})["variant"]["id"]
        for u in range(120)
    }

    # Then nobody assigned moved, and the published definition names the moved span
    assert all(after[u] == before[u] for u in before)
    published = definitions()[2]["experiments"][0]
    assert published["ranges"] == [[0.0, 20.0, control.id], [20.0, 100.0, treatment.id]]
    assert published["changed_ranges"] == [[20.0, 50.0]]
    # And a new unit outside that span gets what the published ranges give
    rebalanced = service.get_experiment(experiment.id)
    for u in range(60, 120):
        pick = assignment.draws(rebalanced.salt, f"user:{u}")[1]
        if not assignment.in_spans(pick, rebalanced.changed_ranges):
            assert after[u] == assignment.variant_at(pick, rebalanced.ranges())


def test_lowering_the_target_publishes_the_earlier_higher_one(service: Any) -> None:
    experiment = started(service, target_percentage=60.0)
    service.rebalance(experiment.id, {"target_percentage": 30.0})
    published = definitions()[2]["experiments"][0]
    assert (published["target_percentage"], published["max_target_percentage"]) == (30.0, 60.0)
    assert published["changed_ranges"] == []


def test_a_covariate_sent_with_the_exposure_is_stored_with_the_unit(service: Any) -> None:
    # Given an experiment with a CUPED covariate
    experiment = started(service, covariate="prior_resolution_rate")
    first, later = hashed(experiment, "user:7"), hashed(experiment, "user:8")
    # When a client reports a unit with its covariate (and another unit first without one,
    # then again with it, before any result)
    answer = expose(
        {
            "experiment_id": experiment.id,
            "user_id": 7,
            "variant_id": first,
            "covariates": {"prior_resolution_rate": 0.25, "unrelated": 3},
        },
        {"experiment_id": experiment.id, "user_id": 8, "variant_id": later},
    )
    again = expose(
        {
            "experiment_id": experiment.id,
            "user_id": 8,
            "variant_id": later,
            "covariates": {"prior_resolution_rate": 0.5},
        }
    )
    # Then both are stored with the unit, through the exposures function's own IAM policy
    assert [r["status"] for r in answer[1]["results"]] == [201, 201]
    assert again[1]["results"][0]["status"] == 200
    stored = {u: service.store.get_assignment(experiment.id, u) for u in ("user:7", "user:8")}
    assert {u: float(item["x"]) for u, item in stored.items()} == {"user:7": 0.25, "user:8": 0.5}
