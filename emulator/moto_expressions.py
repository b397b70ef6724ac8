"""moto's update expressions parsed once per text, and their trees copied cheaply.

Every UpdateItem (alone or in a transaction) makes moto's backend parse the update expression
(`UpdateExpressionParser.make`) and hand the tree to `UpdateExpressionValidator`, which first
deep-copies it (`copy.deepcopy`) and then changes only its copy. The handlers send a small,
fixed set of expression texts, and both steps cost more than the rest of an update:

- the backend's parse is kept per expression text, as pickled bytes; each call gets a new
  tree unpickled from them (so no two calls ever share a tree, whatever moto does with it).
  Parse errors are not kept: an invalid expression raises every time, as before;
- the validator's copy of such a tree is unpickled from the same bytes instead of
  deep-copied. pickle and deepcopy rebuild an object the same way (`__reduce_ex__`), and a
  tree is only registered while it is unchanged: the backend hands it to validators alone,
  and they change nothing but their copy. Anything else (another tree, a value) is still
  deep-copied.

tests/unit/test_moto_expressions.py compares the trees, and what updates do, with moto's own.
"""

from __future__ import annotations

import copy
import functools
import pickle
import weakref
from typing import Any

from moto.dynamodb import models as dynamodb_models
from moto.dynamodb.parsing import validators
from moto.dynamodb.parsing.ast_nodes import Node  # type: ignore[attr-defined]
from moto.dynamodb.parsing.expressions import UpdateExpressionParser  # type: ignore[attr-defined]

_applied = False
# The trees `make` returned, with the bytes they were unpickled from (dropped with the tree).
_sources: weakref.WeakKeyDictionary[Any, bytes] = weakref.WeakKeyDictionary()


def apply() -> None:
    """Patch moto's DynamoDB backend and validators once per process (idempotent)."""
    global _applied
    if _applied:
        return
    vars(dynamodb_models)["UpdateExpressionParser"] = ParsedOnce
    vars(validators)["deepcopy"] = copy_tree
    _applied = True


@functools.lru_cache(maxsize=1024)
def _pickled(expression: str) -> bytes:
    tree = UpdateExpressionParser.make(expression)
    return pickle.dumps(tree, pickle.HIGHEST_PROTOCOL)


class ParsedOnce:
    """What moto's backend calls `UpdateExpressionParser`: a new tree per call, parsed once
    per expression text."""

    @staticmethod
    def make(expression: str) -> Any:
        data = _pickled(expression)
        tree = pickle.loads(data)
        _sources[tree] = data
        return tree


def copy_tree(value: Any, memo: dict[int, Any] | None = None) -> Any:
    """`copy.deepcopy`, faster for the unchanged trees `ParsedOnce.make` returned."""
    if memo is None and isinstance(value, Node):
        data = _sources.get(value)
        if data is not None:
            return pickle.loads(data)
    return copy.deepcopy(value, memo)
