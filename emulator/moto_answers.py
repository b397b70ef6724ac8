"""moto's DynamoDB handler with two costs taken out of every call; what it answers is unchanged.

- moto writes each answer through a generic, model-driven serializer that looks every key up
  in the service model. The item calls' results are already DynamoDB JSON, except that binary
  values are bytes and absent values None: `ItemCallHandler` writes those as JSON directly
  (bytes base64-encoded, None left out, as the serializer does). Any other result, errors
  included, still goes through moto's serializer. tests/unit/test_moto_answers.py compares
  both on every item call.
- moto lists the handler class's methods with ``inspect.getmembers`` on every call; the list
  never changes, so it is computed once per class.
- moto's handler parses each update expression only to list the names it uses (the backend
  parses it again, for itself, and changes that tree): the handler's parse is kept per
  expression text. Parse errors are not kept, so they are raised every time.
- moto lists every DynamoDB `Item` it ever creates in a class-level list (for its dashboard,
  which nothing here reads), the copies it makes of an item on every update included: two
  Items per UpdateItem, kept for as long as the process lives. Items are no longer listed, so
  a copy goes when nothing uses it.
- An item call is handed to the handler directly (`ItemCallHandler.answer`), without the
  WSGI request moto builds from it and the reading of that request (``setup_class``), which
  cost a quarter of a GetItem. The parameters are read from the JSON body by converters
  built once per shape of the service model (`parse_params`), with what moto's model-driven
  parser does: members in the shape's order, null members left out, blobs base64-decoded,
  numbers and timestamps converted (tests/unit/test_moto_answers.py compares both). Two
  things moto's request reading does to a JSON body are not done, as DynamoDB does neither:
  reading it as a form (a value holding ``&Action=X`` made moto look for an action X), and
  rewriting any ``<RequestId>...</RequestId>`` found in the answer's values.
- moto answers a Query on a table (not an index) by sorting every item of the table, keeping
  those of the partition, then walking past every item of the pages already read: each page
  of an export costs as much as the whole table. `_query_partition` sorts only the partition
  and finds where the page starts by bisection; the page itself (its limit, the 1 MB cap, the
  key condition, the copy, the filter and the projection) is built as moto builds it. Queries
  of an index, and any start key outside the partition, go to moto's own method.
"""

from __future__ import annotations

import base64
import bisect
import copy
import functools
import io
import json
import secrets
import sys
from collections.abc import Callable
from typing import Any
from urllib.parse import urlparse

from moto.core import responses as moto_responses
from moto.core.parse import default_timestamp_parser
from moto.core.request import Request
from moto.core.responses import ActionResult
from moto.core.utils import get_service_model, utcnow
from moto.dynamodb import responses as dynamodb_responses
from moto.dynamodb.models import table as moto_tables
from moto.dynamodb.models.dynamo_type import DynamoType, Item
from moto.dynamodb.responses import DynamoHandler, DynamoResult
from moto.utilities.utils import get_partition
from werkzeug.http import http_date

from emulator.dynamo import ITEM_OPERATIONS
from emulator.moto_shortcuts import Replacements

# Keys moto adds that are not in DynamoDB's answer shapes (its serializer leaves them out).
_NOT_IN_SHAPES = frozenset({"ConsumedCapacityUnits"})
_JSON_HEADERS = {"Content-Type": "application/x-amz-json-1.0", "server": "amazon.com"}
_applied = False


class _ReadOnlyUpdateExpressions:
    """What moto's handler calls `UpdateExpressionParser`: only reads the trees it gets."""

    make = staticmethod(
        functools.lru_cache(maxsize=1024)(vars(dynamodb_responses)["UpdateExpressionParser"].make)
    )


_replaced = Replacements()


def apply() -> None:
    """List handler methods once per class; the handler's update expressions parsed once per
    text; Items not listed (idempotent; `restore` undoes it)."""
    global _applied
    if _applied:
        return
    original = moto_responses.method_names_from_class
    cached = functools.lru_cache(maxsize=None)(original)
    _replaced.set(moto_responses, "method_names_from_class", cached)
    # A pure function of the action's name, called on every call.
    names = moto_responses.camelcase_to_underscores
    _replaced.set(
        moto_responses, "camelcase_to_underscores", functools.lru_cache(maxsize=512)(names)
    )
    _replaced.set(dynamodb_responses, "UpdateExpressionParser", _ReadOnlyUpdateExpressions)
    _replaced.set(Item, "__new__", staticmethod(_unlisted))
    _replaced.set(moto_tables.Table, "query", _query_partition)
    _applied = True


def restore() -> None:
    """moto as it was before `apply` (idempotent)."""
    global _applied
    _replaced.undo()
    _applied = False


