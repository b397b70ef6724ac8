"""moto's update expressions parsed once per text, and their trees copied cheaply.

Every UpdateItem (alone or in a transaction) makes moto's backend parse the update expression
(`UpdateExpressionParser.make`) and hand the tree to `UpdateExpressionValidator`, which first
deep-copies it (`copy.deepcopy`) and then changes only its copy. The handlers send a small,
fixed set of expression texts, and both steps cost more than the rest of an update:

- the backend's parse is kept per expression text, with its pickled bytes. The backend hands
  the tree to validators alone, and a validator copies it before changing anything, so the
  calls share it. Parse errors are not kept: an invalid expression raises every time;
- the validator's copy of such a tree is built from the bytes instead of deep-copied: by a
  function made once per tree from its unpickled nodes, with one line per node (pickle and
  deepcopy rebuild an object the same way, `__reduce_ex__`; the function does it without
  reading bytes). Every copy is made from the parse itself, never from a tree something may
  have changed since. Anything else (another tree, a value) is still deep-copied;
- the validator's first processors only check the tree (one clause of each kind, no two
  paths that overlap, no key attribute updated): what they find depends on the tree and the
  processor's own inputs (the attribute names, the table's key), never on the item or the
  values. A check that passed on an unchanged copy of a tree is remembered for that tree and
  those inputs, and skipped when they come again; a check that fails is never remembered, so
  it raises every time;
- condition expressions (ConditionExpression, FilterExpression) are split into tokens once
  per text: moto's lexer reads nothing but the text, and the later steps build new nodes
  instead of changing the tokens. The names and values are still looked up on every call;
- moto's depth-first traversal, run ten times per update, looks its processing map up twice
  per node and checks every node against abstract classes: `traverse` does the same visits
  and calls the same processors in the same order, with the map looked up once per run and
  each node class matched to the map's classes once per traverser class;
- a processor whose traversal would call nothing (it has no hook, and no node of the tree is
  of a class it processes) is not run: the function evaluator when the expression calls no
  function, the missing-path check when no path was found missing.

tests/unit/test_moto_expressions.py compares the trees, and what updates do, with moto's own.
"""

from __future__ import annotations

import copy
import functools
import pickle
import weakref
from collections import deque
from collections.abc import Callable
from typing import Any

from moto.dynamodb import models as dynamodb_models
from moto.dynamodb.comparisons import ConditionExpressionParser
from moto.dynamodb.parsing import validators
from moto.dynamodb.parsing.ast_nodes import (  # type: ignore[attr-defined]
    DepthFirstTraverser,
    Node,
)
from moto.dynamodb.parsing.expressions import UpdateExpressionParser  # type: ignore[attr-defined]

_applied = False
# The trees `make` returns, with the bytes they were unpickled from.
_sources: weakref.WeakKeyDictionary[Any, bytes] = weakref.WeakKeyDictionary()
# Validators' copies of those trees, while no processor has run on them.
_unchanged: weakref.WeakKeyDictionary[Any, bytes] = weakref.WeakKeyDictionary()
# Processors that only check a tree, and return it unchanged when it passes.
CHECKS = frozenset(
    {
        validators.ActionCountValidator,
        validators.OverlappingPathsValidator,
        validators.UpdateHashRangeKeyValidator,
    }
)
_passed: set[tuple[Any, ...]] = set()  # (check, tree bytes, the check's inputs)
_PASSED_MAX = 4096
_is_node: dict[type, bool] = {}
# (traverser class, node class) -> the processing map's class the node matches, or None: a
# traverser's map has the same classes in the same order on every run.
_matched: dict[tuple[type, type], Any] = {}
_UNMATCHED = object()
# What apply() replaced, by name (for tests that compare with moto's own).
MOTOS_OWN: dict[str, Any] = {}


def apply() -> None:
    """Patch moto's DynamoDB backend and validators (idempotent; `restore` undoes it)."""
    global _applied
    if _applied:
        return
    MOTOS_OWN.update(
        UpdateExpressionParser=UpdateExpressionParser,
        deepcopy=vars(validators)["deepcopy"],
        validate=validators.Validator.validate,
        traverse=DepthFirstTraverser.traverse,
        lex=ConditionExpressionParser._lex_condition_expression,
    )
    ConditionExpressionParser._lex_condition_expression = lex_condition  # type: ignore[method-assign]
    vars(dynamodb_models)["UpdateExpressionParser"] = ParsedOnce
    vars(validators)["deepcopy"] = copy_tree
    validators.Validator.validate = validate  # type: ignore[method-assign]
    DepthFirstTraverser.traverse = traverse
    _applied = True


