"""Handler processes: the API served by processes of its own, DynamoDB by the one that holds it.

Python runs one thread at a time, so one process serving HTTP, running the handlers and
answering DynamoDB uses one core at most. With ``abtest serve --workers N`` (N >= 1) the
process that owns the tables and their journal (emulator.service.Backend) only answers
DynamoDB calls, and N worker processes take the API's connections from one listening socket,
each with its gateway, handlers and IAM check, as Lambda runs a function in execution
environments of its own. A worker's DynamoDB calls go to the owner over a Unix socket
(`StoreServer`); they are answered there exactly as the owner's own calls are (one call at a
time under one lock, every write journaled), and a write's answer is sent back only once it is
durable, so no worker can acknowledge a write a crash would lose.

A worker dies with the owner: on Linux the kernel kills it when the owner exits (even by
SIGKILL), elsewhere it notices that the pipe from the owner was closed. A worker that dies on
its own is started again.
"""

from __future__ import annotations

import contextlib
import io
import json
import logging
import os
import pickle
import selectors
import shutil
import signal
import socket
import socketserver
import struct
import subprocess
import sys
import tempfile
import threading
from collections.abc import Mapping
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from emulator.dynamo import JSON_CONTENT, Answering

if TYPE_CHECKING:
    from emulator.service import Settings

log = logging.getLogger("emulator.workers")

CONFIG_ENV = "AB_WORKER_CONFIG"
PACKAGE_PARENT = Path(__file__).resolve().parent.parent
READY_TIMEOUT = 60.0  # seconds a new worker may take to import everything and listen
RESTARTS = 3  # a worker that fails to start this many times in a row: the server gives up
STOP_TIMEOUT = 90.0  # seconds a worker may take to answer what it has in flight and exit
_LENGTH = struct.Struct(">I")
UNREACHABLE_ANSWER = (
    b'{"__type":"com.amazonaws.dynamodb.v20120810#InternalServerError",'
    b'"message":"the local DynamoDB could not be reached: the call may not have been applied"}'
)
FAILED_ANSWER = (
    b'{"__type":"com.amazonaws.dynamodb.v20120810#InternalServerError",'
    b'"message":"the local DynamoDB failed on this call"}'
)


def _send(sock: socket.socket, value: Any) -> None:
    payload = pickle.dumps(value, protocol=pickle.HIGHEST_PROTOCOL)
    sock.sendall(_LENGTH.pack(len(payload)) + payload)


def _receive(stream: io.BufferedIOBase) -> Any:
    """The next value on a connection; None once the other side has closed it."""
    head = stream.read(_LENGTH.size)
    if len(head) < _LENGTH.size:
        return None
    (length,) = _LENGTH.unpack(head)
    payload = stream.read(length)
    if len(payload) < length:
        return None
    return pickle.loads(payload)  # noqa: S301 - only this program's own processes connect


# ---------------------------------------------------------------------------- the owner's side


class _StoreConnection(socketserver.StreamRequestHandler):
    server: StoreServer

    def handle(self) -> None:
        while (call := _receive(self.rfile)) is not None:
            method, target, headers, params = call
            try:
                answer = self.server.answering._answer(method, target, headers, params)
            except Exception:
                log.exception("a DynamoDB call from a worker failed")
                answer = (500, {"Content-Type": JSON_CONTENT}, FAILED_ANSWER)
            _send(self.connection, answer)


class StoreServer(socketserver.ThreadingUnixStreamServer):
    """Answers the workers' DynamoDB calls with this process's `answering`, one thread per
    connection (a worker holds one connection per call in progress). The socket lives in a
    directory only this user can enter."""

    daemon_threads = True

    def __init__(self, answering: Answering) -> None:
        self.directory = Path(tempfile.mkdtemp(prefix="abtest-store-"))
        self.path = str(self.directory / "dynamodb.sock")
        self.answering = answering
        super().__init__(self.path, _StoreConnection)
        self._thread = threading.Thread(
            target=self.serve_forever, args=(0.1,), name="store-server", daemon=True
        )

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self.shutdown()
        self.server_close()
        self._thread.join()
        shutil.rmtree(self.directory, ignore_errors=True)


