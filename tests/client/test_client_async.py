"""AsyncABTestingClient: the event loop keeps running while the service is slow, and every
unit gets the variant the synchronous client's local evaluation gives it."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator

import pytest

from ab_testing_client import ABTestingClient, AsyncABTestingClient
from tests.client.fake_service import FakeHttpService, FakeService

EXPERIMENT = "Prompt Test"


@pytest.fixture
def slow_service() -> Iterator[FakeHttpService]:
    served = FakeHttpService(FakeService())
    served.delay = 0.3  # every answer takes 300 ms
    yield served
    served.close()


async def thousand_units(url: str) -> tuple[list[int | None], list[float], int]:
    """1,000 concurrent get_variant calls while a ticker sleeps 5 ms at a time: the variants,
    every gap between the ticker's wake-ups, and how many of them came before the calls were
    all answered."""
    client = AsyncABTestingClient(url, flush_interval=0.1)
    gaps: list[float] = []
    stop = asyncio.Event()

    async def ticker() -> None:
        last = time.perf_counter()
        while not stop.is_set():
            await asyncio.sleep(0.005)
            now = time.perf_counter()
            gaps.append(now - last)
            last = now

    ticking = asyncio.create_task(ticker())
    await asyncio.sleep(0)
    variants = await asyncio.gather(
        *(client.get_variant(EXPERIMENT, user_id=f"u{n}") for n in range(1000))
    )
    during = len(gaps)
    stop.set()
    await ticking
    assert await client.flush()
    await client.aclose()
    return [v.id if v else None for v in variants], gaps, during


def test_a_thousand_calls_to_a_slow_service_never_stop_the_loop(
    slow_service: FakeHttpService,
) -> None:
    # Given a service that answers in 300 ms / When 1,000 units ask at once
    ids, gaps, during = asyncio.run(thousand_units(slow_service.url))
    # Then the loop kept running while the service answered (the ticker woke up meanwhile)
    assert during > 0
    print(f"\nlongest loop stall: {max(gaps) * 1000:.1f} ms over {len(gaps)} ticks")
    # And each unit got what local evaluation gives it, and its exposure reached the ledger
    sync = ABTestingClient(slow_service.url, background=False)
    assert ids == [
        v.id if (v := sync.get_variant(EXPERIMENT, user_id=f"u{n}")) else None for n in range(1000)
    ]
    sync.close()
    assert len(slow_service.fake.ledger) == 1000


def test_async_run_records_its_metrics_and_record_never_blocks() -> None:
    served = FakeHttpService(FakeService())

    async def scenario() -> None:
        async with AsyncABTestingClient(served.url) as client:
            async with client.run(EXPERIMENT, user_id=7, timing_metric="latency_ms") as run:
                assert run.variant is not None and run.config == run.variant.config
                run.record("resolution_rate", 1.0)
            client.record(EXPERIMENT, "cost_usd", 0.02, user_id=7)
            assert await client.flush()
            assert client.stats.results_sent == 3

    try:
        asyncio.run(scenario())
    finally:
        served.close()
    sent = sorted(m for m in served.fake.calls_metrics())
    assert sent == ["cost_usd", "latency_ms", "resolution_rate"]
