"""The assignment algorithm of docs/assignment.md: vectors, uniformity and independence."""

from __future__ import annotations

import hashlib
import json
import math
import random
import re
from collections import Counter
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from scipy import stats

from ab_testing import assignment

ROOT = Path(__file__).resolve().parents[2]
VECTORS_FILE = ROOT / "docs" / "assignment_vectors.json"
DOC_FILE = ROOT / "docs" / "assignment.md"
UNITS = 100_000
P_FLOOR = 0.001


# ---------------------------------------------------------------- a second implementation
# Written from the spec in docs/assignment.md with hashlib only, so that a slip in
# ab_testing.assignment cannot hide behind itself.


def spec_unit(user_id: int | str | None, session_id: str | None) -> str:
    if user_id is not None:
        return "user:" + (str(user_id) if isinstance(user_id, int) else user_id)
    assert session_id is not None
    return "session:" + session_id


def spec_bits(salt: str, unit: str) -> tuple[str, int, int]:
    digest = hashlib.sha256((salt + ":" + unit).encode("utf-8")).digest()
    first = int.from_bytes(digest[:8], byteorder="big", signed=False)
    second = int.from_bytes(digest[8:16], byteorder="big", signed=False)
    return digest.hex(), first >> 11, second >> 11


def spec_index(u_cover: float, u_variant: float, target: float, allocations: list[float]):
    if not u_cover * 100.0 < target:
        return None
    point = u_variant * 100.0
    running = 0.0
    fallback = 0
    for position, share in enumerate(allocations):
        if share > 0:
            running += share
            fallback = position
            if point < running:
                return position
    return fallback


def load_vectors() -> list[dict[str, Any]]:
    return json.loads(VECTORS_FILE.read_text(encoding="utf-8"))["vectors"]


VECTORS = load_vectors()


def vector_id(vector: dict[str, Any]) -> str:
    # ASCII only: pytest escapes other characters, and escapes them again when it collects the
    # module a second time in one process (as mutmut does), so the ids would not match.
    unit = "".join(c if c.isascii() else f"U+{ord(c):04X}" for c in vector["unit"])
    return f"{vector['note']}|{unit}"


# ---------------------------------------------------------------- vectors


def test_vector_file_covers_the_documented_edge_cases() -> None:
    # Given the published vectors
    vectors = VECTORS

    # Then there are enough of them, and the edge cases the doc promises are present
    assert len(vectors) >= 24
    allocations = [v["allocations"] for v in vectors]
    assert any(0.0 in a for a in allocations), "a 0% variant"
    assert any(len(a) == 3 for a in allocations) and any(len(a) == 4 for a in allocations)
    assert {30.0, 100.0} <= {v["target_percentage"] for v in vectors}
    assert any(v["variant_index"] is None for v in vectors), "a unit outside the target"
    assert any(v["session_id"] and any(ord(c) > 127 for c in v["session_id"]) for v in vectors), (
        "a unicode session id"
    )
    user_ids = [v["user_id"] for v in vectors]
    assert 123 in user_ids and "123" in user_ids


def test_zero_allocation_variants_never_appear_in_vectors() -> None:
    # Given vectors whose allocations include a 0% variant
    with_zero = [v for v in VECTORS if 0.0 in v["allocations"] and v["in_target"]]
    assert with_zero

    # Then none of them lands on the 0% variant
    for vector in with_zero:
        assert vector["allocations"][vector["variant_index"]] > 0


@pytest.mark.parametrize("vector", VECTORS, ids=vector_id)
def test_vector_reproduced_by_standalone_hashlib_code(vector: dict[str, Any]) -> None:
    # Given one published vector
    # When the spec is followed with nothing but hashlib
    unit = spec_unit(vector["user_id"], vector["session_id"])
    digest, cover_bits, variant_bits = spec_bits(vector["salt"], unit)
    u_cover, u_variant = cover_bits / 2.0**53, variant_bits / 2.0**53
    index = spec_index(u_cover, u_variant, vector["target_percentage"], vector["allocations"])

    # Then every published number comes out, bit for bit
    assert unit == vector["unit"]
    assert digest == vector["digest_hex"]
    assert (cover_bits, variant_bits) == (vector["cover_bits"], vector["variant_bits"])
    assert u_cover == vector["u_cover"]
    assert u_variant == vector["u_variant"]
    assert (index is not None) == vector["in_target"]
    assert index == vector["variant_index"]


