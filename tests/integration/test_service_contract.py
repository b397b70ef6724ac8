"""ExperimentService's contract, field by field: the answers the guide shows, each error's
class, message and field, the reasons of get-variant, the cache, shards and the ranges of a
rebalance (docs/assignment.md)."""

from __future__ import annotations

import base64
import hashlib
import re
from decimal import Decimal
from types import SimpleNamespace
from typing import Any

import boto3
import pytest

from ab_testing import assignment
from ab_testing.errors import Conflict, InvalidInput
from ab_testing.models import ExperimentIn, GetVariantIn
from ab_testing.queries import ListQuery
from ab_testing.service import ExperimentService, utc_now
from ab_testing.settings import Settings
from ab_testing.store import Store
from tests.conftest import FakeMonotonic, guide_experiment

NAME = "Lead Qualification Prompt Test"
CONTROL = "Control"
TREATMENT = "Treatment - Few Shot Examples"
STAMP = "2026-01-02T03:04:05.678Z"


class Clock:
    """An injected clock: a new, recognisable timestamp per call."""

    def __init__(self) -> None:
        self.calls = 0

    def __call__(self) -> str:
        self.calls += 1
        return f"2026-03-01T00:00:{self.calls:02d}.000Z"

    @property
    def last(self) -> str:
        return f"2026-03-01T00:00:{self.calls:02d}.000Z"


@pytest.fixture
def monotonic(monkeypatch: pytest.MonkeyPatch) -> FakeMonotonic:
    """The service's cache clock, moved by hand."""
    clock = FakeMonotonic()
    monkeypatch.setattr("ab_testing.service.time", SimpleNamespace(monotonic=clock.monotonic))
    return clock


def make(aws: Any, settings: Settings | None = None, **kw: Any) -> ExperimentService:
    kw.setdefault("cache_ttl_seconds", 0)
    return ExperimentService(Store(settings or Settings(), client=aws), **kw)


def created(service: ExperimentService, **changes: Any) -> Any:
    answer = service.create_experiment(guide_experiment(**changes))
    return service.get_experiment(answer["id"])


def started(service: ExperimentService, **changes: Any) -> Any:
    experiment = created(service, **changes)
    service.start_experiment(experiment.id)
    return service.get_experiment(experiment.id)


def ids(experiment: Any) -> tuple[int, int]:
    """(control id, treatment id)."""
    by_name = {v.name: v.id for v in experiment.variants}
    return by_name[CONTROL], by_name[TREATMENT]


def split(experiment: Any, control_share: float) -> dict[str, Any]:
    """A rebalance body: the control's share, the treatment the rest."""
    control, treatment = ids(experiment)
    return {"variants": weights({control: control_share, treatment: 100 - control_share})}


def hashed(experiment: Any, unit: str) -> int | None:
    """The variant id docs/assignment.md's formula gives a new unit (None: out of target)."""
    cover, pick = assignment.draws(experiment.salt, unit)
    if cover * 100 >= experiment.target_percentage:
        return None
    point, cumulative = pick * 100, 0.0
    for variant in experiment.variants:
        cumulative += variant.traffic_allocation
        if point < cumulative:
            return int(variant.id)
    return int(experiment.variants[-1].id)


def user_where(experiment: Any, wanted: Any, start: int = 1) -> int:
    """The first user id (from ``start``) whose hashed variant id satisfies ``wanted``."""
    for user in range(start, start + 5000):
        if wanted(hashed(experiment, f"user:{user}")):
            return user
    raise AssertionError("no such user")


def exposures(service: ExperimentService, experiment_id: int) -> list[dict[str, Any]]:
    items: list[dict[str, Any]] = service.store.query_experiment_items(
        experiment_id, prefix="exposure#"
    )
    return items


def counted(service: ExperimentService, experiment_id: int, field: str) -> dict[int, int]:
    totals: dict[int, int] = {}
    for item in exposures(service, experiment_id):
        vid = int(item["variant_id"])
        totals[vid] = totals.get(vid, 0) + int(item.get(field, 0))
    return {k: v for k, v in totals.items() if v}


def weights(shares: dict[int, float]) -> list[dict[str, Any]]:
    return [{"id": vid, "traffic_allocation": share} for vid, share in shares.items()]


def assigned_id(service: ExperimentService, experiment_id: int, user: int) -> int:
    answer = service.get_variant({"experiment_id": experiment_id, "user_id": user})
    return int(answer["variant"]["id"])


def variant_dict(experiment: Any, variant_id: int) -> dict[str, Any]:
    v = experiment.variant(variant_id)
    return {"id": v.id, "name": v.name, "config": v.config, "is_control": v.is_control}


# ------------------------------------------------------------------ utc_now, construction


def test_utc_now_is_iso_with_milliseconds_and_z() -> None:
    """Timestamps are ISO 8601 in UTC, to the millisecond, ending in 'Z'."""
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z", utc_now())


def test_the_default_clock_stamps_created_at_in_utc_with_z(aws: Any) -> None:
    """Without an injected clock, created_at is utc_now's format."""
    service = make(aws)
    experiment = created(service)
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z", experiment.created_at)


def test_a_store_is_used_as_given_with_its_settings(aws: Any) -> None:
    """ExperimentService(Store) uses that store, its settings and their cache TTL."""
    settings = Settings(cache_ttl_seconds=7.5, totals_shards=3)
    store = Store(settings, client=aws)
    service = ExperimentService(store)
    assert service.store is store
    assert service.settings is settings
    assert service.cache_ttl == 7.5
    assert service.ledger.store is store
    assert service.clock is utc_now


