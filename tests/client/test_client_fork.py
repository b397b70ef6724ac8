"""A client made in a parent and used in forked children (gunicorn --preload, uWSGI, Celery
prefork, multiprocessing): each child sends its own results, over its own connections.

The service is a FakeService behind a real HTTP server in this process, so what children send
over TCP is counted here, by idempotency key.
"""

from __future__ import annotations

import multiprocessing
import os
import time

import pytest

from ab_testing_client import ABTestingClient
from tests.client.fake_service import FakeHttpService

pytestmark = pytest.mark.skipif(not hasattr(os, "fork"), reason="fork is POSIX only")
EXPERIMENT = "Prompt Test"
CLIENT: ABTestingClient | None = None  # what a forked Pool worker inherits


def warmed(service: FakeHttpService) -> ABTestingClient:
    """A client that has fetched its definitions, sent a result and kept its sender thread
    and a keep-alive connection: all of which a child inherits."""
    client = ABTestingClient(service.url, flush_interval=0.1)
    assert client.get_variant(EXPERIMENT, user_id="parent") is not None
    client.record(EXPERIMENT, "satisfaction_score", 4.0, user_id="parent", idempotency_key="p0")
    assert client.flush()
    assert client._worker is not None and client._worker.is_alive()
    return client


def counted(service: FakeHttpService, prefix: str) -> int:
    return sum(1 for key, times in service.fake.counted.items() if key.startswith(prefix) and times)


def wait_for(check: object, seconds: float = 10.0) -> None:
    deadline = time.monotonic() + seconds
    while not check() and time.monotonic() < deadline:  # type: ignore[operator]
        time.sleep(0.05)


def test_a_forked_child_sends_its_results_while_it_runs_then_exits_hard(
    service: FakeHttpService,
) -> None:
    # Given a client warmed in the parent, with items of its own still queued at the fork
    client = warmed(service)
    client.record(EXPERIMENT, "satisfaction_score", 3.0, user_id="parent", idempotency_key="p1")
    pid = os.fork()
    if pid == 0:  # the child: 200 results, a pause, then os._exit (no atexit, no flush)
        code = 1
        try:
            for n in range(200):
                client.record(
                    EXPERIMENT, "satisfaction_score", 1.0, user_id=f"c{n}", idempotency_key=f"c{n}"
                )
            time.sleep(2.0)
            code = 0
        finally:
            os._exit(code)
    # When the child has run and exited hard
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0
    # Then every one of its 200 results arrived, each counted once, and the parent's queued
    # item was sent once, by the parent
    assert counted(service, "c") == 200
    assert client.flush()
    assert service.fake.counted["p1"] == 1
    client.close()


def record_task(n: int) -> int:
    assert CLIENT is not None
    CLIENT.record(
        EXPERIMENT, "satisfaction_score", 2.0, user_id=f"w{n % 50}", idempotency_key=f"w{n}"
    )
    return os.getpid()


def test_a_multiprocessing_pool_delivers_everything_its_workers_record(
    service: FakeHttpService,
) -> None:
    global CLIENT
    # Given a client warmed in the parent, and a fork Pool of four workers
    CLIENT = warmed(service)
    try:
        pool = multiprocessing.get_context("fork").Pool(4)
        # When the workers record 800 results and the pool is closed and joined
        workers = set(pool.map(record_task, range(800), chunksize=10))
        pool.close()
        pool.join()
    finally:
        CLIENT.close()
        CLIENT = None
    # Then all 800 arrived, each counted once, from more than one worker
    assert len(workers) > 1
    assert counted(service, "w") == 800
    assert all(times == 1 for times in service.fake.counted.values())


def test_children_exiting_normally_flush_over_their_own_connections(
    service: FakeHttpService,
) -> None:
    # Given a warmed client / When four forked children each record 200 and exit normally
    # (sys.exit runs the atexit flush), long before the sender's next round
    client = warmed(service)
    client.flush_interval = 60.0
    children = []
    for child in range(4):
        pid = os.fork()
        if pid == 0:
            code = 1
            try:
                for n in range(200):
                    key = f"k{child}-{n}"
                    client.record(EXPERIMENT, "cost_usd", 0.01, user_id=key, idempotency_key=key)
                client.close()  # what atexit does at sys.exit (pytest's own exit is not run)
                code = 0
            finally:
                os._exit(code)
        children.append(pid)
    codes = [os.waitstatus_to_exitcode(os.waitpid(pid, 0)[1]) for pid in children]
    # Then each child's 200 arrived, none garbled by another process on a shared socket
    assert codes == [0, 0, 0, 0]
    assert counted(service, "k") == 800
    client.close()
