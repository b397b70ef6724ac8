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
import decimal
import functools
import io
import json
import logging
import os
import threading
from collections.abc import Callable, Iterator, Mapping
from typing import Any, Protocol

import boto3
from botocore import handlers as botocore_handlers
from botocore.awsrequest import AWSResponse

log = logging.getLogger("emulator")
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
# The calls on items (the shortcuts of emulator.moto_shortcuts answer these).
ITEM_OPERATIONS = frozenset(
    {
        "BatchGetItem",
        "BatchWriteItem",
        "DeleteItem",
        "GetItem",
        "PutItem",
        "Query",
        "Scan",
        "TransactGetItems",
        "TransactWriteItems",
        "UpdateItem",
    }
)
_HANDLER_ID = "emulator-in-process-dynamodb"
STOPPED_ANSWER = (
    b'{"__type":"com.amazonaws.dynamodb.v20120810#InternalServerError",'
    b'"message":"the local DynamoDB has stopped: nothing was done"}'
)


class WriteLog(Protocol):
    """Where writes go before they are applied; `append`, `retract` and `position` run under
    the call lock."""

    def append(self, operation: str, params: bytes) -> int: ...

    def retract(self, position: int) -> None: ...

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
    """moto's DynamoDB backend for one region, behind one lock and an optional write log.

    Every call reaches moto through `MotoApp`, moto's own server app (its documented server
    mode, without the socket), unless the shortcuts of emulator.moto_shortcuts passed their
    check in this process (and ``AB_MOTO_FAST`` is not ``0``): item calls then go through
    `emulator.moto_shortcuts.FastPath`, which answers the same, faster."""

    def __init__(self, region: str) -> None:
        from emulator import moto_shortcuts

        self.region = region
        self.host = f"dynamodb.{region}.amazonaws.com"
        self.url = f"https://{self.host}/"
        self.moto = MotoApp(region)
        self.fast = moto_shortcuts.fast_path(region, self.moto)
        self.lock = threading.Lock()
        self.write_log: WriteLog | None = None
        self._stopped = False  # client calls refused (the emulator's own `call` still runs)
        self._journal_error: OSError | None = None  # the journal refuses writes since then

    def start(self) -> None:
        """Empty this process's moto DynamoDB backend and answer every DynamoDB client."""
        with self.lock:
            self.moto.reset()
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
        fast = self.fast
        prepared: Any = None
        if fast is not None and operation in ITEM_OPERATIONS and method == "POST":
            prepared = fast.prepare(operation, target, params)  # reads no table: not locked
            if isinstance(prepared, tuple):
                return prepared  # refused as it was read: nothing was done or seen
        with self.lock:
            if self._stopped:
                return 500, {"Content-Type": JSON_CONTENT}, STOPPED_ANSWER
            log = self.write_log
            # A write is on its way to the disk before it is applied: one the journal cannot
            # take is refused with nothing done, and one DynamoDB refuses is taken back.
            written = 0
            if log is not None and operation not in READ_OPERATIONS:
                try:
                    written = log.append(operation, params)
                except OSError as exc:
                    return self._journal_refused(exc)
                self._journal_failing(None)
            try:
                status, answered, body = self._apply(prepared, method, headers, params)
            except BaseException:
                if written:
                    log.retract(written)  # type: ignore[union-attr]
                raise
            position = 0
            if log is not None:
                if written and status != 200:
                    log.retract(written)
                position = written if written and status == 200 else log.position()
        if log is not None:
            return _once_durable(log, position, (status, answered, body))
        return status, answered, body

    def _apply(
        self, prepared: Any, method: str, headers: Mapping[str, Any], params: bytes
    ) -> tuple[int, Any, Any]:
        """The call answered by moto (the caller holds the call lock): through the shortcuts
        when `prepared` (an item call they read), else through moto's server app."""
        if prepared is not None and self.fast is not None:
            return with_dynamodb_numbers(self.fast.run, prepared)
        return with_dynamodb_numbers(self.moto.answer, method, headers, params)

    def _journal_refused(self, exc: OSError) -> tuple[int, Any, bytes]:
        """DynamoDB's 503 for a write the journal could not take (nothing was applied)."""
        self._journal_failing(exc)
        reason = exc.strerror or str(exc)
        body = {
            "__type": "com.amazonaws.dynamodb.v20120810#ServiceUnavailable",
            "message": f"the local store cannot write its journal ({reason}): nothing was done",
        }
        return 503, {"Content-Type": JSON_CONTENT}, json.dumps(body).encode()

    def _journal_failing(self, exc: OSError | None) -> None:
        """One log line when the journal starts refusing writes, one when it takes them again
        (the caller holds the call lock)."""
        if (exc is None) == (self._journal_error is None):
            return
        if exc is not None:
            log.warning(
                "the journal cannot be written (%s): writes are refused with 503 until it can, "
                "reads go on",
                exc.strerror or exc,
            )
        else:
            log.warning("the journal is written again: writes are taken again")
        self._journal_error = exc

    # ------------------------------------------------------------------ the emulator's calls

    def call(self, operation: str, params: bytes) -> bytes:
        """One call that bypasses botocore and the write log; the caller holds `lock`.

        Raises DynamoError with DynamoDB's message when the call is refused.
        """
        target = TARGET_PREFIX + operation
        headers = {"X-Amz-Target": target, "Content-Type": JSON_CONTENT}
        try:
            prepared = None
            if self.fast is not None and operation in ITEM_OPERATIONS:
                prepared = self.fast.prepare(operation, target, params)
            if isinstance(prepared, tuple):
                status, _, body = prepared  # refused as it was read
            else:
                status, _, body = self._apply(prepared, "POST", headers, params)
        except Exception as exc:  # noqa: BLE001 - botocore never checked these parameters
            # What botocore would have refused before sending (an unknown attribute type, a
            # malformed value) can make moto fail instead of answering an error.
            detail = f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
            raise DynamoError(f"{operation} could not be applied ({detail})") from None
        data = body.encode("utf-8") if isinstance(body, str) else bytes(body)
        if status != 200:
            text = data.decode("utf-8", "replace").strip()
            raise DynamoError(text or f"{operation}: answered HTTP {status} with no message")
        return data

    def table_items(self, table: str) -> tuple[int, str]:
        """Every item of `table` (the caller holds `lock`): how many, and a JSON array of them
        as a consistent Scan answers them, in the Scan's order; JSON text, so that nothing the
        next write changes in place is shared with the caller."""
        if self.fast is not None:
            return self.fast.table_items(table)
        return self.moto.table_items(table)