# ---------------------------------------------------------------------------- the worker's side


class RemoteDynamo(Answering):
    """Answers this process's DynamoDB clients with what the owner's `StoreServer` answers."""

    def __init__(self, path: str) -> None:
        self.path = path
        self._idle: list[tuple[socket.socket, io.BufferedIOBase]] = []
        self._lock = threading.Lock()

    def _connection(self) -> tuple[socket.socket, io.BufferedIOBase]:
        with self._lock:
            if self._idle:
                return self._idle.pop()
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        sock.connect(self.path)
        return sock, sock.makefile("rb")

    def _answer(
        self, method: str, target: str, headers: Mapping[str, Any], params: bytes
    ) -> tuple[int, Any, Any]:
        plain = {str(name): value for name, value in headers.items()}
        try:
            sock, stream = self._connection()
        except OSError:
            log.error("the local DynamoDB at %s cannot be reached", self.path)
            return 500, {"Content-Type": JSON_CONTENT}, UNREACHABLE_ANSWER
        try:
            _send(sock, (method, target, plain, params))
            answer = _receive(stream)
        except OSError:
            answer = None
        if answer is None:  # the owner has gone (a worker is then killed with it)
            stream.close()
            sock.close()
            return 500, {"Content-Type": JSON_CONTENT}, UNREACHABLE_ANSWER
        with self._lock:
            self._idle.append((sock, stream))
        status, answered, body = answer
        return int(status), answered, body

    def close(self) -> None:
        with self._lock:
            idle, self._idle = self._idle, []
        for sock, stream in idle:
            stream.close()
            sock.close()


@dataclass
class WorkerConfig:
    """What a worker needs to serve as the owner would (sent as JSON in its environment)."""

    settings: str  # the owner's emulator.service.Settings, as JSON
    owner: int  # the owner's pid
    store_socket: str
    listen_fd: int
    ready_fd: int


def _die_with_owner(owner: int) -> None:
    """Be killed when the owner exits, however it exits."""
    if sys.platform.startswith("linux"):
        import ctypes

        pr_set_pdeathsig = 1
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(pr_set_pdeathsig, signal.SIGKILL)
    if os.getppid() != owner:  # the owner died before the line above
        os._exit(1)

    def watch() -> None:  # everywhere: the pipe from the owner closes when it exits
        # os.read, not sys.stdin: a thread blocked in a buffered read at exit aborts Python.
        with contextlib.suppress(OSError):
            while os.read(0, 4096):
                pass
        os._exit(1)

    threading.Thread(target=watch, name="owner-watch", daemon=True).start()


def run_worker() -> int:
    """The body of ``abtest worker`` (started by `WorkerPool`, never by hand)."""
    import gc

    from emulator import iam
    from emulator.dynamo import configure_aws_environment
    from emulator.lambdas import FunctionLoader
    from emulator.server import ServerThread
    from emulator.service import Settings, api_gateway, prepare_functions, scheduled_runner
    from emulator.template import load_template

    config = WorkerConfig(**json.loads(os.environ.pop(CONFIG_ENV)))
    _die_with_owner(config.owner)
    stop = threading.Event()
    for stop_signal in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
        signal.signal(stop_signal, lambda *_: stop.set())
    # What the owner's Backend does before any handler is imported, with the owner's DynamoDB.
    settings = Settings.from_json(config.settings)
    template = load_template(settings.template)
    iam.install(iam.Enforcer.from_template(template, settings.parameters))
    configure_aws_environment()
    remote = RemoteDynamo(config.store_socket)
    remote.activate()
    prepare_functions(settings, template)
    loader = FunctionLoader(settings.base_dir)
    scheduled = scheduled_runner(settings, template, loader)
    gateway = api_gateway(settings, template, loader, scheduled)
    listener = socket.socket(fileno=config.listen_fd)
    listener.setblocking(False)  # several workers accept from it: one wins, none waits
    server = ServerThread("", 0, gateway, settings.client_timeout, listener=listener)
    server.start()
    gc.collect()
    gc.freeze()
    os.write(config.ready_fd, b"ready\n")
    os.close(config.ready_fd)
    while not stop.wait(0.5):
        pass
    server.stop()
    remote.close()
    return 0


