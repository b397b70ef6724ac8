"""Who enters an experiment: targeting on attributes and layers, through the service on moto."""

from __future__ import annotations

import json
import math
import random
from typing import Any

import pytest

from ab_testing import targeting
from ab_testing.errors import Conflict, InvalidInput
from ab_testing.local_evaluation import LocalEvaluation
from ab_testing.service import ExperimentService
from ab_testing.settings import Settings
from ab_testing.store import Store
from tests.conftest import guide_experiment, invoke

PRO_ONLY = {"plan": {"$in": ["pro", "team"]}, "app.version": {"$vgte": "2.1.0"}}


def started(service: Any, name: str, **changes: Any) -> Any:
    created = service.create_experiment(guide_experiment(name=name, **changes))
    service.start_experiment(created["id"])
    return service.get_experiment(created["id"])


def ask(service: Any, name: str, user: Any, **extra: Any) -> dict[str, Any]:
    answer: dict[str, Any] = service.get_variant(
        {"experiment_name": name, "user_id": user, **extra}
    )
    return answer


def test_only_units_whose_attributes_match_enter_and_stay_when_they_change(service: Any) -> None:
    # Given a running experiment for the Pro and Team plans on app 2.1.0 or later
    experiment = started(service, "pro prompt", targeting=PRO_ONLY)
    pro = {"plan": "pro", "app": {"version": "2.10.0"}}

    # When a free-plan user, an old app and a user without attributes ask
    free = ask(service, experiment.name, 1, attributes={"plan": "free", "app": {"version": "3"}})
    old = ask(service, experiment.name, 2, attributes={"plan": "pro", "app": {"version": "2.0.9"}})
    bare = ask(service, experiment.name, 3)

    # Then none gets a variant, each answer says why, and nothing is stored
    for answer in (free, old, bare):
        assert answer["variant"] is None and answer["reason"] == "not_targeted"
    for unit in ("user:1", "user:2", "user:3"):
        assert service.store.get_assignment(experiment.id, unit) is None

    # When a Pro user on 2.10.0 asks (2.10 > 2.9: versions compare by parts, not as text)
    first = ask(service, experiment.name, 4, attributes=pro)
    assert first["reason"] == "assigned"

    # Then, with attributes that no longer match, the unit keeps its variant (sticky)
    later = ask(service, experiment.name, 4, attributes={"plan": "free"})
    assert later["reason"] == "existing_assignment"
    assert later["variant"]["id"] == first["variant"]["id"]


def test_get_variant_with_targeting_costs_no_more_dynamodb_calls(aws: Any) -> None:
    # Given a running targeted experiment, already in this instance's cache
    service = ExperimentService(Store(Settings(), client=aws), cache_ttl_seconds=60)
    experiment = started(service, "counted", targeting=PRO_ONLY)
    pro = {"plan": "team", "app": {"version": "2.1.0"}}
    ask(service, experiment.name, 100, attributes=pro)
    sent: list[str] = []

    def note(model: Any, **_: Any) -> None:
        sent.append(model.name)

    aws.meta.events.register("before-call.dynamodb", note)

    def calls(user: int, attributes: dict[str, Any]) -> list[str]:
        sent.clear()
        ask(service, experiment.name, user, attributes=attributes)
        return list(sent)

    # When a new unit, then the same (returning) unit, then a unit not targeted ask
    new_unit = calls(101, pro)
    returning = calls(101, pro)
    refused = calls(102, {"plan": "free"})
    aws.meta.events.unregister("before-call.dynamodb", note)

    # Then: 2 calls for the new unit, 1 for the returning one, 1 for a unit not targeted
    assert new_unit == ["GetItem", "TransactWriteItems"]
    assert returning == ["GetItem"]
    assert refused == ["GetItem"]


@pytest.mark.parametrize(
    ("targeting", "named"),
    [
        ({"plan": {"$inn": ["pro"]}}, "'$inn'"),
        ({"$xor": [{"a": 1}]}, "'$xor'"),
        ({"plan": {"$in": "pro"}}, "$in takes a list"),
        ({"email": {"$regex": "(a+)+$"}}, "repeated group"),
        ({"email": {"$regex": "("}}, "not a valid regular expression"),
        ({"seen": {"$exists": "yes"}}, "$exists takes true or false"),
        ({"plan": {"$type": "str"}}, "$type is one of"),
        ("plan == pro", "valid dictionary"),
    ],
)
def test_a_condition_that_cannot_be_evaluated_is_a_400_naming_the_problem(
    service: Any, targeting: Any, named: str
) -> None:
    # When an experiment is created with it, then it is refused, and nothing is stored
    with pytest.raises(InvalidInput) as refused:
        service.create_experiment(guide_experiment(name="bad rule", targeting=targeting))
    assert named in str(refused.value)
    assert refused.value.field.startswith("targeting")
    assert service.list_experiments() == []