DYNAMODB_NUMBERS = decimal.Context(
    prec=38,
    Emax=125,
    Emin=-130,
    rounding=decimal.ROUND_HALF_EVEN,
    traps=[decimal.Inexact, decimal.Overflow, decimal.Underflow, decimal.InvalidOperation],
)


@contextlib.contextmanager
def dynamodb_numbers() -> Iterator[decimal.Context]:
    """Decimal arithmetic as DynamoDB does it, for the calls made inside: 38 significant
    digits, magnitudes from 1E-130 to under 1E+126, and a result that would need more refused
    (moto's own arithmetic runs in Python's default context: 28 digits, rounded silently).
    The context yielded records what was refused (`number_refused`)."""
    with decimal.localcontext(DYNAMODB_NUMBERS) as numbers:  # a copy, its flags clear
        yield numbers


def with_dynamodb_numbers(call: Callable[..., Any], *args: Any) -> Any:
    """What `call` answers with DynamoDB's numbers (`dynamodb_numbers`): its own answer, or
    DynamoDB's refusal when its arithmetic left them (however moto let the trap out: raised,
    as an error answer, or as a transaction's cancellation reason)."""
    with dynamodb_numbers() as numbers:
        try:
            answer = call(*args)
        except ArithmeticError:
            if number_refused(numbers) is None:
                raise
    return number_refused(numbers) or answer


def number_refused(numbers: decimal.Context) -> tuple[int, Any, bytes] | None:
    """DynamoDB's answer to a call whose arithmetic left DynamoDB's numbers, else None.

    moto stops at the first trapped result: inside a transaction it rolls the transaction
    back; a single UpdateItem stops before the action that failed (DynamoDB would apply none
    of its actions; the service never sends two ADDs outside a transaction that could)."""
    if numbers.flags[decimal.Overflow]:
        message = (
            "Number overflow. Attempting to store a number with magnitude larger than "
            "supported range"
        )
    elif numbers.flags[decimal.Underflow]:
        message = (
            "Number underflow. Attempting to store a number with magnitude smaller than "
            "supported range"
        )
    elif numbers.flags[decimal.Inexact]:
        message = "Attempting to store more than 38 significant digits in a Number"
    else:
        return None
    body = {"__type": "com.amazon.coral.validate#ValidationException", "message": message}
    return 400, {"Content-Type": JSON_CONTENT}, json.dumps(body).encode()