def _unlisted(cls: type, *args: Any, **kwargs: Any) -> Any:
    """An Item, not added to moto's list of every Item ever made."""
    return object.__new__(cls)


_motos_query = vars(moto_tables.Table)["query"]


def _query_partition(
    self: Any,
    hash_key: Any,
    range_comparison: str | None,
    range_objs: list[Any],
    limit: int,
    exclusive_start_key: dict[str, Any] | None,
    scan_index_forward: bool,
    projection_expressions: Any,
    index_name: str | None = None,
    consistent_read: bool = False,
    filter_expression: Any = None,
    hash_key_conditions: Any = None,
    range_key_conditions: Any = None,
    **filter_kwargs: Any,
) -> tuple[list[Any], int, dict[str, Any] | None]:
    """moto's `Table.query`, reading only the partition of `hash_key` (module docstring)."""
    start = exclusive_start_key
    hash_name, range_name = self.hash_key_attr, self.range_key_attr
    if (
        index_name
        or filter_kwargs
        or range_name is None
        or (
            start is not None
            and (
                start.get(hash_name) is None
                or start.get(range_name) is None
                or DynamoType(start[hash_name]) != hash_key
            )
        )
    ):
        return _motos_query(
            self,
            hash_key,
            range_comparison,
            range_objs,
            limit,
            exclusive_start_key,
            scan_index_forward,
            projection_expressions,
            index_name,
            consistent_read,
            filter_expression,
            hash_key_conditions,
            range_key_conditions,
            **filter_kwargs,
        )
    partition = self.items.get(hash_key) or {}  # .get: the defaultdict gains no partition
    # Keys compared as DynamoType compares them (by cast_value), cast once per item
    ordered = sorted(partition.values(), key=lambda item: item.range_key.cast_value)
    if start is not None:
        keys = [item.range_key.cast_value for item in ordered]
        after = DynamoType(start[range_name]).cast_value
        if scan_index_forward:
            ordered = ordered[bisect.bisect_right(keys, after) :]
        else:
            ordered = ordered[: bisect.bisect_left(keys, after)]
    if scan_index_forward is False:
        ordered.reverse()
    compared = range_key_conditions[-1][0] if range_key_conditions else None
    results: list[Any] = []
    size = scanned = 0
    last_key = None
    for item in ordered:
        item_size = item.size()
        if len(results) == limit or size + item_size > moto_tables.RESULT_SIZE_LIMIT:
            last_key = self._get_last_evaluated_key(results[-1], index_name)
            break
        if range_comparison:
            if compared and item.attrs.get(compared):
                matches = item.attrs[compared].compare(range_comparison, range_objs)
            else:
                matches = item.range_key.compare(range_comparison, range_objs)
            if not matches:
                continue
        results.append(item)
        size += item_size
        scanned += 1
    results = copy.deepcopy(results)
    if filter_expression is not None:
        results = [item for item in results if filter_expression.expr(item)]
    if projection_expressions:
        results = [item.project(projection_expressions) for item in results]
    return results, scanned, last_key


def wire(value: Any) -> Any:
    """A result as DynamoDB's JSON answer: bytes base64-encoded, None values left out."""
    if isinstance(value, dict):
        return {k: wire(v) for k, v in value.items() if v is not None}
    if isinstance(value, list):
        return [wire(v) for v in value]
    if isinstance(value, bytes):
        return base64.b64encode(value).decode("ascii")
    return value


