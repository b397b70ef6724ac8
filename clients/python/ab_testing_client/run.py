"""``client.run(...)``: a block that uses a unit's variant, timed and recorded."""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Any

from ab_testing_client.answers import Variant

if TYPE_CHECKING:
    from ab_testing_client.client import ABTestingClient


class Run:
    def __init__(
        self,
        client: ABTestingClient,
        experiment: str,
        user_id: int | str | None,
        session_id: str | None,
        variant: Variant | None,
        control: Variant | None,
        timing_metric: str | None,
    ) -> None:
        self.client = client
        self.experiment = experiment
        self.user_id = user_id
        self.session_id = session_id
        self.variant = variant
        # The control's config when the unit has no variant: the application still runs.
        shown = variant or control
        self.config: dict[str, Any] = dict(shown.config) if shown is not None else {}
        self.timing_metric = timing_metric
        self.started = 0.0
        self.elapsed: float | None = None
        self._gathered: list[dict[str, Any]] | None = None  # inside the block

    def record(self, metric: str, value: float) -> None:
        """Records a result for this unit; nothing when it has no variant (it would not
        count). Inside the block, the results wait for its end and are queued together: if
        the queue is full they are dropped together, never one metric of a request."""
        if self.variant is None:
            return
        item = self.client._result(self.experiment, metric, value, self.user_id, self.session_id)
        if self._gathered is None:
            self.client._queue_all("result", [item])
        else:
            self._gathered.append(item)

    def __enter__(self) -> Run:
        self.started = time.perf_counter()
        self._gathered = []
        return self

    def __exit__(self, exc_type: type[BaseException] | None, *rest: object) -> None:
        self.elapsed = time.perf_counter() - self.started
        if exc_type is None and self.timing_metric:
            scale = 1000.0 if self.timing_metric.endswith("_ms") else 1.0
            self.record(self.timing_metric, round(self.elapsed * scale, 6))  # with the rest
        gathered, self._gathered = self._gathered, None
        if gathered:
            self.client._queue_all("result", gathered)
