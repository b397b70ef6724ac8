"""The HTTP side: a ThreadingHTTPServer that hands every request to the Gateway."""

from __future__ import annotations

import contextlib
import json
import logging
import socket
import threading
import time
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from emulator.dynamo import Pending, deferred_durability
from emulator.gateway import Gateway, Request, json_response
from emulator.lambdas import HttpResponse

log = logging.getLogger("emulator.http")

MAX_BODY = 10 * 1024 * 1024  # API Gateway's payload limit
NO_BODY_STATUSES = frozenset({204, 304})
CLIENT_TIMEOUT = 30.0  # seconds a client may stay silent (API Gateway's own limit is 29 s)
# Seconds from the first byte of a request to the end of its headers, however it dribbles in
# (the silence limit alone lets a client send a header line every few seconds for ever).
HEAD_TIMEOUT = 10.0
HANDLERS_AT_ONCE = 8  # requests inside the gateway and handlers at one time
DRAIN_TIMEOUT = 60.0  # seconds stop() waits for the requests in flight to be answered


class HeadWatch:
    """Cuts off a connection whose request head is not complete by its deadline: one thread
    for the whole server, looking twice a second."""

    def __init__(self, seconds: float) -> None:
        self.seconds = seconds
        self._deadlines: dict[int, tuple[float, socket.socket]] = {}
        self._cut: set[int] = set()
        self._lock = threading.Lock()
        self._thread: threading.Thread | None = None

    def begin(self, key: int, connection: socket.socket) -> None:
        with self._lock:
            self._deadlines[key] = (time.monotonic() + self.seconds, connection)
            if self._thread is None:
                self._thread = threading.Thread(target=self._run, name="head-watch", daemon=True)
                self._thread.start()

    def end(self, key: int) -> bool:
        """The head is complete (or the request over); True when it was cut off first (what
        was read of it must not be served: a shut-down socket reads as the end of it)."""
        with self._lock:
            self._deadlines.pop(key, None)
            if key in self._cut:
                self._cut.discard(key)
                return True
            return False

    def _run(self) -> None:
        while True:
            time.sleep(min(0.5, self.seconds / 4))
            now = time.monotonic()
            with self._lock:
                late = [k for k, (deadline, _) in self._deadlines.items() if deadline <= now]
                connections = [self._deadlines.pop(k)[1] for k in late]
                self._cut.update(late)
            for connection in connections:
                with contextlib.suppress(OSError):  # already closed by the client
                    connection.shutdown(socket.SHUT_RDWR)