# ---------------------------------------------------------------------------- the pool


class WorkersFailed(RuntimeError):
    """No worker can be started: the server cannot answer anything."""


class WorkerPool:
    """The listening socket, the store server and `count` workers serving from them."""

    def __init__(self, answering: Answering, settings: Settings) -> None:
        self.count = settings.workers
        address = (settings.host, settings.port)
        self.listener = socket.create_server(address, family=socket.AF_INET, backlog=128)
        try:
            self.store = StoreServer(answering)
        except BaseException:
            self.listener.close()
            raise
        self._settings = settings.to_json()
        self.processes: list[subprocess.Popen[bytes]] = []
        self._failures = 0  # restarts that failed in a row
        self._reported: set[int] = set()  # workers whose exit was logged

    @property
    def url(self) -> str:
        host, port = self.listener.getsockname()[:2]
        return f"http://{host!s}:{port}"

    def start(self) -> None:
        self.store.start()
        for _ in range(self.count):
            self.processes.append(self._spawn())  # listed at once: stop() ends those started

    def _spawn(self) -> subprocess.Popen[bytes]:
        ready_r, ready_w = os.pipe()
        config = WorkerConfig(
            settings=self._settings,
            owner=os.getpid(),
            store_socket=self.store.path,
            listen_fd=self.listener.fileno(),
            ready_fd=ready_w,
        )
        env = {**os.environ, CONFIG_ENV: json.dumps(asdict(config))}
        try:
            # On Linux a worker is killed when the thread that started it ends: that is the
            # thread that runs `serve` to its end (or a test's), and `check()` runs there too.
            process = subprocess.Popen(
                [sys.executable, "-m", "emulator", "worker"],
                cwd=PACKAGE_PARENT,  # `-m emulator` finds this very package
                stdin=subprocess.PIPE,
                pass_fds=(self.listener.fileno(), ready_w),
                env=env,
                start_new_session=True,  # Ctrl-C and a closing terminal reach the owner only
            )
        except BaseException:
            os.close(ready_r)
            raise
        finally:
            os.close(ready_w)
        try:
            with selectors.DefaultSelector() as selector:
                selector.register(ready_r, selectors.EVENT_READ)
                said = os.read(ready_r, 64) if selector.select(READY_TIMEOUT) else b""
        finally:
            os.close(ready_r)
        if said != b"ready\n":
            process.kill()
            process.wait()
            raise RuntimeError(f"a worker did not start (exit code {process.returncode})")
        log.info("worker %d serving", process.pid)
        return process

    def check(self) -> None:
        """Start again any worker that has died on its own; raises WorkersFailed once
        `RESTARTS` starts in a row have failed."""
        for index, process in enumerate(self.processes):
            if process.poll() is None:
                continue
            if process.pid not in self._reported:
                self._reported.add(process.pid)
                code = process.returncode
                log.error("worker %d exited with %s: starting another", process.pid, code)
            try:
                self.processes[index] = self._spawn()
            except (OSError, RuntimeError) as exc:
                self._failures += 1
                log.error("could not start a worker (%d of %d): %s", self._failures, RESTARTS, exc)
                if self._failures >= RESTARTS:
                    message = f"no worker could be started {RESTARTS} times in a row"
                    raise WorkersFailed(message) from exc
            else:
                self._failures = 0

    def stop(self) -> None:
        """Each worker answers what it has taken and exits; then no more DynamoDB calls."""
        for process in self.processes:
            if process.poll() is None:
                process.send_signal(signal.SIGTERM)
        for process in self.processes:
            try:
                process.wait(STOP_TIMEOUT)
            except subprocess.TimeoutExpired:
                log.warning("worker %d was still running after %.0f s", process.pid, STOP_TIMEOUT)
                process.kill()
                process.wait()
            if process.stdin is not None:
                process.stdin.close()
        self.listener.close()
        self.store.stop()
