"""HTTP with short timeouts, retries with exponential backoff and full jitter, Retry-After.

Network errors, timeouts, 429 and 5xx are retried until the attempts or the caller's time
budget run out; then ``Unavailable`` is raised and the client degrades (or, in strict mode,
lets it through). Other 4xx answers are the caller's problem and are not retried.
"""

from __future__ import annotations

import email.utils
import http.client
import json
import random
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Protocol
from urllib.parse import urlsplit

RETRIED_STATUSES = frozenset({429, 500, 502, 503, 504})


class ABTestingError(Exception):
    """Raised only in strict mode (or for a programming error such as a missing unit)."""


class Unavailable(ABTestingError):
    """The service could not be reached, or kept failing, within the attempts allowed."""


class Rejected(ABTestingError):
    """The service refused the request (a 4xx other than 429): retrying will not help."""

    def __init__(self, status: int, body: Any) -> None:
        message = body.get("message") if isinstance(body, dict) else None
        super().__init__(f"HTTP {status}: {message or body}")
        self.status = status
        self.body = body


@dataclass(frozen=True)
class Response:
    status: int
    headers: dict[str, str]  # lower-case names
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body) if self.body else None


class Transport(Protocol):
    """Sends one request. Raises OSError or http.client.HTTPException on network failure."""

    def send(
        self, method: str, path: str, body: bytes | None, headers: dict[str, str], timeout: float
    ) -> Response: ...


Signer = Callable[[str, str, bytes | None, dict[str, str]], dict[str, str]]


class HttpTransport:
    """http.client with one keep-alive connection per thread."""

    def __init__(self, base_url: str) -> None:
        parts = urlsplit(base_url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError(f"not an http(s) URL: {base_url!r}")
        self.base_url = base_url.rstrip("/")
        self._https = parts.scheme == "https"
        self._host = parts.hostname
        self._port = parts.port
        self._prefix = parts.path.rstrip("/")
        self._local = threading.local()
        self._all: list[http.client.HTTPConnection] = []
        self._lock = threading.Lock()

    def _connection(self, timeout: float) -> http.client.HTTPConnection:
        connection: http.client.HTTPConnection | None = getattr(self._local, "connection", None)
        if connection is None:
            kind = http.client.HTTPSConnection if self._https else http.client.HTTPConnection
            connection = kind(self._host, self._port, timeout=timeout)
            self._local.connection = connection
            with self._lock:
                self._all.append(connection)
        connection.timeout = timeout
        if connection.sock is not None:
            connection.sock.settimeout(timeout)
        return connection

    def send(
        self, method: str, path: str, body: bytes | None, headers: dict[str, str], timeout: float
    ) -> Response:
        connection = self._connection(timeout)
        try:
            connection.request(method, self._prefix + path, body=body, headers=headers)
            answer = connection.getresponse()
            data = answer.read()
        except BaseException:
            connection.close()  # a half-read connection must not serve the next request
            raise
        if answer.getheader("connection", "").lower() == "close":
            connection.close()
        return Response(answer.status, {k.lower(): v for k, v in answer.getheaders()}, data)

    def forked(self) -> None:
        """In a forked child: the parent's connections are the parent's (a request on a shared
        socket would interleave with the parent's). Closing the child's copies of their
        sockets leaves the parent's open."""
        for connection in self._all:
            connection.close()
        self._all = []
        self._local = threading.local()
        self._lock = threading.Lock()

    def close(self) -> None:
        with self._lock:
            for connection in self._all:
                connection.close()
            self._all.clear()


def retry_after_seconds(value: str | None, now: float | None = None) -> float | None:
    """Retry-After as seconds: a number of seconds or an HTTP date."""
    if not value:
        return None
    value = value.strip()
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, when.timestamp() - (time.time() if now is None else now))


@dataclass
class RetryPolicy:
    attempts: int = 4
    timeout: float = 2.0  # per attempt, connect and read
    backoff: float = 0.1  # first delay's upper bound; doubles each attempt
    max_backoff: float = 2.0
    max_retry_after: float = 30.0  # a longer Retry-After gives up at once


@dataclass
class Api:
    """The service's JSON API over a transport, with retries and a request counter."""

    transport: Transport
    api_key: str | None = None
    policy: RetryPolicy = field(default_factory=RetryPolicy)
    signer: Signer | None = None
    sleep: Callable[[float], None] = time.sleep
    clock: Callable[[], float] = time.monotonic
    jitter: Callable[[float, float], float] = random.uniform
    requests: int = 0
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def call(
        self,
        method: str,
        path: str,
        body: Any = None,
        *,
        headers: dict[str, str] | None = None,
        budget: float | None = None,
        timeout: float | None = None,
    ) -> Response:
        """The answer (2xx or 304), else Rejected (4xx) or Unavailable (after retries)."""
        data = None if body is None else json.dumps(body, separators=(",", ":")).encode()
        sent = {"Accept": "application/json", **(headers or {})}
        if data is not None:
            sent["Content-Type"] = "application/json"
        if self.api_key:
            sent["x-api-key"] = self.api_key
        if self.signer is not None:
            sent = self.signer(method, path, data, sent)
        deadline = None if budget is None else self.clock() + budget
        problem = "no attempt made"
        for attempt in range(self.policy.attempts):
            delay: float | None = None
            try:
                with self._lock:
                    self.requests += 1
                answer = self.transport.send(
                    method, path, data, sent, timeout or self.policy.timeout
                )
            except (OSError, http.client.HTTPException) as exc:
                problem = f"{type(exc).__name__}: {exc}"
            else:
                if answer.status not in RETRIED_STATUSES and answer.status < 500:
                    return self._checked(answer)
                problem = f"HTTP {answer.status}"
                delay = retry_after_seconds(answer.headers.get("retry-after"))
                if delay is not None and delay > self.policy.max_retry_after:
                    break
            if attempt == self.policy.attempts - 1:
                break
            if delay is None:
                cap = min(self.policy.max_backoff, self.policy.backoff * 2**attempt)
                delay = self.jitter(0.0, cap)
            if deadline is not None and self.clock() + delay > deadline:
                break
            self.sleep(delay)
        raise Unavailable(f"{method} {path} failed: {problem}")

    def forked(self) -> None:
        """In a forked child: a lock of its own (the parent's may have been held)."""
        self._lock = threading.Lock()

    @staticmethod
    def _checked(answer: Response) -> Response:
        if answer.status >= 400:
            try:
                body = answer.json()
            except ValueError:
                body = answer.body.decode(errors="replace")
            raise Rejected(answer.status, body)
        return answer
