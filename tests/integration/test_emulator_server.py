"""The local API for real: HTTP server, embedded DynamoDB, state file, schedule and CLI.

Each test uses a fake project under tmp_path: a tiny template, a fake layer and fake handlers.
"""

from __future__ import annotations

import contextlib
import http.client
import json
import os
import queue
import re
import signal
import socket
import subprocess
import sys
import textwrap
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from emulator.cli import build_parser, main, settings_from
from emulator.durable import StateLock
from emulator.gateway import Request, json_response
from emulator.lambdas import HttpResponse
from emulator.server import HANDLERS_AT_ONCE, ServerThread
from emulator.service import LocalService, Settings
from emulator.template import REPO_ROOT

TEMPLATE = """
AWSTemplateFormatVersion: "2010-09-09"
Transform: AWS::Serverless-2016-10-31
Parameters:
  TablePrefix:
    Type: String
    Default: "fake_"
Globals:
  Function:
    Handler: app.handler
    Timeout: 5
    Environment:
      Variables:
        ITEMS_TABLE: !Ref ItemsTable
        GREETING: !Sub "hello-${AWS::Region}"
Resources:
  SharedLayer:
    Type: AWS::Serverless::LayerVersion
    Properties:
      ContentUri: layers/shared/
  Api:
    Type: AWS::Serverless::Api
    Properties:
      StageName: test
      GatewayResponses:
        MISSING_AUTHENTICATION_TOKEN:
          StatusCode: "404"
          ResponseTemplates:
            application/json: '{"error": "not_found"}'
  EchoFunction:
    Type: AWS::Serverless::Function
    Properties:
      CodeUri: functions/echo/
      Layers: [!Ref SharedLayer]
      Policies:
        - Statement:
            - Effect: Allow
              Action: [dynamodb:GetItem, dynamodb:PutItem]
              Resource: !GetAtt ItemsTable.Arn
      Events:
        Put:
          Type: Api
          Properties: {RestApiId: !Ref Api, Path: /items, Method: POST}
        Get:
          Type: Api
          Properties: {RestApiId: !Ref Api, Path: "/items/{id}", Method: GET}
  AnalysisFunction:
    Type: AWS::Serverless::Function
    Properties:
      CodeUri: functions/analysis/
      Policies:
        - DynamoDBCrudPolicy: {TableName: !Ref ItemsTable}
      Events:
        Nightly:
          Type: Schedule
          Properties: {Schedule: rate(1 day)}
  ItemsTable:
    Type: AWS::DynamoDB::Table
    Properties:
      TableName: !Sub "${TablePrefix}items"
      BillingMode: PAY_PER_REQUEST
      AttributeDefinitions:
        - {AttributeName: pk, AttributeType: S}
      KeySchema:
        - {AttributeName: pk, KeyType: HASH}
"""

LAYER = """
def layer_tag():
    return "from-the-layer"
"""

ECHO = """
import json
import os

import boto3
from emulator_fake_layer import layer_tag

_db = boto3.client("dynamodb")


def handler(event, context):
    table = os.environ["ITEMS_TABLE"]
    if event["httpMethod"] == "POST":
        item = json.loads(event["body"])
        _db.put_item(TableName=table, Item={"pk": {"S": item["id"]}, "v": {"S": item["v"]}})
        return {"statusCode": 201, "body": json.dumps({"stored": item["id"]})}
    key = {"pk": {"S": event["pathParameters"]["id"]}}
    found = _db.get_item(TableName=table, Key=key).get("Item")
    body = {
        "event": event,
        "item": found,
        "layer": layer_tag(),
        "greeting": os.environ["GREETING"],
        "function": context.function_name,
        "pid": os.getpid(),
    }
    return {"statusCode": 200 if found else 404, "body": json.dumps(body)}
"""

ANALYSIS = """
import os

import boto3

_db = boto3.client("dynamodb")


def handler(event, context):
    table = os.environ["ITEMS_TABLE"]
    count = _db.scan(TableName=table, Select="COUNT")["Count"]
    _db.put_item(TableName=table, Item={"pk": {"S": "analysis"}, "v": {"S": str(count)}})
    return {"items_seen": count, "source": event["source"]}
"""