def test_an_explicit_cache_ttl_wins_over_the_settings(aws: Any) -> None:
    """cache_ttl_seconds, when given (even 0), overrides settings.cache_ttl_seconds."""
    store = Store(Settings(cache_ttl_seconds=7.5), client=aws)
    assert ExperimentService(store, cache_ttl_seconds=0).cache_ttl == 0
    assert ExperimentService(store, cache_ttl_seconds=2).cache_ttl == 2


def test_a_boto3_client_is_wrapped_in_a_store(aws: Any) -> None:
    """ExperimentService(client) builds a Store on that very client, from the settings."""
    settings = Settings(totals_shards=2)
    service = ExperimentService(aws, settings=settings)
    assert isinstance(service.store, Store)
    assert service.store.client is aws
    assert service.settings is settings
    assert service.store.settings is settings
    answer = service.create_experiment(guide_experiment())
    assert service.get_experiment(answer["id"]).name == NAME


def test_a_boto3_resource_gives_a_plain_client_of_its_region_and_endpoint(aws: Any) -> None:
    """A resource is replaced by a plain client for the same region and endpoint."""
    resource = boto3.resource(
        "dynamodb", region_name="eu-west-1", endpoint_url="http://dynamo.example:8000"
    )
    service = ExperimentService(resource, settings=Settings())
    assert not hasattr(service.store.client, "Table")
    assert service.store.client.meta.region_name == "eu-west-1"
    assert service.store.client.meta.endpoint_url == "http://dynamo.example:8000"


def test_a_boto3_resource_works_end_to_end(aws: Any) -> None:
    """A service built on a resource reads what another one wrote."""
    resource = boto3.resource("dynamodb", region_name="us-east-1")
    service = ExperimentService(resource, cache_ttl_seconds=0)
    experiment_id = service.create_experiment(guide_experiment())["id"]
    assert make(aws).get_experiment(experiment_id).name == NAME


def test_no_db_builds_a_store_from_the_environment(aws: Any) -> None:
    """ExperimentService() takes its settings (tables, TTL) from the environment."""
    service = ExperimentService()
    assert service.settings == Settings()
    assert service.cache_ttl == Settings().cache_ttl_seconds
    experiment_id = service.create_experiment(guide_experiment())["id"]
    assert make(aws).get_experiment(experiment_id).name == NAME


# ------------------------------------------------------------------ create


def test_create_answers_id_name_status_and_message(aws: Any) -> None:
    """The guide's create answer, and the clock stamps created_at."""
    service = make(aws, clock=lambda: STAMP)
    answer = service.create_experiment(guide_experiment())
    assert answer == {
        "id": answer["id"],
        "name": NAME,
        "status": "draft",
        "message": "Experiment created successfully. Use /start endpoint to begin.",
    }
    experiment = service.get_experiment(answer["id"])
    assert experiment.created_at == STAMP
    assert re.fullmatch(r"[0-9a-f]{16}", experiment.salt)


def test_create_takes_a_parsed_body_and_normalises_override_keys(aws: Any) -> None:
    """An ExperimentIn is taken as is; override keys become unit keys ("7" is user:7)."""
    service = make(aws)
    spec = ExperimentIn.model_validate(
        guide_experiment(overrides={"7": TREATMENT, "session:abc": CONTROL, "user:8": CONTROL})
    )
    answer = service.create_experiment(spec)
    experiment = service.get_experiment(answer["id"])
    assert experiment.overrides == {
        "user:7": TREATMENT,
        "session:abc": CONTROL,
        "user:8": CONTROL,
    }


def test_create_refuses_an_invalid_body(aws: Any) -> None:
    """A dict body is validated: a missing name is an InvalidInput naming the field."""
    body = guide_experiment()
    del body["name"]
    with pytest.raises(InvalidInput) as caught:
        make(aws).create_experiment(body)
    assert caught.value.field == "name"


# ------------------------------------------------------------------ list


@pytest.mark.parametrize(
    ("filters", "message"),
    [
        ({"status": "finished"}, "status must be one of draft, running, paused, stopped, archived"),
        (
            {"experiment_type": "banner"},
            "experiment_type must be one of prompt, model, agent_config, feature, ui",
        ),
    ],
    ids=["status", "experiment_type"],
)
def test_an_unknown_list_filter_value_is_refused_by_name(
    aws: Any, filters: dict[str, str], message: str
) -> None:
    with pytest.raises(InvalidInput) as caught:
        make(aws).list_experiments(**filters)
    assert caught.value.message == message
    assert caught.value.field == next(iter(filters))


def test_list_filters_by_status_type_and_name_prefix(aws: Any) -> None:
    """Each filter alone and combined selects exactly its experiments, oldest first."""
    service = make(aws)
    a = started(service, name="alpha running prompt").id
    b = created(service, name="alpha draft model", experiment_type="model").id
    c = started(service, name="beta running model", experiment_type="model").id

    def names(**filters: Any) -> list[int]:
        return [e["id"] for e in service.list_experiments(**filters)]

    assert names() == [a, b, c]
    assert names(status="running") == [a, c]
    assert names(status="draft") == [b]
    assert names(experiment_type="model") == [b, c]
    assert names(experiment_type="prompt") == [a]
    assert names(name_prefix="alpha") == [a, b]
    assert names(status="running", experiment_type="model") == [c]
    assert names(status="running", name_prefix="alpha") == [a]
    assert names(experiment_type="model", name_prefix="beta") == [c]
    assert names(status="paused") == []


