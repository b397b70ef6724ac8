"""Who may enter an experiment: targeting conditions and layers (docs/targeting.md).

A condition is the MongoDB-style language GrowthBook's SDKs evaluate, with their answers:
``{"plan": {"$in": ["pro", "team"]}, "app.version": {"$vgte": "2.1.0"}}``. ``check`` refuses
what this service does not evaluate (an unknown operator, a malformed argument, a regular
expression that could backtrack for long) before anything is stored; ``matches`` evaluates a
checked condition against a unit's attributes. Standard library only: this runs on the
get-variant hot path.

A layer keeps experiments on one surface apart: a unit's position in a layer is a hash of the
layer's name and the unit, the same for every experiment of the layer, and an experiment takes
the units whose position lies in its range.
"""

from __future__ import annotations

import hashlib
import json
import math
import re
from decimal import Decimal
from typing import Any

MAX_CONDITION_BYTES = 8 * 1024
MAX_DEPTH = 16  # conditions and operator objects inside one another
MAX_ATTRIBUTES_BYTES = 8 * 1024
MAX_ATTRIBUTES_DEPTH = 8
MAX_ATTRIBUTE_CHARS = 512  # per string value: bounds what a regular expression reads
MAX_PATTERN_CHARS = 200
MAX_REPEATS = 2  # repeating quantifiers (* + {m,} {m,n}) in one pattern
MAX_QUANTIFIERS = 10

LOGICAL = ("$and", "$or", "$nor")
TYPES = ("string", "number", "boolean", "array", "object", "null")
_ORDER = {"$lt": (-1,), "$lte": (-1, 0), "$gt": (1,), "$gte": (1, 0)}
_VERSION_ORDER = {
    "$veq": (0,),
    "$vne": (-1, 1),
    "$vlt": (-1,),
    "$vlte": (-1, 0),
    "$vgt": (1,),
    "$vgte": (1, 0),
}
OPERATORS = (
    "$eq",
    "$ne",
    *_ORDER,
    *_VERSION_ORDER,
    "$in",
    "$nin",
    "$all",
    "$regex",
    "$exists",
    "$type",
    "$not",
    "$elemMatch",
    "$size",
)


# ---------------------------------------------------------------------------------- checking
def _bounded_object(value: Any, what: str, limit: int) -> None:
    """A JSON object of at most ``limit`` bytes (compact UTF-8), else ValueError."""
    if not isinstance(value, dict):
        raise ValueError(f"{what} must be a JSON object")
    size = len(json.dumps(value, separators=(",", ":"), ensure_ascii=False).encode())
    if size > limit:
        raise ValueError(f"{what} is {size} bytes; at most {limit}")


def check(condition: Any) -> None:
    """Raises ValueError saying what is wrong (and where) with a condition."""
    _bounded_object(condition, "targeting", MAX_CONDITION_BYTES)
    _check_condition(condition, "", 0)


def _check_condition(condition: Any, where: str, depth: int) -> None:
    if depth > MAX_DEPTH:
        raise _fail(where, f"conditions nest at most {MAX_DEPTH} deep")
    if not isinstance(condition, dict):
        raise _fail(where, "a condition must be a JSON object")
    for key, value in condition.items():
        at = _at(where, key)
        if key in LOGICAL:
            if not isinstance(value, list):
                raise ValueError(f"{at}: {key} takes a list of conditions")
            for index, item in enumerate(value):
                _check_condition(item, f"{at}[{index}]", depth + 1)
        elif key == "$not":
            _check_condition(value, at, depth + 1)
        elif key.startswith("$"):
            raise _fail(
                where,
                f"unknown operator {key!r} where a condition or an attribute path "
                f"belongs (logical operators: $and, $or, $nor, $not)",
            )
        elif not key or "" in key.split("."):
            raise _fail(where, f"{key!r} is not an attribute path (names joined by dots)")
        else:
            _check_value(value, at, depth + 1)


def _fail(where: str, message: str) -> ValueError:
    return ValueError(f"{where}: {message}" if where else message)


def _at(where: str, key: str) -> str:
    """A place in a document, for messages: "plan.$in", "$or[0].plan" (the top is "")."""
    return f"{where}.{key}" if where else key


def _operator_object(value: Any) -> bool:
    return isinstance(value, dict) and all(str(k).startswith("$") for k in value)


def _check_value(value: Any, where: str, depth: int) -> None:
    if depth > MAX_DEPTH:
        raise _fail(where, f"conditions nest at most {MAX_DEPTH} deep")
    if not _operator_object(value):
        _check_json(value, where)  # a literal: matched by deep equality
        return
    for operator, argument in value.items():
        if operator not in OPERATORS:
            raise _fail(where, f"unknown operator {operator!r}")
        _check_argument(operator, argument, _at(where, operator), depth)


