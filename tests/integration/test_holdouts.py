"""A layer's holdout (docs/assignment.md section 14), through the service on moto: its units get
every experiment's control, it records every unit of the layer in its group, and its analysis
compares the held-out units with the rest."""

from __future__ import annotations

import json
import math
import random
from typing import Any

import pytest

from ab_testing import records, targeting
from ab_testing.analysis import ExperimentAnalysis
from ab_testing.errors import Conflict, InvalidInput
from ab_testing.local_evaluation import LocalEvaluation
from ab_testing.service import ExperimentService
from ab_testing.settings import Settings
from ab_testing.store import Store
from tests.conftest import ROOT, guide_experiment, invoke
from tests.integration.test_store_requests import raw_item

LAYER = "support-bot"
HOLDOUT_RANGE = [0.9, 1.0]


def holdout_body(name: str = "support-bot holdout", span: list[float] | None = None) -> Any:
    span = span or HOLDOUT_RANGE
    held = (span[1] - span[0]) * 100
    return guide_experiment(
        name=name,
        layer={"name": LAYER, "range": span, "holdout": True},
        variants=[
            {"name": "held out", "is_control": True, "traffic_allocation": held},
            {"name": "shipped", "traffic_allocation": 100 - held},
        ],
    )


def started(service: Any, body: dict[str, Any]) -> Any:
    created = service.create_experiment(body)
    service.start_experiment(created["id"])
    return service.get_experiment(created["id"])


def in_layer(name: str, span: list[float]) -> dict[str, Any]:
    return guide_experiment(name=name, layer={"name": LAYER, "range": span})


def position(user: int) -> float:
    return targeting.layer_position(LAYER, f"user:{user}")


def test_held_out_units_get_every_control_and_the_holdout_compares_them_with_the_rest(
    aws: Any,
) -> None:
    # Given a layer with two running experiments and a running holdout of 10%
    service = ExperimentService(Store(Settings(), client=aws), cache_ttl_seconds=600)
    prompt = started(service, in_layer("prompt test", [0.0, 0.45]))
    model = started(service, in_layer("model test", [0.45, 0.9]))
    holdout = started(service, holdout_body())

    # When 1,200 users are asked of both experiments
    users = 1200
    answers = {
        (e.name, user): service.get_variant({"experiment_name": e.name, "user_id": user})
        for user in range(users)
        for e in (prompt, model)
    }

    # Then a user in the holdout's range gets each experiment's control, reason "holdout",
    # and neither experiment stores it; the others are in one experiment, as before
    held = {u for u in range(users) if targeting.in_range(position(u), HOLDOUT_RANGE)}
    for (name, user), answer in answers.items():
        experiment = prompt if name == prompt.name else model
        if user in held:
            assert answer["reason"] == "holdout"
            assert answer["variant"]["id"] == experiment.control.id
            assert answer["variant"]["config"] == experiment.control.config
            assert service.store.get_assignment(experiment.id, f"user:{user}") is None
        else:
            assert answer["reason"] in ("assigned", "not_in_layer")
    # And the holdout holds every user in its group: the control inside its range
    groups = {
        u: int(service.store.get_assignment(holdout.id, f"user:{u}")["variant_id"])
        for u in range(users)
    }
    assert {u for u, g in groups.items() if g == holdout.control.id} == held
    print(f"held out: {len(held)} of {users}")
    assert abs(len(held) / users - 0.1) <= 3.2905 * math.sqrt(0.09 / users)

    # When every user's resolution is recorded against the holdout, the shipped ones better
    rng = random.Random(3)
    results = [
        {
            "experiment_id": holdout.id,
            "user_id": u,
            "metric_name": "resolution_rate",
            "metric_value": int(rng.random() < (0.5 if u in held else 0.65)),
            "idempotency_key": "resolved",
        }
        for u in range(users)
    ]
    for start in range(0, users, 100):
        assert service.record_many({"results": results[start : start + 100]})["recorded"] == 100

    # Then the holdout's analysis is the read-out: the split passes the sample-ratio check
    # (it follows the range's width) and the rest of the layer shows the lift
    analysis = ExperimentAnalysis(service).analyze(holdout.id)
    assert analysis["srm"]["flagged"] is False, analysis["srm"]
    comparison = analysis["metrics"]["resolution_rate"]["comparisons"][0]
    assert comparison["is_significant"] is True and comparison["relative_lift"] > 0

    # And the layers list names the holdout
    status, listed = invoke("list_layers", "GET", "/api/v1/layers")
    assert status == 200, listed
    (layer,) = listed["layers"]
    assert layer["holdout"]["id"] == holdout.id and layer["holdout"]["range"] == HOLDOUT_RANGE
    assert layer["held"] == [[0.0, 1.0]] and layer["free"] == []


