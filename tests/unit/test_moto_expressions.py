"""Update expressions parsed once per text give the trees, and the updates, moto's own give."""

from __future__ import annotations

import copy
from collections.abc import Iterator
from typing import Any

import pytest
from botocore.exceptions import ClientError
from moto.dynamodb import models as dynamodb_models
from moto.dynamodb.comparisons import ConditionExpressionParser
from moto.dynamodb.parsing import validators
from moto.dynamodb.parsing.ast_nodes import (
    DepthFirstTraverser,
    ExpressionValueOperator,
    Node,
    UpdateExpressionValue,
)
from moto.dynamodb.parsing.expressions import UpdateExpressionParser

from ab_testing.ledger import RATIO_FIELDS, TOTALS_FIELDS
from emulator import moto_expressions
from emulator.dynamo import InProcessDynamo, dynamodb_client
from emulator.moto_expressions import ParsedOnce

moto_expressions.apply()  # as the in-process backend does (idempotent)

# The handlers' update expressions (ledger.py, store.py), as they build them.
TOTALS = (
    "ADD " + ", ".join(f"#{f} :{f}" for f in TOTALS_FIELDS) + " SET #variant_id = :v, #metric = :m"
)
EXPRESSIONS = [
    TOTALS,
    TOTALS + ", min_y = :y",
    TOTALS + ", min_y = :y, max_y = :y",
    "ADD " + ", ".join(f"#{f} :{f}" for f in RATIO_FIELDS) + " SET #variant_id = :v, #ratio = :r",
    "SET #m.#w0 = :state",
    "SET #m.#w0 = :state, #x = :x",
    "ADD assigned_count :one SET variant_id = :v",
    "SET target_percentage = :t, rebalanced_at = :now, srm_baseline = :b, "
    "allocation_ranges = :r, changed_ranges = :c, max_target_percentage = :m",
    "REMOVE a, b[1] SET c = list_append(c, :l) DELETE s :s",
]


def shape(value: Any, parent: Any = None) -> Any:
    """A tree as nested tuples: class, type and children; raises if a parent link is wrong."""
    if not isinstance(value, Node):
        return (type(value).__name__, value)
    assert value.parent is parent, f"{value.type}: parent link differs"
    children = value.children
    kids = None if children is None else tuple(shape(child, value) for child in children)
    extra = {k: v for k, v in vars(value).items() if k not in ("type", "children", "parent")}
    return (type(value).__name__, value.type, kids, tuple(sorted(extra.items())))


def nodes(tree: Any) -> list[Any]:
    found = [tree]
    for child in tree.children or []:
        if isinstance(child, Node):
            found.extend(nodes(child))
    return found


@pytest.mark.parametrize("expression", EXPRESSIONS)
def test_a_parse_kept_per_text_is_motos_parse(expression: str) -> None:
    # Given moto's own parse of a handler's expression
    theirs = UpdateExpressionParser.make(expression)
    # When it is parsed twice the kept way
    first = moto_expressions.ParsedOnce.make(expression)
    second = moto_expressions.ParsedOnce.make(expression)
    # Then it was parsed once, into moto's tree
    assert first is second
    assert shape(first) == shape(theirs)


@pytest.mark.parametrize("expression", EXPRESSIONS)
def test_the_validators_copy_is_a_deep_copy(expression: str) -> None:
    # Given a tree the kept parse returned
    tree = moto_expressions.ParsedOnce.make(expression)
    # When the validator copies it
    ours = moto_expressions.copy_tree(tree)
    theirs = copy.deepcopy(tree)
    # Then the copy is what deepcopy makes, and shares no node with the tree
    assert shape(ours) == shape(theirs) == shape(tree)
    assert not {id(n) for n in nodes(ours)} & {id(n) for n in nodes(tree)}
    # And a copy is not itself taken for the parse
    assert moto_expressions.copy_tree(ours) is not ours


def test_copies_are_made_from_the_parse_even_if_the_tree_was_changed() -> None:
    # Given a kept tree that something changed in place
    tree = moto_expressions.ParsedOnce.make("SET changed_in_place = :a")
    pristine = shape(tree)
    tree.children[0].children = []
    try:
        # When a validator copies it / Then the copy is the parse, unchanged
        assert shape(moto_expressions.copy_tree(tree)) == pristine
    finally:
        moto_expressions._parsed.cache_clear()