def test_a_listed_experiment_has_exactly_the_summary_fields(aws: Any) -> None:
    """_listed: the id and the thirteen summary fields, stopped_at/winner None until set."""
    clock = Clock()
    service = make(aws, clock=clock)
    experiment = started(service, target_percentage=80.0, min_sample_size=250)
    started_at = clock.last
    [listed] = service.list_experiments()
    assert listed == {
        "id": experiment.id,
        "name": NAME,
        "description": "Testing new prompt with few-shot examples vs current prompt",
        "experiment_type": "prompt",
        "status": "running",
        "primary_metric": "resolution_rate",
        "secondary_metrics": ["satisfaction_score", "response_time"],
        "target_percentage": 80.0,
        "min_sample_size": 250,
        "confidence_level": 0.95,
        "created_at": "2026-03-01T00:00:01.000Z",
        "started_at": started_at,
        "stopped_at": None,
        "winner_variant_id": None,
    }
    control, _ = ids(experiment)
    service.transition(experiment.id, "stop", winner_variant_id=control)
    [listed] = service.list_experiments()
    assert (listed["status"], listed["stopped_at"], listed["winner_variant_id"]) == (
        "stopped",
        clock.last,
        control,
    )


def cursor(after: int) -> str:
    return base64.urlsafe_b64encode(f"after:{after}".encode()).decode()


def test_list_page_pages_oldest_first_with_a_cursor(aws: Any) -> None:
    """limit, count, next_cursor (the last id shown, encoded) and the page after it."""
    service = make(aws)
    all_ids = [created(service, name=f"exp {n}").id for n in range(4)]
    first = service.list_page(ListQuery(limit=3))
    assert [e["id"] for e in first["experiments"]] == all_ids[:3]
    assert first["count"] == 3
    assert first["next_cursor"] == cursor(all_ids[2])
    assert set(first) == {"experiments", "count", "next_cursor"}
    second = service.list_page(ListQuery(limit=3, cursor=first["next_cursor"]))
    assert second == {
        "experiments": service.list_experiments()[3:],
        "count": 1,
        "next_cursor": None,
    }
    assert [e["id"] for e in second["experiments"]] == all_ids[3:]
    # A page that holds the rest exactly has no next page
    exact = service.list_page(ListQuery(limit=4))
    assert (exact["count"], exact["next_cursor"]) == (4, None)
    one = service.list_page(ListQuery(limit=1))
    assert (one["count"], one["next_cursor"]) == (1, cursor(all_ids[0]))
    after_one = service.list_page(ListQuery(limit=2, cursor=cursor(all_ids[0])))
    assert [e["id"] for e in after_one["experiments"]] == all_ids[1:3]


def test_list_page_applies_every_filter(aws: Any) -> None:
    service = make(aws)
    a = started(service, name="alpha one").id
    created(service, name="alpha two", experiment_type="model")
    c = started(service, name="beta", experiment_type="model").id

    def page(**filters: Any) -> list[int]:
        return [e["id"] for e in service.list_page(ListQuery(**filters))["experiments"]]

    assert page(status="running") == [a, c]
    assert page(experiment_type="model", status="running") == [c]
    assert page(name="alpha", status="running") == [a]


# ------------------------------------------------------------------ lifecycle


def test_each_transition_answers_and_stamps_its_time(aws: Any) -> None:
    """start, pause, resume, stop, archive: the answer and the stamp each one records."""
    clock = Clock()
    service = make(aws, clock=clock)
    experiment_id = created(service).id
    assert service.start_experiment(experiment_id) == {
        "message": f"Experiment {experiment_id} started successfully"
    }
    assert service.get_experiment(experiment_id).started_at == clock.last
    for action, past, status, stamp in [
        ("pause", "paused", "paused", "paused_at"),
        ("resume", "resumed", "running", None),
        ("stop", "stopped", "stopped", "stopped_at"),
        ("archive", "archived", "archived", "archived_at"),
    ]:
        before = clock.calls
        answer = service.change_status(experiment_id, action)
        assert answer == {
            "message": f"Experiment {experiment_id} {past} successfully",
            "experiment_id": experiment_id,
            "status": status,
        }
        experiment = service.get_experiment(experiment_id)
        assert experiment.status == status
        if stamp:
            assert getattr(experiment, stamp) == clock.last
        else:
            assert clock.calls == before


def test_transition_stores_the_extra_changes(aws: Any) -> None:
    service = make(aws)
    experiment = started(service)
    control, _ = ids(experiment)
    stopped = service.transition(
        experiment.id, "stop", winner_variant_id=control, stop_reason="manual"
    )
    assert (stopped.status, stopped.winner_variant_id, stopped.stop_reason) == (
        "stopped",
        control,
        "manual",
    )


@pytest.mark.parametrize(
    ("setup", "action", "current", "allowed"),
    [
        ([], "pause", "draft", ["start"]),
        (["start"], "start", "running", ["pause", "stop"]),
        (["start", "pause"], "archive", "paused", ["resume", "stop"]),
        (["start", "stop"], "resume", "stopped", ["archive"]),
        (["start", "stop", "archive"], "stop", "archived", []),
    ],
)
def test_a_refused_transition_says_what_is_allowed(
    aws: Any, setup: list[str], action: str, current: str, allowed: list[str]
) -> None:
    """A 409 that names the current status and the transitions allowed from it."""
    service = make(aws)
    experiment_id = created(service).id
    for step in setup:
        service.transition(experiment_id, step)
    with pytest.raises(Conflict) as caught:
        service.change_status(experiment_id, action)
    listed = ", ".join(allowed) or "nothing"
    assert caught.value.message == (
        f"cannot {action} experiment {experiment_id}: it is {current}. "
        f"Allowed from {current}: {listed}"
    )
    assert caught.value.field is None
    assert caught.value.details == {"status": current, "allowed_transitions": allowed}
    assert isinstance(caught.value.__cause__, Conflict)
    assert service.get_experiment(experiment_id).status == current


