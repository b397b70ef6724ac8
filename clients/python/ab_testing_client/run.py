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

    def record(self, metric: str, value: float) -> None:
        """Records a result for this unit; nothing when it has no variant (it would not
        count)."""
        if self.variant is not None:
            self.client.record(
                self.experiment, metric, value, user_id=self.user_id, session_id=self.session_id
            )

    def __enter__(self) -> Run:
        self.started = time.perf_counter()
        return self

    def __exit__(self, exc_type: type[BaseException] | None, *rest: object) -> None:
        self.elapsed = time.perf_counter() - self.started
        if exc_type is None and self.timing_metric:
            self.record(self.timing_metric, round(self.elapsed, 6))
