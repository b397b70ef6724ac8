"""The whole loop locally: insights on a timer, auto-stop, then promotion of the winner."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import guide_experiment
from tests.e2e.conftest import LocalApi

pytestmark = pytest.mark.e2e


def send_traffic(api: LocalApi, experiment_id: int, units: range) -> int:
    """Clear effect: the treatment resolves 9 in 10, the control 1 in 10. Returns how many
    units were served before the experiment stopped serving (it may stop itself)."""
    for unit in units:
        _, answer = api.call(
            "POST",
            "/api/v1/experiments/get-variant",
            {"experiment_id": experiment_id, "user_id": unit},
        )
        if answer["variant"] is None:
            assert answer["reason"] == "experiment_not_running"
            return unit - units.start
        good = unit % 10 != 0 if not answer["variant"]["is_control"] else unit % 10 == 0
        status, _ = api.call(
            "POST",
            "/api/v1/experiments/record-result",
            {
                "experiment_id": experiment_id,
                "user_id": unit,
                "metric_name": "resolution_rate",
                "metric_value": 1 if good else 0,
            },
        )
        assert status in (200, 201)  # 200: it stopped between the two calls; not counted
    return len(units)


def wait_for(check: Any, seconds: float = 60) -> Any:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        value = check()
        if value:
            return value
        time.sleep(0.5)
    raise AssertionError("timed out")


def test_schedule_writes_insights_and_auto_stops(tmp_path: Path) -> None:
    # Given the local API with the scheduled job every second
    api = LocalApi(tmp_path / "state.json", schedule_interval=1).start()
    try:
        # And an opted-in experiment with a clear effect and enough units
        body = guide_experiment(
            name="auto", auto_stop=True, min_duration_days=0, min_sample_size=30
        )
        _, created = api.call("POST", "/api/v1/experiments/", body)
        experiment_id = created["id"]
        api.call("POST", f"/api/v1/experiments/{experiment_id}/start")
        # (the sequential test counts from 200 units per variant)
        send_traffic(api, experiment_id, range(500))

        # When the timer fires, then the experiment stops itself, and the insight says why
        experiment = wait_for(
            lambda: (
                (e := api.call("GET", f"/api/v1/experiments/{experiment_id}")[1])["status"]
                == "stopped"
                and e
            )
        )
        assert experiment["stop_reason"] == "sequential test conclusive with sufficient sample size"
        assert experiment["winner_variant_id"] == 2
        _, page = api.call("GET", f"/api/v1/experiments/{experiment_id}/insights")
        assert page["insights"][0]["auto_stopped"] is True
        _, summary = api.call("GET", f"/api/v1/experiments/{experiment_id}/summary")
        assert summary["latest_insight"]["recommended_winner_id"] == 2
    finally:
        assert api.stop() == 0


def test_promote_serves_the_winner_to_every_unit(local_api: LocalApi) -> None:
    # Given a running experiment with a clear winner
    _, created = local_api.call(
        "POST", "/api/v1/experiments/", guide_experiment(name="promote", min_sample_size=30)
    )
    experiment_id = created["id"]
    local_api.call("POST", f"/api/v1/experiments/{experiment_id}/start")
    send_traffic(local_api, experiment_id, range(160))

    # When it is stopped with declare_winner and promote
    status, stopped = local_api.call(
        "POST", f"/api/v1/experiments/{experiment_id}/stop?declare_winner=true&promote=true"
    )
    assert (status, stopped["winner_variant_id"], stopped["promoted"]) == (200, 2, True)

    # Then every get-variant, for old and new units, returns the winner's config
    for unit in (0, 1, 5, 159, 1000, 2000):
        _, answer = local_api.call(
            "POST",
            "/api/v1/experiments/get-variant",
            {"experiment_id": experiment_id, "user_id": unit},
        )
        assert answer["reason"] == "winner_promoted"
        assert answer["variant"]["id"] == 2
        assert answer["variant"]["config"]["include_examples"] is True
