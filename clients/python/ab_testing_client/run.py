"""``client.run(...)``: a block that uses a unit's variant, timed and recorded."""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Any

from ab_testing_client.answers import Variant

if TYPE_CHECKING:
    from ab_testing_client.client import ABTestingClient

_TRACE: Any = None  # opentelemetry.trace once looked up; False when it is not installed


def _trace_api() -> Any:
    global _TRACE
    if _TRACE is None:
        try:
            from opentelemetry import trace
        except ImportError:
            _TRACE = False
        else:
            _TRACE = trace
    return _TRACE or None


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
        self._span_scope: Any = None

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
        self._open_span()
        return self

    def _open_span(self) -> None:
        """With OpenTelemetry installed, the block is a span ("ab_testing.run <experiment>")
        that names the experiment, the unit and the variant: the spans of the model calls
        inside it are its children, and the traces endpoint links them to the unit
        (docs/otlp.md of the service). Without an SDK configured it is a no-op span."""
        trace = _trace_api()
        if trace is None:
            return
        attributes: dict[str, Any] = {"ab_testing.experiment": self.experiment}
        if self.user_id is not None:
            attributes["user.id"] = str(self.user_id)
        elif self.session_id is not None:
            attributes["session.id"] = self.session_id
        if self.variant is not None:
            attributes["ab_testing.variant"] = self.variant.name
        span = trace.get_tracer("ab_testing_client").start_span(
            f"ab_testing.run {self.experiment}", attributes=attributes
        )
        self._span_scope = trace.use_span(span, end_on_exit=True)
        self._span_scope.__enter__()

    def __exit__(self, exc_type: type[BaseException] | None, *rest: object) -> None:
        self.elapsed = time.perf_counter() - self.started
        if exc_type is None and self.timing_metric:
            scale = 1000.0 if self.timing_metric.endswith("_ms") else 1.0
            self.record(self.timing_metric, round(self.elapsed * scale, 6))  # with the rest
        gathered, self._gathered = self._gathered, None
        if gathered:
            self.client._queue_all("result", gathered)
        scope, self._span_scope = self._span_scope, None
        if scope is not None:
            scope.__exit__(exc_type, *rest)
