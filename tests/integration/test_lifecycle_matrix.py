"""The lifecycle of the README, written out by hand: every action from every status.

"draft -> running <-> paused -> stopped -> archived; 409 names the allowed transitions."
The expectations below are typed from the README, not derived from the service's own table,
so a wrong entry in that table fails here.
"""

from __future__ import annotations

from typing import Any

import pytest

from tests.conftest import guide_experiment, invoke

HANDLERS = {
    "start": "start_experiment",
    "pause": "pause_experiment",
    "resume": "resume_experiment",
    "stop": "stop_experiment",
    "archive": "archive_experiment",
}

# How to reach each status from a new (draft) experiment.
PATHS: dict[str, list[str]] = {
    "draft": [],
    "running": ["start"],
    "paused": ["start", "pause"],
    "stopped": ["start", "stop"],
    "archived": ["start", "stop", "archive"],
}

# status -> action -> (HTTP status, status afterwards)
MATRIX: dict[str, dict[str, tuple[int, str]]] = {
    "draft": {
        "start": (200, "running"),
        "pause": (409, "draft"),
        "resume": (409, "draft"),
        "stop": (409, "draft"),
        "archive": (409, "draft"),
    },
    "running": {
        "start": (409, "running"),
        "pause": (200, "paused"),
        "resume": (409, "running"),
        "stop": (200, "stopped"),
        "archive": (409, "running"),
    },
    "paused": {
        "start": (409, "paused"),
        "pause": (409, "paused"),
        "resume": (200, "running"),
        "stop": (200, "stopped"),
        "archive": (409, "paused"),
    },
    "stopped": {
        "start": (409, "stopped"),
        "pause": (409, "stopped"),
        "resume": (409, "stopped"),
        "stop": (409, "stopped"),
        "archive": (200, "archived"),
    },
    "archived": {
        "start": (409, "archived"),
        "pause": (409, "archived"),
        "resume": (409, "archived"),
        "stop": (409, "archived"),
        "archive": (409, "archived"),
    },
}

# What a 409 lists as possible from each status.
ALLOWED: dict[str, list[str]] = {
    "draft": ["start"],
    "running": ["pause", "stop"],
    "paused": ["resume", "stop"],
    "stopped": ["archive"],
    "archived": [],
}

CASES = [(status, action) for status, row in MATRIX.items() for action in row]


def act(experiment_id: int, action: str) -> tuple[int, Any]:
    path = f"/api/v1/experiments/{experiment_id}/{action}"
    return invoke(
        HANDLERS[action],
        "POST",
        path,
        resource=f"/api/v1/experiments/{{id}}/{action}",
        path_parameters={"id": str(experiment_id)},
    )


def status_of(experiment_id: int) -> str:
    code, body = invoke(
        "get_experiment",
        "GET",
        f"/api/v1/experiments/{experiment_id}",
        resource="/api/v1/experiments/{id}",
        path_parameters={"id": str(experiment_id)},
    )
    assert code == 200
    return str(body["status"])


def experiment_in(status: str) -> int:
    code, created = invoke(
        "create_experiment",
        "POST",
        "/api/v1/experiments/",
        resource="/api/v1/experiments",
        body=guide_experiment(name=f"lifecycle {status}"),
    )
    assert code == 201
    for action in PATHS[status]:
        assert act(created["id"], action)[0] == 200
    assert status_of(created["id"]) == status
    return int(created["id"])


def test_the_matrix_covers_every_status_and_action() -> None:
    assert set(MATRIX) == set(PATHS) == set(ALLOWED)
    assert all(set(row) == set(HANDLERS) for row in MATRIX.values())


@pytest.mark.parametrize(("status", "action"), CASES, ids=[f"{s}-{a}" for s, a in CASES])
def test_lifecycle_action(aws: Any, status: str, action: str) -> None:
    # Given an experiment in `status`
    experiment_id = experiment_in(status)
    expected_code, expected_status = MATRIX[status][action]
    # When the action is requested
    code, body = act(experiment_id, action)
    # Then it answers as the README's lifecycle says, and the status is what it should be
    assert code == expected_code, body
    assert status_of(experiment_id) == expected_status
    if code == 200:
        assert body["message"].startswith(f"Experiment {experiment_id} ")
    else:
        assert body["error"] == "conflict"
        assert body["status"] == status
        assert body["allowed_transitions"] == ALLOWED[status]
        allowed = ", ".join(ALLOWED[status]) or "nothing"
        assert body["message"] == (
            f"cannot {action} experiment {experiment_id}: it is {status}. "
            f"Allowed from {status}: {allowed}"
        )
