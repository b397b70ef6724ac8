"""Exposures and results waiting to be sent: bounded, batched, exposures before results.

Each result carries an idempotency key from the moment it is queued, so resending a batch
whose answer was lost counts nothing twice. Items the service refuses are handed to
``on_refusal`` and logged; items it failed on (5xx) are sent again with the same key.
"""

from __future__ import annotations

import logging
import threading
from collections import deque
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from ab_testing_client.answers import Refusal
from ab_testing_client.transport import Api, Rejected, Unavailable

if TYPE_CHECKING:  # the spool needs fcntl (POSIX): imported only when one is asked for
    from ab_testing_client.spool import Spool

EXPOSURES_PATH = "/api/v1/experiments/exposures"
RESULTS_PATH = "/api/v1/experiments/record-results"
MAX_BATCH = 100

logger = logging.getLogger("ab_testing_client")


class Outbox:
    def __init__(
        self,
        api: Api,
        *,
        batch_size: int = MAX_BATCH,
        max_queue: int = 50_000,
        on_refusal: Callable[[Refusal], None] | None = None,
        on_exposure: Callable[[dict[str, Any], dict[str, Any]], None] | None = None,
        send_timeout: float = 30.0,
        send_budget: float = 60.0,
        spool: Spool | None = None,
    ) -> None:
        if not 1 <= batch_size <= MAX_BATCH:
            raise ValueError(f"batch_size must be 1 to {MAX_BATCH}")
        self.api = api
        self.batch_size = batch_size
        self.max_queue = max_queue
        self.on_refusal = on_refusal
        self.on_exposure = on_exposure
        # Batches go from the background: they may take longer than a caller would wait
        # (100 writes; a Lambda has 29 s), so their timeout is their own.
        self.send_timeout = send_timeout
        self.send_budget = send_budget
        self.exposures: deque[dict[str, Any]] = deque()
        self.results: deque[dict[str, Any]] = deque()
        self.dropped = 0
        self.refused = 0
        self.results_sent = 0
        self.exposures_sent = 0
        self._lock = threading.Lock()
        self._sending = threading.Lock()
        self.spool = spool
        self._sids: dict[int, str] = {}  # id(queued item) -> its line in the spool
        if spool is not None:
            for sid, kind, item in spool.adopt():
                (self.exposures if kind == "exposure" else self.results).append(item)
                self._sids[id(item)] = sid

    def add(self, kind: str, item: dict[str, Any]) -> int:
        """Queues an item; returns how many are waiting (0 when it had to be dropped)."""
        return self.add_all(kind, [item])

    def add_all(self, kind: str, items: list[dict[str, Any]]) -> int:
        """Queues every item or none (the metrics of one request go or stay together);
        returns how many are waiting (0 when they had to be dropped)."""
        queue = self.exposures if kind == "exposure" else self.results
        with self._lock:
            if len(queue) + len(items) > self.max_queue:
                before = self.dropped
                self.dropped += len(items)
                dropped = self.dropped
            else:
                if self.spool is not None:
                    self._spool(kind, items)
                queue.extend(items)
                return len(self.exposures) + len(self.results)
        if before == 0 or dropped // 1000 > before // 1000:
            logger.warning(
                "ab_testing_client queue full (max_queue=%d): %d %ss dropped so far",
                self.max_queue,
                dropped,
                kind,
            )
        return 0

    def _spool(self, kind: str, items: list[dict[str, Any]]) -> None:
        """Write the items to the spool before they are queued (the caller holds the lock)."""
        assert self.spool is not None
        entries = [(self.spool.new_id(), kind, item) for item in items]
        try:
            self.spool.write(entries)
        except OSError as exc:  # queued all the same: sent if this process lives
            logger.warning("ab_testing_client could not spool %d %ss: %s", len(items), kind, exc)
            return
        for sid, _, item in entries:
            self._sids[id(item)] = sid

    def forked(self) -> None:
        """In a forked child: new locks; the parent's queued items stay the parent's."""
        self._lock = threading.Lock()
        self._sending = threading.Lock()
        self.exposures.clear()
        self.results.clear()
        self._sids.clear()
        if self.spool is not None:
            self.spool.forked()

    def pending(self) -> int:
        with self._lock:
            return len(self.exposures) + len(self.results)

    def send_all(self, exposures_only: bool = False) -> bool:
        """Sends everything queued, exposures first; False when the service is unavailable
        (what is left stays queued)."""
        with self._sending:
            while True:
                kind, queue, path, key = "exposure", self.exposures, EXPOSURES_PATH, "exposures"
                with self._lock:
                    if not self.exposures and exposures_only:
                        return True
                    if not self.exposures:
                        kind, queue, path, key = "result", self.results, RESULTS_PATH, "results"
                    batch = [queue[i] for i in range(min(self.batch_size, len(queue)))]
                if not batch:
                    return True
                try:
                    answer = self.api.call(
                        "POST",
                        path,
                        {key: batch},
                        budget=self.send_budget,
                        timeout=self.send_timeout,
                    )
                    answers = (answer.json() or {}).get("results", [])
                except Unavailable as exc:
                    logger.warning("ab_testing_client could not send %ss: %s", kind, exc)
                    return False
                except Rejected as exc:
                    body = exc.body if isinstance(exc.body, dict) else {"message": str(exc.body)}
                    answers = [
                        {"index": i, "status": exc.status, **body} for i in range(len(batch))
                    ]
                retry = self._settle(kind, batch, answers)
                with self._lock:
                    for _ in batch:
                        queue.popleft()
                    queue.extendleft(reversed(retry))
                    if self.spool is not None:
                        kept = {id(item) for item in retry}
                        settled = [
                            self._sids.pop(id(item), None) for item in batch if id(item) not in kept
                        ]
                        self.spool.done([sid for sid in settled if sid])
                if retry:
                    return False  # the service failed on some: try again on the next round

    def _settle(
        self, kind: str, batch: list[dict[str, Any]], answers: list[dict[str, Any]]
    ) -> list[dict[str, Any]]:
        by_index = {int(a.get("index", -1)): a for a in answers}
        retry: list[dict[str, Any]] = []
        for index, item in enumerate(batch):
            answer = by_index.get(index, {"status": 500, "message": "no answer for this item"})
            status = int(answer.get("status", 500))
            if status >= 500:
                retry.append(item)
                continue
            if kind == "exposure":
                self._exposed(item, answer, status)
            elif status < 400 and answer.get("recorded"):
                self.results_sent += 1
            else:
                self._refuse(kind, item, answer, status)
        return retry

    def _exposed(self, item: dict[str, Any], answer: dict[str, Any], status: int) -> None:
        if status < 400:
            self.exposures_sent += 1
        else:
            self._refuse("exposure", item, answer, status)
        if self.on_exposure is not None:
            self.on_exposure(item, answer)

    def _refuse(self, kind: str, item: dict[str, Any], answer: dict[str, Any], status: int) -> None:
        self.refused += 1
        refusal = Refusal(
            kind=kind,
            item=item,
            status=status,
            reason=str(answer.get("reason") or answer.get("error") or "refused"),
            message=str(answer.get("message", "")),
        )
        logger.warning(
            "ab_testing_client: the service did not count a %s (%s): %s",
            kind,
            refusal.reason,
            refusal.message,
        )
        if self.on_refusal is not None:
            try:
                self.on_refusal(refusal)
            except Exception:  # a caller's callback must not stop the sender
                logger.exception("ab_testing_client on_refusal callback failed")