def _check_argument(operator: str, argument: Any, at: str, depth: int) -> None:
    if operator in ("$in", "$nin", "$all") and not isinstance(argument, list):
        raise _fail(at, f"{operator} takes a list")
    if operator == "$all":
        for index, item in enumerate(argument):
            _check_value(item, f"{at}[{index}]", depth + 1)
    elif operator in ("$not", "$size"):
        _check_value(argument, at, depth + 1)
    elif operator == "$exists" and not isinstance(argument, bool):
        raise _fail(at, "$exists takes true or false")
    elif operator == "$type" and argument not in TYPES:
        raise _fail(at, f"$type is one of {', '.join(TYPES)}")
    elif operator == "$regex":
        check_pattern(argument, at)
    elif operator == "$elemMatch":
        if not isinstance(argument, dict):
            raise _fail(at, "$elemMatch takes a condition (a JSON object)")
        if _elem_on_value(argument):
            _check_value(argument, at, depth + 1)
        else:
            _check_condition(argument, at, depth + 1)
    else:
        _check_json(argument, at)


def _check_json(value: Any, where: str) -> None:
    if isinstance(value, float) and not math.isfinite(value):
        raise _fail(where, "numbers must be finite")
    if isinstance(value, dict):
        for item in value.values():
            _check_json(item, where)
    elif isinstance(value, list):
        for item in value:
            _check_json(item, where)


# Tokens of a regular expression that matter for its running time: an escape, a class,
# a group's start or end, an alternation and the quantifiers.
_TOKEN = re.compile(
    r"\\(?P<escape>.)|(?P<klass>\[\^?\]?(?:\\.|[^\]\\])*\])|(?P<open>\((?:\?[:=!>]|\?<[=!]|"
    r"\?P?<[A-Za-z_]\w*>|\?[aiLmsux-]+[:)])?)|(?P<close>\))|(?P<bar>\|)|"
    r"(?P<quant>[*+?]|\{\d*(?:,\d*)?\})[?+]?",
    re.DOTALL,
)


def check_pattern(pattern: Any, where: str = "$regex") -> None:
    """A pattern this service runs in bounded time, else ValueError saying why.

    Python's `re` backtracks, so some patterns take exponential or high polynomial time on a
    crafted string. Refused: backreferences; a repeating quantifier on a group that holds a
    quantifier or an alternation (``(a+)+``, ``(a|ab)*``); more than MAX_REPEATS repeating
    quantifiers. With attribute strings of at most MAX_ATTRIBUTE_CHARS, what is left is fast.
    """
    if not isinstance(pattern, str):
        raise _fail(where, "$regex takes a string")
    if len(pattern) > MAX_PATTERN_CHARS:
        raise _fail(where, f"a pattern has at most {MAX_PATTERN_CHARS} characters")
    try:
        re.compile(pattern)
    except re.error as exc:
        raise _fail(where, f"not a valid regular expression ({exc})") from None
    if "(?P=" in pattern or "(?(" in pattern:
        raise _fail(where, "backreferences are not supported")
    repeats, quantifiers = _quantifiers(pattern, where)
    if repeats > MAX_REPEATS:
        raise _fail(
            where, f"at most {MAX_REPEATS} repeating quantifiers (*, +, {{m,n}}) per pattern"
        )
    if quantifiers > MAX_QUANTIFIERS:
        raise _fail(where, f"at most {MAX_QUANTIFIERS} quantifiers per pattern")


def _quantifiers(pattern: str, where: str) -> tuple[int, int]:
    """(repeating quantifiers, all quantifiers) of a pattern; refuses a backreference and a
    repeated group that holds a quantifier or an alternation."""
    groups: list[bool] = []  # per open group: holds a quantifier or an alternation
    last_group_busy = False
    previous = ""
    repeats = quantifiers = 0
    for token in _TOKEN.finditer(pattern):
        kind = token.lastgroup
        if kind == "escape" and token["escape"].isdigit() and token["escape"] != "0":
            raise _fail(where, "backreferences are not supported")
        if kind == "open":
            groups.append(False)
        elif kind == "close" and groups:
            last_group_busy = groups.pop()
        elif kind == "bar" and groups:
            groups[-1] = True
        elif kind == "quant":
            quantifiers += 1
            low, _, high = token["quant"].strip("{}").partition(",")
            if token["quant"] in ("*", "+") or (high != low and "," in token["quant"]):
                repeats += 1  # a choice of how often: where backtracking spends its time
            if token["quant"] != "?" and previous == "close" and last_group_busy:
                raise _fail(
                    where,
                    "a repeated group must not hold a quantifier or an alternation (such "
                    "patterns can take exponential time)",
                )
            if groups:
                groups[-1] = True
        previous = kind or ""
    return repeats, quantifiers