def test_a_new_unit_costs_one_more_write_in_a_layer_with_a_holdout(aws: Any) -> None:
    # Given a running experiment and a running holdout in its layer, both in the cache
    service = ExperimentService(Store(Settings(), client=aws), cache_ttl_seconds=600)
    experiment = started(service, in_layer("counted", [0.0, 0.9]))
    started(service, holdout_body())
    inside = next(u for u in range(1000) if position(u) < 0.9)
    outside = next(u for u in range(1000) if position(u) >= 0.9)
    service.get_variant({"experiment_name": experiment.name, "user_id": 10_000})
    sent: list[str] = []
    aws.meta.events.register("before-call.dynamodb", lambda model, **_: sent.append(model.name))

    def calls(user: int) -> list[str]:
        sent.clear()
        service.get_variant({"experiment_name": experiment.name, "user_id": user})
        return list(sent)

    # When a new unit, the same unit again, a held-out unit and the same held-out unit ask
    # Then the new unit's place in the holdout is one more write, and returning costs 1 call
    assert calls(inside) == ["GetItem", "TransactWriteItems", "TransactWriteItems"]
    assert calls(inside) == ["GetItem"]
    assert calls(outside) == ["GetItem", "TransactWriteItems"]
    assert calls(outside) == ["GetItem"]  # this instance remembers the group it stored


@pytest.mark.parametrize(
    ("change", "said"),
    [
        ({"variants": "three"}, "two variants"),
        ({"allocation": 20.0}, "traffic_allocation must be 10"),
        ({"target_percentage": 50}, "target_percentage must be 100"),
        ({"targeting": {"plan": "pro"}}, "no targeting"),
    ],
)
def test_a_holdout_that_does_not_follow_its_range_is_a_400(
    service: Any, change: dict[str, Any], said: str
) -> None:
    body = holdout_body()
    if change.get("variants"):
        body["variants"].append({"name": "third", "traffic_allocation": 0})
    elif "allocation" in change:
        body["variants"][0]["traffic_allocation"] = change["allocation"]
        body["variants"][1]["traffic_allocation"] = 100 - change["allocation"]
    else:
        body.update(change)
    with pytest.raises(InvalidInput, match=said):
        service.create_experiment(body)
    assert service.list_experiments() == []


def test_a_layer_has_one_holdout_and_no_experiment_takes_its_range(service: Any) -> None:
    # Given a running holdout on [0.9, 1)
    holdout = started(service, holdout_body())

    # When an experiment overlapping it and a second holdout elsewhere start
    overlapping = service.create_experiment(in_layer("greedy", [0.5, 0.95]))["id"]
    second = service.create_experiment(holdout_body("second", [0.0, 0.05]))["id"]
    with pytest.raises(Conflict) as taken:
        service.start_experiment(overlapping)
    with pytest.raises(Conflict) as twice:
        service.start_experiment(second)

    # Then both are refused, naming the holdout, and the holdout's groups cannot be rebalanced
    assert taken.value.details["reason"] == "layer_range_taken"
    assert twice.value.details["reason"] == "layer_holdout_taken"
    assert taken.value.details["other_experiment_id"] == holdout.id
    assert twice.value.details["other_experiment_id"] == holdout.id
    with pytest.raises(InvalidInput, match="is a holdout"):
        service.rebalance(holdout.id, {"target_percentage": 50})


