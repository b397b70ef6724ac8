"""`make run` on a moto whose internals moved: it says so in one line and answers correctly."""

from __future__ import annotations

from pathlib import Path

import pytest

from emulator.moto_shortcuts import moto_version
from tests.conftest import GUIDE_EXPERIMENT
from tests.e2e.conftest import LocalApi

pytestmark = pytest.mark.e2e
NAME = GUIDE_EXPERIMENT["name"]
# Loaded by Python at start (PYTHONPATH): moto as it serves DynamoDB is imported, then a name
# that only the shortcuts import afterwards is taken away, as a moto release might.
SHIM = """
import moto.dynamodb.models
import moto.dynamodb.parsing.ast_nodes
del moto.dynamodb.parsing.ast_nodes.DepthFirstTraverser
"""


def test_the_server_falls_back_to_motos_own_path_and_serves_the_quick_start(
    tmp_path: Path,
) -> None:
    shim = tmp_path / "shim"
    shim.mkdir()
    (shim / "sitecustomize.py").write_text(SHIM)
    api = LocalApi(tmp_path / "state.json", env={"PYTHONPATH": str(shim), "AB_MOTO_FAST": "1"})
    api.start()
    try:
        # When the guide's steps are sent
        status, created = api.call("POST", "/api/v1/experiments/", GUIDE_EXPERIMENT)
        assert (status, created["id"]) == (201, 1)
        assert api.call("POST", "/api/v1/experiments/1/start")[0] == 200
        for user in range(20):
            status, answer = api.call(
                "POST",
                "/api/v1/experiments/get-variant",
                {"experiment_name": NAME, "user_id": user},
            )
            assert (status, answer["reason"]) == (200, "assigned")
            result = {"experiment_name": NAME, "metric_name": "resolution_rate",
                      "metric_value": 1.0, "user_id": user, "idempotency_key": "k"}  # fmt: skip
            assert api.call("POST", "/api/v1/experiments/record-result", result)[0] == 201
            assert api.call("POST", "/api/v1/experiments/record-result", result)[0] == 200
        status, analysis = api.call("GET", "/api/v1/experiments/1/analyze")
        assert (status, analysis["current_sample_size"]) == (200, 20)
    finally:
        assert api.stop() == 0
    # Then the log says, in one line, which moto and why, and which path served
    log = api.log_path.read_text()
    fallback = [line for line in log.splitlines() if "shortcuts do not fit this moto" in line]
    assert len(fallback) == 1, log
    assert fallback[0].split("WARNING emulator.moto: ")[-1].startswith(f"moto {moto_version()}: ")
    assert "DynamoDB: in-process moto" in log and "moto's own path" in log
    assert "Traceback" not in log
