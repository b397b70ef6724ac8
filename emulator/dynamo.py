"""DynamoDB in this process: moto's backend answers every boto3 DynamoDB client, one call at a time.

Each boto3 DynamoDB client of the process hands its call to `InProcessDynamo` instead of
sending it over the network: a botocore ``before-call`` handler, registered to run after every
other, answers with what moto's backend answers, parsed by botocore's own parser. Everything
botocore does before that (parameter validation and serialization, the other ``before-call``
hooks such as the local IAM check) still happens on every call; building, signing and sending a
request does not, and nothing is retried. One lock serialises the calls: DynamoDB applies each
call atomically, and one call at a time gives moto's backend the same guarantee for conditional
writes and transactions (an item call's parameters are read from its body before the lock is
taken: that reads no table). In a worker process (emulator.workers) the clients are answered by
`RemoteDynamo` instead, which hands each call to this process. Each successful write is handed
to the write log while the lock is held (so the log's order is the order the writes were
applied), and the answer goes out only once the log says that everything the call saw is
durable (or, under `deferred_durability`, the caller waits for that before it lets any result
out).
"""

from __future__ import annotations

import contextlib
import functools
import io
import json
import os
import sys
import threading
from collections.abc import Iterator, Mapping
from typing import Any, Protocol

import boto3
from botocore import handlers as botocore_handlers
from botocore.awsrequest import AWSResponse

FAKE_CREDENTIALS = {"AWS_ACCESS_KEY_ID": "local", "AWS_SECRET_ACCESS_KEY": "local"}
# Nothing listens there: a client that somehow escaped the handler fails at once, never
# reaching AWS.
UNREACHABLE_ENDPOINT = "http://127.0.0.1:9"
JSON_CONTENT = "application/x-amz-json-1.0"
TARGET_PREFIX = "DynamoDB_20120810."
# Calls that change nothing; every other successful call is logged (a read logged by mistake
# would only cost a line, a write left out would be lost).
READ_OPERATIONS = frozenset(
    {
        "BatchGetItem",
        "DescribeContinuousBackups",
        "DescribeEndpoints",
        "DescribeLimits",
        "DescribeTable",
        "DescribeTimeToLive",
        "GetItem",
        "ListTables",
        "ListTagsOfResource",
        "Query",
        "Scan",
        "TransactGetItems",
    }
)
_HANDLER_ID = "emulator-in-process-dynamodb"
STOPPED_ANSWER = (
    b'{"__type":"com.amazonaws.dynamodb.v20120810#InternalServerError",'
    b'"message":"the local DynamoDB has stopped: nothing was done"}'
)


class WriteLog(Protocol):
    """Where successful writes go; `append` and `position` run under the call lock."""

    def append(self, operation: str, params: bytes) -> int: ...

    def position(self) -> int: ...

    def wait_durable(self, position: int) -> None: ...


class DynamoError(RuntimeError):
    """A call made by the emulator itself (load, replay, snapshot) that DynamoDB refused."""


class Answering:
    """What answers this process's DynamoDB clients: `_answer` gives the status, headers and
    body DynamoDB would send for one call (in this process, or from the process that holds
    the tables: emulator.workers), and botocore's own parser reads them."""

    def answer_call(self, model: Any, request_dict: dict[str, Any]) -> tuple[AWSResponse, Any]:
        """The answer to a call botocore has validated and serialized (its ``before-call``
        event), parsed as botocore parses what an endpoint sends: the request is never built,
        signed or sent, and nothing is retried."""
        from botocore.endpoint import convert_to_response_dict

        headers = request_dict["headers"]
        target = headers.get("X-Amz-Target") or ""
        if isinstance(target, bytes):
            target = target.decode("utf-8")
        body = _body_bytes(request_dict["body"])
        status, answered, text = self._answer(request_dict["method"], target, headers, body)
        http = AWSResponse(request_dict["url"], status, answered, RawBody(text))
        response = convert_to_response_dict(http, model)
        parser = _json_parser()
        parsed = parser.parse(response, model.output_shape)
        if status >= 300:
            code = parsed.get("Error", {}).get("Code")
            shape = None if code is None else model.service_model.shape_for_error_code(code)
            if shape is not None:
                parsed.update(parser.parse(response, shape))
        if "ResponseMetadata" in parsed:
            parsed["ResponseMetadata"]["RetryAttempts"] = 0
        return http, parsed

    def _answer(
        self, method: str, target: str, headers: Mapping[str, Any], params: bytes
    ) -> tuple[int, Any, Any]:
        raise NotImplementedError

    def activate(self) -> None:
        """Answer every DynamoDB client of this process from now on."""
        global _active
        _install()
        _active = self

    def deactivate(self) -> None:
        global _active
        if _active is self:
            _active = None


