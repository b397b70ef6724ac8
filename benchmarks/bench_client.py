"""The Python clients against the local API, both modes: HTTP requests per 1,000 get_variant
calls and microseconds per call; then AsyncABTestingClient: microseconds per call awaited one
by one, and the event loop's longest stall while 1,000 new units are asked at once.

Goal (issue 11): local mode makes no request for a returning unit and at most one per 100 new
units (batched exposures), and is at least 100 times faster per call than remote mode.

    .venv/bin/python benchmarks/bench_client.py [--remote-calls 300]
"""

from __future__ import annotations

import argparse
import asyncio
import tempfile
import time
from pathlib import Path

import _local  # noqa: F401  (the project on sys.path, AWS only moto)

from ab_testing_client import ABTestingClient, AsyncABTestingClient
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
    print(asyncio.run(run_async(url, local_calls)))


async def run_async(url: str, calls: int) -> str:
    """AsyncABTestingClient, local evaluation: awaited one by one (returning units), then
    1,000 new units at once while a ticker measures the loop's longest stall."""
    async with AsyncABTestingClient(url, timeout=30) as client:
        await client.get_variant(NAME, user_id=0)  # the definitions, outside the timing
        for user in range(1, calls + 1):
            await client.get_variant(NAME, user_id=user)
        started = time.perf_counter()
        for user in range(1, calls + 1):
            await client.get_variant(NAME, user_id=user)
        returning_us = (time.perf_counter() - started) / calls * 1e6
        longest = 0.0
        done = asyncio.Event()

        async def ticker() -> None:
            nonlocal longest
            last = time.perf_counter()
            while not done.is_set():
                await asyncio.sleep(0.001)
                now = time.perf_counter()
                longest, last = max(longest, now - last - 0.001), now

        ticking = asyncio.create_task(ticker())
        await asyncio.gather(*(client.get_variant(NAME, user_id=f"burst-{n}") for n in range(1000)))
        done.set()
        await ticking
        assert await client.flush()
    return (
        f"async, returning units:   {returning_us:.1f} us/call awaited; 1,000 new units at "
        f"once: longest event-loop stall {longest * 1000:.1f} ms"
    )


if __name__ == "__main__":
    main()
