"""Range-preserving rebalancing (docs/assignment.md): the fewest draws change variant."""

from __future__ import annotations

import math
import random

from hypothesis import given, settings
from hypothesis import strategies as st

from ab_testing import assignment


def measure(ranges: list[tuple[float, float, int]], variant_id: int) -> float:
    return math.fsum(end - start for start, end, v in ranges if v == variant_id)


@st.composite
def allocations(draw: st.DrawFn, n: int) -> list[float]:
    weights = draw(st.lists(st.integers(0, 100), min_size=n, max_size=n).filter(any))
    total = sum(weights)
    shares = [round(100.0 * w / total, 4) for w in weights]
    last = max(i for i, s in enumerate(shares) if s > 0)
    shares[last] = round(100.0 - math.fsum(shares[:last]) - math.fsum(shares[last + 1 :]), 4)
    return shares


@settings(max_examples=200, deadline=None)
@given(st.integers(2, 5).flatmap(lambda n: st.lists(allocations(n), min_size=2, max_size=4)))
def test_each_rebalance_moves_exactly_the_total_variation_and_tiles_the_draw_space(
    steps: list[list[float]],
) -> None:
    # Given variants 1..n with a first allocation, then a sequence of rebalances
    ids = list(range(1, len(steps[0]) + 1))
    ranges = assignment.initial_ranges(steps[0], ids)
    for before, after in zip(steps, steps[1:], strict=False):
        # When rebalanced
        new, changed = assignment.rebalanced(ranges, dict(zip(ids, after, strict=True)))

        # Then the ranges tile [0, 100) in order, each variant holds its new share,
        assert new[0][0] == 0.0 and new[-1][1] == 100.0
        assert all(a[1] == b[0] for a, b in zip(new, new[1:], strict=False))
        for variant_id, share in zip(ids, after, strict=True):
            assert math.isclose(measure(new, variant_id), share, abs_tol=1e-6)
        # the changed spans measure the total variation distance (the least possible),
        moved = math.fsum(end - start for start, end in changed)
        least = math.fsum(max(0.0, b - a) for b, a in zip(before, after, strict=True))
        assert math.isclose(moved, least, abs_tol=1e-6)
        # and every draw outside them keeps its variant
        rng = random.Random(len(steps))
        for _ in range(300):
            pick = rng.random()
            if not assignment.in_spans(pick, changed):
                assert assignment.variant_at(pick, new) == assignment.variant_at(pick, ranges)
        ranges = new


@settings(max_examples=200, deadline=None)
@given(st.integers(2, 6).flatmap(allocations), st.floats(0, 1, exclude_max=True))
def test_initial_ranges_give_what_the_cumulative_walk_gives(
    shares: list[float], pick: float
) -> None:
    ids = list(range(len(shares)))
    assert assignment.variant_at(pick, assignment.initial_ranges(shares, ids)) == (
        assignment.choose(pick, shares)
    )


def test_an_unchanged_allocation_moves_nobody_despite_float_dust() -> None:
    shares = [33.33, 33.33, 33.34]
    ranges = assignment.initial_ranges(shares, [1, 2, 3])
    same, changed = assignment.rebalanced(ranges, {1: 33.33, 2: 33.33, 3: 33.34})
    assert same == ranges and changed == []


def test_a_50_50_to_20_80_rebalance_hands_the_top_of_control_to_the_treatment() -> None:
    ranges = assignment.initial_ranges([50.0, 50.0], [1, 2])
    new, changed = assignment.rebalanced(ranges, {1: 20.0, 2: 80.0})
    assert new == [(0.0, 20.0, 1), (20.0, 100.0, 2)]
    assert changed == [(20.0, 50.0)]
