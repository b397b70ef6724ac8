"""An in-process stand-in for the service's data plane, speaking the client's Transport.

It keeps a ledger (first writer wins) and counts results by idempotency key, so tests can
tell "sent twice" from "counted twice". Faults are scripted per path, in order.
"""

from __future__ import annotations

import json
from collections import defaultdict, deque
from collections.abc import Callable
from typing import Any

from ab_testing_client.assignment import ranges_from_allocations
from ab_testing_client.transport import Response

SALT = "9f1c2a7be04d3c55"


def definition(**changes: Any) -> dict[str, Any]:
    variants = [
        {
            "id": 1,
            "name": "Control",
            "is_control": True,
            "traffic_allocation": 50.0,
            "config": {"system_prompt": "control"},
        },
        {
            "id": 2,
            "name": "Treatment",
            "is_control": False,
            "traffic_allocation": 50.0,
            "config": {"system_prompt": "treatment"},
        },
    ]
    base: dict[str, Any] = {
        "id": 7,
        "name": "Prompt Test",
        "status": "running",
        "salt": SALT,
        "target_percentage": 100.0,
        "max_target_percentage": 100.0,
        "variants": variants,
        "ranges": [list(r) for r in ranges_from_allocations([50.0, 50.0], [1, 2])],
        "changed_ranges": [],
        "overrides": {},
        "promoted": False,
        "winner_variant_id": None,
    }
    base.update(changes)
    return base


