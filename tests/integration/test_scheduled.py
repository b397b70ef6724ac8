"""The scheduled job, auto-stop, insight history, lifecycle and winner promotion, on moto."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from ab_testing.analysis import ExperimentAnalysis
from ab_testing.records import totals_sk
from ab_testing.scheduled import ScheduledAnalysis
from ab_testing.service import TRANSITIONS, ExperimentService
from ab_testing.settings import Settings
from ab_testing.store import Store
from emulator.events import FakeLambdaContext
from tests.conftest import guide_experiment, invoke, load_event, load_handler

START = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)


class Clock:
    def __init__(self) -> None:
        self.now = START

    def __call__(self) -> str:
        return self.now.isoformat(timespec="milliseconds").replace("+00:00", "Z")

    def advance(self, days: float) -> None:
        self.now += timedelta(days=days)


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def svc(aws: Any, clock: Clock) -> ExperimentService:
    return ExperimentService(Store(Settings(), client=aws), clock=clock, cache_ttl_seconds=0)


def job(svc: ExperimentService) -> ScheduledAnalysis:
    return ScheduledAnalysis(ExperimentAnalysis(svc))


def running(svc: ExperimentService, name: str, **changes: Any) -> int:
    body = guide_experiment(name=name, **changes)
    experiment_id = int(svc.create_experiment(body)["id"])
    svc.start_experiment(experiment_id)
    return experiment_id


def traffic(
    svc: ExperimentService,
    experiment_id: int,
    units: int,
    rates: tuple[float, float],
    metric: str = "resolution_rate",
    offset: int = 0,
) -> None:
    """Deterministic 0/1 results: the first `rate` share of each arm's units resolve."""
    seen = {True: 0, False: 0}
    for unit in range(offset, offset + units):
        answer = svc.get_variant({"experiment_id": experiment_id, "user_id": unit})
        control = answer["variant"]["is_control"]
        seen[control] += 1
        rate = rates[0] if control else rates[1]
        value = 1 if (seen[control] * 7919 % 100) < rate * 100 else 0
        svc.record(
            {
                "experiment_id": experiment_id,
                "user_id": unit,
                "metric_name": metric,
                "metric_value": value,
            }
        )


def test_handler_on_its_event_survives_a_broken_experiment(aws: Any, capsys: Any) -> None:
    # Given three running experiments with traffic, one of them with a corrupted totals item
    from ab_testing import runtime

    svc = runtime.service()
    ids = [running(svc, f"exp-{i}") for i in range(3)]
    for experiment_id in ids:
        traffic(svc, experiment_id, 30, (0.5, 0.5))
    aws.update_item(
        TableName="ab_variants",
        Key={
            "experiment_id": {"N": str(ids[1])},
            "sk": {"S": totals_sk(svc.get_experiment(ids[1]).variants[0].id, "resolution_rate", 0)},
        },
        UpdateExpression="SET results = :x",
        ExpressionAttributeValues={":x": {"S": "not a number"}},
    )
    capsys.readouterr()

    # When the scheduled handler runs on its event file
    summary = load_handler("scheduled_analysis").handler(
        load_event("scheduled_analysis"), FakeLambdaContext("scheduled_analysis")
    )

    # Then the two healthy experiments are analysed, the broken one is counted as failed
    assert (summary["analysed"], summary["failed"], summary["skipped"]) == (2, 1, 0)
    assert summary["failures"][0]["experiment_id"] == ids[1]
    for experiment_id in (ids[0], ids[2]):
        _, page = invoke(
            "experiment_insights",
            "GET",
            f"/api/v1/experiments/{experiment_id}/insights",
            resource="/api/v1/experiments/{id}/insights",
            path_parameters={"id": str(experiment_id)},
        )
        assert len(page["insights"]) == 1
        # The headline is the experiment's own method; both methods' p-values are kept
        insight = page["insights"][0]
        assert insight["analysis"]["analysis_method"] == insight["analysis_method"]
        assert {"p_value_fixed_horizon", "p_value_sequential"} <= set(insight)

    # And one embedded-metric record per healthy experiment, plus the run's own counts
    records = [
        json.loads(line)
        for line in capsys.readouterr().out.splitlines()
        if line.startswith("{") and '"_aws"' in line
    ]
    per_experiment = [r for r in records if "experiment_id" in r]
    assert sorted(r["experiment_id"] for r in per_experiment) == [str(ids[0]), str(ids[2])]
    for record in per_experiment:
        names = {m["Name"] for m in record["_aws"]["CloudWatchMetrics"][0]["Metrics"]}
        assert {"UnitsAssigned", "ResultsRecorded", "SampleRatioMismatch"} <= names
        assert one(record["UnitsAssigned"]) == 30
        assert one(record["ResultsRecorded"]) == 30
        assert ["experiment_id"] in [
            [d for d in dims if d != "service"]
            for dims in record["_aws"]["CloudWatchMetrics"][0]["Dimensions"]
        ]
    run = [r for r in records if "ExperimentsAnalysed" in r]
    assert run and one(run[0]["ExperimentsAnalysed"]) == 2
    assert one(run[0]["ExperimentsFailed"]) == 1