# ------------------------------------------------------------------ get-variant


def test_a_new_unit_is_assigned_by_the_hash_then_answered_from_storage(aws: Any) -> None:
    """Every field of the answer; reason assigned, then existing_assignment; the unit is
    stored with source hash and counted once in units_assigned on shard 0."""
    clock = Clock()
    service = make(aws, clock=clock)
    experiment = started(service)
    expected = hashed(experiment, "user:42")
    answer = service.get_variant({"experiment_name": NAME, "user_id": 42})
    assert answer == {
        "experiment_id": experiment.id,
        "experiment_name": NAME,
        "unit": "user:42",
        "variant": variant_dict(experiment, expected),
        "reason": "assigned",
    }
    item = service.store.get_assignment(experiment.id, "user:42")
    assert (item["variant_id"], item["source"], item["assigned_at"]) == (
        expected,
        "hash",
        clock.last,
    )
    again = service.get_variant({"experiment_id": experiment.id, "user_id": 42})
    assert again == {**answer, "reason": "existing_assignment"}
    assert counted(service, experiment.id, "units_assigned") == {expected: 1}
    [exposure] = exposures(service, experiment.id)
    assert exposure["sk"].endswith("#000")


def test_get_variant_takes_a_parsed_request_and_sessions(aws: Any) -> None:
    """A GetVariantIn is taken as is; a session-only unit is session:<id>."""
    service = make(aws)
    experiment = started(service)
    answer = service.get_variant(GetVariantIn(experiment_name=NAME, session_id="s-1"))
    assert answer["unit"] == "session:s-1"
    assert answer["variant"] == variant_dict(experiment, hashed(experiment, "session:s-1"))
    assert answer["reason"] == "assigned"


def test_the_guides_call_returns_the_variant_or_none(aws: Any) -> None:
    """get_variant_for_user: the variant with its config, for users and sessions."""
    service = make(aws)
    draft = created(service, name="draft one")
    assert service.get_variant_for_user("draft one", user_id=5) is None
    experiment = started(service)
    assert service.get_variant_for_user(NAME, user_id=5) == variant_dict(
        experiment, hashed(experiment, "user:5")
    )
    assert service.get_variant_for_user(NAME, session_id="s-9") == variant_dict(
        experiment, hashed(experiment, "session:s-9")
    )
    assert service.store.get_assignment(draft.id, "user:5") is None


def test_a_unit_outside_the_target_is_not_in_target(aws: Any) -> None:
    """u_cover * 100 >= target_percentage: no variant, nothing stored."""
    service = make(aws)
    experiment = started(service, target_percentage=30.0)
    outside = user_where(experiment, lambda v: v is None)
    inside = user_where(experiment, lambda v: v is not None)
    answer = service.get_variant({"experiment_name": NAME, "user_id": outside})
    assert (answer["variant"], answer["reason"]) == (None, "not_in_target")
    assert service.store.get_assignment(experiment.id, f"user:{outside}") is None
    answer = service.get_variant({"experiment_name": NAME, "user_id": inside})
    assert answer["reason"] == "assigned"
    assert answer["variant"]["id"] == hashed(experiment, f"user:{inside}")


@pytest.mark.parametrize("setup", [[], ["start", "stop"], ["start", "stop", "archive"]])
def test_draft_stopped_and_archived_answer_experiment_not_running(
    aws: Any, setup: list[str]
) -> None:
    service = make(aws)
    experiment_id = created(service).id
    for step in setup:
        service.transition(experiment_id, step)
    answer = service.get_variant({"experiment_id": experiment_id, "user_id": 1})
    assert (answer["variant"], answer["reason"]) == (None, "experiment_not_running")
    assert service.store.get_assignment(experiment_id, "user:1") is None


def test_a_stopped_experiment_ignores_even_stored_units(aws: Any) -> None:
    service = make(aws)
    experiment = started(service)
    service.get_variant({"experiment_id": experiment.id, "user_id": 1})
    service.transition(experiment.id, "stop")
    answer = service.get_variant({"experiment_id": experiment.id, "user_id": 1})
    assert (answer["variant"], answer["reason"]) == (None, "experiment_not_running")


def test_paused_keeps_stored_units_and_assigns_nobody_new(aws: Any) -> None:
    service = make(aws)
    experiment = started(service)
    known = service.get_variant({"experiment_id": experiment.id, "user_id": 1})
    service.transition(experiment.id, "pause")
    again = service.get_variant({"experiment_id": experiment.id, "user_id": 1})
    assert (again["variant"], again["reason"]) == (known["variant"], "existing_assignment")
    new = service.get_variant({"experiment_id": experiment.id, "user_id": 2})
    assert (new["variant"], new["reason"]) == (None, "experiment_not_running")
    assert service.store.get_assignment(experiment.id, "user:2") is None


def test_an_override_pins_the_variant_and_stores_nothing(aws: Any) -> None:
    """overrides: the pinned variant, reason override, also over a stored assignment and
    while paused; nothing stored, no exposure counted."""
    service = make(aws)
    experiment = started(service)
    control, treatment = ids(experiment)
    # A user the hash sends to control, pinned to treatment (and the reverse)
    to_control = user_where(experiment, lambda v: v == control)
    to_treatment = user_where(experiment, lambda v: v == treatment)
    pinned = started(
        service,
        name="pinned",
        overrides={str(to_control): TREATMENT, f"session:s{to_treatment}": CONTROL},
    )
    p_control, p_treatment = ids(pinned)
    answer = service.get_variant({"experiment_name": "pinned", "user_id": to_control})
    assert answer["variant"] == variant_dict(pinned, p_treatment)
    assert answer["reason"] == "override"
    answer = service.get_variant({"experiment_name": "pinned", "session_id": f"s{to_treatment}"})
    assert (answer["variant"], answer["reason"]) == (variant_dict(pinned, p_control), "override")
    assert service.store.get_assignment(pinned.id, f"user:{to_control}") is None
    assert counted(service, pinned.id, "units_assigned") == {}
    service.transition(pinned.id, "pause")
    answer = service.get_variant({"experiment_name": "pinned", "user_id": to_control})
    assert (answer["variant"]["id"], answer["reason"]) == (p_treatment, "override")


