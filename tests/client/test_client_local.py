"""Local evaluation: the published vectors, no request for a returning unit, and the spans
where only the server knows."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import pytest

from ab_testing_client import ABTestingClient
from ab_testing_client.assignment import (
    ASK,
    Definition,
    draws,
    ranges_from_allocations,
    unit_key,
    variant_at,
)
from tests.client.fake_service import SALT, FakeService, definition

ROOT = Path(__file__).resolve().parents[2]
VECTORS = json.loads((ROOT / "docs" / "assignment_vectors.json").read_text("utf-8"))["vectors"]
DEFINITIONS = "/api/v1/experiments/definitions"
EXPOSURES = "/api/v1/experiments/exposures"
GET_VARIANT = "/api/v1/experiments/get-variant"
RESULTS_PATH = "/api/v1/experiments/record-results"


@pytest.mark.parametrize("vector", VECTORS, ids=lambda v: f"{v['note']}|{v['unit']}")
def test_the_client_reproduces_every_published_vector(vector: dict[str, Any]) -> None:
    # Given a vector of docs/assignment_vectors.json
    unit = unit_key(vector["user_id"], vector["session_id"])
    allocations = vector["allocations"]

    # When the client computes it
    cover, pick = draws(vector["salt"], unit)
    inside = cover * 100.0 < vector["target_percentage"]
    index = variant_at(pick, ranges_from_allocations(allocations, range(len(allocations))))

    # Then every published number matches
    assert unit == vector["unit"]
    assert (cover, pick) == (vector["u_cover"], vector["u_variant"])
    assert cover * 2.0**53 == vector["cover_bits"] and pick * 2.0**53 == vector["variant_bits"]
    assert inside == vector["in_target"]
    assert (index if inside else None) == vector["variant_index"]


def local_client(fake: FakeService, **options: Any) -> ABTestingClient:
    return ABTestingClient(
        "http://fake",
        background=False,
        transport=fake,
        sleep=lambda s: None,
        refresh_interval=3600,
        **options,
    )


def expected(user: int, **changes: Any) -> int | str:
    return Definition.from_json(definition(**changes)).evaluate(f"user:{user}")


def test_a_returning_unit_costs_no_request_and_new_units_one_per_hundred() -> None:
    fake = FakeService()
    client = local_client(fake)

    # When 1,000 new units are assigned (and their exposures sent), then all of them again
    first = [client.get_variant("Prompt Test", user_id=u) for u in range(1000)]
    client.flush()
    after_first = list(fake.paths())
    again = [client.get_variant("Prompt Test", user_id=u) for u in range(1000)]

    # Then: one definitions fetch, exposures in batches of 100, nothing for returning units
    assert after_first == [DEFINITIONS] + [EXPOSURES] * 10
    assert fake.paths() == after_first
    assert again == first
    # And the variants are the hash's, as the ledger received them
    assert all(v is not None and v.id == expected(u) for u, v in enumerate(first))
    assert fake.ledger == {(7, f"user:{u}"): expected(u) for u in range(1000)}


def test_an_unchanged_definition_costs_a_304() -> None:
    fake = FakeService()
    client = local_client(fake)
    client.get_variant("Prompt Test", user_id=1)
    client.refresh()
    assert fake.calls[-1][3]["If-None-Match"] == '"v1"'
    assert client.get_variant("Prompt Test", user_id=1) is not None


def test_a_unit_in_a_changed_span_is_asked_of_the_server_once() -> None:
    # Given a rebalance that moved draws in [40, 50): units there may hold either variant
    fake = FakeService(definition(changed_ranges=[[40.0, 50.0]]))
    client = local_client(fake)
    inside = next(u for u in range(10_000) if 40 <= draws(SALT, f"user:{u}")[1] * 100 < 50)
    outside = next(u for u in range(10_000) if draws(SALT, f"user:{u}")[1] * 100 >= 50)

    # When each is asked for twice
    answers = [client.get_variant("Prompt Test", user_id=u) for u in (inside, inside, outside)]

    # Then the server answered the first (its ledger: the fake gives control) once
    assert fake.paths().count(GET_VARIANT) == 1
    assert [a.id if a else None for a in answers] == [1, 1, 2]


def test_units_between_the_target_and_an_earlier_higher_target_are_asked() -> None:
    fake = FakeService(definition(target_percentage=30.0, max_target_percentage=60.0))
    client = local_client(fake)
    covers = {u: draws(SALT, f"user:{u}")[0] * 100 for u in range(2000)}
    between = next(u for u, c in covers.items() if 30 <= c < 60)
    above = next(u for u, c in covers.items() if c >= 60)
    assert client.get_variant("Prompt Test", user_id=above) is None
    assert client.get_variant("Prompt Test", user_id=between) is not None
    assert fake.paths().count(GET_VARIANT) == 1


def test_overrides_promoted_winners_and_stopped_experiments_are_honoured_locally() -> None:
    fake = FakeService(
        definition(overrides={"user:qa": 2}),
        definition(id=8, name="Promoted", status="stopped", promoted=True, winner_variant_id=2),
    )
    client = local_client(fake)
    pinned = client.get_variant("Prompt Test", user_id="qa")
    winner = client.get_variant("Promoted", user_id=1)
    assert pinned is not None and pinned.id == 2 and winner is not None and winner.id == 2
    client.flush()
    assert fake.paths().count(EXPOSURES) == 0 and fake.paths().count(GET_VARIANT) == 0


def test_an_experiment_the_definitions_lack_is_asked_once_until_the_next_refresh() -> None:
    # Given definitions without "Unknown" (the service answers 404 for it)
    fake = FakeService()
    client = local_client(fake)
    # When two units ask for it / Then the service was asked once: None for both
    assert client.get_variant("Unknown", user_id=1) is None
    assert client.get_variant("Unknown", user_id=2) is None
    assert fake.paths().count(GET_VARIANT) == 1


def test_an_experiment_just_started_is_served_before_the_definitions_hold_it() -> None:
    # Given a running experiment the definitions do not publish yet
    fake = FakeService()
    fake.unpublished.append(definition(id=9, name="Just Started"))
    client = local_client(fake)
    assert client.get_variant("Prompt Test", user_id=0) is not None  # definitions fetched
    # When units ask for it / Then each gets its variant from the service at once
    assert client.get_variant("Just Started", user_id=1) is not None
    assert client.get_variant("Just Started", user_id=2) is not None
    assert fake.paths().count(GET_VARIANT) == 2
    # And once the definitions publish it, units are served locally again
    fake.experiments.append(fake.unpublished.pop())
    fake.etag = '"v2"'
    client.refresh()
    asked = fake.paths().count(GET_VARIANT)
    assert client.get_variant("Just Started", user_id=3) is not None
    assert fake.paths().count(GET_VARIANT) == asked


def test_a_paused_experiment_asks_the_server_about_units_it_has_not_seen() -> None:
    fake = FakeService(definition(status="paused"))
    client = local_client(fake)
    assert expected(5, status="paused") == ASK
    assert client.get_variant("Prompt Test", user_id=5) is not None
    assert client.get_variant("Prompt Test", user_id=5) is not None
    assert fake.paths().count(GET_VARIANT) == 1


def test_a_user_arriving_with_a_session_is_asked_after_the_sessions_exposure_is_sent() -> None:
    fake = FakeService()
    client = local_client(fake)
    session_variant = client.get_variant("Prompt Test", session_id="s-1")
    client.get_variant("Prompt Test", user_id=9, session_id="s-1")
    assert session_variant is not None
    assert fake.paths()[-2:] == [EXPOSURES, GET_VARIANT]


def test_the_ledgers_variant_wins_when_an_exposure_lost_a_race() -> None:
    # Given a unit whose ledger entry was written by someone else first
    fake = FakeService()
    client = local_client(fake)
    user = next(u for u in range(100) if expected(u) == 2)
    fake.ledger[(7, f"user:{user}")] = 1

    # When the client serves it locally, then sends the exposure
    served = client.get_variant("Prompt Test", user_id=user)
    client.flush()

    # Then the client follows the ledger from then on, and counts the conflict
    assert served is not None and served.id == 2
    later = client.get_variant("Prompt Test", user_id=user)
    assert later is not None and later.id == 1 and client.stats.conflicts == 1


def test_run_times_the_block_and_falls_back_to_the_controls_config() -> None:
    fake = FakeService(definition(target_percentage=1.0, max_target_percentage=1.0))
    client = local_client(fake)
    covers = {u: draws(SALT, f"user:{u}")[0] * 100 for u in range(2000)}
    inside = next(u for u, c in covers.items() if c < 1)
    outside = next(u for u, c in covers.items() if c >= 1)

    with client.run("Prompt Test", user_id=outside) as run:
        assert run.variant is None and run.config == {"system_prompt": "control"}
        run.record("satisfaction_score", 4.5)
    with client.run("Prompt Test", user_id=inside) as run:
        assert run.variant is not None and run.config == run.variant.config
        run.record("satisfaction_score", 4.5)
    with pytest.raises(RuntimeError), client.run("Prompt Test", user_id=inside):
        raise RuntimeError("the model call failed")
    client.flush()

    recorded = [
        (r["user_id"], r["metric_name"])
        for _, path, body, _ in fake.calls
        if path.endswith("record-results")
        for r in body["results"]
    ]
    assert recorded == [(inside, "satisfaction_score"), (inside, "response_time")]


def test_unknown_algorithm_makes_the_client_ask_the_server() -> None:
    fake = FakeService()
    client = local_client(fake)
    original = fake._route

    def other_algorithm(*args: Any) -> Any:
        answer = original(*args)
        if args[1].endswith("/definitions"):
            body = json.loads(answer.body)
            body["algorithm"] = "something-else"
            return type(answer)(answer.status, answer.headers, json.dumps(body).encode())
        return answer

    fake._route = other_algorithm  # type: ignore[method-assign]
    assert client.get_variant("Prompt Test", user_id=1) is not None
    assert fake.paths() == [DEFINITIONS, GET_VARIANT]


@pytest.mark.parametrize(
    ("declared", "recorded"),
    [
        (["resolution_rate", "latency_ms"], {"latency_ms"}),
        (["response_time", "resolution_rate"], {"response_time"}),
        (["resolution_rate"], set()),
        (None, {"response_time"}),  # a service that does not publish metrics: as before
    ],
)
def test_run_times_the_block_in_the_metric_the_experiment_declares(
    declared: list[str] | None, recorded: set[str]
) -> None:
    # Given an experiment declaring (or not publishing) its metrics
    fake = FakeService(definition(**({"metrics": declared} if declared is not None else {})))
    client = local_client(fake)
    # When a block runs for a unit in it
    with client.run("Prompt Test", user_id=1) as run:
        assert run.variant is not None
        time.sleep(0.01)
    client.flush()
    # Then only the declared timing metric is recorded, in its unit (no refusal, no warning)
    results = [r for _, p, b, _ in fake.calls if p == RESULTS_PATH for r in b["results"]]
    assert {r["metric_name"] for r in results} == recorded
    for result in results:
        scale = 1000 if result["metric_name"] == "latency_ms" else 1
        assert 0.01 * scale <= result["metric_value"] < 5 * scale


def test_covariates_travel_with_the_exposure_or_the_get_variant_call() -> None:
    # Given local evaluation / When a unit decided locally, and one asked of the service
    # (a user arriving with a session), come with their covariates
    fake = FakeService()
    client = local_client(fake)
    client.get_variant("Prompt Test", user_id=1, covariates={"prior_resolution_rate": 0.4})
    client.get_variant(
        "Prompt Test", user_id=2, session_id="s-2", covariates={"prior_resolution_rate": 0.6}
    )
    client.flush()
    # Then the first went with its exposure, the second with its get-variant call
    exposures = [e for _, p, b, _ in fake.calls if p == EXPOSURES for e in b["exposures"]]
    asked = [b for _, p, b, _ in fake.calls if p == GET_VARIANT]
    assert [e["covariates"] for e in exposures] == [{"prior_resolution_rate": 0.4}]
    assert [a["covariates"] for a in asked] == [{"prior_resolution_rate": 0.6}]


def test_exposures_whose_answers_are_lost_are_sent_again_until_the_ledger_has_them() -> None:
    # Given 50 units served locally, and a service whose next 6 answers on exposures are lost
    # after it has written them
    fake = FakeService()
    client = local_client(fake)
    served = {u: client.get_variant("Prompt Test", user_id=u) for u in range(50)}
    fake.fail(EXPOSURES, *["lost"] * 6)
    # When the client closes (more lost answers than one call's attempts)
    client.close()
    # Then the ledger holds every unit, with the variant it was served
    assert {unit: variant_id for (_, unit), variant_id in fake.ledger.items()} == {
        f"user:{u}": variant.id for u, variant in served.items() if variant is not None
    }
    assert client.stats.queued == 0


HOLDOUT = {"experiment_id": 9, "status": "running", "range": [0.9, 1.0],
           "control_variant_id": 91, "other_variant_id": 92}  # fmt: skip


def with_holdout(**changes: Any) -> list[dict[str, Any]]:
    """An experiment on [0, 0.9) of layer "bot" and the layer's holdout on [0.9, 1)."""
    experiment = definition(layer={"name": "bot", "range": [0.0, 0.9]}, holdout=HOLDOUT)
    experiment.update(changes)
    held = definition(
        id=9,
        name="Bot holdout",
        layer={"name": "bot", "range": [0.9, 1.0], "holdout": True},
        variants=[
            {"id": 91, "name": "held out", "is_control": True, "traffic_allocation": 10.0},
            {"id": 92, "name": "shipped", "is_control": False, "traffic_allocation": 90.0},
        ],
        ranges=[[0.0, 10.0, 91], [10.0, 100.0, 92]],
    )
    return [experiment, held]