@pytest.mark.parametrize("vector", VECTORS, ids=vector_id)
def test_vector_reproduced_by_the_service_code(vector: dict[str, Any]) -> None:
    # Given one published vector
    # When the service's own module computes it
    unit = assignment.unit_key(vector["user_id"], vector["session_id"])
    u_cover, u_variant = assignment.draws(vector["salt"], unit)
    index = assignment.assign(
        vector["salt"], unit, vector["target_percentage"], vector["allocations"]
    )

    # Then it agrees with the file
    assert unit == vector["unit"]
    assert (u_cover, u_variant) == (vector["u_cover"], vector["u_variant"])
    assert assignment.in_target(u_cover, vector["target_percentage"]) == vector["in_target"]
    assert index == vector["variant_index"]


def test_doc_table_lists_every_vector() -> None:
    # Given the markdown page and the JSON vectors
    doc = DOC_FILE.read_text(encoding="utf-8")

    # Then each vector's row is in the page with the same draws
    for number, vector in enumerate(VECTORS, start=1):
        row = next((line for line in doc.splitlines() if line.startswith(f"| {number} |")), None)
        assert row is not None, f"row {number} missing from docs/assignment.md"
        assert f"`{vector['unit']}`" in row
        assert repr(vector["u_cover"]) in row and repr(vector["u_variant"]) in row


# ---------------------------------------------------------------- unit keys


def test_integer_and_decimal_string_user_ids_are_the_same_unit() -> None:
    # Given user 123 as an integer and as a string
    # When their unit keys and draws are computed
    as_int = assignment.unit_key(123, None)
    as_str = assignment.unit_key("123", None)

    # Then they are one unit with one draw, and "0123" is another
    assert as_int == as_str == "user:123"
    assert assignment.draws("salt", as_int) == assignment.draws("salt", as_str)
    assert assignment.unit_key("0123", None) != as_int


def test_user_id_wins_over_session_id() -> None:
    # Given a request with both ids
    # When the unit is formed
    # Then the user decides
    assert assignment.unit_key(7, "sess") == "user:7"
    assert assignment.unit_key(None, "sess") == "session:sess"
    with pytest.raises(ValueError, match="^a unit needs a user_id or a session_id$"):
        assignment.unit_key(None, None)


def test_a_salt_is_16_random_lowercase_hex_characters() -> None:
    # Given two new experiments' salts
    first, second = assignment.new_salt(), assignment.new_salt()

    # Then each is 16 lowercase hex characters, and they differ (a reused name starts afresh)
    assert re.fullmatch("[0-9a-f]{16}", first) and re.fullmatch("[0-9a-f]{16}", second)
    assert first != second


# ---------------------------------------------------------------- choose edge cases


@pytest.mark.parametrize(
    ("pick", "allocations", "expected"),
    [
        (0.0, [50.0, 50.0], 0),
        (0.4999999, [50.0, 50.0], 0),
        (0.5, [50.0, 50.0], 1),
        (0.0, [0.0, 50.0, 50.0], 1),
        (0.5, [50.0, 0.0, 50.0], 2),
        # Allocations a hair under 100 in total (a point of 99.9999999 is past their sum): the
        # remainder goes to the last open variant,
        (0.999999999, [50.0, 49.9999995], 1),
        # never to a trailing 0% one.
        (0.999999999, [50.0, 49.9999995, 0.0], 1),
        (1.0 - 2.0**-53, [20.0, 30.0, 50.0], 2),
        # A small share is a share like any other.
        (0.001, [0.5, 99.5], 0),
        # Nothing open at all (refused on create): the reference code answers index 0.
        (0.3, [0.0, 0.0], 0),
    ],
)
def test_choose_boundaries(pick: float, allocations: list[float], expected: int) -> None:
    # Given a variant draw on or near a boundary
    # When both implementations choose (target 100 keeps every unit in)
    # Then they agree with the spec
    assert assignment.choose(pick, allocations) == expected
    assert spec_index(0.0, pick, 100.0, allocations) == expected