def test_bad_attributes_are_a_400_over_http(aws: Any) -> None:
    # Given a running targeted experiment, through the Lambda handlers
    status, created = invoke(
        "create_experiment",
        "POST",
        "/api/v1/experiments/",
        body=guide_experiment(targeting=PRO_ONLY),
    )
    assert status == 201, created
    start = f"/api/v1/experiments/{created['id']}/start"
    invoke("start_experiment", "POST", start, path_parameters={"id": str(created["id"])})
    deep: dict[str, Any] = {"h": 1}
    for name in "gfedcba":
        deep = {name: deep}

    # When attributes are not an object, hold a string too long for a regular expression,
    # or nest too deep
    for attributes in (["pro"], {"plan": "x" * 513}, {"n": deep}):
        status, answer = invoke(
            "get_variant",
            "POST",
            "/api/v1/experiments/get-variant",
            body={"experiment_id": created["id"], "user_id": 7, "attributes": attributes},
        )
        # Then each is a 400 naming attributes, and nothing is stored
        assert status == 400, answer
        assert "attributes" in str(answer), answer


def test_two_experiments_of_one_layer_share_no_unit_and_split_it_evenly(aws: Any) -> None:
    # Given two running experiments in one layer, on [0, 0.5) and [0.5, 1)
    service = ExperimentService(Store(Settings(), client=aws), cache_ttl_seconds=600)
    left = started(service, "prompt test", layer={"name": "support-bot", "range": [0.0, 0.5]})
    right = started(service, "model test", layer={"name": "support-bot", "range": [0.5, 1.0]})

    # When 5,000 users are asked of both
    users = 5000
    entered = {left.name: set(), right.name: set()}
    for user in range(users):
        for experiment in (left, right):
            answer = ask(service, experiment.name, user)
            if answer["variant"] is not None:
                entered[experiment.name].add(user)
            else:
                assert answer["reason"] == "not_in_layer"

    # Then no user is in both, and each share is within a binomial 99.9% interval of 50%
    assert entered[left.name].isdisjoint(entered[right.name])
    assert len(entered[left.name]) + len(entered[right.name]) == users
    half_width = 3.2905 * math.sqrt(0.25 / users)  # z of 99.9%, two-sided
    for name, units in entered.items():
        print(f"{name}: {len(units)} of {users} ({len(units) / users:.4f})")
        assert abs(len(units) / users - 0.5) <= half_width


def test_overlapping_ranges_of_one_layer_cannot_run_together(service: Any) -> None:
    # Given a running experiment on [0, 0.6) of a layer
    first = started(service, "first", layer={"name": "search", "range": [0.0, 0.6]})
    second = service.create_experiment(
        guide_experiment(name="second", layer={"name": "search", "range": [0.5, 1.0]})
    )

    # When an experiment on [0.5, 1) of the same layer is started
    with pytest.raises(Conflict) as refused:
        service.start_experiment(second["id"])

    # Then it is a 409 naming the other experiment, and the second stays a draft
    assert refused.value.details["other_experiment_id"] == first.id
    assert "'first'" in str(refused.value)
    assert service.get_experiment(second["id"]).status == "draft"

    # And once the first is stopped, the second starts; another layer never conflicts
    service.change_status(first.id, "stop")
    service.start_experiment(second["id"])
    assert service.get_experiment(second["id"]).status == "running"
    started(service, "elsewhere", layer={"name": "checkout", "range": [0.0, 1.0]})


def test_pausing_keeps_the_range_held(service: Any) -> None:
    # Given a paused experiment on the whole of a layer
    first = started(service, "paused one", layer={"name": "l", "range": [0.0, 1.0]})
    service.change_status(first.id, "pause")
    other = service.create_experiment(
        guide_experiment(name="other", layer={"name": "l", "range": [0.2, 0.3]})
    )

    # When another experiment of the layer is started, then it is refused: a pause keeps it
    with pytest.raises(Conflict):
        service.start_experiment(other["id"])


@pytest.mark.parametrize(
    "layer",
    [
        {"name": "l", "range": [0.5, 0.5]},
        {"name": "l", "range": [-0.1, 0.5]},
        {"name": "l", "range": [0.5, 1.5]},
        {"name": "l", "range": [0.5]},
        {"name": "has space", "range": [0, 1]},
        {"name": "l", "range": [0, 1], "holdout": True},
    ],
)
def test_a_bad_layer_is_a_400(service: Any, layer: dict[str, Any]) -> None:
    with pytest.raises(InvalidInput) as refused:
        service.create_experiment(guide_experiment(name="bad layer", layer=layer))
    assert refused.value.field.startswith("layer")