def test_a_layers_holdout_is_applied_locally_and_each_unit_exposed_to_it_once() -> None:
    # Given an experiment on [0, 0.9) of a layer whose holdout runs on [0.9, 1), published
    # under the algorithm that names holdouts
    from ab_testing_client.targeting import layer_position

    fake = FakeService(*with_holdout())
    fake.algorithm = "sha256-53bit-ranges-v1+holdouts"
    client = local_client(fake)

    # When 500 users are asked of the experiment twice, then of the holdout itself
    first = {u: client.get_variant("Prompt Test", user_id=u) for u in range(500)}
    again = {u: client.get_variant("Prompt Test", user_id=u) for u in range(500)}
    groups = {u: client.get_variant("Bot holdout", user_id=u) for u in range(500)}
    client.flush()

    # Then a user in the holdout's range gets the control's config and no exposure of the
    # experiment; every user is exposed to the holdout once, in the group of its position
    inside = {u for u in range(500) if layer_position("bot", f"user:{u}") >= 0.9}
    assert 20 < len(inside) < 80
    for u in range(500):
        variant = first[u]
        assert variant is not None and again[u] is not None and variant.id == again[u].id
        if u in inside:
            assert variant.is_control and variant.config == {"system_prompt": "control"}
            assert (7, f"user:{u}") not in fake.ledger
        else:
            assert fake.ledger[(7, f"user:{u}")] == variant.id
        group = 91 if u in inside else 92
        assert fake.ledger[(9, f"user:{u}")] == group
        assert groups[u] is not None and groups[u].id == group
    exposed = [e for _, p, body, _ in fake.calls if p == EXPOSURES for e in body["exposures"]]
    assert sum(1 for e in exposed if e["experiment_id"] == 9) == 500
    assert GET_VARIANT not in fake.paths()


