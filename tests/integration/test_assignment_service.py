"""Assignment through ExperimentService on moto: stickiness, reasons, overrides, counters."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import pytest

from ab_testing import assignment, dynamo
from tests.conftest import guide_experiment, invoke

NAME = "Lead Qualification Prompt Test"
TREATMENT = "Treatment - Few Shot Examples"


def started(service: Any, **changes: Any) -> Any:
    """Creates and starts an experiment; returns it as stored (with its salt)."""
    created = service.create_experiment(guide_experiment(**changes))
    service.start_experiment(created["id"])
    return service.get_experiment(created["id"])


def ask(service: Any, experiment: Any, **unit: Any) -> dict[str, Any]:
    answer: dict[str, Any] = service.get_variant({"experiment_name": experiment.name, **unit})
    return answer


def hashed_variant_id(experiment: Any, unit: str) -> int | None:
    index = assignment.assign(
        experiment.salt,
        unit,
        experiment.target_percentage,
        [v.traffic_allocation for v in experiment.variants],
    )
    return None if index is None else experiment.variants[index].id


def stored(service: Any, experiment: Any, unit: str) -> dict[str, Any] | None:
    item: dict[str, Any] | None = service.store.get_assignment(experiment.id, unit)
    return item


def stored_count(aws: Any, experiment_id: int) -> int:
    pages = aws.get_paginator("scan").paginate(
        TableName="ab_assignments",
        FilterExpression="experiment_id = :e",
        ExpressionAttributeValues={":e": {"N": str(experiment_id)}},
    )
    return sum(page["Count"] for page in pages)


def exposure_total(service: Any, experiment_id: int) -> int:
    items = service.store.query_experiment_items(experiment_id, prefix="exposure#")
    return sum(int(item.get("units_assigned", 0)) for item in items)


def test_assignment_is_sticky_and_follows_the_hash(service: Any) -> None:
    # Given a running experiment
    experiment = started(service)

    # When user 123 asks three times
    answers = [ask(service, experiment, user_id=123) for _ in range(3)]

    # Then the first is assigned, the others are existing, all the same hashed variant
    assert [a["reason"] for a in answers] == [
        "assigned",
        "existing_assignment",
        "existing_assignment",
    ]
    assert {a["variant"]["id"] for a in answers} == {hashed_variant_id(experiment, "user:123")}
    assert answers[0]["unit"] == "user:123"
    assert "system_prompt" in answers[0]["variant"]["config"]


def test_integer_and_string_user_id_are_one_unit(service: Any) -> None:
    # Given user 123 assigned as an integer
    experiment = started(service)
    first = ask(service, experiment, user_id=123)

    # When it comes back as the string "123"
    again = ask(service, experiment, user_id="123")

    # Then it is the same unit, answered from storage
    assert again["unit"] == first["unit"] == "user:123"
    assert again["reason"] == "existing_assignment"
    assert again["variant"] == first["variant"]


def test_rebalance_moves_only_new_units(service: Any) -> None:
    # Given 40 users assigned at 50/50
    experiment = started(service)
    before = {u: ask(service, experiment, user_id=u)["variant"]["id"] for u in range(40)}
    control, treatment = (v.id for v in experiment.variants)
    assert set(before.values()) == {control, treatment}

    # When the weights move to 0/100
    answer = service.rebalance(
        experiment.id,
        {
            "variants": [
                {"id": control, "traffic_allocation": 0.0},
                {"id": treatment, "traffic_allocation": 100.0},
            ]
        },
    )
    after = {u: ask(service, experiment, user_id=u) for u in range(40)}
    newcomers = [ask(service, experiment, user_id=u) for u in range(100, 120)]

    # Then the rebalance says so, nobody already assigned moves, and every new unit gets the
    # only open variant
    assert answer["message"] == f"Experiment {experiment.id} rebalanced"
    assert all(a["reason"] == "existing_assignment" for a in after.values())
    assert {u: a["variant"]["id"] for u, a in after.items()} == before
    assert {(a["reason"], a["variant"]["id"]) for a in newcomers} == {("assigned", treatment)}


def test_a_draft_follows_its_latest_allocation_however_often_it_was_rebalanced(
    service: Any,
) -> None:
    # Given a draft rebalanced to 0/100, then back to 100/0 before it starts
    created = service.create_experiment(guide_experiment())
    experiment = service.get_experiment(created["id"])
    control, treatment = (v.id for v in experiment.variants)
    for shares in ((0.0, 100.0), (100.0, 0.0)):
        service.rebalance(
            experiment.id,
            {
                "variants": [
                    {"id": control, "traffic_allocation": shares[0]},
                    {"id": treatment, "traffic_allocation": shares[1]},
                ]
            },
        )
    # When it starts and users arrive
    service.start_experiment(experiment.id)
    answers = [ask(service, experiment, user_id=u) for u in range(30)]
    # Then every one gets the variant of the latest allocation: nobody was assigned before
    assert {(a["reason"], a["variant"]["id"]) for a in answers} == {("assigned", control)}


def test_not_in_target_gives_nothing_and_stores_nothing(service: Any, aws: Any) -> None:
    # Given a running experiment with target_percentage 30
    experiment = started(service, target_percentage=30.0)

    # When 60 users ask
    answers = {u: ask(service, experiment, user_id=f"u-{u}") for u in range(60)}

    # Then the ones the hash leaves out get no variant, no stored item, the same answer again
    out = [u for u, a in answers.items() if a["reason"] == "not_in_target"]
    inside = [u for u, a in answers.items() if a["reason"] == "assigned"]
    assert out and inside and len(out) + len(inside) == 60
    for u in out:
        assert answers[u]["variant"] is None
        assert hashed_variant_id(experiment, f"user:u-{u}") is None
        assert stored(service, experiment, f"user:u-{u}") is None
        assert ask(service, experiment, user_id=f"u-{u}")["reason"] == "not_in_target"
    for u in inside:
        assert answers[u]["variant"]["id"] == hashed_variant_id(experiment, f"user:u-{u}")
    assert stored_count(aws, experiment.id) == len(inside)


def test_lowering_the_target_removes_no_one(service: Any) -> None:
    # Given 30 users assigned at target 100
    experiment = started(service)
    before = {u: ask(service, experiment, user_id=u)["variant"]["id"] for u in range(30)}

    # When the target drops to 1%
    service.rebalance(experiment.id, {"target_percentage": 1.0})

    # Then they all keep their variant
    for u, variant_id in before.items():
        answer = ask(service, experiment, user_id=u)
        assert (answer["reason"], answer["variant"]["id"]) == ("existing_assignment", variant_id)


def test_override_pins_a_unit_without_storing_it(service: Any, aws: Any) -> None:
    # Given an experiment that pins "qa-user" (no prefix: a user id) to the treatment
    experiment = started(service, overrides={"qa-user": TREATMENT})

    # When the QA user asks twice
    answers = [ask(service, experiment, user_id="qa-user") for _ in range(2)]

    # Then the pin answers, with reason override, and nothing is stored or counted
    for answer in answers:
        assert answer["reason"] == "override"
        assert answer["variant"]["name"] == TREATMENT
    assert stored(service, experiment, "user:qa-user") is None
    assert stored_count(aws, experiment.id) == 0
    assert exposure_total(service, experiment.id) == 0

    # And its results are left out of the analysis
    recorded = service.record_result(NAME, "resolution_rate", 1.0, user_id="qa-user")
    assert (recorded["recorded"], recorded["reason"]) == (False, "override")


def test_session_variant_is_kept_after_login(service: Any) -> None:
    # Given a user id whose own hash would give a different variant than the session's
    experiment = started(service)
    session = ask(service, experiment, session_id="visit-1")
    assert session["reason"] == "assigned"
    kept = session["variant"]["id"]
    user = next(
        f"member-{n}"
        for n in range(200)
        if hashed_variant_id(experiment, f"user:member-{n}") != kept
    )

    # When the visitor logs in (both ids), then comes back with the user id alone
    login = ask(service, experiment, session_id="visit-1", user_id=user)
    later = ask(service, experiment, user_id=user)

    # Then the user keeps the session's variant, stored as a session alias
    assert login["unit"] == f"user:{user}"
    assert login["reason"] == "existing_assignment"
    assert login["variant"]["id"] == kept
    assert (later["reason"], later["variant"]["id"]) == ("existing_assignment", kept)
    item = stored(service, experiment, f"user:{user}")
    assert item is not None and item["source"] == "session_alias"
    assert int(item["variant_id"]) == kept


def test_user_seen_first_ignores_a_later_session(service: Any) -> None:
    # Given a user already assigned by hash, and a session assigned separately
    experiment = started(service)
    first = ask(service, experiment, user_id="known")
    ask(service, experiment, session_id="another-visit")

    # When the user shows up with that session
    answer = ask(service, experiment, user_id="known", session_id="another-visit")

    # Then the user's own assignment stands
    assert answer["variant"]["id"] == first["variant"]["id"]
    assert stored(service, experiment, "user:known")["source"] == "hash"  # type: ignore[index]


def test_exposure_counter_equals_stored_assignments(service: Any, aws: Any) -> None:
    # Given a running experiment
    experiment = started(service)

    # When 25 new users and 5 new sessions ask, one of which later logs in
    for u in range(25):
        ask(service, experiment, user_id=u)
    for s in range(5):
        ask(service, experiment, session_id=f"s-{s}")
    ask(service, experiment, session_id="s-0", user_id="logged-in")

    # Then the exposure items count each person once: 31 stored assignments, one of them
    # the logged-in user who inherited the session's variant (counted as an alias instead)
    total = exposure_total(service, experiment.id)
    assert stored_count(aws, experiment.id) == 31
    assert total == 30
    aliased = sum(
        int(i.get("aliased_units", 0))
        for i in service.store.query_experiment_items(experiment.id, prefix="exposure#")
    )
    assert aliased == 1

    # And returning units do not raise it
    for u in range(25):
        assert ask(service, experiment, user_id=u)["reason"] == "existing_assignment"
    ask(service, experiment, session_id="s-3")
    assert exposure_total(service, experiment.id) == total

    # And the split per variant matches the stored items
    per_variant: dict[int, int] = {}
    for item in service.store.query_experiment_items(experiment.id, prefix="exposure#"):
        vid = int(item["variant_id"])
        counted = int(item.get("units_assigned", 0)) + int(item.get("aliased_units", 0))
        per_variant[vid] = per_variant.get(vid, 0) + counted
    scanned = aws.scan(
        TableName="ab_assignments",
        FilterExpression="experiment_id = :e",
        ExpressionAttributeValues={":e": {"N": str(experiment.id)}},
    )["Items"]
    by_scan: dict[int, int] = {}
    for raw in scanned:
        vid = int(dynamo.deserialize(raw)["variant_id"])
        by_scan[vid] = by_scan.get(vid, 0) + 1
    assert per_variant == by_scan


def test_second_writer_gets_the_stored_assignment(service: Any, monkeypatch: Any) -> None:
    # Given a unit whose first assignment is written while another request is in flight
    experiment = started(service)
    control, treatment = (v.id for v in experiment.variants)
    item, created = service.store.create_assignment(
        experiment.id, "user:racer", treatment, now="2024-01-01T00:00:00.000Z", shard=0
    )
    assert created
    assert item["source"] == "hash"  # the store's default: an assignment drawn by the hash

    # When a second writer tries to store another variant for the same unit
    again, created_again = service.store.create_assignment(
        experiment.id, "user:racer", control, now="2024-01-01T00:00:00.001Z", shard=0
    )

    # Then the first write stands and the counter moved once
    assert not created_again
    assert int(again["variant_id"]) == treatment
    assert exposure_total(service, experiment.id) == 1

    # And through the service: a stale read that misses the item still answers the stored one
    monkeypatch.setattr(service.store, "get_assignment", lambda *args: None)
    answer = ask(service, experiment, user_id="racer")
    assert (answer["reason"], answer["variant"]["id"]) == ("existing_assignment", treatment)
    assert exposure_total(service, experiment.id) == 1


def test_stopped_experiment_is_not_running(service: Any) -> None:
    # Given an experiment with one assigned user, then stopped
    experiment = started(service)
    ask(service, experiment, user_id=1)
    service.transition(experiment.id, "stop")

    # When an assigned user and a new user ask
    # Then both are told the experiment is not running, with no variant
    for user in (1, 2):
        answer = ask(service, experiment, user_id=user)
        assert (answer["reason"], answer["variant"]) == ("experiment_not_running", None)
    assert stored(service, experiment, "user:2") is None


def test_draft_and_paused_experiments(service: Any) -> None:
    # Given a draft experiment
    created = service.create_experiment(guide_experiment())
    draft = service.get_experiment(created["id"])

    # Then nobody is assigned before it starts
    assert ask(service, draft, user_id=1)["reason"] == "experiment_not_running"
    assert stored(service, draft, "user:1") is None

    # Given it running with user 1 assigned, then paused
    service.start_experiment(draft.id)
    assigned = ask(service, draft, user_id=1)
    service.transition(draft.id, "pause")

    # Then user 1 keeps its variant and a new user gets none
    kept = ask(service, draft, user_id=1)
    assert (kept["reason"], kept["variant"]) == ("existing_assignment", assigned["variant"])
    fresh = ask(service, draft, user_id=2)
    assert (fresh["reason"], fresh["variant"]) == ("experiment_not_running", None)


def test_handler_answers_with_the_same_reasons(aws: Any) -> None:
    # Given the guide's experiment created and started through the handlers
    status, created = invoke(
        "create_experiment",
        "POST",
        "/api/v1/experiments/",
        resource="/api/v1/experiments",
        body=guide_experiment(),
    )
    assert status == 201
    invoke(
        "start_experiment",
        "POST",
        f"/api/v1/experiments/{created['id']}/start",
        resource="/api/v1/experiments/{id}/start",
        path_parameters={"id": str(created["id"])},
    )

    # When user 5 asks twice over HTTP
    path = "/api/v1/experiments/get-variant"
    _, first = invoke("get_variant", "POST", path, body={"experiment_name": NAME, "user_id": 5})
    _, second = invoke("get_variant", "POST", path, body={"experiment_name": NAME, "user_id": "5"})

    # Then the reasons and the variant are the service's
    assert (first["reason"], second["reason"]) == ("assigned", "existing_assignment")
    assert first["variant"] == second["variant"]


def test_an_assignment_is_stored_with_the_time_it_was_made(aws: Any) -> None:
    from ab_testing.service import ExperimentService
    from ab_testing.settings import Settings
    from ab_testing.store import Store

    # Given a service whose clock reads a known time
    service = ExperimentService(
        Store(Settings(), client=aws), clock=lambda: "2031-02-03T04:05:06.000Z", cache_ttl_seconds=0
    )
    experiment = started(service)
    # When a user is assigned
    ask(service, experiment, user_id="timed")
    # Then the stored assignment carries that time
    item = stored(service, experiment, "user:timed")
    assert item is not None and item["assigned_at"] == "2031-02-03T04:05:06.000Z"


def test_a_rebalance_the_status_no_longer_allows_is_a_409_naming_the_statuses(
    service: Any,
) -> None:
    from ab_testing.errors import Conflict

    # Given an experiment that was paused after the service read it as running
    experiment = started(service)
    service.change_status(experiment.id, "pause")
    # When the store is asked to rebalance it while running or draft only
    try:
        service.store.rebalance(
            experiment,
            allowed_from=("running", "draft"),
            now="2031-01-01T00:00:00.000Z",
            srm_baseline={},
        )
    except Conflict as refused:
        # Then it is a 409 that names the status found and the statuses allowed
        assert refused.status == 409
        assert refused.body()["message"] == (
            f"experiment {experiment.id} is paused; a rebalance needs one of: running, draft"
        )
        assert refused.body()["status"] == "paused"
    else:
        raise AssertionError("the rebalance of a paused experiment went through")


def test_a_returning_unit_with_no_result_yet_gets_its_covariate_stored_once(
    service: Any,
) -> None:
    # Given an experiment with a covariate, and a user assigned without one
    experiment = started(service, covariate="prior_resolution_rate")
    ask(service, experiment, user_id="back")
    assert "x" not in (stored(service, experiment, "user:back") or {})
    # When the user comes back with the covariate, then with another value
    ask(service, experiment, user_id="back", covariates={"prior_resolution_rate": 0.25})
    ask(service, experiment, user_id="back", covariates={"prior_resolution_rate": 0.75})
    # Then the first value is stored with the assignment, and kept
    item = stored(service, experiment, "user:back")
    assert item is not None and str(item["x"]) == "0.25"


def test_a_covariate_that_lost_a_race_leaves_the_stored_one_and_raises_nothing(
    service: Any,
) -> None:
    # Given a unit whose covariate another request stored between its read and its write
    experiment = started(service, covariate="prior_resolution_rate")
    ask(service, experiment, user_id="raced")
    service.store.set_covariate(experiment.id, "user:raced", Decimal("0.25"))
    # When the slower request stores its own value / Then nothing is raised
    service.store.set_covariate(experiment.id, "user:raced", Decimal("0.75"))
    # And the first value is the one kept
    item = stored(service, experiment, "user:raced")
    assert item is not None and str(item["x"]) == "0.25"


def test_an_experiment_is_found_by_name_with_a_strongly_consistent_read(service: Any) -> None:
    # Given a started experiment and the GetItem calls the store makes
    experiment = started(service)
    seen: list[dict[str, Any]] = []
    service.store.client.meta.events.register(
        "before-parameter-build.dynamodb.GetItem", lambda params, **_: seen.append(dict(params))
    )
    # When its id is looked up by name
    assert service.store.experiment_id_by_name(experiment.name) == experiment.id
    # Then the read of the name asked for strong consistency
    reads = [p for p in seen if p["TableName"] == service.store.experiments]
    assert reads and all(p.get("ConsistentRead") is True for p in reads)


def test_a_status_update_the_status_no_longer_allows_names_both_in_its_409(service: Any) -> None:
    from ab_testing.errors import Conflict

    # Given a running experiment
    experiment = started(service)
    # When the store is asked for a change allowed only from draft or paused
    try:
        service.store.update_experiment(
            experiment.id, allowed_from=("draft", "paused"), changes={"status": "running"}
        )
    except Conflict as refused:
        # Then the 409 names the status found and the statuses allowed
        body = refused.body()
        assert (body["status"], body["allowed_from"]) == ("running", ["draft", "paused"])
        assert body["message"] == (
            f"experiment {experiment.id} is running; this needs one of: draft, paused"
        )
    else:
        raise AssertionError("the update went through")


def test_an_experiment_read_with_a_prefix_brings_only_those_items(service: Any) -> None:
    # Given a started experiment with an assigned user (an exposure counter besides variants)
    experiment = started(service)
    ask(service, experiment, user_id="counted")
    everything = service.store.experiment_with_items(experiment.id)[1]
    assert any(not i["sk"].startswith("variant#") for i in everything)
    # When it is read with the variants' prefix
    found, items = service.store.experiment_with_items(experiment.id, prefix="variant#")
    # Then only the variants' items come, and the experiment is whole
    assert items and all(i["sk"].startswith("variant#") for i in items)
    assert [v.id for v in found.variants] == [v.id for v in experiment.variants]


@pytest.mark.parametrize(
    ("query", "message"),
    [
        ({"status": "finished"}, "status must be one of draft, running, paused, stopped, archived"),
        (
            {"experiment_type": "vibes"},
            "experiment_type must be one of prompt, model, agent_config, feature, ui",
        ),
    ],
)
def test_the_python_list_names_the_values_a_filter_takes(
    service: Any, query: dict[str, str], message: str
) -> None:
    from ab_testing.errors import InvalidInput

    # When the service's list is filtered by a status or type that does not exist
    with pytest.raises(InvalidInput) as refused:
        service.list_experiments(**query)
    # Then the refusal names the field and the values it takes
    assert (refused.value.message, refused.value.field) == (message, next(iter(query)))


@pytest.mark.parametrize("first_seen", ["with_covariate", "with_results"])
def test_a_returning_unit_that_cannot_take_a_covariate_costs_no_write(
    service: Any, first_seen: str
) -> None:
    """get-variant writes a returning unit's covariate only while it has none and no results
    (docs/statistics.md, CUPED): otherwise the stored assignment is answered with one read."""
    experiment = started(service, covariate="prior_resolution_rate")
    if first_seen == "with_covariate":
        # Given a user assigned with a covariate
        ask(service, experiment, user_id="known", covariates={"prior_resolution_rate": 0.25})
    else:
        # Given a user assigned without one, who already has a result
        ask(service, experiment, user_id="known")
        service.record_result(experiment.name, "resolution_rate", 1.0, user_id="known")
    writes: list[str] = []
    events = service.store.client.meta.events
    for operation in ("UpdateItem", "TransactWriteItems", "PutItem"):
        events.register(
            f"before-parameter-build.dynamodb.{operation}",
            lambda params, operation=operation, **_: writes.append(operation),
        )
    # When the user comes back with a covariate
    answer = ask(service, experiment, user_id="known", covariates={"prior_resolution_rate": 0.5})
    # Then the stored assignment is answered and nothing is written
    assert answer["reason"] == "existing_assignment"
    assert writes == []


def test_the_assignment_read_on_the_hot_path_is_eventually_consistent(service: Any) -> None:
    # Given a started experiment and the GetItem calls the store makes (docs/assignment.md:
    # half the read cost; a stale miss is caught by the conditional write)
    experiment = started(service)
    seen: list[dict[str, Any]] = []
    service.store.client.meta.events.register(
        "before-parameter-build.dynamodb.GetItem", lambda params, **_: seen.append(dict(params))
    )
    # When a unit's assignment is read
    service.store.get_assignment(experiment.id, "user:anyone")
    # Then the read did not ask for strong consistency
    reads = [p for p in seen if p["TableName"] == service.store.assignments]
    assert reads and all(p.get("ConsistentRead") is False for p in reads)


def test_an_experiment_is_read_with_a_strongly_consistent_read(service: Any) -> None:
    # Given a started experiment (DynamoDB's default read may miss a write just made)
    experiment = started(service)
    seen: list[dict[str, Any]] = []
    service.store.client.meta.events.register(
        "before-parameter-build.dynamodb.GetItem", lambda params, **_: seen.append(dict(params))
    )
    # When it is read back
    service.store.get_experiment(experiment.id)
    # Then the read asked for strong consistency
    reads = [p for p in seen if p["TableName"] == service.store.experiments]
    assert reads and all(p.get("ConsistentRead") is True for p in reads)
