"""spool_dir: what a process queued and could not send before it was killed is delivered by the
next client on the same spool, each result counted once; a live process's spool is its own."""

from __future__ import annotations

import atexit
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from ab_testing_client import ABTestingClient
from tests.client.fake_service import FakeHttpService
from tests.conftest import ROOT

pytestmark = pytest.mark.skipif(sys.platform == "win32", reason="the spool is POSIX only")
EXPERIMENT = "Prompt Test"

# A process that queues 300 results for a service that is down (nothing can be sent), says so,
# then ends as asked: SIGKILL, SIGTERM with Python's default handler, or os._exit.
QUEUE_THEN_DIE = textwrap.dedent(
    """
    import os, signal, sys
    from ab_testing_client import ABTestingClient

    spool, how = sys.argv[1], sys.argv[2]
    client = ABTestingClient("http://127.0.0.1:9", spool_dir=spool, attempts=1, timeout=0.2)
    for n in range(300):
        client.record("Prompt Test", "satisfaction_score", 4.0, user_id=f"u{n}",
                      idempotency_key=f"k{n}")
    print("queued", flush=True)
    if how == "os._exit":
        os._exit(0)
    os.kill(os.getpid(), getattr(signal, how))
    """
)


def queue_then_die(spool: Path, how: str) -> None:
    done = subprocess.run(
        [sys.executable, "-c", QUEUE_THEN_DIE, str(spool), how],
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=60,
        env={**os.environ, "PYTHONPATH": str(ROOT / "clients" / "python")},
    )
    assert done.stdout.strip() == "queued", done.stderr
    assert done.returncode != 0 or how == "os._exit"


@pytest.mark.parametrize("how", ["SIGKILL", "SIGTERM", "os._exit"])
def test_what_a_killed_process_queued_is_delivered_by_the_next_client_once(
    service: FakeHttpService, tmp_path: Path, how: str
) -> None:
    spool = tmp_path / "spool"
    # Given a process that queued 300 results and was ended before it could send them
    queue_then_die(spool, how)
    # When a new client starts on the same spool (twice: the second finds nothing left)
    first = ABTestingClient(service.url, spool_dir=spool, background=False)
    assert first.stats.queued == 300
    assert first.flush()
    first.close()
    second = ABTestingClient(service.url, spool_dir=spool, background=False)
    assert second.stats.queued == 0
    second.close()
    # Then the 300 arrived, each counted once, and the spool is empty
    counted = service.fake.counted
    assert sorted(counted) == sorted(f"k{n}" for n in range(300))
    assert set(counted.values()) == {1}
    assert list(spool.iterdir()) == []


def test_a_live_process_keeps_its_spool_and_a_partly_sent_one_resends_only_the_rest(
    service: FakeHttpService, tmp_path: Path
) -> None:
    spool = tmp_path / "spool"
    # Given a live client with 5 results queued, then 3 of them sent
    live = ABTestingClient(service.url, spool_dir=spool, background=False, batch_size=3)
    for n in range(5):
        live.record(EXPERIMENT, "satisfaction_score", 1.0, user_id=n, idempotency_key=f"l{n}")
    service.fake.fail("/api/v1/experiments/record-results", "ok", 503, 503, 503, 503)
    assert not live.flush()
    assert live.stats.queued == 2
    # When another client starts on the same spool / Then it takes nothing of the live one's
    other = ABTestingClient(service.url, spool_dir=spool, background=False)
    assert other.stats.queued == 0
    other.close()
    # And if the live one then dies (its lock released), only the 2 unsent are taken over
    assert live.outbox.spool is not None
    os.close(live.outbox.spool._fd)  # what the death of its process does to its lock
    atexit.unregister(live.close)  # and it never closes
    heir = ABTestingClient(service.url, spool_dir=spool, background=False)
    assert heir.stats.queued == 2
    assert heir.flush()
    assert sorted(service.fake.counted) == [f"l{n}" for n in range(5)]
    assert set(service.fake.counted.values()) == {1}