def test_coverage_boundary_is_strict() -> None:
    # Given draws exactly on the target line
    # Then the unit is out: in target means u_cover * 100 < target_percentage
    assert not assignment.in_target(0.3, 30.0)
    assert assignment.in_target(0.29999, 30.0)
    assert assignment.in_target(1.0 - 2.0**-53, 100.0)


# ---------------------------------------------------------------- distribution


def synthetic_draws(seed: int) -> tuple[str, list[tuple[float, float]]]:
    rng = random.Random(seed)
    salt = f"{rng.getrandbits(64):016x}"
    units = [f"user:{rng.getrandbits(63)}" for _ in range(UNITS)]
    return salt, [assignment.draws(salt, unit) for unit in units]


@pytest.fixture(scope="module")
def draws_sample() -> list[tuple[float, float]]:
    return synthetic_draws(seed=20240611)[1]


@pytest.mark.parametrize("allocations", [[50.0, 50.0], [20.0, 30.0, 50.0]])
def test_variant_split_matches_allocation(
    draws_sample: list[tuple[float, float]], allocations: list[float]
) -> None:
    # Given 100,000 synthetic units (seeded ids) in a target-100 experiment
    # When each is assigned
    counts = Counter(assignment.choose(pick, allocations) for _, pick in draws_sample)
    observed = [counts.get(i, 0) for i in range(len(allocations))]
    expected = [UNITS * share / 100.0 for share in allocations]

    # Then the split is what the allocation asks for (chi-square goodness of fit)
    result = stats.chisquare(observed, expected)
    assert result.pvalue > P_FLOOR, (observed, result)


def test_target_percentage_30_covers_30_percent(draws_sample: list[tuple[float, float]]) -> None:
    # Given 100,000 synthetic units and target_percentage 30
    inside = sum(assignment.in_target(cover, 30.0) for cover, _ in draws_sample)

    # Then 30% of them are in, within a 4-sigma binomial band
    sigma = math.sqrt(UNITS * 0.3 * 0.7)
    assert abs(inside - 0.3 * UNITS) < 4 * sigma, inside


def test_coverage_and_variant_are_independent(draws_sample: list[tuple[float, float]]) -> None:
    # Given 100,000 units, target 30, two variants at 50/50
    table = np.zeros((2, 2), dtype=np.int64)
    for cover, pick in draws_sample:
        table[int(assignment.in_target(cover, 30.0)), assignment.choose(pick, [50.0, 50.0])] += 1

    # When in/out of target is crossed with the variant the draw would give
    _, pvalue, _, _ = stats.chi2_contingency(table)

    # Then the two are unrelated
    assert pvalue > P_FLOOR, table
    covers = np.array([c for c, _ in draws_sample])
    picks = np.array([p for _, p in draws_sample])
    correlation = float(np.corrcoef(covers, picks)[0, 1])
    assert abs(correlation) < 4 / math.sqrt(UNITS), correlation


def test_draws_are_uniform_on_the_unit_interval(draws_sample: list[tuple[float, float]]) -> None:
    # Given 100,000 coverage draws and variant draws
    covers = np.array([c for c, _ in draws_sample])
    picks = np.array([p for _, p in draws_sample])

    # Then each passes a Kolmogorov-Smirnov test against U(0, 1) and stays in [0, 1)
    for sample in (covers, picks):
        assert 0.0 <= sample.min() and sample.max() < 1.0
        assert stats.kstest(sample, "uniform").pvalue > P_FLOOR


def test_different_salts_reshuffle_units() -> None:
    # Given two experiments (two salts) and the same 10,000 units at 50/50
    units = [f"user:{i}" for i in range(10_000)]
    first = [assignment.assign("salt-one", u, 100.0, [50.0, 50.0]) for u in units]
    second = [assignment.assign("salt-two", u, 100.0, [50.0, 50.0]) for u in units]

    # Then the arms agree for about half the units, not all (a reused name starts afresh)
    same = sum(a == b for a, b in zip(first, second, strict=True))
    sigma = math.sqrt(len(units) * 0.25)
    assert abs(same - len(units) / 2) < 4 * sigma