def test_exposures_refuse_units_outside_targeting_or_layer(service: Any) -> None:
    # Given a running experiment for Pro users on half of a layer
    experiment = started(
        service, "local", targeting={"plan": "pro"}, layer={"name": "x", "range": [0.0, 0.5]}
    )
    inside = next(u for u in range(100) if targeting.layer_position("x", f"user:{u}") < 0.5)
    outside = next(u for u in range(100) if targeting.layer_position("x", f"user:{u}") >= 0.5)
    variant = experiment.variants[0].id
    local = LocalEvaluation(service)

    def expose(user: int, attributes: dict[str, Any] | None) -> dict[str, Any]:
        item: dict[str, Any] = {"experiment_id": experiment.id, "user_id": user}
        item["variant_id"] = variant
        if attributes is not None:
            item["attributes"] = attributes
        answer: dict[str, Any] = local.record_exposures({"exposures": [item]})["results"][0]
        return answer

    # When a client reports units it served: not targeted, outside the layer
    assert expose(inside, {"plan": "free"})["reason"] == "not_targeted"
    assert expose(outside, {"plan": "pro"})["reason"] == "not_in_layer"
    # Then those are refused with 409, and nothing is stored
    assert service.store.get_assignment(experiment.id, f"user:{inside}") is None

    # And the definitions carry the targeting and the layer for the client
    document, _ = local.definitions()
    published = next(e for e in document["experiments"] if e["id"] == experiment.id)
    assert published["targeting"] == {"plan": "pro"}
    assert published["layer"] == {"name": "x", "range": [0.0, 0.5]}


def test_the_clients_local_answers_equal_get_variants_for_targeting_and_layers(aws: Any) -> None:
    # Given a running experiment with targeting, a layer range and a 60% target, and its
    # definition as a client reads it
    from ab_testing_client.assignment import NONE, Definition
    from scripts.targeting_vectors import attributes as random_attributes

    service = ExperimentService(Store(Settings(), client=aws), cache_ttl_seconds=600)
    experiment = started(
        service,
        "local and served",
        targeting={"$or": [{"plan": {"$type": "string"}}, {"tags.length": {"$gte": 2}}]},
        layer={"name": "bot", "range": [0.25, 0.9]},
        target_percentage=60,
    )
    document, _ = LocalEvaluation(service).definitions()
    published = next(e for e in document["experiments"] if e["id"] == experiment.id)
    local = Definition.from_json(json.loads(json.dumps(published)))
    rng = random.Random(7)
    seen = {"assigned": 0, "not_targeted": 0, "not_in_layer": 0, "not_in_target": 0}

    # When 1,500 new units with random attributes are evaluated locally and asked of the API
    for user in range(1500):
        attributes = random_attributes(rng)
        decided = local.evaluate(f"user:{user}", attributes)
        answer = ask(service, experiment.name, user, attributes=attributes)
        seen[answer["reason"]] += 1
        # Then the client gives no variant exactly where the service gives none, and
        # otherwise the same one
        if answer["variant"] is None:
            assert decided == NONE, (user, attributes, answer["reason"])
        else:
            assert decided == answer["variant"]["id"]
    print(seen)
    assert min(seen.values()) > 50


def test_the_layers_list_shows_what_is_held_and_what_is_free(service: Any) -> None:
    # Given a layer with a running, a paused, a draft and an archived experiment
    running = started(service, "a", layer={"name": "bot", "range": [0.0, 0.25]})
    paused = started(service, "b", layer={"name": "bot", "range": [0.25, 0.5]})
    service.change_status(paused.id, "pause")
    service.create_experiment(guide_experiment(name="c", layer={"name": "bot", "range": [0, 1]}))
    gone = started(service, "d", layer={"name": "bot", "range": [0.8, 0.9]})
    service.change_status(gone.id, "stop")
    service.change_status(gone.id, "archive")
    started(service, "no layer")

    # When the layers are listed through their handler (the admin plane's IAM applies)
    status, answer = invoke("list_layers", "GET", "/api/v1/layers")

    # Then the layer lists its experiments but the archived one, the running and paused
    # ranges merged as held, and the rest as free
    assert status == 200, answer
    (layer,) = answer["layers"]
    assert layer["name"] == "bot"
    assert [e["name"] for e in layer["experiments"]] == ["a", "b", "c"]
    assert layer["held"] == [[0.0, 0.5]] and layer["free"] == [[0.5, 1.0]]
    assert running.id in [e["id"] for e in layer["experiments"]]
