"""The Python client against the local API, both modes: HTTP requests per 1,000 get_variant
calls and microseconds per call.

Goal (issue 11): local mode makes no request for a returning unit and at most one per 100 new
units (batched exposures), and is at least 100 times faster per call than remote mode.

    .venv/bin/python benchmarks/bench_client.py [--remote-calls 300]
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import _local  # noqa: F401  (the project on sys.path, AWS only moto)

from ab_testing_client import ABTestingClient
from tests.conftest import guide_experiment
from tests.e2e.conftest import LocalApi

NAME = "Lead Qualification Prompt Test"


def phase(client: ABTestingClient, users: range) -> tuple[float, float]:
    """(requests per 1,000 calls, microseconds per call); queued exposures are sent first."""
    before = client.api.requests
    started = time.perf_counter()
    for user in users:
        client.get_variant(NAME, user_id=user)
    elapsed = time.perf_counter() - started
    client.flush()
    calls = len(users)
    return (client.api.requests - before) * 1000 / calls, elapsed / calls * 1e6


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--local-calls", type=int, default=10_000)
    parser.add_argument("--remote-calls", type=int, default=300)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as folder:
        api = LocalApi(Path(folder) / "state.json").start()
        try:
            status, created = api.call("POST", "/api/v1/experiments", guide_experiment())
            assert status == 201, created
            api.call("POST", f"/api/v1/experiments/{created['id']}/start")
            run(api.url, args.local_calls, args.remote_calls)
        finally:
            api.stop()


def run(url: str, local_calls: int, remote_calls: int) -> None:
    rows = []
    with ABTestingClient(url, local_evaluation=False, timeout=30) as remote:
        half = remote_calls // 2
        rows.append(("remote, new units", *phase(remote, range(10**6, 10**6 + half))))
        rows.append(("remote, returning units", *phase(remote, range(10**6, 10**6 + half))))
    with ABTestingClient(url, timeout=30) as local:
        local.get_variant(NAME, user_id=0)  # the first definitions fetch, outside the timing
        local.flush()
        rows.append(("local, new units", *phase(local, range(1, local_calls + 1))))
        rows.append(("local, returning units", *phase(local, range(1, local_calls + 1))))
    print(f"{'mode':<26}{'requests/1,000 calls':>22}{'us/call':>12}")
    for name, requests, micros in rows:
        print(f"{name:<26}{requests:>22.1f}{micros:>12.1f}")
    remote_us = (rows[0][2] + rows[1][2]) / 2
    print(f"local new units:       {remote_us / rows[2][2]:,.0f}x faster per call than remote")
    print(f"local returning units: {remote_us / rows[3][2]:,.0f}x faster per call than remote")


if __name__ == "__main__":
    main()