def test_a_promoted_winner_is_served_to_everyone_and_nothing_is_stored(aws: Any) -> None:
    service = make(aws)
    experiment = started(service)
    _, treatment = ids(experiment)
    service.transition(experiment.id, "stop", winner_variant_id=treatment, promoted=True)
    for user in (1, 2, 3):
        answer = service.get_variant({"experiment_id": experiment.id, "user_id": user})
        assert answer["variant"] == variant_dict(experiment, treatment)
        assert answer["reason"] == "winner_promoted"
        assert service.store.get_assignment(experiment.id, f"user:{user}") is None
    service.transition(experiment.id, "archive")
    answer = service.get_variant({"experiment_id": experiment.id, "user_id": 4})
    assert answer["reason"] == "winner_promoted"


def test_a_declared_but_unpromoted_winner_is_not_served(aws: Any) -> None:
    service = make(aws)
    experiment = started(service)
    _, treatment = ids(experiment)
    service.transition(experiment.id, "stop", winner_variant_id=treatment)
    answer = service.get_variant({"experiment_id": experiment.id, "user_id": 1})
    assert (answer["variant"], answer["reason"]) == (None, "experiment_not_running")


def test_an_id_and_a_name_that_disagree_are_refused(aws: Any) -> None:
    service = make(aws)
    first = created(service, name="first")
    started(service, name="second")
    with pytest.raises(InvalidInput) as caught:
        service.get_variant({"experiment_id": first.id, "experiment_name": "second", "user_id": 1})
    assert caught.value.message == f"experiment {first.id} is named 'first', not 'second'"
    assert caught.value.field == "experiment_name"
    # The same id with its own name is fine
    answer = service.get_variant(
        {"experiment_id": first.id, "experiment_name": "first", "user_id": 1}
    )
    assert answer["reason"] == "experiment_not_running"


# ------------------------------------------------------------------ session alias


def test_a_user_logging_in_keeps_the_sessions_variant(aws: Any) -> None:
    """docs/assignment.md section 7: stored as the user's, source session_alias, counted in
    aliased_units, answered existing_assignment; later the session id is ignored."""
    service = make(aws)
    experiment = started(service)
    control, treatment = ids(experiment)
    session = next(
        f"visit-{n}" for n in range(5000) if hashed(experiment, f"session:visit-{n}") == control
    )
    user = user_where(experiment, lambda v: v == treatment)
    first = service.get_variant({"experiment_name": NAME, "session_id": session})
    assert (first["variant"]["id"], first["reason"]) == (control, "assigned")
    answer = service.get_variant({"experiment_name": NAME, "user_id": user, "session_id": session})
    assert answer == {
        "experiment_id": experiment.id,
        "experiment_name": NAME,
        "unit": f"user:{user}",
        "variant": variant_dict(experiment, control),
        "reason": "existing_assignment",
    }
    item = service.store.get_assignment(experiment.id, f"user:{user}")
    assert (item["variant_id"], item["source"]) == (control, "session_alias")
    assert counted(service, experiment.id, "units_assigned") == {control: 1}
    assert counted(service, experiment.id, "aliased_units") == {control: 1}
    again = service.get_variant({"experiment_name": NAME, "user_id": user, "session_id": "other"})
    assert (again["variant"]["id"], again["reason"]) == (control, "existing_assignment")


def test_the_alias_applies_while_paused(aws: Any) -> None:
    service = make(aws)
    experiment = started(service)
    first = service.get_variant({"experiment_name": NAME, "session_id": "paused-visit"})
    service.transition(experiment.id, "pause")
    answer = service.get_variant(
        {"experiment_name": NAME, "user_id": 77, "session_id": "paused-visit"}
    )
    assert (answer["variant"], answer["reason"]) == (first["variant"], "existing_assignment")
    assert service.store.get_assignment(experiment.id, "user:77")["source"] == "session_alias"


def test_a_session_without_a_variant_leaves_the_user_to_the_hash(aws: Any) -> None:
    service = make(aws)
    experiment = started(service)
    answer = service.get_variant({"experiment_name": NAME, "user_id": 3, "session_id": "new"})
    assert answer["reason"] == "assigned"
    assert answer["variant"]["id"] == hashed(experiment, "user:3")
    assert service.store.get_assignment(experiment.id, "user:3")["source"] == "hash"
    assert service.store.get_assignment(experiment.id, "session:new") is None


# ------------------------------------------------------------------ covariates (CUPED)


def test_the_experiments_covariate_is_stored_with_the_unit(aws: Any) -> None:
    """The covariate the experiment names is stored once with the unit; others are ignored."""
    service = make(aws)
    experiment = started(service, covariate="prior_spend")
    service.get_variant(
        {
            "experiment_name": NAME,
            "user_id": 1,
            "covariates": {"prior_spend": 12.5, "visits": 3},
        }
    )
    assert service.store.get_assignment(experiment.id, "user:1")["x"] == Decimal("12.5")
    # Once stored it stays: a later value does not replace it
    service.get_variant({"experiment_name": NAME, "user_id": 1, "covariates": {"prior_spend": 99}})
    assert service.store.get_assignment(experiment.id, "user:1")["x"] == Decimal("12.5")


