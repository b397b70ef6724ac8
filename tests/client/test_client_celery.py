"""The client in a real Celery worker with the prefork pool, made at the app module's import
(in the parent, before the pool forks): every pool process sends its own results while the
worker runs, what is still queued at a warm shutdown is sent as the pool processes end (the
README's worker_process_shutdown handler), and the worker stops cleanly. The broker is
kombu's filesystem transport (folders under tmp_path), so no broker server is needed; no
result backend."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path
from typing import Any

import pytest

from tests.client.fake_service import FakeHttpService
from tests.conftest import ROOT

CELERY = shutil.which("celery", path=str(Path(sys.executable).parent))
pytestmark = pytest.mark.skipif(
    sys.platform == "win32" or CELERY is None, reason="Celery's prefork pool runs on POSIX"
)
TASKS = 300

# The app module, as the client README's recipe has it: one client made at import (in the
# worker's parent process, before the pool forks), closed on worker_process_shutdown; one
# result per task.
APP = textwrap.dedent(
    """
    import json
    import os
    import time
    from pathlib import Path

    from celery import Celery
    from celery.signals import worker_process_shutdown
    from ab_testing_client import ABTestingClient

    app = Celery("app")
    app.conf.update(json.loads(os.environ["AB_CELERY_CONF"]))
    client = ABTestingClient(
        os.environ["AB_FAKE_URL"], flush_interval=float(os.environ["AB_FLUSH_INTERVAL"])
    )
    client.get_variant("Prompt Test", user_id="warm")  # definitions, sender thread, a socket

    @worker_process_shutdown.connect
    def flush_ab_testing(**kwargs):
        client.close()  # a pool process ends with os._exit: no atexit, no finalizers

    @app.task(name="app.record")
    def record(n):
        client.record("Prompt Test", "satisfaction_score", 3.0, user_id=f"c{n}",
                      idempotency_key=f"c{n}")
        (Path(os.environ["AB_DONE"]) / f"{n}.{os.getpid()}").touch()
        time.sleep(0.005)  # long enough that both pool processes get tasks
    """
)


def celery_conf(tmp_path: Path) -> dict[str, Any]:
    """The worker's and the sender's configuration: a broker in folders, no results."""
    messages, processed = tmp_path / "broker" / "messages", tmp_path / "broker" / "processed"
    messages.mkdir(parents=True)
    processed.mkdir(parents=True)
    return {
        "broker_url": "filesystem://",
        "broker_transport_options": {
            "data_folder_in": str(messages),
            "data_folder_out": str(messages),
            "processed_folder": str(processed),
            "control_folder": str(tmp_path / "broker" / "control"),  # else ./control
            "polling_interval": 0.05,
        },
        "task_ignore_result": True,
        "result_backend": None,
        "broker_connection_retry_on_startup": True,
    }


# While the worker runs: 300 tasks, sent every 0.2 s. At a warm stop: fewer tasks than a
# batch, and a flush interval longer than the test, so what is queued is sent as the pool
# processes exit or not at all: billiard ends a pool process with os._exit (no atexit, no
# multiprocessing finalizers), so only the recipe's worker_process_shutdown handler sends it.
CASES = {"while-running": (TASKS, 0.2), "at-stop": (40, 600.0)}


@pytest.mark.parametrize("case", CASES)
def test_celery_prefork_workers_send_what_they_record(
    service: FakeHttpService, tmp_path: Path, case: str
) -> None:
    from celery import Celery

    tasks, flush_interval = CASES[case]
    # Given a Celery worker, prefork pool of two, the client made at the app module's import
    (tmp_path / "app.py").write_text(APP)
    conf = celery_conf(tmp_path)
    done = tmp_path / "done"  # one file per task run: "<n>.<pid>"
    done.mkdir()
    env = {
        **os.environ,
        "AB_FAKE_URL": service.url,
        "AB_FLUSH_INTERVAL": str(flush_interval),
        "AB_CELERY_CONF": json.dumps(conf),
        "AB_DONE": str(done),
        "PYTHONPATH": os.pathsep.join([str(tmp_path), str(ROOT / "clients" / "python")]),
    }
    command = [str(CELERY), "-A", "app", "worker", "--pool=prefork", "--concurrency=2"]
    quiet = ["--loglevel=WARNING", "--without-heartbeat", "--without-gossip", "--without-mingle"]
    started = time.monotonic()
    worker = subprocess.Popen(
        [*command, *quiet],
        cwd=tmp_path,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        # When the tasks are sent to it
        sender = Celery("sender")
        sender.conf.update(conf)
        for n in range(tasks):
            sender.send_task("app.record", args=[n])
        # Then they all run, in both pool processes (not in the worker's parent)
        deadline = time.monotonic() + 20
        while len(list(done.iterdir())) < tasks and time.monotonic() < deadline:
            assert worker.poll() is None, "the worker ended early"
            time.sleep(0.05)
        ran = sorted(path.name for path in done.iterdir())
        assert len(ran) == tasks
        pids = {name.split(".")[1] for name in ran}
        assert len(pids) == 2, pids
        assert str(worker.pid) not in pids
        if case == "while-running":
            # And every result arrives while the worker still runs (no stop needed)
            while service.counted("c") < tasks and time.monotonic() < deadline:
                time.sleep(0.05)
            assert service.counted("c") == tasks
            assert worker.poll() is None
        before_stop = service.counted("c")
        if case == "at-stop":
            assert before_stop < tasks  # some are still queued in the pool processes
        arrived = time.monotonic() - started
    finally:
        # A warm shutdown: running tasks end, the pool processes exit, then the worker
        worker.send_signal(signal.SIGTERM)
        output, _ = worker.communicate(timeout=60)
    print(
        f"\ncelery prefork, {case}: {tasks} tasks run in pool pids {sorted(pids)}; "
        f"{before_stop} results counted before the stop ({arrived:.1f} s from the worker's "
        f"start), {service.counted('c')} after; exit {worker.returncode}"
    )
    # And the worker stopped cleanly, each result counted once, nothing garbled
    assert worker.returncode == 0, output
    assert service.counted("c") == tasks
    assert set(service.fake.counted.values()) == {1}
    assert "Traceback" not in output, output
