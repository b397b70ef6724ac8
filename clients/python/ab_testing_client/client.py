"""ABTestingClient: variants in microseconds, results exactly once, and never an exception
from an outage (unless ``strict=True``)."""

from __future__ import annotations

import atexit
import logging
import os
import sys
import threading
import time
import uuid
import weakref
from collections import OrderedDict
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any, cast

from ab_testing_client.answers import ClientStats, Refusal, Variant
from ab_testing_client.assignment import ALGORITHMS, ASK, HELD, NONE, Definition, unit_key
from ab_testing_client.outbox import MAX_BATCH, Outbox
from ab_testing_client.run import Run
from ab_testing_client.transport import (
    ABTestingError,
    Api,
    HttpTransport,
    RetryPolicy,
    Signer,
    Transport,
    Unavailable,
)

GET_VARIANT_PATH = "/api/v1/experiments/get-variant"
DEFINITIONS_PATH = "/api/v1/experiments/definitions"
logger = logging.getLogger("ab_testing_client")

Unit = int | str | None
UNDECIDED = object()  # what _decided_now answers when only the service can say
AUTO = "auto"  # run(): the timing metric the experiment declares
TIMING_METRICS = ("latency_ms", "response_time")  # what run() records by itself, in this order


def _timing_metric(found: Definition | None, asked: str | None) -> str | None:
    if asked != AUTO:
        return asked
    if found is None or not found.metrics:
        return "response_time"  # a service that does not publish metrics: as before
    return next((m for m in TIMING_METRICS if m in found.metrics), None)


# Every client of this process, for the fork hook below (weak: a client nobody holds goes).
_LIVE: weakref.WeakSet[ABTestingClient] = weakref.WeakSet()


def _exposure(
    experiment_id: int, variant_id: int, user_id: Unit, session_id: str | None
) -> dict[str, Any]:
    exposure: dict[str, Any] = {"experiment_id": experiment_id, "variant_id": variant_id}
    exposure["user_id" if user_id is not None else "session_id"] = (
        user_id if user_id is not None else session_id
    )
    return exposure


def _extra(
    covariates: dict[str, float] | None, attributes: dict[str, Any] | None
) -> dict[str, Any]:
    """What a unit's get-variant call or exposure carries besides the unit."""
    extra: dict[str, Any] = {}
    if covariates:
        extra["covariates"] = dict(covariates)
    if attributes is not None:
        extra["attributes"] = attributes
    return extra


def _spool(directory: str | os.PathLike[str] | None) -> Any:
    if directory is None:
        return None
    from ab_testing_client.spool import Spool  # fcntl: POSIX only

    return Spool(directory)


def _after_fork_in_child() -> None:
    for client in list(_LIVE):
        client._forked()


if hasattr(os, "register_at_fork"):  # POSIX; Windows has no fork
    os.register_at_fork(after_in_child=_after_fork_in_child)