def test_units_served_before_the_holdout_started_are_exposed_to_it_after_a_refresh() -> None:
    # Given 200 users served locally by an experiment of a layer with no holdout yet
    fake = FakeService(definition(layer={"name": "bot", "range": [0.0, 0.9]}))
    client = local_client(fake)
    first = {u: client.get_variant("Prompt Test", user_id=u) for u in range(200)}

    # When the layer's holdout starts and the client refreshes its definitions
    fake.experiments = with_holdout()
    fake.etag, fake.algorithm = '"v2"', "sha256-53bit-ranges-v1+holdouts"
    client.refresh()
    again = {u: client.get_variant("Prompt Test", user_id=u) for u in range(200)}
    client.flush()

    # Then each served user keeps its variant, the others (outside the experiment's range)
    # are held out now, and every user is exposed to the holdout once
    for user, variant in first.items():
        later = again[user]
        assert later is not None and later.id == (variant.id if variant else 1)
    exposed = [e for _, p, body, _ in fake.calls if p == EXPOSURES for e in body["exposures"]]
    assert sorted(e["user_id"] for e in exposed if e["experiment_id"] == 9) == list(range(200))


def test_a_promoted_winner_does_not_reach_held_out_units_locally() -> None:
    # Given a promoted experiment in a layer whose holdout runs
    from ab_testing_client.targeting import layer_position

    fake = FakeService(*with_holdout(status="stopped", promoted=True, winner_variant_id=2))
    client = local_client(fake)

    # When 300 users are asked of it
    answers = {u: client.get_variant("Prompt Test", user_id=u) for u in range(300)}

    # Then the held-out ones get the control and the others the winner, with no request
    for user, variant in answers.items():
        inside = layer_position("bot", f"user:{user}") >= 0.9
        assert variant is not None and variant.id == (1 if inside else 2)
    assert GET_VARIANT not in fake.paths()
