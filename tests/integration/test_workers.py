"""The API served by worker processes, DynamoDB by the process that holds it (emulator.workers)."""

from __future__ import annotations

import http.client
import json
import os
import queue
import re
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from emulator.dynamo import InProcessDynamo
from emulator.service import LocalService
from emulator.template import REPO_ROOT
from emulator.workers import UNREACHABLE_ANSWER, RemoteDynamo, StoreServer
from tests.integration import test_emulator_server as server_tests
from tests.integration.test_emulator_server import (
    HeldWrite,
    call,
    next_match,
    serve_in_subprocess,
    settings_for,
)

# The fake project (a table, an echo function, a layer) of the server's own tests.
project = server_tests.project
isolated_process_state = server_tests.isolated_process_state

pytestmark = pytest.mark.e2e


@pytest.fixture
def pooled(project: Path) -> Iterator[LocalService]:
    running = LocalService(settings_for(project, workers=1))
    running.start()
    yield running
    running.stop()


def item_in_owner(service: LocalService, key: str) -> Any:
    dynamo = service.backend.dynamo
    assert dynamo is not None
    params = json.dumps({"TableName": "fake_items", "Key": {"pk": {"S": key}}}).encode()
    with dynamo.lock:
        return json.loads(dynamo.call("GetItem", params)).get("Item")


def gone(pid: int, within: float) -> bool:
    """Whether the process ends (exits, or is a zombie nobody has reaped yet) in time."""
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        try:
            status = Path(f"/proc/{pid}/status").read_text()
        except FileNotFoundError:
            return True
        if re.search(r"^State:\s+Z", status, re.MULTILINE):
            return True
        time.sleep(0.05)
    return False


def test_a_worker_answers_from_the_tables_the_owner_holds(pooled: LocalService) -> None:
    # Given the API served by one worker process
    assert pooled.http is not None
    (worker,) = pooled.http.processes  # type: ignore[union-attr]
    assert worker.pid != os.getpid() and worker.poll() is None
    # When an item is written and read back through the API
    assert call("POST", f"{pooled.url}/items", {"id": "w1", "v": "x"})[0] == 201
    status, _, body = call("GET", f"{pooled.url}/items/w1")
    # Then the worker's handler read it, and the item is in the owner's tables
    assert status == 200
    assert body["pid"] == worker.pid
    assert body["item"] == {"pk": {"S": "w1"}, "v": {"S": "x"}}
    assert body["layer"] == "from-the-layer"
    assert item_in_owner(pooled, "w1") == {"pk": {"S": "w1"}, "v": {"S": "x"}}


def test_a_workers_answer_waits_for_its_write_on_disk(pooled: LocalService) -> None:
    # Given the owner's journal held back from the disk / When an item is written through
    # the worker
    write = HeldWrite(pooled, "d")
    # Then the write is applied, but no answer goes out until it is durable
    assert write.reached.wait(30)
    assert item_in_owner(pooled, "d") is not None
    assert write.answers.empty()
    assert write.release()[0] == 201


def test_two_workers_share_the_port_and_one_store(project: Path) -> None:
    # Given two workers
    service = LocalService(settings_for(project, workers=2))
    service.start()
    try:
        host, port = service.url.removeprefix("http://").split(":")
        failures: list[Any] = []

        def writer(name: str) -> None:
            connection = http.client.HTTPConnection(host, int(port), timeout=30)
            for n in range(15):
                connection.request("POST", "/items", json.dumps({"id": f"{name}-{n}", "v": "1"}))
                answer = connection.getresponse()
                answer.read()
                if answer.status != 201:
                    failures.append((name, n, answer.status))
            connection.close()

        # When eight clients write at once, each on its own connection
        writers = [threading.Thread(target=writer, args=(f"c{i}",)) for i in range(8)]
        for thread in writers:
            thread.start()
        for thread in writers:
            thread.join(60)
        # Then every write was answered and stored, and both workers still serve
        assert failures == []
        pids = {p.pid for p in service.http.processes}  # type: ignore[union-attr]
        for n in range(6):
            assert call("GET", f"{service.url}/items/c{n}-0")[2]["pid"] in pids
        missing = [
            f"c{i}-{n}"
            for i in range(8)
            for n in range(15)
            if item_in_owner(service, f"c{i}-{n}") is None
        ]
        assert missing == []
        assert all(p.poll() is None for p in service.http.processes)  # type: ignore[union-attr]
    finally:
        service.stop()
    # And a stop ends them, each with its requests answered and exit code 0
    assert [p.returncode for p in service.http.processes] == [0, 0]  # type: ignore[union-attr]


def test_a_call_with_no_owner_to_answer_is_a_dynamodb_error(tmp_path: Path) -> None:
    # Given a worker's DynamoDB whose owner has gone
    remote = RemoteDynamo(str(tmp_path / "nobody.sock"))
    # When a call is made / Then it is answered as DynamoDB's internal error, never as success
    status, headers, body = remote._answer("POST", "DynamoDB_20120810.PutItem", {}, b"{}")
    assert (status, body) == (500, UNREACHABLE_ANSWER)
    assert headers["Content-Type"] == "application/x-amz-json-1.0"