class ABTestingClient:
    """A client for one service URL. Thread-safe; one per process is enough.

    ``local_evaluation=True`` assigns from published definitions (no request for a unit it
    has seen, exposures batched); ``False`` asks get-variant on every call.
    """

    def __init__(
        self,
        url: str,
        api_key: str | None = None,
        local_evaluation: bool = True,
        *,
        strict: bool = False,
        timeout: float = 2.0,
        attempts: int = 4,
        refresh_interval: float = 15.0,
        flush_interval: float = 1.0,
        batch_size: int = MAX_BATCH,
        max_queue: int = 50_000,
        max_cached_units: int = 200_000,
        on_refusal: Callable[[Refusal], None] | None = None,
        background: bool = True,
        transport: Transport | None = None,
        signer: Signer | None = None,
        sleep: Callable[[float], None] = time.sleep,
        spool_dir: str | os.PathLike[str] | None = None,
        close_timeout: float = 10.0,
    ) -> None:
        self.local_evaluation = local_evaluation
        self.strict = strict
        self.close_timeout = close_timeout
        self._sleep = sleep
        self.refresh_interval = refresh_interval
        self.flush_interval = flush_interval
        self.background = background
        self._transport = transport or HttpTransport(url)
        self.api = Api(
            self._transport,
            api_key=api_key,
            policy=RetryPolicy(attempts=attempts, timeout=timeout),
            signer=signer,
            sleep=sleep,
        )
        self.outbox = Outbox(
            self.api,
            batch_size=batch_size,
            max_queue=max_queue,
            on_refusal=on_refusal,
            on_exposure=self._exposure_answered,
            spool=_spool(spool_dir),
        )
        self._budget = timeout * 2  # a caller waits at most about this long for an answer
        self._max_cached = max_cached_units
        self._lock = threading.Lock()
        self._wake = threading.Condition()
        self._served: OrderedDict[tuple[int, str], tuple[int | None, int]] = OrderedDict()
        self._last_known: OrderedDict[tuple[str, str], Variant | None] = OrderedDict()
        # Experiments asked of the service because the definitions lacked them: the
        # definitions' version then, and whether it runs (see _ask_unpublished).
        self._unpublished: OrderedDict[str, tuple[int, bool]] = OrderedDict()
        self._definitions: dict[str, Definition] | None = None
        self._etag: str | None = None
        self._version = 0
        self._next_refresh = 0.0
        self._failures = 0
        self._down_until = 0.0
        self.retry_pause = 5.0  # after an outage, callers get the fallback at once this long
        self._conflicts = 0
        self._closed = False
        self._worker: threading.Thread | None = None
        self._finalize_in_child = False  # see _forked
        self._dropped_at_flush = 0
        atexit.register(self.close)
        _LIVE.add(self)

    # ------------------------------------------------------------------ public API
    def get_variant(
        self,
        experiment: str,
        user_id: Unit = None,
        session_id: str | None = None,
        *,
        covariates: dict[str, float] | None = None,
        attributes: dict[str, Any] | None = None,
    ) -> Variant | None:
        """The unit's variant; None when it is not in the experiment, the experiment is not
        running, or the service cannot be reached (strict mode raises instead).

        ``covariates``: the unit's numbers from before the experiment (CUPED); they travel
        with the unit's exposure or its get-variant call, so they are stored with the unit.
        ``attributes``: the unit's, for experiments with targeting (plan, locale, app
        version...); evaluated locally like the service does, sent with the exposure."""
        unit = unit_key(user_id, session_id)
        extra = _extra(covariates, attributes)
        definitions = self._current_definitions() if self.local_evaluation else None
        decided = self._decided_now(experiment, user_id, session_id, unit, covariates, attributes)
        if decided is not UNDECIDED:
            return cast("Variant | None", decided)
        if definitions is None:
            return self._ask(experiment, None, user_id, session_id, unit, extra=extra)
        found = definitions.get(experiment)
        if found is None:
            return self._ask_unpublished(experiment, user_id, session_id, unit, extra)
        return self._ask(experiment, found, user_id, session_id, unit, extra=extra)

    def _decided_now(
        self,
        experiment: str,
        user_id: Unit,
        session_id: str | None,
        unit: str,
        covariates: dict[str, float] | None = None,
        attributes: dict[str, Any] | None = None,
    ) -> Variant | None | object:
        """The unit's variant when the definitions in memory decide it, with no I/O (an
        exposure queued for a unit seen for the first time); UNDECIDED when only the service
        can say (no definitions yet, an experiment they lack, a unit only the ledger knows).
        The asyncio client answers from here without leaving the event loop."""
        definitions = self._definitions if self.local_evaluation else None
        if definitions is None:
            return UNDECIDED
        found = definitions.get(experiment)
        if found is None:
            with self._lock:
                verdict = self._unpublished.get(experiment)
            if verdict is not None and verdict == (self._version, False):
                return None  # asked since the last refresh: it does not run
            return UNDECIDED
        fixed = found.fixed(unit)
        if fixed is not None:
            return None if fixed == NONE else found.variants.get(int(fixed))
        if user_id is None or session_id is None:  # a login: the service knows the group
            self._expose_to_holdout(found, unit, user_id, session_id, attributes)
        key = (found.id, unit)
        with self._lock:
            hit = self._served.get(key)
            if hit is not None:
                self._served.move_to_end(key)
        if hit is not None and (hit[0] is not None or hit[1] == self._version):
            return None if hit[0] is None else found.variants.get(hit[0])
        # A user arriving with a session may inherit the session's variant: the server knows.
        decision = (
            ASK
            if user_id is not None and session_id is not None
            else found.evaluate(unit, attributes)
        )
        if decision == ASK:
            return UNDECIDED
        if decision == NONE:
            return None
        if decision == HELD:
            return found.control
        variant_id = int(decision)
        self._remember(key, variant_id)
        exposure = _exposure(found.id, variant_id, user_id, session_id)
        exposure.update(_extra(covariates, attributes))
        self._queue("exposure", exposure)
        return found.variants.get(variant_id)

    def _expose_to_holdout(
        self,
        found: Definition,
        unit: str,
        user_id: Unit,
        session_id: str | None,
        attributes: dict[str, Any] | None,
    ) -> None:
        """The layer's running holdout records each unit of its experiments once, in its
        group, also a unit this client served before the holdout started."""
        held = found.holdout_entry(unit, attributes)
        if held is None:
            return
        with self._lock:
            known = (held[0], unit) in self._served
        if not known:
            self._remember((held[0], unit), held[1])
            self._queue("exposure", _exposure(held[0], held[1], user_id, session_id))

    def record(
        self,
        experiment: str,
        metric: str,
        value: float,
        user_id: Unit = None,
        session_id: str | None = None,
        *,
        idempotency_key: str | None = None,
        occurred_at: datetime | None = None,
    ) -> None:
        """Queues a result; it is sent in the background and counted exactly once."""
        item = self._result(
            experiment, metric, value, user_id, session_id, idempotency_key, occurred_at
        )
        self._queue("result", item)

    def _result(
        self,
        experiment: str,
        metric: str,
        value: float,
        user_id: Unit,
        session_id: str | None,
        idempotency_key: str | None = None,
        occurred_at: datetime | None = None,
    ) -> dict[str, Any]:
        """A result as queued (checked now: a missing unit or a value that is no number is a
        programming error)."""
        unit_key(user_id, session_id)
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise TypeError(f"metric value must be a number, got {type(value).__name__}")
        item: dict[str, Any] = {
            "experiment_name": experiment,
            "metric_name": metric,
            "metric_value": value,
            # Made once, here: every resend of this result carries the same key.
            "idempotency_key": idempotency_key or uuid.uuid4().hex,
            "occurred_at": (occurred_at or datetime.now(UTC)).isoformat(),
        }
        if user_id is not None:
            item["user_id"] = user_id
        if session_id is not None:
            item["session_id"] = session_id
        return item

    def run(
        self,
        experiment: str,
        user_id: Unit = None,
        session_id: str | None = None,
        *,
        timing_metric: str | None = AUTO,
        attributes: dict[str, Any] | None = None,
    ) -> Run:
        """A block that uses the unit's variant: ``run.config`` is the variant's config, or
        the control's when there is none. ``timing_metric``, recorded on a normal exit: by
        default the experiment's own, ``latency_ms`` (milliseconds) or ``response_time``
        (seconds), whichever it declares, and none when it declares neither; a name chooses
        (a name ending in ``_ms`` gets milliseconds); ``None``, no timing. ``attributes``: as
        for get_variant."""
        variant = self.get_variant(experiment, user_id, session_id, attributes=attributes)
        definitions = self._definitions or (
            self._current_definitions() if variant is None else None
        )
        found = definitions.get(experiment) if definitions else None
        control = found.control if found is not None and variant is None else None
        timing = _timing_metric(found, timing_metric)
        return Run(self, experiment, user_id, session_id, variant, control, timing)

    def flush(self) -> bool:
        """Sends everything queued now, in this thread. True only when the service took all
        of it and nothing was dropped (the queue full) since the last flush; else False
        (strict: an exception), with what is left still queued and the drops in `stats`."""
        done = self.outbox.send_all()
        dropped = self.outbox.dropped - self._dropped_at_flush
        self._dropped_at_flush = self.outbox.dropped
        if (not done or dropped) and self.strict:
            raise ABTestingError(
                f"{self.outbox.pending()} items could not be sent, {dropped} were dropped"
            )
        return done and not dropped

    def refresh(self) -> None:
        """Fetches the definitions now (an unchanged document costs a 304)."""
        self._fetch_definitions()

    def close(self, timeout: float | None = None) -> None:
        """Stops the background thread and sends what is queued, trying again while the
        service fails for up to ``timeout`` seconds (default: ``close_timeout``, 10 s). Also
        called at exit."""
        if self._closed:
            return
        self._closed = True
        atexit.unregister(self.close)
        deadline = time.monotonic() + (self.close_timeout if timeout is None else timeout)
        with self._wake:
            self._wake.notify_all()
        if self._worker is not None:
            self._worker.join(timeout=self._budget * 4)
        try:
            pause = 0.05
            while not self.outbox.send_all() and time.monotonic() + pause < deadline:
                self._sleep(pause)  # a lost answer or a failing batch: again, a while
                pause = min(pause * 2, 1.0)
        finally:
            left = self.outbox.pending()
            if left:
                spooled = f" (kept in {self.outbox.spool.path})" if self.outbox.spool else ""
                logger.warning("ab_testing_client closed with %d items unsent%s", left, spooled)
            if self.outbox.spool is not None:
                self.outbox.spool.close()
            close = getattr(self._transport, "close", None)
            if close is not None:
                close()

    def __enter__(self) -> ABTestingClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @property
    def stats(self) -> ClientStats:
        box = self.outbox
        return ClientStats(
            requests=self.api.requests,
            results_sent=box.results_sent,
            exposures_sent=box.exposures_sent,
            refused=box.refused,
            dropped=box.dropped,
            queued=box.pending(),
            conflicts=self._conflicts,
        )

    # ------------------------------------------------------------------ assignment
    def _ask(
        self,
        experiment: str,
        found: Definition | None,
        user_id: Unit,
        session_id: str | None,
        unit: str,
        seen: dict[str, Any] | None = None,
        extra: dict[str, Any] | None = None,
    ) -> Variant | None:
        """get-variant on the server; remembered when it is the unit's for good. `seen`
        receives the answer's reason."""
        if found is not None and user_id is not None and session_id is not None:
            # The session's own exposure must reach the ledger first.
            self.outbox.send_all(exposures_only=True)
        if time.monotonic() < self._down_until and not self.strict:
            with self._lock:  # the service failed a moment ago: do not make callers wait
                return self._last_known.get((experiment, unit))
        body: dict[str, Any] = {"experiment_name": experiment}
        if user_id is not None:
            body["user_id"] = user_id
        if session_id is not None:
            body["session_id"] = session_id
        body.update(extra or {})
        try:
            answer = self.api.call("POST", GET_VARIANT_PATH, body, budget=self._budget).json()
        except ABTestingError as exc:
            if self.strict:
                raise
            if isinstance(exc, Unavailable):
                self._down_until = time.monotonic() + self.retry_pause
            with self._lock:
                last = self._last_known.get((experiment, unit))
            logger.warning("ab_testing_client get_variant degraded (%s): %s", experiment, exc)
            return last
        variant = Variant.from_json(answer["variant"]) if answer.get("variant") else None
        if seen is not None:
            seen["reason"] = answer.get("reason")
        with self._lock:
            self._last_known[(experiment, unit)] = variant
            self._trim(self._last_known)
        if found is not None:
            sticky = answer.get("reason") in ("assigned", "existing_assignment")
            self._remember((found.id, unit), variant.id if variant and sticky else None)
        return variant

    def _ask_unpublished(
        self,
        experiment: str,
        user_id: Unit,
        session_id: str | None,
        unit: str,
        extra: dict[str, Any] | None = None,
    ) -> Variant | None:
        """An experiment the definitions do not hold (yet: one just started is published at
        the next refresh). The service is asked; if the experiment runs, every unit is asked
        until the definitions hold it, and they are fetched again at once; if not, the
        answer is None without asking again until the next refresh."""
        with self._lock:
            verdict = self._unpublished.get(experiment)
        if verdict is not None and verdict[0] == self._version and not verdict[1]:
            return None
        seen: dict[str, Any] = {}
        variant = self._ask(experiment, None, user_id, session_id, unit, seen, extra)
        running = seen.get("reason") not in (None, "experiment_not_running")
        with self._lock:
            self._unpublished[experiment] = (self._version, running)
            self._trim(self._unpublished)
        if running and (verdict is None or verdict[0] != self._version):
            logger.info(
                "ab_testing_client: %r runs but is not in the definitions yet: asking the "
                "service for its units until it is",
                experiment,
            )
            self._next_refresh = 0.0
            with self._wake:
                self._wake.notify()
        return variant

    def _remember(self, key: tuple[int, str], variant_id: int | None) -> None:
        with self._lock:
            self._served[key] = (variant_id, self._version)
            self._served.move_to_end(key)
            self._trim(self._served)

    def _trim(self, cache: OrderedDict[Any, Any]) -> None:
        while len(cache) > self._max_cached:
            cache.popitem(last=False)

    def _exposure_answered(self, item: dict[str, Any], answer: dict[str, Any]) -> None:
        """The ledger's word on a unit served locally: it wins over what was served."""
        unit = unit_key(item.get("user_id"), item.get("session_id"))
        key = (int(item["experiment_id"]), unit)
        stored = answer.get("variant_id")
        if int(answer.get("status", 500)) >= 400:
            with self._lock:
                self._served.pop(key, None)  # evaluate again with fresh definitions
            self._next_refresh = 0.0
        elif answer.get("reason") in ("assigned", "existing_assignment") and stored != int(
            item["variant_id"]
        ):
            self._conflicts += 1
            logger.warning(
                "ab_testing_client: %s holds variant %s in the ledger, not the %s served",
                unit,
                stored,
                item["variant_id"],
            )
            self._remember(key, int(stored) if stored is not None else None)

    # ------------------------------------------------------------------ definitions
    def _current_definitions(self) -> dict[str, Definition] | None:
        now = time.monotonic()
        if self._definitions is None or (not self.background and now >= self._next_refresh):
            if now >= self._next_refresh:
                self._fetch_definitions()
        self._ensure_worker()
        return self._definitions

    def _fetch_definitions(self) -> None:
        headers = {"If-None-Match": self._etag} if self._etag else {}
        try:
            answer = self.api.call("GET", DEFINITIONS_PATH, headers=headers, budget=self._budget)
        except ABTestingError as exc:
            self._failures += 1
            self._next_refresh = time.monotonic() + min(60.0, 2.0**self._failures)
            if self.strict:
                raise
            logger.warning("ab_testing_client could not fetch definitions: %s", exc)
            return
        self._failures = 0
        self._next_refresh = time.monotonic() + self.refresh_interval
        if answer.status == 304:
            return
        document = answer.json()
        if document.get("algorithm") not in ALGORITHMS:
            logger.error(
                "ab_testing_client: the service assigns with %r, this client knows %r; "
                "asking the service for every unit",
                document.get("algorithm"),
                " or ".join(ALGORITHMS),
            )
            self.local_evaluation = False
            return
        parsed = [Definition.from_json(e) for e in document.get("experiments", [])]
        with self._lock:
            self._definitions = {d.name: d for d in parsed}
            self._etag = answer.headers.get("etag")
            self._version += 1

    # ------------------------------------------------------------------ fork
    def _forked(self) -> None:
        """In a child made by fork (gunicorn --preload, uWSGI, Celery prefork,
        multiprocessing): only the forking thread exists there, and what the parent holds is
        the parent's. The child gets its own locks, connections and sender thread (started
        with its first item), and none of the parent's queued items (the parent sends
        those). It flushes at a normal exit (atexit), and a multiprocessing child also as
        its process ends (multiprocessing runs its finalizers, not atexit). A Celery prefork
        process ends with os._exit, neither: the README's recipe closes it on
        worker_process_shutdown."""
        self._lock = threading.Lock()
        self._wake = threading.Condition()
        self._worker = None
        self.api.forked()
        self.outbox.forked()
        forked = getattr(self._transport, "forked", None)
        if forked is not None:
            forked()
        # multiprocessing clears its finalizers after the fork: registered with the first item
        self._finalize_in_child = not self._closed

    def _finalize_at_process_end(self) -> None:
        self._finalize_in_child = False
        if "multiprocessing.util" in sys.modules:
            from multiprocessing.util import Finalize

            Finalize(None, self.close, exitpriority=10)

    # ------------------------------------------------------------------ background
    def _queue(self, kind: str, item: dict[str, Any]) -> None:
        self._queue_all(kind, [item])

    def _queue_all(self, kind: str, items: list[dict[str, Any]]) -> None:
        waiting = self.outbox.add_all(kind, items)
        self._ensure_worker()
        if waiting >= self.outbox.batch_size:
            with self._wake:
                self._wake.notify()

    def _ensure_worker(self) -> None:
        if self._finalize_in_child:
            self._finalize_at_process_end()
        if self._worker is not None or not self.background or self._closed:
            return
        with self._lock:
            if self._worker is None:
                self._worker = threading.Thread(
                    target=self._work, name="ab-testing-client", daemon=True
                )
                self._worker.start()

    def _work(self) -> None:
        send_failures = 0
        next_send = 0.0
        while not self._closed:
            with self._wake:
                self._wake.wait(timeout=self.flush_interval)
            if self._closed:
                return
            now = time.monotonic()
            try:
                if self.outbox.pending() and now >= next_send:
                    ok = self.outbox.send_all()
                    send_failures = 0 if ok else send_failures + 1
                    if send_failures:  # back off while the service is away
                        next_send = now + min(60.0, self.flush_interval * 2**send_failures)
                if self.local_evaluation and now >= self._next_refresh:
                    self._fetch_definitions()
            except Exception:  # the sender must outlive any surprise
                logger.exception("ab_testing_client background thread")