def test_a_returning_unit_without_results_gets_its_covariate_later(aws: Any) -> None:
    """A unit first seen without covariates, asked again without, then with: stored then."""
    service = make(aws)
    experiment = started(service, covariate="prior_spend")
    service.get_variant({"experiment_name": NAME, "user_id": 1})
    service.get_variant({"experiment_name": NAME, "user_id": 1})
    assert "x" not in service.store.get_assignment(experiment.id, "user:1")
    answer = service.get_variant(
        {"experiment_name": NAME, "user_id": 1, "covariates": {"prior_spend": 4}}
    )
    assert answer["reason"] == "existing_assignment"
    assert service.store.get_assignment(experiment.id, "user:1")["x"] == Decimal("4")


def test_a_unit_with_results_gets_no_covariate_afterwards(aws: Any) -> None:
    service = make(aws)
    experiment = started(service, covariate="prior_spend")
    service.get_variant({"experiment_name": NAME, "user_id": 1})
    service.record_result(NAME, "resolution_rate", 1, user_id=1)
    service.get_variant({"experiment_name": NAME, "user_id": 1, "covariates": {"prior_spend": 4}})
    assert "x" not in service.store.get_assignment(experiment.id, "user:1")


# ------------------------------------------------------------------ shards


def shard_of(unit: str, shards: int) -> int:
    return int.from_bytes(hashlib.sha256(unit.encode()).digest()[:4], "big") % shards


@pytest.mark.parametrize("shards", [2, 4])
def test_exposures_spread_over_the_totals_shards_by_unit_hash(aws: Any, shards: int) -> None:
    """With AB_TOTALS_SHARDS=N, each unit's exposure lands on the shard its hash names."""
    service = make(aws, Settings(totals_shards=shards))
    experiment = started(service)
    expected: dict[str, int] = {}
    for user in range(1, 13):
        vid = service.get_variant({"experiment_id": experiment.id, "user_id": user})["variant"][
            "id"
        ]
        key = f"{vid}#{shard_of(f'user:{user}', shards):03d}"
        expected[key] = expected.get(key, 0) + 1
    found = {
        "#".join(item["sk"].split("#")[1:]).lstrip("0"): int(item["units_assigned"])
        for item in exposures(service, experiment.id)
    }
    assert found == {k.lstrip("0"): v for k, v in expected.items()}
    assert len({k.split("#")[1] for k in expected}) > 1


# ------------------------------------------------------------------ cache


def test_the_cache_is_keyed_by_id_and_name_and_forgotten_on_change(
    aws: Any, monotonic: FakeMonotonic
) -> None:
    """Within the TTL an instance answers from its copy; each (id, name) is its own entry;
    the instance that makes a transition forgets its copy at once."""
    clock = monotonic
    warm = make(aws, cache_ttl_seconds=5)
    other = make(aws)
    one = started(other, name="one")
    two = started(other, name="two")
    assert warm.get_variant({"experiment_name": "one", "user_id": 1})["experiment_id"] == one.id
    assert warm.get_variant({"experiment_name": "two", "user_id": 1})["experiment_id"] == two.id
    assert warm.get_variant({"experiment_id": two.id, "user_id": 1})["experiment_name"] == "two"
    # Another instance pauses "one": this one keeps its copy until the TTL is over
    other.transition(one.id, "pause")
    clock.now += 4.5
    assert warm.get_variant({"experiment_name": "one", "user_id": 2})["reason"] == "assigned"
    clock.now += 0.5
    answer = warm.get_variant({"experiment_name": "one", "user_id": 3})
    assert answer["reason"] == "experiment_not_running"
    assert warm.get_variant({"experiment_name": "two", "user_id": 3})["reason"] == "assigned"
    assert warm.get_variant({"experiment_id": two.id, "user_id": 3})["reason"] == (
        "existing_assignment"
    )
    # This instance pauses "two": its cached copies (by name and by id) are dropped at once
    warm.transition(two.id, "pause")
    answer = warm.get_variant({"experiment_name": "two", "user_id": 4})
    assert answer["reason"] == "experiment_not_running"
    answer = warm.get_variant({"experiment_id": two.id, "user_id": 4})
    assert answer["reason"] == "experiment_not_running"


@pytest.mark.usefixtures("monotonic")  # time stands still: nothing expires
def test_a_change_forgets_only_that_experiment(aws: Any) -> None:
    warm = make(aws, cache_ttl_seconds=5)
    other = make(aws)
    one = started(other, name="one")
    two = started(other, name="two")
    warm.get_variant({"experiment_name": "one", "user_id": 1})
    warm.get_variant({"experiment_name": "two", "user_id": 1})
    other.transition(one.id, "pause")
    warm.transition(two.id, "pause")
    # "one" is still the cached (running) copy; "two" was re-read
    assert warm.get_variant({"experiment_name": "one", "user_id": 5})["reason"] == "assigned"
    assert warm.get_variant({"experiment_name": "two", "user_id": 5})["reason"] == (
        "experiment_not_running"
    )


@pytest.mark.usefixtures("monotonic")  # time stands still: nothing expires
def test_a_rebalance_forgets_the_cached_copy(aws: Any) -> None:
    warm = make(aws, cache_ttl_seconds=5)
    experiment = started(warm)
    control, _ = ids(experiment)
    warm.get_variant({"experiment_name": NAME, "user_id": 1})
    warm.rebalance(experiment.id, split(experiment, 100))
    for user in range(2, 8):
        answer = warm.get_variant({"experiment_name": NAME, "user_id": user})
        assert answer["variant"]["id"] == control


# ------------------------------------------------------------------ rebalance


