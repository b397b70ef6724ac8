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
"""

from __future__ import annotations

import base64
import functools
import json
from typing import Any

from moto.core import responses as moto_responses
from moto.core.responses import ActionResult
from moto.dynamodb import responses as dynamodb_responses
from moto.dynamodb.responses import DynamoHandler, DynamoResult

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
# Keys moto adds that are not in DynamoDB's answer shapes (its serializer leaves them out).
_NOT_IN_SHAPES = frozenset({"ConsumedCapacityUnits"})
_JSON_HEADERS = {"Content-Type": "application/x-amz-json-1.0", "server": "amazon.com"}
_applied = False


class _ReadOnlyUpdateExpressions:
    """What moto's handler calls `UpdateExpressionParser`: only reads the trees it gets."""

    make = staticmethod(
        functools.lru_cache(maxsize=1024)(vars(dynamodb_responses)["UpdateExpressionParser"].make)
    )


def apply() -> None:
    """List handler methods once per class; the handler's update expressions parsed once per
    text (idempotent)."""
    global _applied
    if _applied:
        return
    original = moto_responses.method_names_from_class
    moto_responses.method_names_from_class = functools.lru_cache(maxsize=None)(original)
    vars(dynamodb_responses)["UpdateExpressionParser"] = _ReadOnlyUpdateExpressions
    _applied = True


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
