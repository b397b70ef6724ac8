"""Targeting conditions and layer positions, evaluated locally (the service's docs/targeting.md).

The service checks every condition when the experiment is created, so what arrives in the
definitions is well formed. Like the assignment algorithm, this is shared with the service
through its specification and its vectors (docs/targeting_vectors.json), not through code.
"""

from __future__ import annotations

import hashlib
import math
import re
from collections.abc import Callable
from typing import Any

_MISSING = None  # an attribute that is not there reads as null


def json_type(value: Any) -> str:
    if value is None:
        return "null"
    if value is True or value is False:
        return "boolean"
    if isinstance(value, int | float):
        return "number"
    for python, name in ((str, "string"), (list, "array"), (dict, "object")):
        if isinstance(value, python):
            return name
    return "unknown"


def _array_index(text: str, size: int) -> int | None:
    """A canonical array index below size ("3", not "03" or "+3"), else None."""
    if not text.isascii() or not text.isdigit() or len(text) > 10:
        return None
    if len(text) > 1 and text[0] == "0":
        return None
    return int(text) if int(text) < size else None


def lookup(attributes: Any, path: str) -> Any:
    current = attributes
    for step in path.split("."):
        if isinstance(current, dict):
            if step not in current:
                return _MISSING
            current = current[step]
        elif isinstance(current, list):
            if step == "length":
                current = len(current)
                continue
            index = _array_index(step, len(current))
            if index is None:
                return _MISSING
            current = current[index]
        else:
            return _MISSING
    return current


def _is_operators(value: Any) -> bool:
    return isinstance(value, dict) and not [k for k in value if not str(k).startswith("$")]


def _property_order(obj: dict[str, Any]) -> list[str]:
    integer_like = [k for k in obj if _array_index(k, 2**32 - 1) is not None]
    rest = [k for k in obj if _array_index(k, 2**32 - 1) is None]
    return sorted(integer_like, key=int) + rest


def deep_equal(left: Any, right: Any) -> bool:
    kind = json_type(left)
    if kind != json_type(right):
        return False
    if kind == "object":
        if _property_order(left) != _property_order(right):
            return False
        return all(deep_equal(left[key], right[key]) for key in left)
    if kind == "array":
        if len(left) != len(right):
            return False
        return all(deep_equal(a, b) for a, b in zip(left, right, strict=True))
    return bool(left == right)


def strict_equal(left: Any, right: Any) -> bool:
    kind = json_type(left)
    if kind in ("object", "array") or kind != json_type(right):
        return False
    return bool(left == right)


def _order(left: Any, right: Any) -> int | None:
    """-1, 0 or 1 for two numbers or two strings (UTF-16 order), None otherwise."""
    if json_type(left) == json_type(right) == "number":
        return (left > right) - (left < right)
    if isinstance(left, str) and isinstance(right, str):
        a = left.encode("utf-16-be", "surrogatepass")
        b = right.encode("utf-16-be", "surrogatepass")
        return (a > b) - (a < b)
    return None


def number_text(value: float) -> str:
    """JavaScript's String(number)."""
    try:
        x = float(value)
    except OverflowError:
        x = math.copysign(math.inf, value)
    if x != x:
        return "NaN"
    if x == 0:
        return "0"
    if x < 0:
        return "-" + number_text(-x)
    if x == math.inf:
        return "Infinity"
    digits, exponent = _shortest(x)
    k = len(digits)
    point = exponent + k  # x = 0.digits * 10**point
    if k <= point <= 21:
        return digits + "0" * (point - k)
    if 0 < point <= 21:
        return digits[:point] + "." + digits[point:]
    if -6 < point <= 0:
        return "0." + "0" * (-point) + digits
    sign = "+" if point - 1 >= 0 else "-"
    head = digits[0] + ("." + digits[1:] if k > 1 else "")
    return f"{head}e{sign}{abs(point - 1)}"


def _shortest(x: float) -> tuple[str, int]:
    """The shortest round-trip digits of a positive float and their exponent (x = D * 10**e)."""
    text = repr(x)
    mantissa, _, exp = text.partition("e")
    whole, _, frac = mantissa.partition(".")
    if frac == "0":
        frac = ""
    digits = (whole + frac).lstrip("0")
    exponent = int(exp or 0) - len(frac)
    stripped = digits.rstrip("0")
    exponent += len(digits) - len(stripped)
    return stripped, exponent