class RawBody(io.BytesIO):
    """An answer's body as botocore reads it from an HTTP response (its ``stream()``)."""

    def __init__(self, body: str | bytes) -> None:
        super().__init__(body.encode("utf-8") if isinstance(body, str) else body)

    def stream(self, **_: Any) -> Iterator[bytes]:
        chunk = self.read()
        while chunk:
            yield chunk
            chunk = self.read()


class InProcessDynamo(Answering):
    """moto's DynamoDB backend for one region, behind one lock and an optional write log."""

    def __init__(self, region: str) -> None:
        from emulator import moto_answers, moto_expressions, moto_transactions

        moto_transactions.apply()
        moto_answers.apply()
        moto_expressions.apply()
        self.item_operations = moto_answers.ITEM_OPERATIONS
        self.region = region
        self.host = f"dynamodb.{region}.amazonaws.com"
        self.url = f"https://{self.host}/"
        self.lock = threading.Lock()
        self.write_log: WriteLog | None = None
        self._stopped = False  # client calls refused (the emulator's own `call` still runs)

    def start(self) -> None:
        """Empty this process's moto DynamoDB backend and answer every DynamoDB client."""
        from moto.backends import get_backend

        get_backend("dynamodb")[moto_account()].reset()
        with self.lock:
            self._stopped = False
        self.activate()

    def stop(self) -> None:
        """Answer no client call from now on, not even one already on its way in: what the
        final save holds is then everything that was ever answered."""
        with self.lock:
            self._stopped = True
        self.deactivate()

    # ------------------------------------------------------------------ calls from clients

    def _answer(
        self, method: str, target: str, headers: Mapping[str, Any], params: bytes
    ) -> tuple[int, Any, Any]:
        operation = target.rpartition(".")[2]
        item_call = operation in self.item_operations and method == "POST"
        if item_call:  # reading the parameters touches no table: not under the lock
            prepared = self._prepare_item_call(operation, target, params)
            if isinstance(prepared, tuple):
                return prepared  # refused as it was read: nothing was done or seen
        with self.lock:
            if self._stopped:
                return 500, {"Content-Type": JSON_CONTENT}, STOPPED_ANSWER
            if item_call:
                status, answered, body = self._call_action(prepared)
            else:
                status, answered, body = self._dispatch(method, dict(headers), params)
            log = self.write_log
            position = 0
            if log is not None:
                if status == 200 and operation not in READ_OPERATIONS:
                    position = log.append(operation, params)
                else:
                    position = log.position()
        if log is not None:
            pending = getattr(_deferred, "pending", None)
            if pending is None:
                log.wait_durable(position)
            else:
                pending.note(log, position)
        return status, answered, body

    # ------------------------------------------------------------------ the emulator's calls

    def call(self, operation: str, params: bytes) -> bytes:
        """One call that bypasses botocore and the write log; the caller holds `lock`.

        Raises DynamoError with DynamoDB's message when the call is refused.
        """
        target = TARGET_PREFIX + operation
        if operation in self.item_operations:
            status, _, body = self._answer_item_call(operation, target, params)
        else:
            headers = {"X-Amz-Target": target, "Content-Type": JSON_CONTENT}
            status, _, body = self._dispatch("POST", headers, params)
        data = body.encode("utf-8") if isinstance(body, str) else bytes(body)
        if status != 200:
            raise DynamoError(data.decode("utf-8", "replace"))
        return data

    def table_items(self, table: str) -> tuple[int, str]:
        """Every item of `table` (the caller holds `lock`): how many, and a JSON array of them
        as a consistent Scan answers them, in the Scan's order. Read from the backend without
        the Scan's per-item copy and size count, which cost more than the rest of a snapshot
        and would hold every other call back meanwhile; JSON text, so that nothing the next
        write changes in place is shared with the caller."""
        from moto.backends import get_backend
        from moto.dynamodb.models.utilities import dynamo_to_dict

        from emulator.moto_answers import wire

        backend = get_backend("dynamodb")[moto_account()][self.region]
        items = backend.get_table(table).all_items()
        text = json.dumps([wire(dynamo_to_dict(i.attrs)) for i in items], separators=(",", ":"))
        return len(items), text

    def _answer_item_call(self, operation: str, target: str, params: bytes) -> Any:
        prepared = self._prepare_item_call(operation, target, params)
        return prepared if isinstance(prepared, tuple) else self._call_action(prepared)

    def _prepare_item_call(self, operation: str, target: str, params: bytes) -> Any:
        """moto's handler for the call, ready to run; or the answer, when the parameters
        cannot be read."""
        from moto.core.exceptions import HTTPException

        from emulator.moto_answers import ItemCallHandler

        try:
            return ItemCallHandler.prepare(operation, params, self.region, self.url, target)
        except HTTPException as exc:
            return exc.code, exc.get_headers(), exc.get_body()

    @staticmethod
    def _call_action(handler: Any) -> Any:
        from moto.core.exceptions import HTTPException

        try:
            return handler.call_action()
        except HTTPException as exc:
            return exc.code, exc.get_headers(), exc.get_body()

    def _dispatch(self, method: str, headers: dict[str, Any], params: bytes) -> Any:
        from moto.core.exceptions import HTTPException
        from moto.core.request import Request

        from emulator.moto_answers import ItemCallHandler

        request = Request(moto_environ(method, self.host, headers, params))
        try:
            return ItemCallHandler.dispatch(request, self.url, request.headers)
        except HTTPException as exc:
            return exc.code, exc.get_headers(), exc.get_body()