def restore() -> None:
    """moto as it was before `apply` (idempotent)."""
    global _applied
    if not _applied:
        return
    ConditionExpressionParser._lex_condition_expression = MOTOS_OWN["lex"]  # type: ignore[method-assign]
    vars(dynamodb_models)["UpdateExpressionParser"] = MOTOS_OWN["UpdateExpressionParser"]
    vars(validators)["deepcopy"] = MOTOS_OWN["deepcopy"]
    validators.Validator.validate = MOTOS_OWN["validate"]  # type: ignore[method-assign]
    DepthFirstTraverser.traverse = MOTOS_OWN["traverse"]
    _applied = False


@functools.lru_cache(maxsize=1024)
def _parsed(expression: str) -> Any:
    data = pickle.dumps(UpdateExpressionParser.make(expression), pickle.HIGHEST_PROTOCOL)
    tree = pickle.loads(data)
    _sources[tree] = data
    return tree


@functools.lru_cache(maxsize=1024)
def _classes(data: bytes) -> frozenset[type]:
    """The classes of the nodes of the tree pickled in `data`."""
    return frozenset(_classes_in(pickle.loads(data)))


def _classes_in(root: Any) -> set[type]:
    """The classes of every node of a tree."""
    found: set[type] = set()
    pending = [root]
    while pending:
        node = pending.pop()
        found.add(type(node))
        pending.extend(c for c in node.children or () if _node_class(type(c)))
    return found


class ParsedOnce:
    """What moto's backend calls `UpdateExpressionParser`: the tree of an expression text,
    parsed once per text (for validators, which copy it before they change anything)."""

    @staticmethod
    def make(expression: str) -> Any:
        return _parsed(expression)


def copy_tree(value: Any, memo: dict[int, Any] | None = None) -> Any:
    """`copy.deepcopy`, faster for the unchanged trees `ParsedOnce.make` returned."""
    if memo is None and isinstance(value, Node):
        data = _sources.get(value)
        if data is not None:
            tree = _builder(data)()
            _unchanged[tree] = data
            return tree
    return copy.deepcopy(value, memo)


_SCALARS = (str, int, float, bool, type(None))


@functools.lru_cache(maxsize=1024)
def _builder(data: bytes) -> Callable[[], Any]:
    """A function that builds the tree pickled in `data` anew: one line per node, made once
    per tree (an unpickling looks up each node's class and rebuilds its state from the bytes
    every time). Nodes hold their children, their parent and scalars (kind names, attribute
    names, list indexes), shared with the parse as they are immutable. A tree holding anything
    else is unpickled."""
    tree = pickle.loads(data)
    order: list[Any] = []
    pending = [tree]
    while pending:
        node = pending.pop()
        order.append(node)
        pending.extend(reversed([c for c in node.children or () if _node_class(type(c))]))
    number = {id(node): i for i, node in enumerate(order)}
    constants: list[Any] = []

    def ref(value: Any) -> str | None:
        if _node_class(type(value)):
            return f"n{number[id(value)]}" if id(value) in number else None
        if isinstance(value, _SCALARS):
            constants.append(value)
            return f"k[{len(constants) - 1}]"
        return None

    lines = [f"n{i} = new(c[{i}])" for i in range(len(order))]
    for i, node in enumerate(order):
        parts = []
        for name, value in vars(node).items():
            if isinstance(value, list):
                refs = [ref(v) for v in value]
                if None in refs:
                    return functools.partial(pickle.loads, data)
                parts.append(f"{name!r}: [{', '.join(r for r in refs if r)}]")
            else:
                one = ref(value)
                if one is None:
                    return functools.partial(pickle.loads, data)
                parts.append(f"{name!r}: {one}")
        lines.append(f"n{i}.__dict__ = {{{', '.join(parts)}}}")
    source = "def build():\n" + "".join(f"    {line}\n" for line in lines) + "    return n0\n"
    scope: dict[str, Any] = {
        "new": object.__new__,
        "c": tuple(type(node) for node in order),
        "k": tuple(constants),
    }
    exec(compile(source, "<update expression tree>", "exec"), scope)  # noqa: S102
    return scope["build"]


_lexed: dict[str, tuple[Any, ...]] = {}
_LEXED_MAX = 1024


def lex_condition(self: Any) -> deque[Any]:
    """`ConditionExpressionParser._lex_condition_expression`, kept per expression text."""
    text = self.condition_expression
    tokens = _lexed.get(text)
    if tokens is None:
        tokens = tuple(MOTOS_OWN["lex"](self))  # raises on a text it cannot split
        if len(_lexed) >= _LEXED_MAX:
            _lexed.clear()
        _lexed[text] = tokens
    return deque(tokens)