def check_attributes(attributes: Any) -> dict[str, Any]:
    """A unit's attributes as sent with get-variant, or ValueError saying what is wrong."""
    _bounded_object(attributes, "attributes", MAX_ATTRIBUTES_BYTES)
    _check_attribute(attributes, "", 0)
    return attributes


def _check_attribute(value: Any, where: str, depth: int) -> None:
    if depth > MAX_ATTRIBUTES_DEPTH:
        raise _fail(where, f"attributes nest at most {MAX_ATTRIBUTES_DEPTH} deep")
    if isinstance(value, str) and len(value) > MAX_ATTRIBUTE_CHARS:
        raise _fail(where, f"strings have at most {MAX_ATTRIBUTE_CHARS} characters")
    if isinstance(value, float) and not math.isfinite(value):
        raise _fail(where, "numbers must be finite")
    if isinstance(value, dict):
        for key, item in value.items():
            _check_attribute(item, _at(where, key), depth + 1)
    elif isinstance(value, list):
        for index, item in enumerate(value):
            _check_attribute(item, f"{where}[{index}]", depth + 1)


# -------------------------------------------------------------------------------- evaluating
def matches(condition: dict[str, Any], attributes: Any) -> bool:
    """Whether attributes satisfy a checked condition (every entry holds)."""
    for key, argument in condition.items():
        if key == "$and":
            held = all(matches(c, attributes) for c in argument)
        elif key == "$or":
            held = not argument or any(matches(c, attributes) for c in argument)
        elif key == "$nor":
            held = bool(argument) and not any(matches(c, attributes) for c in argument)
        elif key == "$not":
            held = not matches(argument, attributes)
        else:
            held = _holds(argument, at_path(attributes, key))
        if not held:
            return False
    return True


def at_path(value: Any, path: str) -> Any:
    """The value at a dotted path; None where it is missing. A list answers to its canonical
    indices ("0", "1", not "01") and to "length", as a JavaScript array does."""
    for name in path.split("."):
        if isinstance(value, dict) and name in value:
            value = value[name]
        elif isinstance(value, list) and name == "length":
            value = len(value)
        elif isinstance(value, list) and _index(name, len(value)) is not None:
            value = value[int(name)]
        else:
            return None
    return value


def _index(name: str, bound: int = 2**32 - 1) -> int | None:
    if len(name) > 10 or not (name.isascii() and name.isdigit()):
        return None
    if name != "0" and name.startswith("0"):
        return None
    number = int(name)
    return number if number < bound else None


def _holds(expected: Any, actual: Any) -> bool:
    if not _operator_object(expected):
        return _same(expected, actual)
    return all(_operator(op, argument, actual) for op, argument in expected.items())


def kind(value: Any) -> str:
    """The JSON type of a value, as $type names it."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int | float | Decimal):
        return "number"
    if isinstance(value, str):
        return "string"
    if isinstance(value, list | tuple):
        return "array"
    if isinstance(value, dict):
        return "object"
    return "unknown"


def _same(a: Any, b: Any) -> bool:
    """Deep equality of JSON values: types must agree (true is not 1), 1 equals 1.0, and
    objects must list their keys in the same (JavaScript property) order."""
    ka = kind(a)
    if ka != kind(b):
        return False
    if ka == "array":
        return len(a) == len(b) and all(_same(x, y) for x, y in zip(a, b, strict=True))
    if ka == "object":
        return _js_keys(a) == _js_keys(b) and all(_same(a[k], b[k]) for k in a)
    return bool(a == b)


def _js_keys(value: dict[str, Any]) -> list[str]:
    """Keys in JavaScript's property order: integer-like keys ascending, then the others."""
    numeric = sorted((k for k in value if _index(k) is not None), key=int)
    return numeric + [k for k in value if _index(k) is None]


def _identical(a: Any, b: Any) -> bool:
    """JavaScript's ===: primitives of one type and equal value; no array or object is."""
    ka = kind(a)
    return ka == kind(b) and ka not in ("array", "object") and bool(a == b)


def _listed(values: list[Any], actual: Any) -> bool:
    """$in: the value is one of the list's, or, for an array, shares one with it."""
    if isinstance(actual, list):
        return any(_identical(item, v) for item in actual for v in values)
    return any(_identical(actual, v) for v in values)


def _compare(a: Any, b: Any) -> int:
    if isinstance(a, str):  # by UTF-16 code units, as JavaScript orders strings
        a, b = a.encode("utf-16-be", "surrogatepass"), b.encode("utf-16-be", "surrogatepass")
    return (a > b) - (a < b)


