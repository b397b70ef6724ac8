"""A full disk under `make run`: writes are refused (503) with nothing applied, reads go on,
writes resume when space returns, and after a kill every acknowledged write is there.

The state lives on a 4 MB tmpfs of its own (the tests run as root on Linux; the mount is made
and removed by the test).
"""

from __future__ import annotations

import contextlib
import os
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import guide_experiment
from tests.e2e.conftest import LocalApi

pytestmark = pytest.mark.e2e
NAME = "Full disk"


@pytest.fixture
def small_disk(tmp_path: Path) -> Iterator[Path]:
    disk = tmp_path / "disk"
    disk.mkdir()
    mounted = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=4m", "tmpfs", str(disk)],
        capture_output=True,
        text=True,
        check=False,
    )
    assert mounted.returncode == 0, f"this test mounts a tmpfs (as root): {mounted.stderr}"
    try:
        yield disk
    finally:
        subprocess.run(["umount", "-l", str(disk)], check=False)


def fill(disk: Path) -> Path:
    """Take every free byte of `disk` with one file; the file."""
    filler = disk / "filler"
    with filler.open("wb", buffering=0) as fh:
        for size in (65536, 4096, 1):
            with contextlib.suppress(OSError):
                while True:
                    fh.write(b"\0" * size)
    return filler


def write(api: LocalApi, user: int) -> tuple[int, int, Any]:
    """get-variant for a user, then its keyed result: both statuses and the result's answer."""
    assigned, _ = api.call(
        "POST", "/api/v1/experiments/get-variant", {"experiment_name": NAME, "user_id": user}
    )
    body = {"experiment_name": NAME, "metric_name": "resolution_rate", "metric_value": 1.0,
            "user_id": user, "idempotency_key": f"k{user}"}  # fmt: skip
    recorded, answer = api.call("POST", "/api/v1/experiments/record-result", body)
    return assigned, recorded, answer


def test_a_full_disk_never_costs_an_acknowledged_write(small_disk: Path) -> None:
    api = LocalApi(small_disk / "state.json").start()
    try:
        assert api.call("POST", "/api/v1/experiments/", guide_experiment(name=NAME))[0] == 201
        assert api.call("POST", "/api/v1/experiments/1/start")[0] == 200
        acknowledged: set[int] = set()
        tried = refused = 0
        for user in range(20):
            tried += 1
            assert write(api, user)[:2] == (200, 201)
            acknowledged.add(user)
        # When the disk fills up
        filler = fill(small_disk)
        for user in range(20, 60):
            tried += 1
            assigned, recorded, answer = write(api, user)
            # Then a write is refused with a 503, or done; never answered as done from memory
            # (a result of a unit whose variant was refused is 200 "recorded": false)
            assert assigned in (200, 503) and recorded in (200, 201, 503), (assigned, answer)
            if recorded == 200:
                assert (answer["recorded"], assigned) == (False, 503), answer
            refused += (assigned == 503) + (recorded == 503)
            if recorded == 201:
                acknowledged.add(user)
        assert refused > 0
        # And reads go on
        assert api.call("GET", "/api/v1/experiments/1/summary")[0] == 200
        # When space returns: writes go on, with no restart; a refused one is recorded as new,
        # an acknowledged one is a duplicate
        os.unlink(filler)
        for user in range(20, 80):
            tried += 1
            assigned, recorded, answer = write(api, user)
            assert assigned == 200
            assert recorded == (200 if user in acknowledged else 201), (user, answer)
            acknowledged.add(user)
        # And the server is killed
        assert api.process is not None
        api.process.kill()
        api.process.wait(timeout=30)
    finally:
        if api.process is not None and api.process.poll() is None:
            api.process.kill()
    # Then after a restart every acknowledged write is there, and the totals reconcile
    again = LocalApi(small_disk / "state.json").start()
    try:
        status, summary = again.call("GET", "/api/v1/experiments/1/summary")
        assert status == 200
        found: dict[str, Any] = summary
        assert found["results_collected"] == len(acknowledged) == 80
        status, reconciled = again.call("GET", "/api/v1/experiments/1/reconciliation")
        assert status == 200 and reconciled["differences"] == [], reconciled
    finally:
        assert again.stop() == 0
    print(f"writes tried {tried}, refused {refused}, acknowledged {len(acknowledged)}, found 80")
