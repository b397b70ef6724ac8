"""Run the template's scheduled functions on a timer, or once on demand."""

from __future__ import annotations

import json
import logging
import threading
from collections.abc import Mapping
from typing import Any

from emulator.events import scheduled_event
from emulator.lambdas import FunctionLoader, invoked_as, make_context
from emulator.template import ScheduledFunction, function_settings

log = logging.getLogger("emulator.schedule")


def to_json(value: Any) -> str:
    """JSON for whatever a handler returns (Decimals, datetimes... become strings)."""
    return json.dumps(value, default=str)


class ScheduledRunner:
    """Invokes every scheduled function with an EventBridge scheduled event."""

    def __init__(
        self,
        loader: FunctionLoader,
        template: Mapping[str, Any],
        functions: list[ScheduledFunction],
    ) -> None:
        self.loader = loader
        self.template = template
        self.functions = functions
        self._lock = threading.Lock()  # one analysis at a time, timer or on demand
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._timer_runs = 0  # runs the timer finished, successful or not
        self._ran = threading.Condition()

    def run_once(self) -> Any:
        """The handler's return value; {logical id: value} when several functions are scheduled.

        Exceptions of a handler propagate.
        """
        results: dict[str, Any] = {}
        with self._lock:
            for function in self.functions:
                results[function.function_id] = self._invoke(function)
        if len(self.functions) == 1:
            return results[self.functions[0].function_id]
        return results

    def _invoke(self, function: ScheduledFunction) -> Any:
        handler = self.loader.handler(function.function_id, function.code_uri, function.handler)
        settings = function_settings(self.template, function.function_id)
        event = scheduled_event(f"{function.function_id}Schedule")
        with invoked_as(function.function_id):
            result = handler(event, make_context(function.function_id, settings))
        log.info("scheduled %s returned %s", function.function_id, to_json(result)[:2000])
        return result

    def start(self, interval: float) -> None:
        """Run every `interval` seconds (the first run after one interval); 0 disables."""
        if interval <= 0 or not self.functions:
            return
        self._thread = threading.Thread(
            target=self._loop, args=(interval,), name="scheduler", daemon=True
        )
        self._thread.start()

    def _loop(self, interval: float) -> None:
        while not self._stop.wait(interval):
            try:
                self.run_once()
            except Exception:
                log.exception("scheduled run failed")
            with self._ran:
                self._timer_runs += 1
                self._ran.notify_all()

    def wait_for_timer_runs(self, runs: int, timeout: float) -> bool:
        """Block until the timer has finished ``runs`` runs; False if ``timeout`` passes first."""
        with self._ran:
            return self._ran.wait_for(lambda: self._timer_runs >= runs, timeout)

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