def moto_account() -> str:
    """The account moto files every call under: MOTO_ACCOUNT_ID when set, as moto reads it."""
    from moto.core import DEFAULT_ACCOUNT_ID

    return os.environ["MOTO_ACCOUNT_ID"] if "MOTO_ACCOUNT_ID" in os.environ else DEFAULT_ACCOUNT_ID


def moto_environ(method: str, host: str, headers: dict[str, Any], body: bytes) -> dict[str, Any]:
    """The WSGI environ of a POST to ``https://<host>/``: what moto's
    ``Request.from_primitives`` builds through werkzeug's test EnvironBuilder, which costs
    more than the rest of a GetItem (tests/unit/test_emulator_dynamo.py compares both)."""
    from moto.core.request import (
        PRESERVED_HEADER_NAMES_ENVIRON_KEY,
        environ_key_for_header,
        should_preserve_original_header_name,
    )

    given = {name.lower(): name for name in headers}
    text = {
        name: value.decode("utf-8") if isinstance(value, bytes) else value
        for name, value in headers.items()
        if name.lower() != "transfer-encoding"
    }
    environ: dict[str, Any] = {
        "REQUEST_METHOD": method,
        "SCRIPT_NAME": "",
        "PATH_INFO": "/",
        "QUERY_STRING": "",
        "REQUEST_URI": "/",
        "RAW_URI": "/",
        "SERVER_NAME": host,
        "SERVER_PORT": "443",
        "HTTP_HOST": text[given["host"]] if "host" in given else host,
        "SERVER_PROTOCOL": "HTTP/1.1",
        "wsgi.version": (1, 0),
        "wsgi.url_scheme": "https",
        "wsgi.input": io.BytesIO(body),
        "wsgi.errors": sys.stderr,
        "wsgi.multithread": False,
        "wsgi.multiprocess": False,
        "wsgi.run_once": False,
    }
    if "content-type" in given:
        environ["CONTENT_TYPE"] = text[given["content-type"]]
    if body:
        environ["CONTENT_LENGTH"] = str(len(body))
    preserved = {}
    for name, value in text.items():
        if name.lower() in ("host", "content-type", "content-length"):
            continue
        key = environ_key_for_header(name)
        environ[key] = value
        if should_preserve_original_header_name(name):
            preserved[key] = name
    environ[PRESERVED_HEADER_NAMES_ENVIRON_KEY] = preserved
    environ.setdefault("CONTENT_LENGTH", "0")
    return environ