def one(value: Any) -> float:
    """An embedded-metric value: a number, or a list holding one."""
    return float(value[0] if isinstance(value, list) else value)


def test_experiment_without_units_is_skipped(svc: ExperimentService) -> None:
    running(svc, "quiet")
    assert job(svc).run()["skipped"] == 1


def test_auto_stop_waits_for_min_duration_then_stops_a_conclusive_test(
    svc: ExperimentService, clock: Clock
) -> None:
    # Given an opted-in experiment with a large, clear effect and enough units
    experiment_id = running(svc, "clear", auto_stop=True, min_sample_size=50)
    traffic(svc, experiment_id, 500, (0.1, 0.9))

    # When the job runs on day 3: min_duration_days (7) holds back any declaration
    clock.advance(3)
    first = job(svc).run()["experiments"][0]
    assert first["stop_reason"] is None
    assert svc.get_experiment(experiment_id).status == "running"

    # When it runs on day 8
    clock.advance(5)
    second = job(svc).run()["experiments"][0]

    # Then it stops with the treatment as winner, and the insight records why
    experiment = svc.get_experiment(experiment_id)
    assert experiment.status == "stopped"
    assert experiment.stop_reason == "sequential test conclusive with sufficient sample size"
    assert experiment.winner_variant_id == experiment.variants[1].id
    assert second["stop_reason"] == experiment.stop_reason
    page = ExperimentAnalysis(svc).insights(experiment_id)
    assert [i["auto_stopped"] for i in page["insights"]] == [True, False]


