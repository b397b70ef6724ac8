"""Composite keys are injective: distinct parts never share a key, whatever characters they hold."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from ab_testing import assignment, records

# Ids made mostly of separators and escape characters, where a naive join would collide.
TRICKY = st.text(alphabet=st.sampled_from("#%23:ab5x"), max_size=8)
PARTS = st.tuples(TRICKY, TRICKY, TRICKY)


@given(PARTS, PARTS)
def test_distinct_result_parts_never_share_a_result_id(a: tuple, b: tuple) -> None:
    # Given two (metric, unit, idempotency key) tuples; When each gets its result id
    # Then the ids are equal exactly when the tuples are
    assert (records.keyed_result_id(*a) == records.keyed_result_id(*b)) == (a == b)


@given(st.lists(TRICKY, max_size=5))
def test_a_composite_key_splits_back_into_its_parts(parts: list[str]) -> None:
    assert records.split_composite(records.composite("t", *parts)) == ("t", *parts)


@given(
    st.tuples(st.integers(1, 10**12), TRICKY, st.integers(0, 999)),
    st.tuples(st.integers(1, 10**12), TRICKY, st.integers(0, 999)),
)
def test_totals_keys_are_injective(a: tuple, b: tuple) -> None:
    assert (records.totals_sk(*a) == records.totals_sk(*b)) == (a == b)


@given(
    st.tuples(st.integers(1, 10**12), st.integers(0, 999)),
    st.tuples(st.integers(1, 10**12), st.integers(0, 999)),
)
def test_exposure_keys_are_injective(a: tuple, b: tuple) -> None:
    assert (records.exposure_sk(*a) == records.exposure_sk(*b)) == (a == b)


@given(TRICKY, TRICKY)
def test_name_locks_are_injective_and_apart_from_experiment_items(a: str, b: str) -> None:
    assert (records.name_pk(a) == records.name_pk(b)) == (a == b)
    assert records.name_pk(a) != records.experiment_pk(1)


UNITS = st.one_of(
    st.tuples(st.just("user"), TRICKY.filter(bool)),
    st.tuples(st.just("session"), TRICKY.filter(bool)),
)


@given(UNITS, UNITS)
def test_unit_keys_of_users_and_sessions_never_meet(a: tuple, b: tuple) -> None:
    # A user id and a session id are told apart by a prefix-free tag ("user:" / "session:").
    def key(unit: tuple) -> str:
        kind, value = unit
        return assignment.unit_key(value if kind == "user" else None, value)

    assert (key(a) == key(b)) == (a == b)


def test_the_old_collision_gives_two_ids() -> None:
    # user "x#y" with key "z" and user "x" with key "y#z" used to share key#m#user:x#y#z
    first = records.keyed_result_id("m", "user:x#y", "z")
    second = records.keyed_result_id("m", "user:x", "y#z")
    assert first != second


def test_ordinary_ids_read_as_before() -> None:
    # Keys of ids without "#" or "%" are unchanged, so data stored before the escaping works.
    assert records.keyed_result_id("resolution_rate", "user:123", "req-8f2c") == (
        "key#resolution_rate#user:123#req-8f2c"
    )
    assert records.totals_sk(2, "resolution_rate", 0) == "totals#0000000002#resolution_rate#000"