def test_anything_else_is_deep_copied() -> None:
    # Given a tree moto parsed itself, and a plain value
    tree = UpdateExpressionParser.make("SET a = :a")
    value = {"L": [{"S": "x"}]}
    # When they are copied / Then they are deep copies
    copied = moto_expressions.copy_tree(tree)
    assert copied is not tree and shape(copied) == shape(tree)
    copied_value = moto_expressions.copy_tree(value)
    assert copied_value == value and copied_value["L"] is not value["L"]


def test_an_invalid_expression_is_refused_every_time() -> None:
    for _ in range(2):
        with pytest.raises(Exception) as refused:
            moto_expressions.ParsedOnce.make("SET = :a")
        assert "Invalid UpdateExpression" in str(refused.value)


CONDITIONS = [
    "attribute_not_exists(result_id)",
    "attribute_not_exists(#u)",
    "attribute_not_exists(pk)",
    "last_experiment_id = :e AND last_variant_id = :v",
    "#status IN (:s0, :s1)",
    "attribute_not_exists(#m.#w0) AND #m.#w1.#c = :c1",
    "attribute_not_exists(#x) AND size(#m) = :none",
    "attribute_not_exists(min_y) AND max_y = :old_max_y",
    "NOT (a <> :b) OR begins_with(c, :d) AND e BETWEEN :f AND :g",
]


@pytest.mark.parametrize("expression", CONDITIONS)
def test_condition_tokens_kept_per_text_are_motos_tokens(expression: str) -> None:
    # Given moto's own lexer / When a condition is split twice the kept way
    parser = ConditionExpressionParser(expression, {}, {})
    theirs = list(moto_expressions.MOTOS_OWN["lex"](parser))
    first = moto_expressions.lex_condition(parser)
    second = moto_expressions.lex_condition(parser)
    # Then the tokens are moto's, each time in a deque of its own
    assert list(first) == list(second) == theirs
    assert first is not second
    first.popleft()
    assert list(moto_expressions.lex_condition(parser)) == theirs


def test_a_condition_that_cannot_be_split_is_refused_every_time() -> None:
    parser = ConditionExpressionParser("a = :b ; c", {}, {})
    for _ in range(2):
        with pytest.raises(ValueError, match="Cannot parse condition"):
            moto_expressions.lex_condition(parser)


@pytest.fixture
def client() -> Iterator[Any]:
    dynamo = InProcessDynamo("us-east-1")  # applies the patches
    dynamo.start()
    client = dynamodb_client("us-east-1")
    for table in ("patched", "moto"):
        client.create_table(
            TableName=table,
            KeySchema=[{"AttributeName": "pk", "KeyType": "HASH"}],
            AttributeDefinitions=[{"AttributeName": "pk", "AttributeType": "S"}],
            BillingMode="PAY_PER_REQUEST",
        )
    try:
        yield client
    finally:
        dynamo.stop()