_BUILD_OR_V = re.compile(r"(^v|\+.*$)")
_SEPARATORS = re.compile(r"[-.]")


def version_text(value: Any) -> str:
    if json_type(value) == "number":
        value = number_text(value)
    if not isinstance(value, str) or value == "":
        value = "0"
    pieces = _SEPARATORS.split(_BUILD_OR_V.sub("", value))
    if len(pieces) == 3:
        pieces.append("~")
    return "-".join(" " * (5 - len(p)) + p if p.isdigit() else p for p in pieces)


def _contains(options: list[Any], value: Any) -> bool:
    candidates = value if isinstance(value, list) else [value]
    return any(strict_equal(c, o) for c in candidates for o in options)


def _each_item(value: Any, test: Callable[[Any], bool]) -> bool:
    return isinstance(value, list) and any(item is not None and test(item) for item in value)


def _elem_match(value: Any, condition: dict[str, Any]) -> bool:
    if _is_operators(condition) and not {"$and", "$or", "$nor"} & set(condition):
        return _each_item(value, lambda item: value_matches(item, condition))
    return _each_item(value, lambda item: condition_matches(condition, item))


def _compared(wanted: tuple[int, ...]) -> Callable[[Any, Any], bool]:
    def test(value: Any, argument: Any) -> bool:
        order = _order(value, argument)
        return order is not None and order in wanted

    return test


def _versions(wanted: tuple[int, ...], on_mismatch: bool) -> Callable[[Any, Any], bool]:
    def test(value: Any, argument: Any) -> bool:
        if _order(value, argument) is None:
            return on_mismatch
        a, b = version_text(value), version_text(argument)
        return ((a > b) - (a < b)) in wanted  # code-point order of the padded texts

    return test


_OPERATORS: dict[str, Callable[[Any, Any], bool]] = {
    "$eq": strict_equal,
    "$ne": lambda v, a: not strict_equal(v, a),
    "$lt": _compared((-1,)),
    "$lte": _compared((-1, 0)),
    "$gt": _compared((1,)),
    "$gte": _compared((0, 1)),
    "$veq": _versions((0,), False),
    "$vne": _versions((-1, 1), True),
    "$vlt": _versions((-1,), False),
    "$vlte": _versions((-1, 0), False),
    "$vgt": _versions((1,), False),
    "$vgte": _versions((0, 1), False),
    "$in": lambda v, a: _contains(a, v),
    "$nin": lambda v, a: not _contains(a, v),
    "$regex": lambda v, a: isinstance(v, str) and re.search(a, v) is not None,
    "$exists": lambda v, a: (v is not None) == a,
    "$type": lambda v, a: json_type(v) == a,
    "$not": lambda v, a: not value_matches(v, a),
    "$size": lambda v, a: isinstance(v, list) and value_matches(len(v), a),
    "$all": lambda v, a: (
        isinstance(v, list) and all(any(value_matches(item, want) for item in v) for want in a)
    ),
    "$elemMatch": _elem_match,
}


def value_matches(value: Any, expected: Any) -> bool:
    if _is_operators(expected):
        for operator, argument in expected.items():
            test = _OPERATORS.get(operator)
            if test is None or not test(value, argument):
                return False  # an operator this client does not know never matches
        return True
    return deep_equal(expected, value)


def condition_matches(condition: dict[str, Any], attributes: Any) -> bool:
    """Whether the attributes satisfy the condition: every one of its entries holds."""
    for key, argument in condition.items():
        if key == "$or":
            ok = len(argument) == 0 or any(condition_matches(c, attributes) for c in argument)
        elif key == "$nor":
            ok = len(argument) > 0 and not any(condition_matches(c, attributes) for c in argument)
        elif key == "$and":
            ok = all(condition_matches(c, attributes) for c in argument)
        elif key == "$not":
            ok = not condition_matches(argument, attributes)
        else:
            ok = value_matches(lookup(attributes, key), argument)
        if not ok:
            return False
    return True


def layer_position(layer: str, unit: str) -> float:
    """The unit's place in the layer, in [0, 1): SHA-256 of "layer:<name>:<unit>", top 53 bits
    of its first 8 bytes, over 2**53."""
    head = hashlib.sha256(("layer:" + layer + ":" + unit).encode("utf-8")).digest()[:8]
    return (int.from_bytes(head, "big") >> 11) / float(2**53)