@pytest.fixture
def project(tmp_path: Path) -> Path:
    files = {
        "template.yaml": TEMPLATE,
        "layers/shared/emulator_fake_layer.py": LAYER,
        "functions/echo/app.py": ECHO,
        "functions/analysis/app.py": ANALYSIS,
    }
    for relative, text in files.items():
        path = tmp_path / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(textwrap.dedent(text), encoding="utf-8")
    return tmp_path


@pytest.fixture(autouse=True)
def isolated_process_state() -> Iterator[None]:
    """The emulator sets os.environ and sys.path for its handlers: undo that after each test."""
    environ, path = dict(os.environ), list(sys.path)
    modules = set(sys.modules)
    yield
    os.environ.clear()
    os.environ.update(environ)
    sys.path[:] = path
    for name in set(sys.modules) - modules:
        if name.startswith(("abtest_fn_", "emulator_fake_layer")):
            del sys.modules[name]


def settings_for(project: Path, **overrides: Any) -> Settings:
    values: dict[str, Any] = {
        "port": 0,
        "template": project / "template.yaml",
        "project_root": project,
        "state_file": project / "state" / "state.json",
        "schedule_interval": 0,
    }
    values.update(overrides)
    return Settings(**values)


def call(
    method: str, url: str, body: Any = None, headers: dict[str, str] | None = None
) -> tuple[int, dict[str, str], Any]:
    data = json.dumps(body).encode() if body is not None else None
    request = urllib.request.Request(url, data=data, method=method, headers=headers or {})
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            raw, status, got = response.read(), response.status, dict(response.headers)
    except urllib.error.HTTPError as error:
        raw, status, got = error.read(), error.code, dict(error.headers)
    return status, got, json.loads(raw) if raw else None


@pytest.fixture
def service(project: Path) -> Iterator[LocalService]:
    running = LocalService(settings_for(project))
    running.start()
    yield running
    running.stop()


def test_http_round_trip_through_a_handler(service: LocalService) -> None:
    # Given the local API running the fake project
    # When an item is created, then read back with a query string and a trailing slash
    created = call("POST", f"{service.url}/items", {"id": "a b", "v": "42"})
    status, headers, body = call("GET", f"{service.url}/items/a%20b/?x=1&x=2")
    # Then the handler wrote to and read from the embedded table
    assert created[0] == 201 and created[2] == {"stored": "a b"}
    assert status == 200
    assert body["item"] == {"pk": {"S": "a b"}, "v": {"S": "42"}}
    # And it got an API Gateway event, its layer and its environment
    event = body["event"]
    assert event["resource"] == "/items/{id}"
    assert event["path"] == "/items/a%20b/"
    assert event["pathParameters"] == {"id": "a b"}
    assert event["multiValueQueryStringParameters"] == {"x": ["1", "2"]}
    assert event["requestContext"]["path"] == "/local/items/a%20b/"
    assert body["layer"] == "from-the-layer"
    assert body["greeting"] == "hello-us-east-1"
    assert body["function"] == "EchoFunction"
    assert headers["Content-Type"] == "application/json"


def test_unknown_route_gets_the_templates_gateway_response(service: LocalService) -> None:
    # Given the running API / When an unknown route and an undefined method are requested
    unknown = call("GET", f"{service.url}/nothing/here")
    wrong_method = call("DELETE", f"{service.url}/items/1")
    # Then both get the template's MISSING_AUTHENTICATION_TOKEN response
    assert unknown[0] == wrong_method[0] == 404
    assert unknown[2] == {"error": "not_found"}


