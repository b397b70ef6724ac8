"""AsyncABTestingClient in a real asyncio server (aiohttp's web server, as the README's asyncio
recipe runs it): every result arrives while the app serves, and what is still queued at a
graceful stop is flushed by the app's cleanup."""

from __future__ import annotations

import signal
import sys
import textwrap
import time
from pathlib import Path

import pytest

from tests.client.fake_service import FakeHttpService
from tests.client.test_client_prefork_servers import free_port, get, start_app

pytestmark = pytest.mark.skipif(sys.platform == "win32", reason="signals as on POSIX")
REQUESTS = 300

# The recipe: the client made at the app's startup, closed (flushed) at its cleanup.
APP = textwrap.dedent(
    """
    import os
    from aiohttp import web
    from ab_testing_client import AsyncABTestingClient

    async def start(app):
        app["ab"] = AsyncABTestingClient(
            os.environ["AB_FAKE_URL"], flush_interval=float(os.environ["AB_FLUSH_INTERVAL"])
        )

    async def stop(app):
        await app["ab"].aclose()

    async def answer(request):
        n, client = request.match_info["n"], request.app["ab"]
        variant = await client.get_variant("Prompt Test", user_id=f"a{n}")
        client.record("Prompt Test", "satisfaction_score", 3.0, user_id=f"a{n}",
                      idempotency_key=f"a{n}")
        return web.Response(text=str(variant.id if variant else None))

    app = web.Application()
    app.on_startup.append(start)
    app.on_cleanup.append(stop)
    app.router.add_get("/{n}", answer)
    web.run_app(app, host="127.0.0.1", port=int(os.environ["PORT"]), print=None)
    """
)


@pytest.mark.parametrize(
    ("flush_interval", "when"), [(0.2, "while-serving"), (600.0, "at-stop")], ids=lambda x: str(x)
)
def test_an_asyncio_app_sends_what_it_records(
    service: FakeHttpService, tmp_path: Path, flush_interval: float, when: str
) -> None:
    # Given an aiohttp app with the client made at its startup
    port = free_port()
    server = start_app(
        [sys.executable, "app.py"],
        APP,
        tmp_path,
        service,
        AB_FLUSH_INTERVAL=str(flush_interval),
        PORT=str(port),
    )
    try:
        # When 300 requests are served, each answered with the unit's variant
        answers = [get(port, f"/{n}") for n in range(REQUESTS)]
        assert all(a in ("1", "2") for a in answers), set(answers)
        if when == "while-serving":
            # Then every result arrives while the app still serves
            deadline = time.monotonic() + 15
            while service.counted("a") < REQUESTS and time.monotonic() < deadline:
                time.sleep(0.1)
            assert service.counted("a") == REQUESTS
        else:
            assert service.counted("a") == 0  # nothing sent yet: the next flush is minutes away
    finally:
        server.send_signal(signal.SIGINT)
        _, errors = server.communicate(timeout=60)
    # And after a graceful stop every result is there, each counted once
    assert server.returncode == 0, errors
    assert service.counted("a") == REQUESTS
    assert set(service.fake.counted.values()) == {1}
    assert "Traceback" not in errors, errors
