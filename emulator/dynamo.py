"""Embedded DynamoDB (moto's server in a thread) and its persistence in a JSON state file."""

from __future__ import annotations

import base64
import json
import logging
import os
import tempfile
import threading
import time
import urllib.request
from pathlib import Path
from typing import Any

import boto3

log = logging.getLogger("emulator.dynamo")

FAKE_CREDENTIALS = {"AWS_ACCESS_KEY_ID": "local", "AWS_SECRET_ACCESS_KEY": "local"}
STATE_VERSION = 1
BATCH_SIZE = 25  # BatchWriteItem's limit


class _OneCallAtATime:
    """WSGI middleware: moto's backends are not thread-safe, so a conditional write or a
    transaction could interleave with another one. DynamoDB applies each call atomically; one
    call at a time gives the same guarantee locally (connections are still served in threads).
    """

    def __init__(self, app: Any) -> None:
        self.app = app
        self.lock = threading.Lock()

    def __call__(self, environ: dict[str, Any], start_response: Any) -> list[bytes]:
        with self.lock:
            answer = self.app(environ, start_response)
            try:
                return [b"".join(answer)]
            finally:
                close = getattr(answer, "close", None)
                if close is not None:
                    close()


def _serial_moto_server(host: str, port: int) -> Any:
    from moto.server import (
        DomainDispatcherApplication,
        MotoRequestHandler,
        ThreadedMotoServer,
        create_backend_app,
    )
    from werkzeug.serving import make_server

    class SerialMotoServer(ThreadedMotoServer):
        def _server_entry(self) -> None:
            app = _OneCallAtATime(DomainDispatcherApplication(create_backend_app))
            self._server = make_server(
                self._ip_address, self._port, app, True, request_handler=MotoRequestHandler
            )
            self._server_ready_event.set()
            self._server.serve_forever()

    return SerialMotoServer(ip_address=host, port=port, verbose=False)


class EmbeddedDynamo:
    """moto's server on 127.0.0.1 and a free port, starting empty, one call at a time."""

    def __init__(self, host: str = "127.0.0.1", port: int = 0) -> None:
        from emulator import moto_transactions

        moto_transactions.apply()
        logging.getLogger("werkzeug").setLevel(logging.WARNING)
        self._server = _serial_moto_server(host, port)
        self.endpoint = ""

    def start(self) -> str:
        self._server.start()
        host, port = self._server.get_host_and_port()
        self.endpoint = f"http://{host}:{port}"
        # moto's backends live in this process: a previous server here may have left state.
        request = urllib.request.Request(f"{self.endpoint}/moto-api/reset", method="POST")
        with urllib.request.urlopen(request, timeout=10):
            pass
        return self.endpoint

    def stop(self) -> None:
        self._server.stop()


def configure_aws_environment(endpoint: str) -> None:
    """Point every boto3 DynamoDB client of this process at the embedded server.

    Must run before any handler module is imported (they create clients at import time).
    """
    os.environ["AWS_ENDPOINT_URL_DYNAMODB"] = endpoint
    region = os.environ.get("AWS_REGION") or os.environ.get("AWS_DEFAULT_REGION") or "us-east-1"
    os.environ["AWS_REGION"] = region
    os.environ["AWS_DEFAULT_REGION"] = region
    if not (os.environ.get("AWS_ACCESS_KEY_ID") and os.environ.get("AWS_SECRET_ACCESS_KEY")):
        os.environ.update(FAKE_CREDENTIALS)
        os.environ.pop("AWS_SESSION_TOKEN", None)


def dynamodb_client(endpoint: str) -> Any:
    region = os.environ.get("AWS_REGION", "us-east-1")
    return boto3.client(
        "dynamodb",
        endpoint_url=endpoint,
        region_name=region,
        aws_access_key_id=FAKE_CREDENTIALS["AWS_ACCESS_KEY_ID"],
        aws_secret_access_key=FAKE_CREDENTIALS["AWS_SECRET_ACCESS_KEY"],
    )


# ------------------------------------------------------------------ DynamoDB JSON <-> file JSON