def updates(client: Any, table: str) -> list[Any]:
    """A run of updates, transactions and refusals; what each answered."""
    answers: list[Any] = []
    totals = {f":{f}": {"N": str(i + 1)} for i, f in enumerate(TOTALS_FIELDS)}
    names = {f"#{f}": f for f in (*TOTALS_FIELDS, "variant_id", "metric")}
    steps: list[dict[str, Any]] = [
        {
            "UpdateExpression": TOTALS + ", min_y = :y",
            "ConditionExpression": "attribute_not_exists(min_y)",
            "ExpressionAttributeNames": names,
            "ExpressionAttributeValues": {
                **totals,
                ":v": {"N": "1"},
                ":m": {"S": "score"},
                ":y": {"N": "3"},
            },
        },
        {
            "UpdateExpression": TOTALS + ", min_y = :y",
            "ConditionExpression": "min_y = :old_min_y",
            "ExpressionAttributeNames": names,
            "ExpressionAttributeValues": {
                **totals,
                ":v": {"N": "1"},
                ":m": {"S": "score"},
                ":y": {"N": "2"},
                ":old_min_y": {"N": "3"},
            },
        },
        {
            "UpdateExpression": "SET #m = :empty, l = :l",
            "ExpressionAttributeNames": {"#m": "m"},
            "ExpressionAttributeValues": {":empty": {"M": {}}, ":l": {"L": [{"S": "a"}]}},
        },
        {
            "UpdateExpression": "SET #m.#w0 = :state, l = list_append(l, :l)",
            "ConditionExpression": "attribute_not_exists(#m.#w0)",
            "ExpressionAttributeNames": {"#m": "m", "#w0": "score"},
            "ExpressionAttributeValues": {
                ":state": {"M": {"s": {"N": "2"}, "c": {"N": "1"}}},
                ":l": {"L": [{"S": "b"}]},
            },
        },
        {
            "UpdateExpression": "REMOVE l[0] SET n = :n",
            "ExpressionAttributeValues": {":n": {"N": "1"}},
        },
        {"UpdateExpression": "SET pk = :p", "ExpressionAttributeValues": {":p": {"S": "x"}}},
        # The same texts pass or fail their checks by the names they come with.
        {
            "UpdateExpression": "SET #a = :a, #b = :a",
            "ExpressionAttributeNames": {"#a": "a", "#b": "b"},
            "ExpressionAttributeValues": {":a": {"N": "1"}},
        },
        {
            "UpdateExpression": "SET #a = :a, #b = :a",
            "ExpressionAttributeNames": {"#a": "a", "#b": "a"},
            "ExpressionAttributeValues": {":a": {"N": "1"}},
        },
        {
            "UpdateExpression": "SET #k = :a",
            "ExpressionAttributeNames": {"#k": "k"},
            "ExpressionAttributeValues": {":a": {"N": "1"}},
        },
        {
            "UpdateExpression": "SET #k = :a",
            "ExpressionAttributeNames": {"#k": "pk"},
            "ExpressionAttributeValues": {":a": {"N": "1"}},
        },
        {
            "UpdateExpression": "ADD #a :a SET #b = :a ADD #c :a",
            "ExpressionAttributeNames": {"#a": "a", "#b": "b", "#c": "c"},
            "ExpressionAttributeValues": {":a": {"N": "1"}},
        },
        {"UpdateExpression": "SET a = :a, a = :a", "ExpressionAttributeValues": {":a": {"N": "1"}}},
        {"UpdateExpression": "SET a = :missing", "ExpressionAttributeValues": {":a": {"N": "1"}}},
        # A value read from an attribute the item has, and from one it does not have.
        {"UpdateExpression": "SET n2 = n + :a", "ExpressionAttributeValues": {":a": {"N": "1"}}},
        {
            "UpdateExpression": "SET n3 = nowhere + :a",
            "ExpressionAttributeValues": {":a": {"N": "1"}},
        },
        {
            "UpdateExpression": "SET n4 = if_not_exists(nowhere, :a), n5 = if_not_exists(n, :a)",
            "ExpressionAttributeValues": {":a": {"N": "7"}},
        },
    ]
    steps.insert(4, steps[3])  # its condition fails the second time
    for step in steps:
        try:
            answer = client.update_item(
                TableName=table, Key={"pk": {"S": "k"}}, ReturnValues="ALL_NEW", **step
            )
            answers.append(answer["Attributes"])
        except ClientError as exc:
            answers.append(exc.response["Error"])
        try:
            client.transact_write_items(
                TransactItems=[{"Update": {"TableName": table, "Key": {"pk": {"S": "t"}}, **step}}]
            )
            answers.append("ok")
        except ClientError as exc:
            answers.append((exc.response["Error"], exc.response.get("CancellationReasons")))
    answers.append(client.scan(TableName=table)["Items"])
    return answers


