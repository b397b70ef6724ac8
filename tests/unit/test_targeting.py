"""Targeting conditions and layer positions: the service's and the Python client's evaluators
against GrowthBook's own SDK (the reference), against each other, and against the vectors."""

from __future__ import annotations

import hashlib
import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from ab_testing import targeting as service_side
from ab_testing_client import targeting as client_side
from scripts.targeting_vectors import SEED, cases, reference

ROOT = Path(__file__).resolve().parents[2]
VECTORS = ROOT / "docs" / "targeting_vectors.json"
RANDOM_CASES = 20_000


def test_random_conditions_get_the_references_answer_from_both_evaluators() -> None:
    # Given random conditions and attribute sets over every operator (another seed than the
    # published vectors), each accepted by the service's check
    drawn = cases(SEED + 1, RANDOM_CASES)
    answers = {"match": 0, "no match": 0}

    for condition, attributes in drawn:
        service_side.check(condition)
        expected = reference(condition, attributes)
        # Then the service and the client answer as GrowthBook's evalCondition does
        assert service_side.matches(condition, attributes) is expected, (condition, attributes)
        assert client_side.condition_matches(condition, attributes) is expected
        answers["match" if expected else "no match"] += 1

    print(f"{RANDOM_CASES} cases agree with the reference: {answers}")
    assert min(answers.values()) > RANDOM_CASES // 10  # both answers are well exercised


def test_the_published_vectors_hold_for_both_evaluators_and_are_current() -> None:
    # Given docs/targeting_vectors.json
    document = json.loads(VECTORS.read_text())
    assert len(document["vectors"]) == 300

    # Then each evaluator gives each vector's answer
    for vector in document["vectors"]:
        condition, attributes = vector["condition"], vector["attributes"]
        assert service_side.matches(condition, attributes) is vector["matches"]
        assert client_side.condition_matches(condition, attributes) is vector["matches"]

    # And the script that wrote them writes them again, byte for byte
    made = subprocess.run(
        [sys.executable, "scripts/targeting_vectors.py"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=True,
    )
    assert made.stdout == VECTORS.read_text(encoding="utf-8")


@pytest.mark.parametrize(
    ("condition", "attributes", "expected"),
    [
        # versions compare by parts: 2.10.0 is after 2.9.0, a release after its candidates
        ({"v": {"$vgt": "2.9.0"}}, {"v": "2.10.0"}, True),
        ({"v": {"$vgt": "2.1.0-rc.1"}}, {"v": "2.1.0"}, True),
        ({"v": {"$veq": "1.2.3"}}, {"v": "v1.2.3+build.7"}, True),
        # a number and a numeric string are different types: no order, no equality
        ({"age": {"$gt": 17}}, {"age": "18"}, False),
        ({"age": 18}, {"age": 18.0}, True),
        ({"beta": 1}, {"beta": True}, False),
        # $in on an array attribute asks for a shared element
        ({"tags": {"$in": ["vip", "staff"]}}, {"tags": ["new", "vip"]}, True),
        ({"tags": {"$nin": ["vip"]}}, {}, True),
        # a missing attribute is null: $exists false, $eq null (never an error)
        ({"plan": {"$exists": False}}, {}, True),
        ({"plan": None}, {}, True),
        # paths go into objects and arrays ("length" and canonical indices only)
        ({"items.1.sku": "b"}, {"items": [{"sku": "a"}, {"sku": "b"}]}, True),
        ({"items.length": {"$gte": 2}}, {"items": [1, 2]}, True),
        ({"items.01": 2}, {"items": [1, 2]}, False),
        # empty $or holds, empty $nor does not
        ({"$or": []}, {}, True),
        ({"$nor": []}, {}, False),
        # strings order by UTF-16 code units (an emoji sorts before U+FF5A)
        ({"s": {"$lt": "ｚ"}}, {"s": "😀"}, True),
    ],
)
def test_edge_cases_of_the_language(condition: Any, attributes: Any, expected: bool) -> None:
    service_side.check(condition)
    assert reference(condition, attributes) is expected  # the reference says so
    assert service_side.matches(condition, attributes) is expected
    assert client_side.condition_matches(condition, attributes) is expected


@pytest.mark.parametrize(
    ("number", "javascript"),
    # What String(x) gives in JavaScript (ECMAScript Number::toString)
    [
        (1e21, "1e+21"),
        (1e20, "100000000000000000000"),
        (1.5e-7, "1.5e-7"),
        (0.000001, "0.000001"),
        (2.0, "2"),
        (-0.0, "0"),
        (123.456, "123.456"),
        (2**60, "1152921504606847000"),
        (5e-324, "5e-324"),
    ],
)
def test_numbers_become_version_strings_as_javascript_writes_them(
    number: float, javascript: str
) -> None:
    assert service_side.js_number(number) == javascript
    assert client_side.number_text(number) == javascript


@pytest.mark.parametrize(
    "pattern",
    [
        "(a+)+$",  # nested repetition: exponential
        "(a|ab)*c",  # alternation under repetition
        "(x?){12}",  # a quantified group repeated
        "[a-z]+[a-z]+[a-z]+$x",  # three repetitions: n^4 on a crafted string
        r"(a)\1",  # backreference
        "(?P<x>a)(?P=x)",
        "a" * 201,
    ],
)
def test_patterns_that_can_run_long_are_refused(pattern: str) -> None:
    with pytest.raises(ValueError):
        service_side.check({"email": {"$regex": pattern}})


def test_layer_positions_follow_the_published_hash_in_both_evaluators() -> None:
    # Given the hash as docs/assignment.md section 13 writes it
    def spec(layer: str, unit: str) -> float:
        digest = hashlib.sha256(f"layer:{layer}:{unit}".encode()).digest()
        return (int.from_bytes(digest[:8], "big") >> 11) / 2**53

    # Then both evaluators give it, independent of any experiment's salt
    for n in range(2000):
        unit = f"user:{n}" if n % 2 else f"session:s-{n}"
        expected = spec("support-bot", unit)
        assert service_side.layer_position("support-bot", unit) == expected
        assert client_side.layer_position("support-bot", unit) == expected
        assert 0.0 <= expected < 1.0