def test_the_store_server_answers_as_the_owner_does(project: Path) -> None:
    # Given the owner's DynamoDB behind a store server, and a table
    dynamo = InProcessDynamo("us-east-1")
    dynamo.start()
    store = StoreServer(dynamo)
    store.start()
    remote = RemoteDynamo(store.path)
    try:
        table = {
            "TableName": "t",
            "KeySchema": [{"AttributeName": "pk", "KeyType": "HASH"}],
            "AttributeDefinitions": [{"AttributeName": "pk", "AttributeType": "S"}],
            "BillingMode": "PAY_PER_REQUEST",
        }
        with dynamo.lock:
            dynamo.call("CreateTable", json.dumps(table).encode())
        put = {
            "TableName": "t",
            "Item": {"pk": {"S": "a"}},
            "ConditionExpression": "attribute_not_exists(pk)",
        }
        target = "DynamoDB_20120810.PutItem"
        # When the same conditional write comes twice through the socket
        first = remote._answer("POST", target, {}, json.dumps(put).encode())
        second = remote._answer("POST", target, {}, json.dumps(put).encode())
        # Then the first is stored and the second refused, as the owner answers them
        assert first[0] == 200
        assert second[0] == 400
        refusal = second[2] if isinstance(second[2], str) else second[2].decode()
        assert "ConditionalCheckFailedException" in refusal
        direct = dynamo._answer("POST", target, {}, json.dumps(put).encode())
        assert (direct[0], direct[2]) == (second[0], second[2])
    finally:
        remote.close()
        store.stop()
        dynamo.stop()


def worker_and_url(lines: queue.Queue[str]) -> tuple[int, str]:
    """The pid of the worker a starting `serve` reports, then the API's address."""
    worker = int(next_match(lines, r"worker (\d+) serving").group(1))
    return worker, next_match(lines, r"API:\s+(\S+)").group(1)


def test_killing_the_owner_kills_its_worker(project: Path) -> None:
    # Given `abtest serve` with one worker
    process, lines = serve_in_subprocess(project, "--workers", "1")
    try:
        worker, api = worker_and_url(lines)
        assert call("POST", f"{api}/items", {"id": "k", "v": "1"})[0] == 201
        # When the owner is killed, with no chance to clean up
        process.kill()
        process.wait(30)
        # Then its worker is gone too: nothing keeps serving the port
        assert gone(worker, within=10)
        host, port = api.removeprefix("http://").split(":")
        with pytest.raises(ConnectionRefusedError):
            socket.create_connection((host, int(port)), timeout=5).close()
    finally:
        if process.poll() is None:
            process.kill()


def test_a_worker_that_dies_is_replaced(project: Path) -> None:
    # Given `abtest serve` with one worker
    process, lines = serve_in_subprocess(project, "--workers", "1")
    try:
        worker, api = worker_and_url(lines)
        # When the worker dies
        os.kill(worker, signal.SIGKILL)
        # Then the owner starts another, which answers
        replacement = int(next_match(lines, r"worker (\d+) serving").group(1))
        assert replacement != worker
        assert call("POST", f"{api}/items", {"id": "again", "v": "1"})[0] == 201
        process.send_signal(signal.SIGINT)
        assert process.wait(60) == 0
        assert gone(replacement, within=10)
    finally:
        if process.poll() is None:
            process.kill()


@pytest.mark.parametrize("workers", ["0", "1"])
def test_a_port_in_use_stops_serve_with_one_line(project: Path, workers: str) -> None:
    # Given a port something else listens on
    with socket.create_server(("127.0.0.1", 0)) as taken:
        port = taken.getsockname()[1]
        # When serve is started on it
        env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_ENDPOINT_URL")}
        finished = subprocess.run(
            [sys.executable, "-m", "emulator", "serve", "--port", str(port)]
            + ["--template", str(project / "template.yaml"), "--project-root", str(project)]
            + ["--state-file", str(project / "state" / "state.json"), "--workers", workers],
            cwd=REPO_ROOT,
            env=env,
            capture_output=True,
            text=True,
            timeout=120,
        )
    # Then it exits with 1 and says so in one line, with no traceback
    assert finished.returncode == 1
    assert f"cannot start: 127.0.0.1:{port} is already in use" in finished.stderr
    assert "Traceback" not in finished.stderr


def test_a_worker_that_cannot_start_stops_the_start_and_frees_everything(project: Path) -> None:
    # Given a project whose worker fails as it starts (its template is gone by then)
    owner = LocalService(settings_for(project, workers=1))
    config = owner._http
    template = project / "template.yaml"
    moved = project / "moved.yaml"

    def broken_pool() -> Any:
        pool = config()
        template.rename(moved)
        return pool

    owner._http = broken_pool  # type: ignore[method-assign]
    # When the server starts / Then the start fails, saying so
    with pytest.raises(RuntimeError, match="a worker did not start"):
        owner.start()
    # And the port and the state file are free: the same project starts again
    moved.rename(template)
    again = LocalService(settings_for(project, workers=1))
    again.start()
    try:
        assert call("POST", f"{again.url}/items", {"id": "after", "v": "1"})[0] == 201
    finally:
        again.stop()


def test_serve_gives_up_saving_everything_when_no_worker_can_start(project: Path) -> None:
    # Given `abtest serve` with one worker, and an item written
    state_file = project / "state" / "state.json"
    process, lines = serve_in_subprocess(project, "--workers", "1")
    try:
        worker, api = worker_and_url(lines)
        assert call("POST", f"{api}/items", {"id": "kept", "v": "1"})[0] == 201
        # When the worker dies and no new one can start (the template is gone)
        (project / "template.yaml").rename(project / "moved.yaml")
        os.kill(worker, signal.SIGKILL)
        # Then the server tries a few times, then stops with 1, saying why
        assert process.wait(120) == 1
        next_match(lines, r"no worker could be started 3 times in a row")
    finally:
        if process.poll() is None:
            process.kill()
    # And what was acknowledged is in the state file
    saved = json.loads(state_file.read_text())
    assert saved["tables"]["fake_items"][0]["pk"] == {"S": "kept"}