def test_chunked_body_and_head_request(service: LocalService) -> None:
    # Given the running API and a raw HTTP/1.1 connection
    host, port = service.url.removeprefix("http://").split(":")
    connection = http.client.HTTPConnection(host, int(port), timeout=30)
    try:
        # When an item is sent with a chunked body, then HEAD asks for it on the same connection
        chunks = iter([b'{"id": "chunk', b'ed", "v": "ok"}'])
        connection.request("POST", "/items", body=chunks, encode_chunked=True)
        posted = connection.getresponse()
        posted_body = json.loads(posted.read())
        connection.request("HEAD", "/items/chunked")
        head = connection.getresponse()
        head_body = head.read()
    finally:
        connection.close()
    # Then the whole body reached the handler, and HEAD answered like GET without a body
    assert (posted.status, posted_body) == (201, {"stored": "chunked"})
    assert head.status == 200
    assert head_body == b""
    assert int(head.headers["Content-Length"]) > 0


def test_state_survives_a_restart(project: Path) -> None:
    # Given a running API with an item written
    first = LocalService(settings_for(project))
    first.start()
    try:
        assert call("POST", f"{first.url}/items", {"id": "keep", "v": "me"})[0] == 201
        # Then the write is on disk, in the journal, by the time it is answered
        journals = list((project / "state").glob("state.json.journal.*"))
        assert len(journals) == 1 and '"keep"' in journals[0].read_text()
    finally:
        first.stop()
    # When a new server starts on the same state file
    second = LocalService(settings_for(project))
    second.start()
    try:
        status, _, body = call("GET", f"{second.url}/items/keep")
    finally:
        second.stop()
    # Then the item is there again
    assert status == 200
    assert body["item"]["v"] == {"S": "me"}


def test_scheduled_analysis_route_and_timer(project: Path) -> None:
    # Given an API whose schedule runs every 0.3 s
    running = LocalService(settings_for(project, schedule_interval=0.3))
    running.start()
    try:
        # When the timer has run once, then its handler wrote its "analysis" item
        assert running.scheduled is not None
        assert running.scheduled.wait_for_timer_runs(1, timeout=60), "the timer never ran"
        assert call("GET", f"{running.url}/items/analysis")[0] == 200
        # And when the internal route is called, the handler's return value comes back
        status, _, result = call("POST", f"{running.url}/_local/scheduled-analysis")
        assert status == 200
        assert result["source"] == "aws.events"
    finally:
        running.stop()


