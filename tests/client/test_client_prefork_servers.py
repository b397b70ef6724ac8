"""The client in real pre-fork servers: gunicorn with and without --preload, uWSGI with and
without lazy-apps. Every worker sends its own results while it serves, and what is left at a
graceful stop is flushed."""

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
from pathlib import Path

import pytest

from tests.client.fake_service import FakeHttpService
from tests.conftest import ROOT

BIN = str(Path(sys.executable).parent)
GUNICORN = shutil.which("gunicorn", path=BIN)
UWSGI = shutil.which("uwsgi", path=BIN)
pytestmark = pytest.mark.skipif(sys.platform == "win32", reason="pre-fork servers run on POSIX")
REQUESTS = 300


def servers(port: int) -> dict[str, list[str]]:
    """Each server shape with three workers, as the README's recipes run it. uWSGI forks with
    its own fork() (not Python's): py-call-osafterfork lets the client's at-fork hook run
    (without it, with the app loaded before the fork, 0 of 300 results arrived), and
    enable-threads lets its sender thread run at all (uWSGI disables threads otherwise)."""
    gunicorn = [str(GUNICORN), "-w", "3", "-b", f"127.0.0.1:{port}", "--graceful-timeout", "20"]
    uwsgi = [
        str(UWSGI), "--master", "--processes", "3", "--http-socket", f"127.0.0.1:{port}",
        "--wsgi-file", "app.py", "--callable", "app", "--enable-threads",
        "--py-call-osafterfork", "--die-on-term", "--worker-reload-mercy", "20",
    ]  # fmt: skip
    return {
        "gunicorn-preload": [*gunicorn, "--preload", "app:app"],
        "gunicorn": [*gunicorn, "app:app"],
        "uwsgi": uwsgi,
        "uwsgi-lazy-apps": [*uwsgi, "--lazy-apps"],
    }


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


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def start_app(
    command: list[str], app: str, folder: Path, service: FakeHttpService, **env: str
) -> subprocess.Popen[str]:
    """``app`` written to folder/app.py and served by ``command`` there, with the client on
    its path and the fake service's address in AB_FAKE_URL; stderr kept for the checks."""
    (folder / "app.py").write_text(app)
    path = os.pathsep.join([str(folder), str(ROOT / "clients" / "python")])
    return subprocess.Popen(
        command,
        cwd=folder,
        env={**os.environ, **env, "AB_FAKE_URL": service.url, "PYTHONPATH": path},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )


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
    raise AssertionError("the server did not answer")


@pytest.mark.parametrize("shape", list(servers(0)))
def test_pre_fork_workers_send_what_they_record_while_they_serve(
    service: FakeHttpService, tmp_path: Path, shape: str
) -> None:
    # Given the server with three workers and the client made at the app's import
    if (GUNICORN if shape.startswith("gunicorn") else UWSGI) is None:
        pytest.fail(f"{shape}: the server is not installed in the test venv (make setup)")
    port = free_port()
    server = start_app(servers(port)[shape], APP, tmp_path, service)
    try:
        # When 300 requests are served
        pids = {get(port, f"/{n}") for n in range(REQUESTS)}
        # Then every result arrives while the workers are still serving (no stop needed)
        deadline = time.monotonic() + 15
        while service.counted("g") < REQUESTS and time.monotonic() < deadline:
            time.sleep(0.1)
        assert service.counted("g") == REQUESTS
        assert len(pids) > 1
    finally:
        server.send_signal(signal.SIGTERM)
        _, errors = server.communicate(timeout=60)
    # And the workers stopped cleanly, each result counted once, nothing garbled
    assert server.returncode == 0, errors
    assert set(service.fake.counted.values()) == {1}
    assert "Traceback" not in errors, errors