def _once_durable(
    log: WriteLog, position: int, answer: tuple[int, Any, Any]
) -> tuple[int, Any, Any]:
    """`answer` once what its call wrote or saw (up to `position`) is durable, or DynamoDB's
    503 if it cannot be; under `deferred_durability` at once, the waiting left to the caller."""
    pending = getattr(_deferred, "pending", None)
    if pending is not None:
        pending.note(log, position)
        return answer
    try:
        log.wait_durable(position)
    except OSError as exc:
        return not_durable(exc)
    return answer


def not_durable(exc: OSError) -> tuple[int, Any, bytes]:
    """DynamoDB's 503 for a call whose write, or what it read, could not be made durable: it
    was applied in memory, so it may or may not be kept (emulator.journal `wait_durable`)."""
    reason = exc.strerror or str(exc)
    body = {
        "__type": "com.amazonaws.dynamodb.v20120810#ServiceUnavailable",
        "message": (
            f"the local store could not sync its journal ({reason}): this call may or may "
            f"not be kept; calls are refused until a snapshot holds everything"
        ),
    }
    return 503, {"Content-Type": JSON_CONTENT}, json.dumps(body).encode()


class MotoApp:
    """moto's own path: each call is an HTTP request handed to moto's server app, the WSGI
    application that ``moto_server`` and ``moto.server.ThreadedMotoServer`` serve (moto's
    documented server mode), in this thread and without a socket. What moto answers such a
    request is what this returns: status, headers and body."""

    def __init__(self, region: str) -> None:
        from moto.server import DomainDispatcherApplication, create_backend_app

        self.app = DomainDispatcherApplication(create_backend_app)
        self.region = region
        self.base_url = f"https://dynamodb.{region}.amazonaws.com/"
        # botocore signs after its before-call event: the scope tells moto the region, the
        # key the account (MOTO_ACCOUNT_ID first, as moto reads it).
        self.authorization = (
            f"AWS4-HMAC-SHA256 Credential={FAKE_CREDENTIALS['AWS_ACCESS_KEY_ID']}/20120810/"
            f"{region}/dynamodb/aws4_request, SignedHeaders=host;x-amz-target, Signature=0"
        )

    def answer(self, method: str, headers: Mapping[str, Any], body: bytes) -> tuple[int, Any, Any]:
        sent = {
            name: value.decode("utf-8") if isinstance(value, bytes) else value
            for name, value in headers.items()
            if name.lower() not in ("host", "content-length", "transfer-encoding")
        }
        sent.setdefault("Authorization", self.authorization)
        return self._request(method, self.base_url, "/", sent, body)

    def _request(
        self, method: str, base_url: str, path: str, headers: dict[str, str], body: bytes
    ) -> tuple[int, Any, Any]:
        from werkzeug.test import EnvironBuilder, run_wsgi_app

        environ = EnvironBuilder(
            path=path, method=method, base_url=base_url, headers=list(headers.items()), data=body
        )
        chunks, status, answered = run_wsgi_app(self.app, environ.get_environ(), buffered=True)
        try:
            data = b"".join(chunks)
        finally:
            close = getattr(chunks, "close", None)
            if close is not None:
                close()
        return int(status.split(" ", 1)[0]), dict(answered), data

    def reset(self) -> None:
        """Every moto backend emptied: moto's reset API (``POST /moto-api/reset``)."""
        status, _, body = self._request(
            "POST", "http://motoapi.amazonaws.com", "/moto-api/reset", {}, b""
        )
        if status != 200:
            raise DynamoError(f"moto's reset answered {status}: {body[:200]!r}")

    def table_items(self, table: str) -> tuple[int, str]:
        """Every item of `table` as consistent Scans answer them, page after page."""
        headers = {"X-Amz-Target": TARGET_PREFIX + "Scan", "Content-Type": JSON_CONTENT}
        request: dict[str, Any] = {"TableName": table, "ConsistentRead": True}
        items: list[Any] = []
        while True:
            status, _, body = self.answer("POST", headers, json.dumps(request).encode())
            if status != 200:
                raise DynamoError(body.decode("utf-8", "replace"))
            page = json.loads(body)
            items.extend(page.get("Items", ()))
            if not page.get("LastEvaluatedKey"):
                break
            request["ExclusiveStartKey"] = page["LastEvaluatedKey"]
        return len(items), json.dumps(items, separators=(",", ":"))


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