class FakeService:
    def __init__(self, *experiments: dict[str, Any]) -> None:
        self.experiments = list(experiments) or [definition()]
        self.etag = '"v1"'
        self.algorithm = "sha256-53bit-ranges-v1"
        self.calls: list[tuple[str, str, Any, dict[str, str]]] = []
        self.faults: dict[str, deque[Any]] = defaultdict(deque)
        self.ledger: dict[tuple[int, str], int] = {}
        self.counted: dict[str, int] = defaultdict(int)  # idempotency key -> times counted
        self.refuse_metrics: set[str] = set()
        self.failing_keys: set[str] = set()  # answered 503 per item, once
        self.after: dict[str, Callable[[], None]] = {}  # called once a path has answered
        # Answered by get-variant, not yet in the definitions (an experiment just started).
        self.unpublished: list[dict[str, Any]] = []

    # ---------------------------------------------------------------- scripting
    def fail(self, path: str, *faults: Any) -> None:
        """Each fault is an int status (with optional headers as a tuple) or an exception;
        "lost" commits the request and then loses the answer."""
        self.faults[path].extend(faults)

    def calls_metrics(self) -> list[str]:
        """The metric of every result sent, in order (resends included)."""
        return [
            r["metric_name"]
            for _, path, body, _ in self.calls
            if path.endswith("/record-results")
            for r in body["results"]
        ]

    def paths(self) -> list[str]:
        return [path for _, path, _, _ in self.calls]

    # ---------------------------------------------------------------- transport
    def send(
        self, method: str, path: str, body: bytes | None, headers: dict[str, str], timeout: float
    ) -> Response:
        data = json.loads(body) if body else None
        self.calls.append((method, path, data, dict(headers)))
        fault = self.faults[path].popleft() if self.faults[path] else None
        if isinstance(fault, BaseException):
            raise fault
        if isinstance(fault, tuple):
            return self._json(fault[0], {"error": "fault"}, fault[1])
        if isinstance(fault, int):
            return self._json(fault, {"error": "fault"})
        answer = self._route(method, path, data, headers)
        if path in self.after:
            self.after[path]()
        if fault == "lost":
            raise ConnectionResetError("the answer was lost after the server committed")
        return answer

    def _route(self, method: str, path: str, data: Any, headers: dict[str, str]) -> Response:
        if path.endswith("/definitions"):
            if headers.get("If-None-Match") == self.etag:
                return Response(304, {"etag": self.etag}, b"")
            document = {"algorithm": self.algorithm, "experiments": self.experiments}
            return self._json(200, document, {"etag": self.etag})
        if path.endswith("/exposures"):
            return self._json(
                200, {"results": [self._expose(i, e) for i, e in enumerate(data["exposures"])]}
            )
        if path.endswith("/record-results"):
            return self._json(
                200, {"results": [self._record(i, r) for i, r in enumerate(data["results"])]}
            )
        if path.endswith("/get-variant"):
            named = [
                e
                for e in self.experiments + self.unpublished
                if e["name"] == data.get("experiment_name")
            ]
            if not named:
                return self._json(404, {"error": "not_found", "message": "no such experiment"})
            return self._json(200, self._get_variant(named[0], data))
        return self._json(404, {"error": "not_found"})

    def _unit(self, item: dict[str, Any]) -> str:
        if item.get("user_id") is not None:
            return f"user:{item['user_id']}"
        return f"session:{item['session_id']}"

    def _expose(self, index: int, item: dict[str, Any]) -> dict[str, Any]:
        key = (item["experiment_id"], self._unit(item))
        created = key not in self.ledger
        self.ledger.setdefault(key, item["variant_id"])
        return {
            "index": index,
            "status": 201 if created else 200,
            "variant_id": self.ledger[key],
            "reason": "assigned" if created else "existing_assignment",
        }

    def _record(self, index: int, item: dict[str, Any]) -> dict[str, Any]:
        key = item["idempotency_key"]
        if key in self.failing_keys:
            self.failing_keys.discard(key)
            return {"index": index, "status": 503, "error": "unavailable"}
        if item["metric_name"] in self.refuse_metrics:
            return {
                "index": index,
                "status": 400,
                "error": "validation_error",
                "message": f"metric {item['metric_name']!r} is not declared",
            }
        duplicate = key in self.counted
        self.counted[key] += 0 if duplicate else 1
        return {
            "index": index,
            "status": 200 if duplicate else 201,
            "recorded": True,
            "duplicate": duplicate,
        }

    def _get_variant(self, experiment: dict[str, Any], data: dict[str, Any]) -> dict[str, Any]:
        if experiment["status"] not in ("running", "paused"):
            return {"variant": None, "reason": "experiment_not_running"}
        key = (experiment["id"], self._unit(data))
        created = key not in self.ledger
        variant_id = self.ledger.setdefault(key, experiment["variants"][0]["id"])
        variant = next(v for v in experiment["variants"] if v["id"] == variant_id)
        return {"variant": variant, "reason": "assigned" if created else "existing_assignment"}

    @staticmethod
    def _json(status: int, body: Any, headers: dict[str, str] | None = None) -> Response:
        return Response(
            status, {k.lower(): v for k, v in (headers or {}).items()}, json.dumps(body).encode()
        )


class FakeHttpService:
    """A FakeService behind a real HTTP server on 127.0.0.1, for clients in other processes
    (a forked child reaches it over TCP; what it counts stays in this process)."""

    def counted(self, prefix: str) -> int:
        """Results counted whose idempotency key starts with ``prefix`` (one test's own)."""
        return sum(1 for key in self.fake.counted if key.startswith(prefix))

    def __init__(self, fake: FakeService) -> None:
        import threading
        import time
        from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

        lock = threading.Lock()
        outer = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def _answer(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length) if length else None
                if outer.delay:
                    time.sleep(outer.delay)  # a slow service (each request in its own thread)
                with lock:
                    answer = fake.send(self.command, self.path, body, dict(self.headers), 5.0)
                self.send_response(answer.status)
                for name, value in answer.headers.items():
                    self.send_header(name, value)
                self.send_header("Content-Length", str(len(answer.body)))
                self.end_headers()
                self.wfile.write(answer.body)

            do_GET = do_POST = _answer

            def log_message(self, *args: Any) -> None:
                pass

        self.fake = fake
        self.delay = 0.0  # seconds before each answer
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()