def test_a_paused_holdout_still_holds_its_units_out_but_records_nobody(service: Any) -> None:
    # Given a running experiment and a paused holdout in its layer
    experiment = started(service, in_layer("while paused", [0.0, 0.9]))
    holdout = started(service, holdout_body())
    service.change_status(holdout.id, "pause")
    held = next(u for u in range(1000) if position(u) >= 0.9)
    other = next(u for u in range(1000) if position(u) < 0.9)

    # When a held-out user and another ask
    answer = service.get_variant({"experiment_name": experiment.name, "user_id": held})
    service.get_variant({"experiment_name": experiment.name, "user_id": other})

    # Then the held-out user still gets the control, and the holdout stores neither
    assert answer["reason"] == "holdout" and answer["variant"]["id"] == experiment.control.id
    for user in (held, other):
        assert service.store.get_assignment(holdout.id, f"user:{user}") is None


def test_the_client_applies_the_holdout_as_the_service_does(aws: Any) -> None:
    # Given a targeted experiment and a holdout in one layer, as a client reads them
    from ab_testing_client.assignment import HELD, NONE, Definition

    service = ExperimentService(Store(Settings(), client=aws), cache_ttl_seconds=600)
    body = in_layer("local", [0.2, 0.9])
    body["targeting"] = {"plan": "pro"}
    experiment = started(service, body)
    holdout = started(service, holdout_body())
    local = LocalEvaluation(service)
    document, _ = local.definitions()
    published = {
        e["id"]: Definition.from_json(json.loads(json.dumps(e))) for e in document["experiments"]
    }
    mine, held_def = published[experiment.id], published[holdout.id]

    # When 1,000 units with and without the plan are evaluated locally and asked of the API
    for user in range(1000):
        attributes = {"plan": "pro" if user % 3 else "free"}
        unit = f"user:{user}"
        decided = mine.evaluate(unit, attributes)
        entry = mine.holdout_entry(unit, attributes)
        answer = service.get_variant(
            {"experiment_name": experiment.name, "user_id": user, "attributes": attributes}
        )
        stored = service.store.get_assignment(holdout.id, unit)
        # Then the client holds out, refuses and assigns exactly where the service does
        if answer["reason"] == "holdout":
            assert decided == HELD
        elif answer["variant"] is None:
            assert decided == NONE
        else:
            assert decided == answer["variant"]["id"]
        # And it sends the holdout the group the service records (and none when not targeted)
        if entry is None:
            assert stored is None and answer["reason"] == "not_targeted"
        else:
            assert entry == (holdout.id, int(stored["variant_id"]))
            assert held_def.evaluate(unit) == entry[1]

    # And the exposures endpoint takes the holdout's groups as the client sends them
    exposures = [
        {"experiment_id": holdout.id, "user_id": 5000 + u, "variant_id": g}
        for u in range(50)
        for g in [held_def.evaluate(f"user:{5000 + u}")]
    ]
    answered = local.record_exposures({"exposures": exposures})
    assert answered["failed"] == 0 and answered["assigned"] == 50


def test_the_documented_holdout_is_created_as_written(service: Any) -> None:
    # Given the holdout of docs/assignment.md section 14, as printed
    text = (ROOT / "docs" / "assignment.md").read_text().split("## 14.")[1]
    body = json.loads(text.split("```json")[1].split("```")[0])

    # When it is created and started, then it is the layer's holdout
    holdout = started(service, body)
    assert holdout.is_holdout and holdout.layer is not None
    assert service.list_layers()["layers"][0]["holdout"]["id"] == holdout.id