def _body_bytes(body: Any) -> bytes:
    if isinstance(body, str):
        return body.encode("utf-8")
    if isinstance(body, bytes | bytearray):
        return bytes(body) or b"{}"
    return b"{}" if body is None else bytes(body.read())


_active: Answering | None = None
_installed = False


class Pending:
    """What the calls made under `deferred_durability` must have on disk before any of their
    results leaves the process."""

    def __init__(self) -> None:
        self.positions: dict[WriteLog, int] = {}  # a snapshot may start a new log meanwhile

    def note(self, log: WriteLog, position: int) -> None:
        self.positions[log] = max(self.positions.get(log, 0), position)

    def wait(self) -> None:
        """Return once everything the calls wrote or saw is durable."""
        for log, position in self.positions.items():
            log.wait_durable(position)


_deferred = threading.local()


@contextlib.contextmanager
def deferred_durability() -> Iterator[Pending]:
    """Calls made by this thread inside the block return without waiting for the write log;
    the caller must `wait()` on what it yields before it lets any result of them out (the
    local API does, before it answers the request). The thread then runs the next request's
    handler while the disk catches up, instead of waiting in the middle of this one."""
    pending = Pending()
    _deferred.pending = pending
    try:
        yield pending
    finally:
        _deferred.pending = None


def _before_call(model: Any, params: dict[str, Any], **_: Any) -> Any:
    """botocore's before-call handler for every service, registered to run last (after the
    DynamoDB ones, the local IAM check among them, and the ones for every service): the
    in-process backend answers DynamoDB calls while one is active."""
    active = _active
    if active is None or model.service_model.service_name != "dynamodb":
        return None
    return active.answer_call(model, params)


@functools.cache
def _json_parser() -> Any:
    from botocore.parsers import create_parser

    return create_parser("json")


def _install() -> None:
    """Answer DynamoDB clients of every botocore session, those made before and after."""
    global _installed
    if _installed:
        return
    # On the bare event: botocore calls the handlers of "before-call.dynamodb" before those of
    # "before-call", so this one runs after both.
    event, unique_id = "before-call", _HANDLER_ID
    last = botocore_handlers.REGISTER_LAST
    botocore_handlers.BUILTIN_HANDLERS.append((event, _before_call, last))
    if boto3.DEFAULT_SESSION is not None:
        events: Any = boto3.DEFAULT_SESSION.events  # typed as if handlers returned None
        events.register_last(event, _before_call, unique_id=unique_id)
    _installed = True


def configure_aws_environment() -> str:
    """Region and credentials for every boto3 DynamoDB client of this process; the region.

    Must run before any handler module is imported (they create clients at import time).
    """
    os.environ["AWS_ENDPOINT_URL_DYNAMODB"] = UNREACHABLE_ENDPOINT
    region = os.environ.get("AWS_REGION") or os.environ.get("AWS_DEFAULT_REGION") or "us-east-1"
    os.environ["AWS_REGION"] = region
    os.environ["AWS_DEFAULT_REGION"] = region
    if not (os.environ.get("AWS_ACCESS_KEY_ID") and os.environ.get("AWS_SECRET_ACCESS_KEY")):
        os.environ.update(FAKE_CREDENTIALS)
        os.environ.pop("AWS_SESSION_TOKEN", None)
    return region


def dynamodb_client(region: str) -> Any:
    return boto3.client(
        "dynamodb",
        region_name=region,
        endpoint_url=UNREACHABLE_ENDPOINT,
        aws_access_key_id=FAKE_CREDENTIALS["AWS_ACCESS_KEY_ID"],
        aws_secret_access_key=FAKE_CREDENTIALS["AWS_SECRET_ACCESS_KEY"],
    )