def test_a_rebalance_answers_the_new_weights_and_target(aws: Any) -> None:
    clock = Clock()
    service = make(aws, clock=clock)
    experiment = started(service)
    control, treatment = ids(experiment)
    answer = service.rebalance(
        experiment.id,
        {
            "variants": [
                {"name": CONTROL, "traffic_allocation": 20},
                {"name": TREATMENT, "traffic_allocation": 80},
            ]
        },
    )
    assert answer == {
        "message": f"Experiment {experiment.id} rebalanced",
        "experiment_id": experiment.id,
        "target_percentage": 100.0,
        "variants": [
            {"id": control, "name": CONTROL, "traffic_allocation": 20.0},
            {"id": treatment, "name": TREATMENT, "traffic_allocation": 80.0},
        ],
    }
    assert service.get_experiment(experiment.id).rebalanced_at == clock.last
    # By id, in another order, and with a new target
    answer = service.rebalance(
        experiment.id,
        {
            "variants": [
                {"id": treatment, "traffic_allocation": 30},
                {"id": control, "traffic_allocation": 70},
            ],
            "target_percentage": 60,
        },
    )
    assert answer["target_percentage"] == 60.0
    assert answer["variants"] == [
        {"id": control, "name": CONTROL, "traffic_allocation": 70.0},
        {"id": treatment, "name": TREATMENT, "traffic_allocation": 30.0},
    ]
    # The target alone keeps the weights
    answer = service.rebalance(experiment.id, {"target_percentage": 45})
    assert answer["target_percentage"] == 45.0
    assert [v["traffic_allocation"] for v in answer["variants"]] == [70.0, 30.0]
    stored = service.get_experiment(experiment.id)
    assert stored.target_percentage == 45.0
    assert [v.traffic_allocation for v in stored.variants] == [70.0, 30.0]


def test_a_rebalance_moves_only_the_changed_draws(aws: Any) -> None:
    """docs/assignment.md section 12: 50/50 to 20/80 moves [20, 50); then 20/80 to 50/50 hands
    treatment's top [70, 100) to control; changed_ranges is the union."""
    service = make(aws)
    experiment = started(service)
    control, treatment = ids(experiment)
    service.rebalance(experiment.id, split(experiment, 20))
    after = service.get_experiment(experiment.id)
    assert after.allocation_ranges == [(0.0, 20.0, control), (20.0, 100.0, treatment)]
    assert after.changed_ranges == [(20.0, 50.0)]
    service.rebalance(experiment.id, split(experiment, 50))
    after = service.get_experiment(experiment.id)
    assert after.allocation_ranges == [
        (0.0, 20.0, control),
        (20.0, 70.0, treatment),
        (70.0, 100.0, control),
    ]
    assert after.changed_ranges == [(20.0, 50.0), (70.0, 100.0)]


def test_a_drafts_rebalance_recomputes_the_cumulative_ranges(aws: Any) -> None:
    """Before the start nobody is assigned: ranges follow the allocations, nothing changed,
    and max_target_percentage is the target just set."""
    service = make(aws)
    experiment = created(service)
    control, treatment = ids(experiment)

    service.rebalance(experiment.id, {**split(experiment, 70), "target_percentage": 40})
    after = service.get_experiment(experiment.id)
    assert after.allocation_ranges == [(0.0, 70.0, control), (70.0, 100.0, treatment)]
    assert after.changed_ranges == []
    assert after.max_target_percentage == 40.0
    service.rebalance(experiment.id, {**split(experiment, 40), "target_percentage": 30})
    after = service.get_experiment(experiment.id)
    assert after.allocation_ranges == [(0.0, 40.0, control), (40.0, 100.0, treatment)]
    assert after.changed_ranges == []
    assert after.max_target_percentage == 30.0
    assert after.status == "draft"


def test_max_target_percentage_is_the_highest_target_since_the_start(aws: Any) -> None:
    service = make(aws)
    experiment = started(service, target_percentage=60.0)
    for target, highest in [(30, 60.0), (40, 60.0), (80, 80.0), (50, 80.0)]:
        service.rebalance(experiment.id, {"target_percentage": target})
        after = service.get_experiment(experiment.id)
        assert (after.target_percentage, after.max_target_percentage) == (target, highest)
        # The weights did not change: nobody moved
        assert after.changed_ranges == []


def test_a_running_rebalance_lowering_the_target_keeps_the_old_one_as_max(aws: Any) -> None:
    service = make(aws)
    experiment = started(service)
    service.rebalance(experiment.id, {"target_percentage": 25})
    assert service.get_experiment(experiment.id).max_target_percentage == 100.0


def test_a_rebalance_records_the_units_so_far_as_the_srm_baseline(aws: Any) -> None:
    """The sample-ratio check compares later units with the new weights only: the units
    assigned per variant so far are kept as srm_baseline (by variant id as text)."""
    service = make(aws)
    experiment = started(service)
    seen: dict[str, int] = {}
    for user in range(1, 11):
        vid = service.get_variant({"experiment_id": experiment.id, "user_id": user})["variant"][
            "id"
        ]
        seen[str(vid)] = seen.get(str(vid), 0) + 1
    service.rebalance(experiment.id, {"target_percentage": 90})
    assert service.get_experiment(experiment.id).srm_baseline == seen


@pytest.mark.parametrize("setup", [[], ["start"], ["start", "pause"]])
def test_draft_running_and_paused_can_be_rebalanced(aws: Any, setup: list[str]) -> None:
    service = make(aws)
    experiment_id = created(service).id
    for step in setup:
        service.transition(experiment_id, step)
    answer = service.rebalance(experiment_id, {"target_percentage": 50})
    assert answer["target_percentage"] == 50.0