def test_units_stored_before_the_holdout_started_join_it_on_their_next_request(aws: Any) -> None:
    # Given 600 users assigned by an experiment on [0, 0.9) before any holdout
    service = ExperimentService(Store(Settings(), client=aws), cache_ttl_seconds=600)
    experiment = started(service, in_layer("older", [0.0, 0.9]))
    for user in range(600):
        service.get_variant({"experiment_name": experiment.name, "user_id": user})

    # When a holdout on [0.9, 1) starts and every user comes back, twice
    holdout = started(service, holdout_body())
    for _ in range(2):
        answers = [
            service.get_variant({"experiment_name": experiment.name, "user_id": user})
            for user in range(600)
        ]

    # Then the users the experiment holds keep their variant, the others are held out, and
    # the holdout holds every user once, in the group of its position
    for user, answer in enumerate(answers):
        inside = position(user) >= 0.9
        assert answer["reason"] == ("holdout" if inside else "existing_assignment")
        stored = service.store.get_assignment(holdout.id, f"user:{user}")
        assert stored is not None
        assert int(stored["variant_id"]) == holdout.holdout_group(position(user))
    # And its split passes the sample-ratio check
    analysis = ExperimentAnalysis(service).analyze(holdout.id)
    assert analysis["srm"]["flagged"] is False, analysis["srm"]


def test_a_held_out_session_that_logs_in_stays_held_out(service: Any) -> None:
    # Given a running experiment and holdout, and a session in the holdout's range
    experiment = started(service, in_layer("login", [0.0, 0.9]))
    holdout = started(service, holdout_body())
    session = next(
        s for s in (f"s{i}" for i in range(1000))
        if targeting.layer_position(LAYER, f"session:{s}") >= 0.9
    )  # fmt: skip
    user = next(u for u in range(1000) if position(u) < 0.9)  # a user outside the range
    first = service.get_variant({"experiment_name": experiment.name, "session_id": session})
    assert first["reason"] == "holdout"

    # When the visitor logs in as that user, with the session
    answer = service.get_variant(
        {"experiment_name": experiment.name, "user_id": user, "session_id": session}
    )

    # Then the user keeps the session's place: held out, and in the holdout's control
    assert answer["reason"] == "holdout" and answer["variant"]["id"] == experiment.control.id
    stored = service.store.get_assignment(holdout.id, f"user:{user}")
    assert int(stored["variant_id"]) == holdout.control.id and stored["source"] == "session_alias"


def test_a_promoted_winner_does_not_reach_held_out_units(service: Any) -> None:
    # Given an experiment stopped with its treatment promoted, in a layer with a holdout
    experiment = started(service, in_layer("shipped", [0.0, 0.9]))
    started(service, holdout_body())
    treatment = next(v for v in experiment.variants if not v.is_control)
    service.change_status(experiment.id, "stop")
    service.store.update_experiment(
        experiment.id,
        allowed_from=("stopped",),
        changes={"promoted": True, "winner_variant_id": treatment.id},
    )
    service._forget(experiment.id)
    held = next(u for u in range(1000) if position(u) >= 0.9)
    other = next(u for u in range(1000) if position(u) < 0.9)

    # When a held-out user and another ask
    held_answer = service.get_variant({"experiment_name": experiment.name, "user_id": held})
    other_answer = service.get_variant({"experiment_name": experiment.name, "user_id": other})

    # Then the winner reaches everyone but the held-out user, who keeps the control
    assert other_answer["reason"] == "winner_promoted"
    assert held_answer["reason"] == "holdout"
    assert held_answer["variant"]["id"] == experiment.control.id


def test_definitions_with_a_holdout_say_so_and_a_plain_layer_is_stored_as_before(
    aws: Any,
) -> None:
    # Given an experiment in a layer, then a holdout in it
    service = ExperimentService(Store(Settings(), client=aws), cache_ttl_seconds=0)
    experiment = started(service, in_layer("plain", [0.0, 0.5]))
    before, _ = LocalEvaluation(service).definitions()
    started(service, holdout_body())
    after, _ = LocalEvaluation(service).definitions()

    # Then the document's algorithm names holdouts only once there is one, so a client
    # that predates them asks the service instead of answering held-out units itself
    assert before["algorithm"] == "sha256-53bit-ranges-v1"
    assert after["algorithm"] == "sha256-53bit-ranges-v1+holdouts"
    # And a layer that is not a holdout is stored as before holdouts existed
    item = raw_item(aws, "ab_experiments", {"pk": records.experiment_pk(experiment.id)})
    assert item is not None and item["layer"] == {"name": LAYER, "range": [0, 0.5]}
