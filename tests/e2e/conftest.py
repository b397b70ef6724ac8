"""The local API in a subprocess on a free port, with its own state file."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[2]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class LocalApi:
    """`abtest serve` as a user runs it (python -m emulator serve), stopped with Ctrl-C."""

    def __init__(
        self,
        state_file: Path,
        port: int | None = None,
        schedule_interval: float = 0,
        env: dict[str, str] | None = None,
    ) -> None:
        self.state_file = state_file
        self.schedule_interval = schedule_interval
        self.extra_env = env or {}
        self.port = port or free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.process: subprocess.Popen[bytes] | None = None
        # A log file, not a pipe: one line per request would fill a pipe nobody reads.
        self.log_path = state_file.with_suffix(f".{self.port}.log")

    def start(self) -> LocalApi:
        env = {
            **os.environ,
            "AB_SCHEDULE_INTERVAL": str(self.schedule_interval),
            # Under load the embedded DynamoDB answers a 2,000-item Query in more than 5 s.
            "AB_DYNAMODB_READ_TIMEOUT": "120",
        }
        env.update(self.extra_env)
        env.pop("AWS_ENDPOINT_URL_DYNAMODB", None)
        with self.log_path.open("wb") as log:
            self.process = subprocess.Popen(
                [
                    sys.executable,
                    "-m",
                    "emulator",
                    "serve",
                    "--port",
                    str(self.port),
                    "--state-file",
                    str(self.state_file),
                    # Each function keeps its own experiment cache, as in AWS, so a stop would
                    # reach get-variant up to 5 s later. These flows check effects at once:
                    # no cache (every read goes to DynamoDB, IAM-checked). The cache window
                    # has its own test with an injected clock (test_promised_edges.py).
                    "--parameter",
                    "AssignmentCacheSeconds=0",
                ],
                cwd=ROOT,
                env=env,
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"the local API exited: {self.log_path.read_text()}")
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=0.5):
                    return self
            except OSError:
                time.sleep(0.2)
        raise RuntimeError("the local API did not start within 60 s")

    def stop(self) -> int:
        """Ctrl-C, as a user stops it; returns the exit code."""
        assert self.process is not None
        self.process.send_signal(signal.SIGINT)
        try:
            code = self.process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.process.kill()
            code = self.process.wait()
        return code

    def call(
        self,
        method: str,
        path: str,
        body: Any = None,
        raw: bytes | None = None,
        headers: list[tuple[str, str]] | None = None,
    ) -> tuple[int, Any]:
        data = raw if raw is not None else (None if body is None else json.dumps(body).encode())
        request = urllib.request.Request(self.url + path, data=data, method=method)
        for name, value in [("Content-Type", "application/json"), *(headers or [])]:
            request.add_header(name, value)
        try:
            with urllib.request.urlopen(request, timeout=60) as answer:
                return answer.status, json.loads(answer.read() or b"null")
        except urllib.error.HTTPError as error:
            return error.code, json.loads(error.read() or b"null")


@pytest.fixture
def local_api(tmp_path: Path) -> Iterator[LocalApi]:
    api = LocalApi(tmp_path / "state.json").start()
    yield api
    if api.process is not None and api.process.poll() is None:
        api.stop()