def test_local_api_key(project: Path) -> None:
    # Given an API started with a local API key
    running = LocalService(settings_for(project, admin_key="k3y"))
    running.start()
    try:
        # When requests come without and with the key
        without = call("GET", f"{running.url}/items/x")
        with_key = call("GET", f"{running.url}/items/x", headers={"x-api-key": "k3y"})
    finally:
        running.stop()
    # Then only the one with the key reaches the handler
    # (refused as this template's MISSING_AUTHENTICATION_TOKEN response says; ours is a 403)
    assert without[0] == 404 and without[2] == {"error": "not_found"}
    assert with_key[0] == 404 and with_key[2]["item"] is None


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def test_analyze_once_with_and_without_a_server(
    project: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # Given a state file with two items, saved by a server that has stopped
    options = ["--template", str(project / "template.yaml"), "--project-root", str(project)]
    options += ["--state-file", str(project / "state" / "state.json")]
    running = LocalService(settings_for(project))
    running.start()
    call("POST", f"{running.url}/items", {"id": "1", "v": "a"})
    call("POST", f"{running.url}/items", {"id": "2", "v": "b"})
    # When analyze-once asks the running server
    assert main(["analyze-once", "--url", running.url, *options]) == 0
    via_server = json.loads(capsys.readouterr().out)
    running.stop()
    # And when it runs with nothing listening
    assert main(["analyze-once", "--url", f"http://127.0.0.1:{free_port()}", *options]) == 0
    embedded = json.loads(capsys.readouterr().out)
    # Then both ran the scheduled handler on the saved items
    assert via_server == {"items_seen": 2, "source": "aws.events"}
    assert embedded == {"items_seen": 3, "source": "aws.events"}  # 2 items + the first analysis


def test_analyze_once_finds_the_server_that_owns_the_state_file(
    project: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # Given a server on a port of its own, owning the state file
    options = ["--template", str(project / "template.yaml"), "--project-root", str(project)]
    options += ["--state-file", str(project / "state" / "state.json")]
    running = LocalService(settings_for(project))
    running.start()
    try:
        call("POST", f"{running.url}/items", {"id": "1", "v": "a"})
        # When analyze-once is run with the default port (nothing told about that server)
        code = main(["analyze-once", "--port", str(free_port()), *options])
        # Then it asked that server, which saw the item
        assert code == 0
        assert json.loads(capsys.readouterr().out) == {"items_seen": 1, "source": "aws.events"}
    finally:
        running.stop()


def test_analyze_once_never_writes_a_state_file_owned_by_a_silent_process(
    project: Path, capsys: pytest.CaptureFixture[str], caplog: pytest.LogCaptureFixture
) -> None:
    # Given a state file owned by a process that does not answer
    state_file = project / "state" / "state.json"
    options = ["--template", str(project / "template.yaml"), "--project-root", str(project)]
    lock = StateLock(state_file)
    lock.acquire()
    lock.record(f"http://127.0.0.1:{free_port()}")
    try:
        # When analyze-once runs
        code = main(["analyze-once", *options, "--state-file", str(state_file)])
    finally:
        lock.release()
    # Then it refuses, saying who owns the file, and wrote nothing
    assert code == 1
    assert capsys.readouterr().out == ""
    assert "is in use by process" in caplog.text
    assert not state_file.exists()


def test_analyze_once_takes_the_same_port_setting_as_serve(monkeypatch: pytest.MonkeyPatch) -> None:
    # Given AB_PORT set for both commands / When analyze-once is parsed
    monkeypatch.setenv("AB_PORT", "9123")
    settings = settings_from(build_parser().parse_args(["analyze-once"]))
    # Then it will call the server on that port
    assert (settings.host, settings.port) == ("127.0.0.1", 9123)


@pytest.mark.parametrize("command", ["report", "analyze", "export"])
def test_the_client_commands_call_the_port_serve_takes(
    monkeypatch: pytest.MonkeyPatch, command: str
) -> None:
    # Given AB_PORT set, as for `make run` / When abtest report, analyze or export is parsed
    monkeypatch.setenv("AB_PORT", "9123")
    monkeypatch.delenv("AB_URL", raising=False)
    # Then it calls the local API on that port (AB_URL, when set, still wins)
    assert build_parser().parse_args([command, "1"]).url == "http://127.0.0.1:9123"
    monkeypatch.setenv("AB_URL", "http://elsewhere:1")
    assert build_parser().parse_args([command, "1"]).url == "http://elsewhere:1"


def read_lines(stream: Any, lines: queue.Queue[str]) -> None:
    for line in stream:
        lines.put(line)


def serve_in_subprocess(
    project: Path, *options: str
) -> tuple[subprocess.Popen[str], queue.Queue[str]]:
    """`python -m emulator serve` on the fake project; its output lines, log included."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_ENDPOINT_URL")}
    process = subprocess.Popen(
        [sys.executable, "-m", "emulator", "serve", "--port", "0", "--schedule-interval", "0"]
        + ["--template", str(project / "template.yaml"), "--project-root", str(project)]
        + ["--state-file", str(project / "state" / "state.json"), *options],
        cwd=REPO_ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    lines: queue.Queue[str] = queue.Queue()
    assert process.stdout is not None
    threading.Thread(target=read_lines, args=(process.stdout, lines), daemon=True).start()
    return process, lines


def next_match(lines: queue.Queue[str], pattern: str, timeout: float = 60) -> re.Match[str]:
    deadline = time.monotonic() + timeout
    while True:
        line = lines.get(timeout=max(0.01, deadline - time.monotonic()))
        found = re.search(pattern, line)
        if found:
            return found


@pytest.mark.e2e
@pytest.mark.parametrize("workers", ["0", "1"])
@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM, signal.SIGHUP])
def test_serve_subprocess_saves_and_exits_cleanly_on_signal(
    project: Path, signum: int, workers: str
) -> None:
    # Given `python -m emulator serve` running the fake project in a subprocess, with its
    # handlers in a worker process or in its own
    state_file = project / "state" / "state.json"
    process, lines = serve_in_subprocess(project, "--workers", workers)
    try:
        api = next_match(lines, r"API:\s+(\S+)").group(1)
        assert call("POST", f"{api}/items", {"id": "sig", "v": "nal"})[0] == 201
        # When the signal arrives
        process.send_signal(signum)
        code = process.wait(timeout=30)
    finally:
        if process.poll() is None:
            process.kill()
    # Then the process exits with 0 and the state file holds the item
    assert code == 0
    saved = json.loads(state_file.read_text())
    assert saved["tables"]["fake_items"][0]["pk"] == {"S": "sig"}


def files_of(directory: Path) -> dict[str, bytes]:
    """The state file and journals by name (not the lock file, which names its owner)."""
    return {
        path.name: path.read_bytes()
        for path in sorted(directory.iterdir())
        if path.is_file() and not path.name.endswith(".lock")
    }


@pytest.mark.e2e
@pytest.mark.parametrize("stopped", ["saved", "killed"])
def test_another_table_prefix_on_a_state_file_refuses_and_changes_nothing(
    project: Path, stopped: str
) -> None:
    # Given a state file (or, after a kill, only its journal) written with TablePrefix fake_
    process, lines = serve_in_subprocess(project)
    try:
        api = next_match(lines, r"API:\s+(\S+)").group(1)
        assert call("POST", f"{api}/items", {"id": "kept", "v": "1"})[0] == 201
        if stopped == "saved":
            process.send_signal(signal.SIGINT)
        else:
            process.kill()
        process.wait(timeout=30)
    finally:
        if process.poll() is None:
            process.kill()
    state_dir = project / "state"
    before = files_of(state_dir)
    assert any(name.startswith("state.json") for name in before)
    # When the server starts on it with another prefix
    other, other_lines = serve_in_subprocess(project, "--parameter", "TablePrefix=dev_")
    code = other.wait(timeout=60)
    output = []
    while not other_lines.empty():
        output.append(other_lines.get())
    # Then it exits non-zero with one line naming both sets of tables, and no file changed
    assert code != 0
    text = "".join(output)
    assert "Traceback" not in text
    errors = [line for line in output if "ERROR" in line]
    assert len(errors) == 1, text
    assert "fake_items" in errors[0] and "dev_items" in errors[0]
    assert "another TablePrefix" in errors[0]
    assert files_of(state_dir) == before
    # And the right prefix still finds the item
    again, again_lines = serve_in_subprocess(project)
    try:
        api = next_match(again_lines, r"API:\s+(\S+)").group(1)
        assert call("GET", f"{api}/items/kept")[2]["item"]["v"] == {"S": "1"}
    finally:
        again.send_signal(signal.SIGINT)
        again.wait(timeout=30)


def raw_exchange(url: str, data: bytes) -> bytes:
    """Send raw bytes, read until the server closes the connection."""
    host, port = url.removeprefix("http://").split(":")
    with socket.create_connection((host, int(port)), timeout=30) as sock:
        sock.sendall(data)
        answer = b""
        while chunk := sock.recv(65536):
            answer += chunk
    return answer


def test_methods_the_server_does_not_handle_answer_json(service: LocalService) -> None:
    # Given the running API / When a TRACE and a request with too many headers arrive
    too_many = b"".join(b"X-%d: 1\r\n" % i for i in range(120))
    for request in (
        b"TRACE /items HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
        b"GET /items HTTP/1.1\r\n" + too_many + b"\r\n",
    ):
        answer = raw_exchange(service.url, request)
        head, _, body = answer.partition(b"\r\n\r\n")
        # Then the refusal is JSON, like every other answer, not an HTML page (TRACE reaches
        # the gateway, as any method does: the path's ANY route or the template's 404/403)
        assert b"application/json" in head, answer
        refusal = json.loads(body)
        assert "message" in refusal or "error" in refusal


def test_a_stalled_client_is_cut_off(project: Path) -> None:
    # Given an API that gives clients half a second
    running = LocalService(settings_for(project, client_timeout=0.5))
    running.start()
    try:
        # When a client sends half a request line, then a body shorter than announced
        half_line = raw_exchange(running.url, b"GET /items/1 HT")
        short_body = raw_exchange(
            running.url, b"POST /items HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\n{"
        )
    finally:
        running.stop()
    # Then the server closes the first and answers the second with a JSON 408
    assert half_line == b""
    assert short_body.startswith(b"HTTP/1.1 408")
    assert json.loads(short_body.partition(b"\r\n\r\n")[2]) == {"message": "Request Timeout"}


def test_a_request_head_that_dribbles_in_is_cut_off_at_its_deadline(project: Path) -> None:
    # Given a server that gives a request head 1 s (and silent clients 30 s)
    gateway = HeldGateway()
    server = ServerThread("127.0.0.1", 0, gateway, head_timeout=1.0)  # type: ignore[arg-type]
    server.start()
    host, port = server.url.removeprefix("http://").split(":")
    try:
        with socket.create_connection((host, int(port)), timeout=30) as sock:
            # When a client sends a header line every 0.2 s, never silent for long, for ten
            # times the deadline, then ends its head
            sock.sendall(b"GET /fast HTTP/1.1\r\nHost: x\r\n")
            for i in range(50):
                time.sleep(0.2)
                with contextlib.suppress(OSError):  # the server may have closed already
                    sock.sendall(f"X-Slow-{i}: y\r\n".encode())
            with contextlib.suppress(OSError):
                sock.sendall(b"\r\n")
            try:
                slow_answer = sock.recv(1024)
            except OSError:  # reset: closed with data unread
                slow_answer = b""
        # And a client that sends its head at once is still answered
        answer = raw_exchange(
            server.url, b"GET /fast HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
        )
    finally:
        server.stop()
    # Then the slow one was closed with no answer and never reached the gateway; the other was
    # answered
    assert slow_answer == b""
    assert answer.startswith(b"HTTP/1.1 201")
    assert gateway.handled == ["/fast"]


class HeldGateway:
    """A gateway whose /slow requests wait until released; everything else answers at once."""

    def __init__(self) -> None:
        self.entered = threading.Event()
        self.release = threading.Event()
        self.handled: list[str] = []

    def handle(self, request: Request) -> HttpResponse:
        self.handled.append(request.target)
        if request.target == "/slow":
            self.entered.set()
            assert self.release.wait(60)
        return json_response(201, '{"done":true}')


def test_stop_answers_the_requests_in_flight_and_no_request_after(project: Path) -> None:
    # Given a server with one request held inside its gateway, and a kept-alive connection
    # that was answered before
    gateway = HeldGateway()
    server = ServerThread("127.0.0.1", 0, gateway)  # type: ignore[arg-type]
    server.start()
    host, port = server.url.removeprefix("http://").split(":")
    kept = http.client.HTTPConnection(host, int(port), timeout=30)
    kept.request("POST", "/fast", b"{}")
    assert kept.getresponse().read() == b'{"done":true}'
    held: dict[str, Any] = {}

    def slow_request() -> None:
        connection = http.client.HTTPConnection(host, int(port), timeout=30)
        connection.request("POST", "/slow", b"{}")
        answer = connection.getresponse()
        held["answer"] = (answer.status, answer.read())
        connection.close()

    slow = threading.Thread(target=slow_request)
    slow.start()
    assert gateway.entered.wait(30)
    # When the server stops while that request is in flight
    stopper = threading.Thread(target=server.stop)
    stopper.start()
    assert server.httpd.stopping.wait(30)
    # Then a new request on the kept-alive connection gets no answer, and reaches no handler
    kept.request("POST", "/after-stop", b"{}")
    with pytest.raises((ConnectionError, http.client.HTTPException)):
        kept.getresponse().read()
    kept.close()
    # And stop waits for the request in flight, which gets its answer
    assert stopper.is_alive()
    gateway.release.set()
    stopper.join(30)
    slow.join(30)
    assert not stopper.is_alive()
    assert held["answer"] == (201, b'{"done":true}')
    assert gateway.handled == ["/fast", "/slow"]


class HeldWrite:
    """An item written through the API while the journal's disk is held back."""

    def __init__(self, service: LocalService, item_id: str) -> None:
        journal: Any = service.backend.dynamo.write_log  # type: ignore[union-attr]
        self.held, self.reached = threading.Event(), threading.Event()
        sync = journal.wait_durable

        def held_back(position: int) -> None:
            self.reached.set()
            self.held.wait(30)
            sync(position)

        journal.wait_durable = held_back
        self.answers: queue.Queue[Any] = queue.Queue()
        body = {"id": item_id, "v": "1"}
        self.writer = threading.Thread(
            target=lambda: self.answers.put(call("POST", f"{service.url}/items", body))
        )
        self.writer.start()

    def release(self) -> Any:
        """Let the disk catch up; the answer the write then gets."""
        self.held.set()
        self.writer.join(30)
        return self.answers.get_nowait()


def test_an_answer_waits_for_its_write_on_disk_with_no_handler_slot_held(
    service: LocalService,
) -> None:
    # Given a journal whose disk is held back / When an item is written
    write = HeldWrite(service, "d")
    # Then its answer waits for the disk, while every handler slot is free for other requests
    assert write.reached.wait(30)
    assert write.answers.empty()
    slots = service.http.httpd.handler_slots  # type: ignore[union-attr]
    taken = [slots.acquire(blocking=False) for _ in range(HANDLERS_AT_ONCE)]
    for _ in range(sum(taken)):
        slots.release()
    assert all(taken)
    # And once the disk has it, the answer goes out
    assert write.release()[0] == 201


def test_every_write_answered_before_a_stop_is_there_after_a_restart(project: Path) -> None:
    # Given four clients writing new items as fast as they can on kept-alive connections
    running = LocalService(settings_for(project))
    running.start()
    host, port = running.url.removeprefix("http://").split(":")
    answered: list[str] = []
    enough = threading.Event()

    def writer(name: str) -> None:
        connection = http.client.HTTPConnection(host, int(port), timeout=30)
        try:
            for n in range(100_000):
                key = f"{name}-{n}"
                connection.request("POST", "/items", json.dumps({"id": key, "v": "1"}))
                answer = connection.getresponse()
                answer.read()
                if answer.status != 201:
                    return
                answered.append(key)
                if len(answered) >= 200:
                    enough.set()
        except (ConnectionError, http.client.HTTPException):
            return  # the server stopped: nothing unanswered was acknowledged
        finally:
            connection.close()

    writers = [threading.Thread(target=writer, args=(f"w{i}",)) for i in range(4)]
    for thread in writers:
        thread.start()
    # When the server stops in the middle of the stream, and starts again on its state file
    assert enough.wait(120)
    running.stop()
    for thread in writers:
        thread.join(60)
    again = LocalService(settings_for(project))
    again.start()
    try:
        missing = [key for key in answered if call("GET", f"{again.url}/items/{key}")[0] != 200]
    finally:
        again.stop()
    # Then every write that was answered is there
    assert missing == []


def test_a_request_whose_writes_cannot_be_synced_is_answered_503_never_2xx(
    service: LocalService, monkeypatch: pytest.MonkeyPatch
) -> None:
    import errno

    from emulator import durable

    real = os.fdatasync
    failing = threading.Event()

    def fdatasync(fd: int) -> None:
        if failing.is_set():
            raise OSError(errno.EIO, os.strerror(errno.EIO))
        real(fd)

    monkeypatch.setattr(os, "fdatasync", fdatasync)
    monkeypatch.setattr(durable, "RESYNC_EVERY", 0.05)
    store = service.backend.store
    assert store is not None
    store.saved.clear()
    # Given a disk that cannot sync / When a handler writes and answers 201
    failing.set()
    status, headers, body = call("POST", f"{service.url}/items", {"id": "a", "v": "1"})
    # Then its 201 never leaves: the answer is 503 with Retry-After, saying why
    assert (status, headers["Retry-After"], body["error"]) == (503, "1", "unavailable")
    assert "could not sync its journal" in body["message"]
    # When the disk heals / Then the store saves a snapshot and takes writes again, no restart
    failing.clear()
    assert store.saved.wait(10)
    assert call("POST", f"{service.url}/items", {"id": "b", "v": "2"})[0] == 201
    assert call("GET", f"{service.url}/items/b")[0] == 200
