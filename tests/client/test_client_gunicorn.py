"""The client in a real gunicorn, with and without --preload: every worker sends its own
results while it serves, and what is left at a graceful stop is flushed."""

from __future__ import annotations

import http.client
import os
import shutil
import signal
import socket
import subprocess
import sys
import textwrap
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.client.fake_service import FakeHttpService, FakeService
from tests.conftest import ROOT

GUNICORN = shutil.which("gunicorn", path=str(Path(sys.executable).parent))
pytestmark = pytest.mark.skipif(
    sys.platform == "win32" or GUNICORN is None, reason="gunicorn runs on POSIX"
)
REQUESTS = 300

# The application: one client made at import (in the master under --preload), one result per
# request, the worker's pid as the answer.
APP = textwrap.dedent(
    """
    import os
    from ab_testing_client import ABTestingClient

    client = ABTestingClient(os.environ["AB_FAKE_URL"], flush_interval=0.2)
    client.get_variant("Prompt Test", user_id="warm")  # definitions, sender thread, a socket

    def app(environ, start_response):
        n = environ["PATH_INFO"].strip("/")
        client.record("Prompt Test", "satisfaction_score", 3.0, user_id=f"g{n}",
                      idempotency_key=f"g{n}")
        start_response("200 OK", [("Content-Type", "text/plain")])
        return [str(os.getpid()).encode()]
    """
)


@pytest.fixture
def service() -> Iterator[FakeHttpService]:
    served = FakeHttpService(FakeService())
    yield served
    served.close()


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def get(port: int, path: str) -> str:
    for _ in range(100):
        try:
            connection = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
            connection.request("GET", path)
            answer = connection.getresponse().read().decode()
            connection.close()
            return answer
        except OSError:
            time.sleep(0.1)  # still booting
    raise AssertionError("gunicorn did not answer")


def counted(service: FakeHttpService) -> int:
    return sum(1 for key in service.fake.counted if key.startswith("g"))


@pytest.mark.parametrize("preload", [True, False], ids=["preload", "no-preload"])
def test_gunicorn_workers_send_what_they_record_while_they_serve(
    service: FakeHttpService, tmp_path: Path, preload: bool
) -> None:
    # Given gunicorn with three sync workers and the client made at the app's import
    (tmp_path / "app.py").write_text(APP)
    port = free_port()
    command = [str(GUNICORN), "-w", "3", "-b", f"127.0.0.1:{port}", "--graceful-timeout", "20"]
    env = {
        **os.environ,
        "AB_FAKE_URL": service.url,
        "PYTHONPATH": os.pathsep.join([str(tmp_path), str(ROOT / "clients" / "python")]),
    }
    server = subprocess.Popen(
        [*command, *(["--preload"] if preload else []), "app:app"],
        cwd=tmp_path,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        # When 300 requests are served
        pids = {get(port, f"/{n}") for n in range(REQUESTS)}
        # Then every result arrives while the workers are still serving (no stop needed)
        deadline = time.monotonic() + 15
        while counted(service) < REQUESTS and time.monotonic() < deadline:
            time.sleep(0.1)
        assert counted(service) == REQUESTS
        assert len(pids) > 1
    finally:
        server.send_signal(signal.SIGTERM)
        _, errors = server.communicate(timeout=60)
    # And the workers stopped cleanly, each result counted once, nothing garbled
    assert server.returncode == 0, errors
    assert set(service.fake.counted.values()) == {1}
    assert "Traceback" not in errors, errors