def _inputs(processor: Any) -> tuple[Any, ...] | None:
    """A check's own inputs (its attributes) as a key; None when they cannot be one."""
    key = []
    for name, value in sorted(vars(processor).items()):
        if isinstance(value, dict):
            value = tuple(sorted(value.items()))
        elif isinstance(value, list):
            value = tuple(value)
        key.append((name, value))
    frozen = tuple(key)
    try:
        hash(frozen)
    except TypeError:
        return None
    return frozen


def validate(self: Any) -> Any:
    """`Validator.validate`: every processor in order, a check skipped when it already passed
    on the same unchanged tree with the same inputs, and a processor skipped when no node of
    the tree is of a class it processes (and it has no hook): its traversal would do nothing.

    The classes of the tree's nodes are known from the parse, then from each traversal (every
    node it left, and every node a processor put in); a node an ancestor's replacement dropped
    may still be counted, which only ever makes a processor run."""
    node = self.node_to_validate
    data = _unchanged.pop(node, None)
    present: set[type] | None = None if data is None else set(_classes(data))
    for processor in self.processors:
        if data is not None and type(processor) in CHECKS:
            inputs = _inputs(processor)
            key = (type(processor), data, inputs)
            if inputs is not None and key in _passed:
                continue
            checked = _walk(processor, node, present)
            if inputs is not None and checked is node:
                if len(_passed) >= _PASSED_MAX:
                    _passed.clear()
                _passed.add(key)
            node = checked
            continue
        data = None  # from here on the tree may change: nothing more is skipped by its bytes
        if present is not None and _idle(processor, present):
            continue
        present = set()
        node = _walk(processor, node, present)
    return node


def _idle(processor: Any, present: set[type]) -> bool:
    """Whether a traversal by `processor` would call nothing: no hook, no node it processes."""
    own = type(processor)
    if own.pre_processing_of_child is not DepthFirstTraverser.pre_processing_of_child:
        return False
    mapping = processor._processing_map()
    return all(_match(own, kind, mapping) is None for kind in present)


def _match(own: type, kind: type, mapping: dict[type, Any]) -> Any:
    """The class of `mapping` (a processing map of an `own` traverser) that `kind` matches."""
    matched = _matched.get((own, kind), _UNMATCHED)
    if matched is _UNMATCHED:
        matched = next((cls for cls in mapping if issubclass(kind, cls)), None)
        _matched[(own, kind)] = matched
    return matched


def _node_class(kind: type) -> bool:
    known = _is_node.get(kind)
    if known is None:
        known = _is_node[kind] = issubclass(kind, Node)
    return known


def traverse(self: Any, root: Any) -> Any:
    """`DepthFirstTraverser.traverse`: children first, then the node's processor (the first
    class of the processing map the node is an instance of), which may replace the node.
    The hook before each child runs for every child, as moto's; a child that is not a node
    (a name, a value) is left as it is, as moto's traversal leaves it."""
    return _walk(self, root, None)


def _walk(self: Any, root: Any, present: set[type] | None) -> Any:
    """`traverse`, adding to `present` (when given) the class of every node it leaves in the
    tree and of every node a processor puts in."""
    mapping: dict[type, Callable[[Any], Any]] = self._processing_map()
    processors: dict[type, Callable[[Any], Any] | None] = {}
    hook = self.pre_processing_of_child
    hooked = type(self).pre_processing_of_child is not DepthFirstTraverser.pre_processing_of_child
    is_node = _is_node
    own = type(self)
    note = present.add if present is not None else None

    def processor_of(kind: type) -> Callable[[Any], Any] | None:
        matched = _match(own, kind, mapping)
        found = None if matched is None else mapping[matched]
        processors[kind] = found
        return found

    def visit(node: Any, child_id: int) -> Any:
        parent = node.parent
        children = node.children
        if children is not None:
            for i, child in enumerate(children):
                if hooked:
                    hook(node, i)
                kind = type(child)
                known = is_node.get(kind)
                if known is None:
                    known = _node_class(kind)
                if known:
                    visit(child, i)
        kind = type(node)
        process = processors[kind] if kind in processors else processor_of(kind)
        if process is not None:
            return _processed(process, node, parent, child_id, present)
        if note is not None:
            note(kind)
        return node

    if not _node_class(type(root)):
        return root
    return visit(root, -1)


def _processed(
    process: Callable[[Any], Any], node: Any, parent: Any, child_id: int, present: set[type] | None
) -> Any:
    """What the processor makes of a node, put in the node's place."""
    done = process(node)
    done.parent = parent
    if parent:
        parent.children[child_id] = done
    if present is not None:
        present.update((type(node),) if done is node else _classes_in(done))
    return done