def _orderable(a: Any, b: Any) -> bool:
    return (kind(a) == kind(b) == "number") or (isinstance(a, str) and isinstance(b, str))


def _operator(operator: str, argument: Any, actual: Any) -> bool:  # noqa: C901 - one table
    if operator == "$eq":
        return _identical(actual, argument)
    if operator == "$ne":
        return not _identical(actual, argument)
    if operator in _ORDER:
        return _orderable(actual, argument) and _compare(actual, argument) in _ORDER[operator]
    if operator in _VERSION_ORDER:
        if not _orderable(actual, argument):
            return operator == "$vne"
        mine, theirs = version_key(actual), version_key(argument)
        ordered = (mine > theirs) - (mine < theirs)  # by code point, as the reference SDK
        return ordered in _VERSION_ORDER[operator]
    if operator == "$in":
        return _listed(argument, actual)
    if operator == "$nin":
        return not _listed(argument, actual)
    if operator == "$regex":
        return isinstance(actual, str) and re.search(argument, actual) is not None
    if operator == "$exists":
        return (actual is not None) is argument
    if operator == "$type":
        return kind(actual) == argument
    if operator == "$not":
        return not _holds(argument, actual)
    if not isinstance(actual, list):
        return False  # $elemMatch, $size and $all test arrays only
    if operator == "$size":
        return _holds(argument, len(actual))
    if operator == "$all":
        return all(any(_holds(want, item) for item in actual) for want in argument)
    if _elem_on_value(argument):  # $elemMatch
        return any(item is not None and _holds(argument, item) for item in actual)
    return any(item is not None and matches(argument, item) for item in actual)


def _elem_on_value(argument: dict[str, Any]) -> bool:
    """An $elemMatch of operators tests each item itself; of fields (or $and, $or, $nor),
    each item's fields."""
    return _operator_object(argument) and not any(k in LOGICAL for k in argument)


_VERSION_TRIM = re.compile(r"(^v|\+.*$)")
_VERSION_SPLIT = re.compile(r"[-.]")


def version_key(value: Any) -> str:
    """A version as a string that orders as the version does: "v1.2.3-rc.1+build" becomes
    its dot- and dash-separated parts, numbers padded to 5 places, and a plain x.y.z gets
    "~" as a last part so that it sorts after its own pre-releases."""
    if kind(value) == "number":
        value = js_number(value)
    if not isinstance(value, str) or not value:
        value = "0"
    parts = _VERSION_SPLIT.split(_VERSION_TRIM.sub("", value))
    if len(parts) == 3:
        parts.append("~")
    return "-".join(p.rjust(5, " ") if p.isdigit() else p for p in parts)


def js_number(value: float | int | Decimal) -> str:
    """A number as JavaScript's String(number) writes it (ECMAScript Number::toString)."""
    try:
        number = float(value)
    except OverflowError:
        number = math.inf if value > 0 else -math.inf
    if math.isnan(number):
        return "NaN"
    if number == 0:
        return "0"
    if number < 0:
        return "-" + js_number(-number)
    if math.isinf(number):
        return "Infinity"
    _, digit_tuple, exponent = Decimal(repr(number)).normalize().as_tuple()
    digits = "".join(map(str, digit_tuple))
    k = len(digits)
    n = int(exponent) + k  # number = 0.<digits> x 10^n
    if k <= n <= 21:
        return digits + "0" * (n - k)
    if 0 < n <= 21:
        return f"{digits[:n]}.{digits[n:]}"
    if -6 < n <= 0:
        return "0." + "0" * -n + digits
    mantissa = digits[0] + (f".{digits[1:]}" if k > 1 else "")
    return f"{mantissa}e{'+' if n > 0 else '-'}{abs(n - 1)}"


# ------------------------------------------------------------------------------------ layers
_SCALE = float(2**53)


def layer_position(layer: str, unit: str) -> float:
    """A unit's place in a layer, uniform on [0, 1): the same for every experiment of it.

    SHA-256 of "layer:" + name + ":" + unit, first 8 bytes big-endian, top 53 bits / 2^53.
    """
    digest = hashlib.sha256(f"layer:{layer}:{unit}".encode()).digest()
    return (int.from_bytes(digest[0:8], "big") >> 11) / _SCALE


def in_range(position: float, bounds: tuple[float, float] | list[float]) -> bool:
    return bounds[0] <= position < bounds[1]


def overlap(a: tuple[float, float] | list[float], b: tuple[float, float] | list[float]) -> bool:
    return a[0] < b[1] and b[0] < a[1]