def _encode_value(value: dict[str, Any]) -> dict[str, Any]:
    """Binary attributes arrive as bytes: store them base64-encoded, as DynamoDB JSON does."""
    (kind, inner), *_ = value.items()
    if kind == "B":
        return {"B": base64.b64encode(inner).decode()}
    if kind == "BS":
        return {"BS": [base64.b64encode(b).decode() for b in inner]}
    if kind == "M":
        return {"M": {k: _encode_value(v) for k, v in inner.items()}}
    if kind == "L":
        return {"L": [_encode_value(v) for v in inner]}
    return value


def _decode_value(value: dict[str, Any]) -> dict[str, Any]:
    (kind, inner), *_ = value.items()
    if kind == "B":
        return {"B": base64.b64decode(inner)}
    if kind == "BS":
        return {"BS": [base64.b64decode(b) for b in inner]}
    if kind == "M":
        return {"M": {k: _decode_value(v) for k, v in inner.items()}}
    if kind == "L":
        return {"L": [_decode_value(v) for v in inner]}
    return value


def scan_table(client: Any, table: str) -> list[dict[str, Any]]:
    items: list[dict[str, Any]] = []
    for page in client.get_paginator("scan").paginate(TableName=table, ConsistentRead=True):
        items.extend({k: _encode_value(v) for k, v in item.items()} for item in page["Items"])
    return items


def write_items(client: Any, table: str, items: list[dict[str, Any]]) -> None:
    for start in range(0, len(items), BATCH_SIZE):
        chunk = items[start : start + BATCH_SIZE]
        requests: dict[str, Any] = {
            table: [
                {"PutRequest": {"Item": {k: _decode_value(v) for k, v in item.items()}}}
                for item in chunk
            ]
        }
        for _ in range(10):
            response = client.batch_write_item(RequestItems=requests)
            requests = response.get("UnprocessedItems") or {}
            if not requests:
                break
            time.sleep(0.05)
        else:
            raise RuntimeError(f"could not write every item into {table}")


class StateFile:
    """Every table's items in one JSON file, written atomically."""

    def __init__(self, path: Path, client: Any, tables: list[str]) -> None:
        self.path = Path(path)
        self.client = client
        self.tables = tables
        self._lock = threading.Lock()

    def load(self) -> int:
        """Put the saved items back into the tables; returns how many were loaded."""
        if not self.path.exists():
            return 0
        state = json.loads(self.path.read_text(encoding="utf-8") or "{}")
        count = 0
        for table, items in (state.get("tables") or {}).items():
            if table not in self.tables:
                log.warning("state file has items for unknown table %s: skipped", table)
                continue
            write_items(self.client, table, items)
            count += len(items)
        return count

    def dump(self) -> None:
        with self._lock:
            state = {
                "version": STATE_VERSION,
                "saved_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
                "tables": {table: scan_table(self.client, table) for table in self.tables},
            }
            self.path.parent.mkdir(parents=True, exist_ok=True)
            fd, tmp = tempfile.mkstemp(prefix=".state-", suffix=".tmp", dir=self.path.parent)
            try:
                with os.fdopen(fd, "w", encoding="utf-8") as fh:
                    json.dump(state, fh, separators=(",", ":"))
                    fh.flush()
                    os.fsync(fh.fileno())
                os.chmod(tmp, 0o644)
                os.replace(tmp, self.path)
            except BaseException:
                Path(tmp).unlink(missing_ok=True)
                raise


class BackgroundSaver:
    """Dumps the state at most once per `interval` seconds, only after a write was served.

    A dump scans every table; when the tables grow, the pause after a dump grows with the time
    the dump took (ten times as long), so saving never takes more than a tenth of the server.
    """

    def __init__(self, state: StateFile, interval: float = 1.0) -> None:
        self.state = state
        self.interval = interval
        self._dirty = threading.Event()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="state-saver", daemon=True)

    def mark_dirty(self) -> None:
        self._dirty.set()

    def start(self) -> None:
        self._thread.start()

    def _run(self) -> None:
        pause = self.interval
        while not self._stop.wait(pause):
            if self._dirty.is_set():
                self._dirty.clear()
                started = time.monotonic()
                self._save()
                pause = max(self.interval, 10 * (time.monotonic() - started))

    def _save(self) -> None:
        try:
            self.state.dump()
        except Exception:
            log.exception("could not save the state to %s", self.state.path)

    def stop(self) -> None:
        """Stop the thread and save one last time."""
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join()
        self._save()
