"""AsyncABTestingClient: the same client for asyncio applications; nothing blocks the loop.

A unit the definitions in memory decide (almost every call, once they are fetched) is answered
in the loop itself, with no I/O. What needs the service (the first fetch of the definitions, a
unit only the ledger knows, an experiment they lack, ``local_evaluation=False``) runs in a
worker thread (``asyncio.to_thread``), so the loop keeps serving meanwhile. Results and exposures
are queued without blocking and sent by the client's own background thread, as in
`ABTestingClient`, whose options this takes.
"""

from __future__ import annotations

import asyncio
import functools
import time
from typing import Any, cast

from ab_testing_client.answers import ClientStats, Variant
from ab_testing_client.assignment import unit_key
from ab_testing_client.client import AUTO, UNDECIDED, ABTestingClient, Unit, _timing_metric
from ab_testing_client.run import Run


class AsyncABTestingClient:
    def __init__(self, url: str, api_key: str | None = None, **options: Any) -> None:
        self.sync = ABTestingClient(url, api_key, **options)

    async def get_variant(
        self,
        experiment: str,
        user_id: Unit = None,
        session_id: str | None = None,
        *,
        covariates: dict[str, float] | None = None,
        attributes: dict[str, Any] | None = None,
    ) -> Variant | None:
        """As `ABTestingClient.get_variant`, without blocking the event loop."""
        sync = self.sync
        unit = unit_key(user_id, session_id)
        fresh = sync._definitions is not None and (
            sync.background or time.monotonic() < sync._next_refresh
        )
        if fresh:
            sync._ensure_worker()
            decided = sync._decided_now(
                experiment, user_id, session_id, unit, covariates, attributes
            )
            if decided is not UNDECIDED:
                return cast("Variant | None", decided)
        return await asyncio.to_thread(
            functools.partial(sync.get_variant, covariates=covariates, attributes=attributes),
            experiment,
            user_id,
            session_id,
        )

    def record(
        self,
        experiment: str,
        metric: str,
        value: float,
        user_id: Unit = None,
        session_id: str | None = None,
        **options: Any,
    ) -> None:
        """Queues a result (never blocks; sent in the background, counted exactly once)."""
        self.sync.record(experiment, metric, value, user_id, session_id, **options)

    def run(
        self, experiment: str, user_id: Unit = None, session_id: str | None = None, **options: Any
    ) -> AsyncRun:
        """``async with client.run(...) as run:``: as `ABTestingClient.run`."""
        return AsyncRun(self, experiment, user_id, session_id, options)

    async def flush(self) -> bool:
        return await asyncio.to_thread(self.sync.flush)

    async def aclose(self) -> None:
        await asyncio.to_thread(self.sync.close)

    async def __aenter__(self) -> AsyncABTestingClient:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    @property
    def stats(self) -> ClientStats:
        return self.sync.stats


class AsyncRun:
    """The block of `AsyncABTestingClient.run`: the variant is fetched without blocking, then
    it behaves as `ab_testing_client.run.Run`."""

    def __init__(
        self,
        client: AsyncABTestingClient,
        experiment: str,
        user_id: Unit,
        session_id: str | None,
        options: dict[str, Any],
    ) -> None:
        self.client = client
        self.args = (experiment, user_id, session_id)
        self.options = options
        self.inner: Run | None = None

    async def __aenter__(self) -> Run:
        experiment, user_id, session_id = self.args
        variant = await self.client.get_variant(
            experiment, user_id, session_id, attributes=self.options.get("attributes")
        )
        sync = self.client.sync
        definitions = sync._definitions  # in memory only: no I/O here
        found = definitions.get(experiment) if definitions else None
        control = found.control if found is not None and variant is None else None
        timing = _timing_metric(found, self.options.get("timing_metric", AUTO))
        self.inner = Run(sync, experiment, user_id, session_id, variant, control, timing)
        return self.inner.__enter__()

    async def __aexit__(self, *exc: Any) -> None:
        assert self.inner is not None
        self.inner.__exit__(*exc)