def test_the_insight_and_the_stop_read_the_same_totals(
    svc: ExperimentService, clock: Clock, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Given an opted-in experiment with too few units to decide on yet
    experiment_id = running(svc, "busy", auto_stop=True, min_duration_days=0, min_sample_size=50)
    traffic(svc, experiment_id, 40, (0.1, 0.9))

    # And traffic that keeps arriving: every read of the totals is followed by 200 more units
    read = ExperimentAnalysis.snapshot
    arrivals = iter(range(40, 4000, 200))

    def snapshot_then_traffic(self: ExperimentAnalysis, eid: int) -> Any:
        taken = read(self, eid)
        traffic(svc, experiment_id, 200, (0.1, 0.9), offset=next(arrivals))
        return taken

    monkeypatch.setattr(ExperimentAnalysis, "snapshot", snapshot_then_traffic)

    # When the job runs until the experiment stops itself
    clock.advance(1)
    for _ in range(5):
        job(svc).run()
        if svc.get_experiment(experiment_id).status == "stopped":
            break

    # Then the stopping insight recommends the very winner the stop declared
    experiment = svc.get_experiment(experiment_id)
    assert experiment.status == "stopped"
    assert experiment.winner_variant_id == experiment.variants[1].id
    latest = ExperimentAnalysis(svc).insights(experiment_id)["insights"][0]
    assert latest["auto_stopped"] is True
    assert latest["recommended_winner_id"] == experiment.winner_variant_id


def test_auto_stop_on_a_guardrail_regression(svc: ExperimentService, clock: Clock) -> None:
    # Given response_time as a guardrail, and a treatment that makes it much slower
    experiment_id = running(
        svc,
        "slow",
        auto_stop=True,
        min_duration_days=0,
        guardrail_metrics=["response_time"],
        min_sample_size=1000,
    )
    for unit in range(500):
        answer = svc.get_variant({"experiment_id": experiment_id, "user_id": unit})
        slow = 0 if answer["variant"]["is_control"] else 3
        svc.record(
            {
                "experiment_id": experiment_id,
                "user_id": unit,
                "metric_name": "response_time",
                "metric_value": 1 + slow + unit % 5 / 10,
            }
        )
    clock.advance(1)
    # When the job runs
    outcome = job(svc).run()["experiments"][0]
    # Then it stops and names the guardrail, with no winner
    experiment = svc.get_experiment(experiment_id)
    assert experiment.status == "stopped"
    assert outcome["stop_reason"] == "guardrail regressed significantly: response_time"
    assert experiment.winner_variant_id is None


def test_auto_stop_at_max_duration_and_not_when_opted_out(
    svc: ExperimentService, clock: Clock
) -> None:
    # Given two experiments without an effect, one opted in with max_duration_days 10
    opted = running(svc, "capped", auto_stop=True, max_duration_days=10)
    left = running(svc, "manual")
    for experiment_id in (opted, left):
        traffic(svc, experiment_id, 60, (0.5, 0.5))
    # When the job runs on day 9 and day 11
    clock.advance(9)
    job(svc).run()
    assert svc.get_experiment(opted).status == "running"
    clock.advance(2)
    job(svc).run()
    # Then only the opted-in one stopped, for its duration
    assert svc.get_experiment(opted).stop_reason == "max_duration_days (10) reached"
    assert svc.get_experiment(left).status == "running"


def test_insight_history_is_paginated_newest_first(svc: ExperimentService, clock: Clock) -> None:
    experiment_id = running(svc, "history")
    traffic(svc, experiment_id, 20, (0.5, 0.5))
    for _ in range(5):
        clock.advance(1 / 24)
        job(svc).run()
    analysis = ExperimentAnalysis(svc)
    seen: list[str] = []
    cursor = None
    while True:
        page = analysis.insights(experiment_id, limit="2", cursor=cursor)
        assert len(page["insights"]) <= 2
        seen += [i["analysed_at"] for i in page["insights"]]
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert len(seen) == 5 == len(set(seen))
    assert seen == sorted(seen, reverse=True)
    status, answer = invoke(
        "experiment_insights", "GET", "/x", path_parameters={"id": "1"}, query={"limit": "0"}
    )
    assert (status, answer["field"]) == (400, "limit")


@pytest.mark.parametrize("action", list(TRANSITIONS))
def test_every_transition_is_checked(svc: ExperimentService, action: str) -> None:
    # Given an experiment walked to each status in turn
    path = {
        "draft": [],
        "running": ["start"],
        "paused": ["start", "pause"],
        "stopped": ["start", "stop"],
        "archived": ["start", "stop", "archive"],
    }
    allowed_from = TRANSITIONS[action].allowed_from
    for status, steps in path.items():
        experiment_id = int(
            svc.create_experiment(guide_experiment(name=f"{action}-{status}"))["id"]
        )
        for step in steps:
            svc.transition(experiment_id, step)
        # When the action is tried, then it works exactly where allowed, else a 409 names
        # the transitions that are allowed from there
        status_code, answer = invoke(
            f"{action}_experiment", "POST", "/x", path_parameters={"id": str(experiment_id)}
        )
        if status in allowed_from:
            assert status_code == 200, (action, status)
        else:
            assert status_code == 409, (action, status)
            assert answer["status"] == status
            assert all(status in TRANSITIONS[a].allowed_from for a in answer["allowed_transitions"])


def test_paused_keeps_existing_units_and_admits_no_new_ones(svc: ExperimentService) -> None:
    experiment_id = running(svc, "paused")
    before = svc.get_variant({"experiment_id": experiment_id, "user_id": 1})
    svc.transition(experiment_id, "pause")
    again = svc.get_variant({"experiment_id": experiment_id, "user_id": 1})
    new = svc.get_variant({"experiment_id": experiment_id, "user_id": 2})
    recorded = svc.record(
        {
            "experiment_id": experiment_id,
            "user_id": 1,
            "metric_name": "resolution_rate",
            "metric_value": 1,
        }
    )
    assert again["variant"] == before["variant"] and again["reason"] == "existing_assignment"
    assert new["variant"] is None and new["reason"] == "experiment_not_running"
    assert recorded["recorded"] is True


def test_promoted_winner_is_served_to_everyone(aws: Any) -> None:
    # Given a finished experiment where the treatment clearly wins
    from ab_testing import runtime

    svc = runtime.service()
    experiment_id = running(svc, "promote", min_sample_size=50)
    traffic(svc, experiment_id, 200, (0.1, 0.9))
    treatment = svc.get_experiment(experiment_id).variants[1]
    control_user = next(
        u
        for u in range(300)
        if svc.get_variant({"experiment_id": experiment_id, "user_id": u})["variant"]["is_control"]
    )

    # When it is stopped with declare_winner and promote
    status, stopped = invoke(
        "stop_experiment",
        "POST",
        "/x",
        path_parameters={"id": str(experiment_id)},
        query={"declare_winner": "true", "promote": "true"},
    )

    # Then the winner is stored and served to new and existing units, control ones included
    assert (status, stopped["winner_variant_id"], stopped["promoted"]) == (200, treatment.id, True)
    runtime.service()._forget(experiment_id)
    for unit in (control_user, 10_000):
        answer = svc.get_variant({"experiment_id": experiment_id, "user_id": unit})
        assert answer["reason"] == "winner_promoted"
        assert answer["variant"]["config"] == treatment.config


def test_promote_without_a_winner_says_so(svc: ExperimentService) -> None:
    experiment_id = running(svc, "tie")
    traffic(svc, experiment_id, 40, (0.5, 0.5))
    answer = ExperimentAnalysis(svc).stop(experiment_id, declare_winner=True, promote=True)
    assert answer["winner_variant_id"] is None and answer["promoted"] is False
    assert answer["winner_reason"]
    after = svc.get_variant({"experiment_id": experiment_id, "user_id": 1})
    assert after["reason"] == "experiment_not_running"