@pytest.mark.parametrize("setup", [["start", "stop"], ["start", "stop", "archive"]])
def test_stopped_and_archived_cannot_be_rebalanced(aws: Any, setup: list[str]) -> None:
    service = make(aws)
    experiment_id = created(service).id
    for step in setup:
        service.transition(experiment_id, step)
    with pytest.raises(Conflict):
        service.rebalance(experiment_id, {"target_percentage": 50})
    assert service.get_experiment(experiment_id).target_percentage == 100.0


def refused(service: ExperimentService, experiment_id: int, variants: list[dict]) -> InvalidInput:
    with pytest.raises(InvalidInput) as caught:
        service.rebalance(experiment_id, {"variants": variants})
    return caught.value


def test_rebalance_errors_name_the_problem(aws: Any) -> None:
    """_reallocate: unknown variant (by id or name), one listed twice, one missing, a sum
    other than 100; each an InvalidInput on field variants."""
    service = make(aws)
    experiment = started(service)
    control, treatment = ids(experiment)
    cases = [
        (
            [{"id": 999, "traffic_allocation": 50}, {"id": treatment, "traffic_allocation": 50}],
            "unknown variant 999",
        ),
        (
            [{"id": 0, "traffic_allocation": 50}, {"id": treatment, "traffic_allocation": 50}],
            "unknown variant 0",
        ),
        (
            [
                {"name": "Nope", "traffic_allocation": 50},
                {"id": treatment, "traffic_allocation": 50},
            ],
            "unknown variant 'Nope'",
        ),
        (
            [
                {"id": control, "traffic_allocation": 50},
                {"name": CONTROL, "traffic_allocation": 50},
            ],
            "variant 'Control' is listed twice",
        ),
        (
            [{"id": control, "traffic_allocation": 100}],
            "give a traffic_allocation for every variant",
        ),
        (
            [
                {"id": control, "traffic_allocation": 60},
                {"id": treatment, "traffic_allocation": 50},
            ],
            "traffic_allocation must sum to 100",
        ),
        (
            [
                {"id": control, "traffic_allocation": 40},
                {"id": treatment, "traffic_allocation": 50},
            ],
            "traffic_allocation must sum to 100",
        ),
    ]
    for variants, message in cases:
        error = refused(service, experiment.id, variants)
        assert (error.message, error.field, error.details) == (message, "variants", {})
    after = service.get_experiment(experiment.id)
    assert [v.traffic_allocation for v in after.variants] == [50.0, 50.0]


def test_an_id_is_not_a_name(aws: Any) -> None:
    """A variant named like another's id is found by name only, and the id by id only."""
    service = make(aws)
    experiment = created(
        service,
        variants=[
            {"name": "A", "is_control": True, "traffic_allocation": 50.0},
            {"name": "B", "is_control": False, "traffic_allocation": 50.0},
        ],
    )
    a_id = experiment.variants[0].id
    error = refused(service, experiment.id, [{"name": str(a_id), "traffic_allocation": 100}])
    assert error.message == f"unknown variant {str(a_id)!r}"


def test_allocations_within_the_tolerance_sum_to_100(aws: Any) -> None:
    """A sum within 1e-6 of 100 (33.33 ... thirds) is accepted."""
    service = make(aws)
    experiment = started(service)
    control, treatment = ids(experiment)
    answer = service.rebalance(
        experiment.id,
        {
            "variants": [
                {"id": control, "traffic_allocation": 100 / 3},
                {"id": treatment, "traffic_allocation": 200 / 3 + 5e-7},
            ]
        },
    )
    assert answer["variants"][0]["traffic_allocation"] == pytest.approx(100 / 3)
    error = refused(
        service,
        experiment.id,
        [
            {"id": control, "traffic_allocation": 50},
            {"id": treatment, "traffic_allocation": 50 + 2e-6},
        ],
    )
    assert error.message == "traffic_allocation must sum to 100"


def test_an_invalid_rebalance_body_is_refused(aws: Any) -> None:
    service = make(aws)
    experiment = started(service)
    with pytest.raises(InvalidInput):
        service.rebalance(experiment.id, {})
    with pytest.raises(InvalidInput) as caught:
        service.rebalance(experiment.id, {"target_percentage": 0})
    assert caught.value.field == "target_percentage"


@pytest.mark.parametrize("rebalanced_before", [False, True])
def test_a_rebalance_computed_from_a_stale_read_is_refused_not_written(
    aws: Any, rebalanced_before: bool
) -> None:
    """Two rebalances at once both start from the ranges they read. Writing the second over
    the first would drop the draws the first one moved from changed_ranges (docs/assignment.md:
    the union over every rebalance), so local evaluation would trust them; the second is a
    409 that asks for the rebalance again, and nothing of it is written."""
    service = make(aws, clock=Clock())
    experiment = started(service)
    if rebalanced_before:
        service.rebalance(experiment.id, split(experiment, 40))
    stale = service.get_experiment(experiment.id)
    service.rebalance(experiment.id, split(experiment, 20))
    first = service.get_experiment(experiment.id)
    late = stale.replace(target_percentage=50.0)
    with pytest.raises(Conflict) as caught:
        service.store.rebalance(late, allowed_from=("running",), now=STAMP, srm_baseline={})
    assert caught.value.message == (
        f"experiment {experiment.id} was rebalanced by another request at "
        f"{first.rebalanced_at}; send this rebalance again"
    )
    assert caught.value.details["rebalanced_at"] == first.rebalanced_at
    assert service.get_experiment(experiment.id) == first
    service.rebalance(experiment.id, split(experiment, 30))  # read again, it applies
    assert service.get_experiment(experiment.id).variants[0].traffic_allocation == 30
