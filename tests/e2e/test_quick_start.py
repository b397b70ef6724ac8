"""The product guide's quick start over HTTP against `make run`'s server, and a restart."""

from __future__ import annotations

import json
import shlex
import subprocess
from pathlib import Path

import pytest

from tests.conftest import GUIDE_EXPERIMENT
from tests.e2e.conftest import LocalApi

pytestmark = pytest.mark.e2e
# The product guide, kept in the repository as the contract the API honours.
GUIDE = Path(__file__).resolve().parents[2] / "docs" / "ab-testing-guide.md"
NAME = GUIDE_EXPERIMENT["name"]


def test_guide_quick_start_and_restart(local_api: LocalApi) -> None:
    # Given the running local API, when the guide's steps are sent over HTTP
    status, created = local_api.call("POST", "/api/v1/experiments/", GUIDE_EXPERIMENT)
    assert status == 201
    assert created == {
        "id": 1,
        "name": NAME,
        "status": "draft",
        "message": "Experiment created successfully. Use /start endpoint to begin.",
    }
    assert local_api.call("POST", "/api/v1/experiments/1/start") == (
        200,
        {"message": "Experiment 1 started successfully"},
    )

    variants = {}
    for user in range(40):
        status, answer = local_api.call(
            "POST", "/api/v1/experiments/get-variant", {"experiment_name": NAME, "user_id": user}
        )
        assert status == 200
        variants[user] = answer["variant"]["id"]
        resolved = 1.0 if (answer["variant"]["is_control"] is False or user % 2) else 0.0
        status, recorded = local_api.call(
            "POST",
            "/api/v1/experiments/record-result",
            {
                "experiment_name": NAME,
                "metric_name": "resolution_rate",
                "metric_value": resolved,
                "user_id": user,
                "session_id": None,
            },
        )
        assert (status, recorded["recorded"]) == (201, True)

    status, analysis = local_api.call("GET", "/api/v1/experiments/1/analyze")
    assert status == 200
    assert analysis["current_sample_size"] == 40
    assert sum(s["count"] for s in analysis["variant_stats"].values()) == 40
    status, summary = local_api.call("GET", "/api/v1/experiments/1/summary")
    assert (summary["users_assigned"], summary["results_collected"]) == (40, 40)
    status, listed = local_api.call(
        "GET", "/api/v1/experiments/?status=running&experiment_type=prompt"
    )
    assert [e["id"] for e in listed["experiments"]] == [1]
    assert local_api.call("GET", "/api/v1/experiments?status=draft")[1]["count"] == 0
    # unknown routes answer as the template's gateway response says: 403, as API Gateway
    # cannot tell them from an unsigned request to an admin route
    assert local_api.call("GET", "/api/v1/nothing-here")[0] == 403
    assert local_api.call("POST", "/api/v1/experiments/", raw=b"{oops")[0] == 400

    # When the server is stopped with Ctrl-C and started again on the same state file
    assert local_api.stop() == 0
    again = LocalApi(local_api.state_file).start()
    try:
        # Then experiments, assignments and results are all still there
        status, experiment = again.call("GET", "/api/v1/experiments/1")
        assert (status, experiment["status"]) == (200, "running")
        for user in (0, 17, 39):
            _, answer = again.call(
                "POST",
                "/api/v1/experiments/get-variant",
                {"experiment_name": NAME, "user_id": user},
            )
            assert answer["reason"] == "existing_assignment"
            assert answer["variant"]["id"] == variants[user]
        _, summary_after = again.call("GET", "/api/v1/experiments/1/summary")
        assert summary_after["results_collected"] == 40
        # And the guide's last step works
        status, stopped = again.call("POST", "/api/v1/experiments/1/stop?declare_winner=true")
        assert (status, stopped["status"]) == (200, "stopped")
    finally:
        assert again.stop() == 0


def _guide_bash_blocks() -> list[str]:
    """The guide's ```bash blocks (its curl commands), exactly as printed there."""
    return [b.split("```")[0].strip() for b in GUIDE.read_text().split("```bash")[1:]]


def _run_block(block: str, port: int) -> tuple[int, object]:
    """Runs one block with bash; the guide's create block is not valid shell (an apostrophe,
    "you'll", inside its single-quoted body), so its body is sent verbatim with curl instead."""
    block = block.replace("localhost:8000", f"127.0.0.1:{port}")
    parses = subprocess.run(["bash", "-n"], input=block, text=True, capture_output=True)
    if parses.returncode == 0:
        argv = ["bash", "-c", block + ' -s -w "\n%{http_code}"']
        done = subprocess.run(argv, capture_output=True, text=True, timeout=60, check=True)
    else:
        body = block[block.index("-d '") + 4 : block.rindex("'")]
        url = shlex.split(block.splitlines()[0].rstrip("\\"))[-1]
        argv = [
            "curl",
            "-s",
            "-w",
            "\n%{http_code}",
            "-X",
            "POST",
            url,
            "-H",
            "Content-Type: application/json",
            "--data-binary",
            "@-",
        ]
        done = subprocess.run(
            argv, input=body, capture_output=True, text=True, timeout=60, check=True
        )
    text, _, code = done.stdout.rpartition("\n")
    return int(code), json.loads(text)


def test_guide_curl_commands_verbatim(local_api: LocalApi) -> None:
    # Given the guide's own curl commands, pointed at this server's port
    blocks = _guide_bash_blocks()
    assert [b.split()[0] for b in blocks] == ["curl"] * 4
    # When each runs in order
    answers = [_run_block(block, local_api.port) for block in blocks]
    # Then each answers with the guide's shape
    assert answers[0] == (
        201,
        {
            "id": 1,
            "name": "Lead Qualification Prompt Test",
            "status": "draft",
            "message": "Experiment created successfully. Use /start endpoint to begin.",
        },
    )
    assert answers[1] == (200, {"message": "Experiment 1 started successfully"})
    status, analysis = answers[2]
    assert status == 200
    assert isinstance(analysis, dict) and set(analysis["variant_stats"]) == {"1", "2"}
    assert answers[3][0] == 200
    _, experiment = local_api.call("GET", "/api/v1/experiments/1")
    assert experiment["status"] == "stopped"
    assert experiment["winner_reason"]
