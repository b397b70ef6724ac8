"""scripts/smoke.py: the guide's flow against the local API, and how it authenticates."""

from __future__ import annotations

import importlib.util
import json
import subprocess
import sys
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

from tests.e2e.conftest import ROOT, LocalApi

pytestmark = pytest.mark.e2e
SCRIPT = ROOT / "scripts" / "smoke.py"


def smoke_module() -> ModuleType:
    spec = importlib.util.spec_from_file_location("smoke", SCRIPT)
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_smoke_script_passes_against_the_local_api(local_api: LocalApi) -> None:
    # Given the local API, When the smoke script runs the guide's flow against it
    done = subprocess.run(
        [sys.executable, str(SCRIPT), local_api.url, "--no-sign", "--users", "4"],
        capture_output=True, text=True, timeout=300, cwd=ROOT, check=False,
    )  # fmt: skip

    # Then every step answered as expected, and the experiment ended archived
    assert done.returncode == 0, done.stdout + done.stderr
    assert "smoke passed" in done.stdout
    assert local_api.call("GET", "/api/v1/experiments/?status=archived")[0] == 200


def test_smoke_script_uses_each_planes_key_against_a_keyed_local_api(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Given the local API with a data-plane key and an admin key, as `make run` takes them
    monkeypatch.setenv("AB_LOCAL_ADMIN_KEY", "admin-7c1e")
    monkeypatch.setenv("AB_LOCAL_DATA_KEY", "data-93ab")
    api = LocalApi(tmp_path / "state.json").start()
    try:
        smoke = [sys.executable, str(SCRIPT), api.url, "--no-sign", "--users", "2"]
        # When the smoke script sends each plane its own key, Then the flow passes
        right = subprocess.run(
            [*smoke, "--api-key", "data-93ab", "--admin-key", "admin-7c1e"],
            capture_output=True, text=True, timeout=300, check=False,
        )  # fmt: skip
        assert right.returncode == 0, right.stdout + right.stderr
        # And with the data key on the admin plane, the first admin call is refused
        wrong = subprocess.run(
            [*smoke, "--api-key", "data-93ab", "--admin-key", "data-93ab"],
            capture_output=True, text=True, timeout=300, check=False,
        )  # fmt: skip
        assert wrong.returncode == 1
        assert "FAIL create: expected 201, got 403" in wrong.stderr
    finally:
        api.stop()


class Recorder(BaseHTTPRequestHandler):
    seen: list[dict[str, Any]] = []

    def answer(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        self.rfile.read(length)
        Recorder.seen.append(
            {"path": self.path, "headers": {k.lower(): v for k, v in self.headers.items()}}
        )
        body = json.dumps({"ok": True}).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    do_GET = do_POST = answer

    def log_message(self, *args: Any) -> None:
        pass


@pytest.fixture
def recorder() -> Iterator[str]:
    Recorder.seen = []
    server = ThreadingHTTPServer(("127.0.0.1", 0), Recorder)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}/prod"
    server.shutdown()
    server.server_close()


def test_admin_calls_are_signed_and_data_calls_carry_the_key(
    recorder: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Given AWS credentials in the environment and an API key
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "AKIDEXAMPLE")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "secret")
    smoke = smoke_module()
    args = smoke.argparse.Namespace(
        url=recorder, api_key="data-key", admin_key=None, auth="api-key", no_sign=False,
        region="eu-west-1",
    )  # fmt: skip
    client = smoke.Client(args)

    # When one admin call and one data call are sent
    client.admin("POST", "/api/v1/experiments/1/start")
    client.data("POST", "/api/v1/experiments/get-variant", {"experiment_id": 1, "user_id": 1})

    # Then the admin call is SigV4 for execute-api in the region, without the key,
    admin, data = (request["headers"] for request in Recorder.seen)
    assert admin["authorization"].startswith("AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/")
    assert "/eu-west-1/execute-api/aws4_request" in admin["authorization"]
    assert "x-api-key" not in admin
    # and the data call carries the key and no signature
    assert data["x-api-key"] == "data-key"
    assert "authorization" not in data


def test_iam_mode_signs_data_calls_too(recorder: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "AKIDEXAMPLE")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "secret")
    smoke = smoke_module()
    args = smoke.argparse.Namespace(
        url=recorder, api_key=None, admin_key=None, auth="iam", no_sign=False, region=None
    )
    smoke.Client(args).data("POST", "/api/v1/experiments/record-result", {})
    (request,) = Recorder.seen
    assert request["headers"]["authorization"].startswith("AWS4-HMAC-SHA256")


def test_region_comes_from_the_api_url() -> None:
    smoke = smoke_module()
    url = "https://abc123.execute-api.ap-southeast-2.amazonaws.com/prod"
    assert smoke.region_of(url) == "ap-southeast-2"