def test_updates_do_what_they_do_with_motos_own_parse_and_copy(
    client: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Given the run of updates with the kept parse and the cheap copy
    assert vars(dynamodb_models)["UpdateExpressionParser"] is moto_expressions.ParsedOnce
    ours = updates(client, "patched")
    # When the same run is made with moto's own parse and deepcopy
    own = moto_expressions.MOTOS_OWN
    monkeypatch.setitem(
        vars(dynamodb_models), "UpdateExpressionParser", own["UpdateExpressionParser"]
    )
    monkeypatch.setitem(vars(validators), "deepcopy", own["deepcopy"])
    monkeypatch.setattr(validators.Validator, "validate", own["validate"])
    monkeypatch.setattr(DepthFirstTraverser, "traverse", own["traverse"])
    monkeypatch.setattr(ConditionExpressionParser, "_lex_condition_expression", own["lex"])
    theirs = updates(client, "moto")
    # Then every answer, refusal and stored item is the same
    assert ours == theirs
    assert any(isinstance(answer, dict) and "Code" in answer for answer in ours)
    assert any("ConditionalCheckFailed" in str(answer) for answer in ours)
    assert any("overlap" in str(answer) for answer in ours)
    assert any("part of the key" in str(answer) for answer in ours)
    assert any("does not exist" in str(answer) for answer in ours)
    assert any(isinstance(answer, dict) and "n5" in answer for answer in ours)


def walked(expression: str, names: dict[str, str], values: dict[str, Any]) -> list[str]:
    """The processors whose traversal ran while an update with `expression` was validated."""
    ran: list[str] = []
    walk = moto_expressions._walk

    def noting(processor: Any, root: Any, present: Any) -> Any:
        ran.append(type(processor).__name__)
        return walk(processor, root, present)

    dynamo = InProcessDynamo("us-east-1")
    dynamo.start()
    client = dynamodb_client("us-east-1")
    try:
        client.create_table(
            TableName="w",
            KeySchema=[{"AttributeName": "pk", "KeyType": "HASH"}],
            AttributeDefinitions=[{"AttributeName": "pk", "AttributeType": "S"}],
            BillingMode="PAY_PER_REQUEST",
        )
        update = {"TableName": "w", "Key": {"pk": {"S": "k"}}, "UpdateExpression": expression}
        if names:
            update["ExpressionAttributeNames"] = names
        client.update_item(**update, ExpressionAttributeValues=values)  # checks pass, kept
        moto_expressions._walk = noting
        try:
            client.update_item(**update, ExpressionAttributeValues=values)
        finally:
            moto_expressions._walk = walk
    finally:
        dynamo.stop()
    return ran


def test_a_processor_with_nothing_to_process_is_not_run() -> None:
    # Given the totals update (no function, every path set or added), and one with a function
    totals = {f":{f}": {"N": "1"} for f in TOTALS_FIELDS}
    names = {f"#{f}": f for f in (*TOTALS_FIELDS, "variant_id", "metric")}
    values = {**totals, ":v": {"N": "1"}, ":m": {"S": "score"}}
    # When each is validated
    plain = walked(TOTALS, names, values)
    function = walked("SET c = if_not_exists(c, :a)", {}, {":a": {"N": "1"}})
    # Then the function evaluator and the missing-path check ran only where they had work
    assert "ExpressionAttributeValueProcessor" in plain and "ExecuteOperations" in plain
    assert "UpdateExpressionFunctionEvaluator" not in plain
    assert "NoneExistingPathChecker" not in plain
    assert "UpdateExpressionFunctionEvaluator" in function


class Recorder(DepthFirstTraverser):  # type: ignore[misc]
    """Notes every hook call and every node it processes, and replaces value nodes."""

    def __init__(self) -> None:
        self.seen: list[Any] = []

    def _processing_map(self) -> dict[type, Any]:
        return {UpdateExpressionValue: self.replace, Node: self.note}

    def pre_processing_of_child(self, parent_node: Any, child_id: int) -> None:
        self.seen.append(("hook", parent_node.type, child_id))

    def note(self, node: Any) -> Any:
        self.seen.append(("node", node.type))
        return node

    def replace(self, node: Any) -> Any:
        self.seen.append(("value", node.type))
        return ExpressionValueOperator("+")


@pytest.mark.parametrize("expression", EXPRESSIONS)
def test_the_traversal_visits_and_replaces_as_motos_does(expression: str) -> None:
    # Given two copies of a tree, and a traverser that notes and replaces
    ours_tree, theirs_tree = (copy.deepcopy(ParsedOnce.make(expression)) for _ in range(2))
    ours, theirs = Recorder(), Recorder()
    # When one is traversed our way and the other moto's way
    ours_root = moto_expressions.traverse(ours, ours_tree)
    theirs_root = moto_expressions.MOTOS_OWN["traverse"](theirs, theirs_tree)
    # Then the same hooks and processors ran in the same order, and the trees match
    assert ours.seen == theirs.seen and ours.seen
    assert shape(ours_root) == shape(theirs_root)