class ItemCallHandler(DynamoHandler):
    operation: str | None = None  # set by `prepare`: the action, read from no request

    def _get_action(self) -> str:
        return self.operation or super()._get_action()

    def serialized(self, action_result: ActionResult) -> Any:
        result = action_result.result
        if (
            type(action_result) in (ActionResult, DynamoResult)
            and isinstance(result, dict)
            and self._get_action() in ITEM_OPERATIONS
        ):
            answer = {k: v for k, v in result.items() if k not in _NOT_IN_SHAPES}
            body = json.dumps(wire(answer), separators=(",", ":"))
            return 200, {**_JSON_HEADERS, **self.response_headers}, body
        return super().serialized(action_result)

    @classmethod
    def answer(
        cls, operation: str, body: bytes, region: str, url: str, target: str
    ) -> tuple[int, dict[str, Any], Any]:
        """Status, headers and body of one item call: what ``dispatch`` answers for the same
        POST, with the attributes ``setup_class`` would set, set directly."""
        return cls.prepare(operation, body, region, url, target).call_action()

    @classmethod
    def prepare(
        cls, operation: str, body: bytes, region: str, url: str, target: str
    ) -> ItemCallHandler:
        """The handler of one item call, with its parameters read, ready for `call_action`
        (which alone reads or changes the backend)."""
        handler = cls()
        handler.operation = operation
        headers = {"X-Amz-Target": target, "Content-Type": _JSON_HEADERS["Content-Type"]}
        handler.is_werkzeug_request = False
        handler.uri = url
        handler.parsed_url = urlparse(url)
        handler.path = handler.raw_path = "/"
        handler.method = "POST"
        handler.raw_body = body
        # What moto reads the protocol (and, without `operation`, the action) from.
        environ = moto_environ("POST", handler.parsed_url.netloc, headers, body)
        handler.normalized_request = Request(environ)
        handler.body = text = body.decode("utf-8")
        handler.querystring = handler.data = {}
        handler.headers = headers
        handler.region = region
        handler.partition = get_partition(region)
        handler.uri_match = {}
        handler.response_headers = {"server": "amazon.com", "date": http_date(utcnow())}
        handler.access_key = handler.get_access_key()
        handler.current_account = handler.get_current_account()  # MOTO_ACCOUNT_ID first
        handler.params = parse_params(operation, text)
        return handler

    @staticmethod
    def _enrich_response(headers: dict[str, str], body: Any) -> tuple[dict[str, str], Any]:
        """moto's, without its rewrite of an XML RequestId (this body is JSON), and a request
        id drawn at once rather than one character at a time."""
        if "status" in headers:
            headers["status"] = str(headers["status"])
        headers["x-amzn-requestid"] = secrets.token_hex(26).upper()  # moto's: 52 characters
        return headers, body


Converter = Callable[[Any], Any]


def _same(value: Any) -> Any:
    return value


def _blob(value: Any) -> bytes:
    return base64.b64decode(value)


def _float(value: Any) -> float:
    return float(value)


def _int(value: Any) -> int:
    return int(value)


_SCALARS: dict[str, Converter] = {
    "blob": _blob,
    "timestamp": default_timestamp_parser,
    "float": _float,
    "double": _float,
    "integer": _int,
    "long": _int,
    "byte": _int,
    "short": _int,
}


def _converter(shape: Any, built: dict[str, Converter]) -> Converter:
    """The function that reads a JSON value of `shape` as moto's JSON parser does."""
    name = shape.name
    if name in built:
        return built[name]
    kind = shape.type_name
    if kind in _SCALARS:
        return _SCALARS[kind]
    if kind not in _COMPOSITES or (kind == "structure" and shape.is_document_type):
        return _same
    # Shapes can hold themselves (an AttributeValue's M holds AttributeValues): the name is
    # bound before the parts are built, and the parts look the converter up when they run.
    slot: list[Converter] = []
    built[name] = lambda value: slot[0](value)
    slot.append(_COMPOSITES[kind](shape, built))
    built[name] = slot[0]
    return slot[0]


def _list(shape: Any, built: dict[str, Converter]) -> Converter:
    item = _converter(shape.member, built)
    return lambda value: [item(v) for v in value]


def _map(shape: Any, built: dict[str, Converter]) -> Converter:
    key = _converter(shape.key, built)
    entry = _converter(shape.value, built)
    return lambda value: {key(k): entry(v) for k, v in value.items()}


def _structure(shape: Any, built: dict[str, Converter]) -> Converter:
    order = [
        (member.serialization.get("name", name), name, _converter(member, built))
        for name, member in shape.members.items()
    ]
    parts = {json_name: (name, convert) for json_name, name, convert in order}

    def parse_structure(value: Any) -> Any:
        if value is None:
            return None
        if len(value) == 1:  # an AttributeValue, one key of many: no need to try them all
            ((json_name, raw),) = value.items()
            part = parts.get(json_name)
            return {} if part is None or raw is None else {part[0]: part[1](raw)}
        parsed = {}
        for json_name, name, convert in order:
            raw = value.get(json_name)
            if raw is not None:
                parsed[name] = convert(raw)
        return parsed

    return parse_structure


_COMPOSITES: dict[str, Callable[[Any, dict[str, Converter]], Converter]] = {
    "list": _list,
    "map": _map,
    "structure": _structure,
}


@functools.cache
def _input_converter(operation: str) -> Converter | None:
    shape = get_service_model("dynamodb").operation_model(operation).input_shape
    return None if shape is None else _converter(shape, {})


def parse_params(operation: str, text: str) -> Any:
    """The parameters of a DynamoDB call from its JSON body, as moto's parser reads them."""
    convert = _input_converter(operation)
    if convert is None:
        return {}
    if not text:
        return convert({})
    try:
        value = json.loads(text)
    except ValueError:
        value = {"message": text}
    return convert(value)


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