class ApiHTTPServer(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True
    request_queue_size = 128  # the listen backlog: socketserver's 5 resets bursts of clients

    def __init__(
        self,
        address: tuple[str, int],
        gateway: Gateway,
        client_timeout: float = CLIENT_TIMEOUT,
        listener: socket.socket | None = None,
        head_timeout: float = HEAD_TIMEOUT,
    ) -> None:
        """Binds `address`, or serves from `listener`, a socket already listening."""
        super().__init__(address, ApiRequestHandler, bind_and_activate=listener is None)
        if listener is not None:
            self.socket.close()
            self.socket = listener
            self.server_address = listener.getsockname()
            self.server_name = str(self.server_address[0])
            self.server_port = int(self.server_address[1])
        self.gateway = gateway
        self.client_timeout = client_timeout
        self.head_watch = HeadWatch(head_timeout)
        # Python runs one thread at a time: past a few requests in the handlers at once, more
        # only add switching and queueing inside; a few overlap their waits for the journal.
        # benchmarks/bench_local_api.py, 12 threads, 25 s: p99 about 143 ms with 4 slots,
        # 97-111 ms with 8, no better with 16.
        self.handler_slots = threading.BoundedSemaphore(HANDLERS_AT_ONCE)
        self.stopping = threading.Event()  # set once stop() began: no request starts after
        self._in_flight = 0
        self._in_flight_changed = threading.Condition()

    def begin_request(self) -> bool:
        """Count a request in; False once stopping (the request must not be answered)."""
        with self._in_flight_changed:
            if self.stopping.is_set():
                return False
            self._in_flight += 1
            return True

    def end_request(self) -> None:
        with self._in_flight_changed:
            self._in_flight -= 1
            self._in_flight_changed.notify_all()

    def drain(self, timeout: float) -> bool:
        """Refuse every request from now on, including those on open keep-alive connections,
        and wait until the requests already in flight have their answers sent; False when
        some were still running after `timeout` seconds."""
        with self._in_flight_changed:
            self.stopping.set()
            return self._in_flight_changed.wait_for(lambda: self._in_flight == 0, timeout)


class ApiRequestHandler(BaseHTTPRequestHandler):
    server: ApiHTTPServer
    protocol_version = "HTTP/1.1"
    server_version = "abtest-local"

    def setup(self) -> None:
        # A client that stalls (mid-request or idle on a keep-alive connection) is cut off.
        super().setup()
        self.connection.settimeout(self.server.client_timeout)
        # Headers and body leave in two writes: without this, Nagle's algorithm holds the
        # body back until the client acknowledges the headers.
        self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    def handle_one_request(self) -> None:
        """One request, its head (request line and headers) within HEAD_TIMEOUT of its first
        byte; waiting for that first byte is bounded by the client timeout alone."""
        try:
            self.rfile.peek(1)  # type: ignore[attr-defined]  # a BufferedReader: blocks for a byte
        except OSError:  # the client timeout (TimeoutError), or a connection reset
            self.close_connection = True
            return
        watch = self.server.head_watch
        watch.begin(id(self), self.connection)
        try:
            super().handle_one_request()
        finally:
            watch.end(id(self))

    def parse_request(self) -> bool:
        parsed = super().parse_request()  # reads the headers
        if self.server.head_watch.end(id(self)):
            seconds = self.server.head_watch.seconds
            log.info("request head not complete within %.0f s: connection closed", seconds)
            self.close_connection = True
            return False
        return parsed

    def _handle(self) -> None:
        started = time.perf_counter()
        if not self.server.begin_request():
            # The server is stopping: the connection closes with no answer, as if the server
            # had already gone, so the client knows that nothing was done.
            self.close_connection = True
            return
        try:
            response = self._response()
            if self.server.stopping.is_set():
                self.close_connection = True  # answer this one, then no more on this connection
            self._send(response)
        finally:
            self.server.end_request()
        elapsed = (time.perf_counter() - started) * 1000
        log.info("%s %s %d %.1fms", self.command, self.path, response.status, elapsed)

    def _read_body(self) -> bytes | None:
        """The request body; None when it is larger than API Gateway accepts."""
        if "chunked" in self.headers.get("Transfer-Encoding", "").lower():
            return self._read_chunked()
        length = int(self.headers.get("Content-Length") or 0)
        if length > MAX_BODY:
            return None
        return self.rfile.read(length) if length > 0 else b""

    def _read_chunked(self) -> bytes | None:
        body = bytearray()
        while True:
            size = int(self.rfile.readline().split(b";", 1)[0].strip() or b"0", 16)
            if size == 0:
                while self.rfile.readline() not in (b"\r\n", b"\n", b""):
                    pass  # trailers
                return bytes(body)
            if len(body) + size > MAX_BODY:
                return None
            body += self.rfile.read(size)
            self.rfile.readline()

    def _response(self) -> HttpResponse:
        try:
            body = self._read_body()
        except ValueError:  # a Content-Length or chunk size that is not a number
            self.close_connection = True
            return json_response(400, '{"message":"Bad Request: invalid body length"}')
        except TimeoutError:
            self.close_connection = True
            return json_response(408, '{"message":"Request Timeout"}')
        if body is None:
            self.close_connection = True
            return json_response(413, '{"message":"Request Too Long"}')
        request = Request(
            method=self.command,
            target=self.path,
            headers=list(self.headers.items()),
            body=body,
            source_ip=self.client_address[0],
        )
        # Once the body is read (a slow client holds no slot); the answer waits for its writes
        # to be durable after the slot is given back, so the next handler runs meanwhile.
        with deferred_durability() as pending:
            try:
                with self.server.handler_slots:
                    response = self.server.gateway.handle(request)
            finally:
                unsynced = _wait_durable(pending)
        if unsynced is not None:  # the handler's answer never leaves: it may not be kept
            return not_durable_response(unsynced)
        return response

    def _send(self, response: HttpResponse) -> None:
        self.send_response(response.status)
        for name, value in response.headers:
            if name.lower() not in ("content-length", "connection", "transfer-encoding"):
                self.send_header(name, value)
        body = b"" if response.status in NO_BODY_STATUSES else response.body
        if response.status not in NO_BODY_STATUSES:
            self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if self.command != "HEAD" and body:
            self.wfile.write(body)

    do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = do_HEAD = do_OPTIONS = _handle

    def __getattr__(self, name: str) -> Any:
        """Any other method (TRACE, QUERY, ...) goes to the gateway too, as API Gateway takes
        it: a resource's ANY route answers it (405), an unknown path its 404."""
        if name.startswith("do_"):
            return self._handle
        raise AttributeError(name)

    def send_error(self, code: int, message: str | None = None, explain: str | None = None) -> None:
        """The stdlib's own refusals (unknown method, malformed request line, headers too
        long) as JSON, as every other answer, not its HTML page."""
        phrase = message or HTTPStatus(code).phrase
        body = json.dumps({"message": phrase}).encode()
        self.log_error("code %d, message %s", code, phrase)
        self.send_response(code, phrase)
        self.send_header("Content-Type", "application/json")
        self.send_header("Connection", "close")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.close_connection = True
        if self.command != "HEAD" and code >= 200 and code not in NO_BODY_STATUSES:
            self.wfile.write(body)

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - stdlib signature
        """The one line per request comes from _handle; keep the stdlib's lines quiet."""
        log.debug(format, *args)


class ServerThread:
    """Serves the API in a background thread until stop()."""

    def __init__(
        self,
        host: str,
        port: int,
        gateway: Gateway,
        client_timeout: float = CLIENT_TIMEOUT,
        listener: socket.socket | None = None,
        head_timeout: float = HEAD_TIMEOUT,
    ) -> None:
        self.httpd = ApiHTTPServer((host, port), gateway, client_timeout, listener, head_timeout)
        self._thread = threading.Thread(
            target=self.httpd.serve_forever, args=(0.1,), name="api-server", daemon=True
        )

    @property
    def url(self) -> str:
        host, port = self.httpd.server_address[:2]
        return f"http://{host!s}:{port}"

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        """Stop taking requests, new connections and open keep-alive ones alike, and return
        once every request that was taken has its answer sent (what comes after, such as the
        final save, then sees every write that was acknowledged and no write after it)."""
        if not self.httpd.drain(DRAIN_TIMEOUT):
            log.warning("stopping with requests still in flight after %.0f s", DRAIN_TIMEOUT)
        self.httpd.shutdown()
        self.httpd.server_close()
        self._thread.join()


def _wait_durable(pending: Pending) -> OSError | None:
    """Wait for what the request's calls wrote or saw to be durable; the error if it cannot
    be."""
    try:
        pending.wait()
    except OSError as exc:
        return exc
    return None


def not_durable_response(exc: OSError) -> HttpResponse:
    """The service's 503 for a request whose writes could not be made durable (its handler's
    answer is dropped: what it did may or may not be kept, so a retry is the way on)."""
    body = {
        "error": "unavailable",
        "message": (
            f"the local store could not sync its journal ({exc.strerror or exc}): this "
            f"request may or may not have been applied, please retry"
        ),
    }
    response = json_response(503, json.dumps(body))
    response.headers.append(("Retry-After", "1"))
    return response
