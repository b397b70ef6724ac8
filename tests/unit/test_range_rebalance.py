"""Range-preserving rebalancing (docs/assignment.md): the fewest draws change variant."""

from __future__ import annotations

import math
import random

import pytest
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


def test_a_share_under_one_percent_still_gets_its_range_and_a_zero_share_none() -> None:
    ranges = assignment.initial_ranges([0.5, 0.0, 99.5], [1, 2, 3])
    assert ranges == [(0.0, 0.5, 1), (0.5, 100.0, 3)]


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


def test_a_variant_whose_share_is_unchanged_keeps_all_its_ranges() -> None:
    # Given 50/30/20, When rebalanced to 40/40/20
    ranges = assignment.initial_ranges([50.0, 30.0, 20.0], [1, 2, 3])
    new, changed = assignment.rebalanced(ranges, {1: 40.0, 2: 40.0, 3: 20.0})

    # Then only the top 10 points of variant 1 move, to variant 2; variant 3 keeps [80, 100)
    assert new == [(0.0, 40.0, 1), (40.0, 80.0, 2), (80.0, 100.0, 3)]
    assert changed == [(40.0, 50.0)]


def test_float_dust_of_the_cumulative_sums_moves_nobody() -> None:
    # Given shares whose cumulative ranges measure them only up to float dust (~1e-14)
    shares = [6.54, 2.67, 90.79]
    ranges = assignment.initial_ranges(shares, [1, 2, 3])
    assert [end - start for start, end, _ in ranges] != shares

    # When "rebalanced" to the same shares
    same, changed = assignment.rebalanced(ranges, {1: 6.54, 2: 2.67, 3: 90.79})

    # Then nobody moves (changes of at most 1e-9 points are ignored)
    assert same == ranges and changed == []


def test_a_change_below_1e_9_points_is_ignored() -> None:
    # Given variant 1 holding 5e-10 points of the draw space
    ranges = [(0.0, 5e-10, 1), (5e-10, 100.0, 2)]

    # When it is asked to hold 0
    new, changed = assignment.rebalanced(ranges, {1: 0.0, 2: 100.0})

    # Then a change below 1e-9 points is ignored: nobody moves
    assert new == ranges and changed == []


def test_a_shrinking_variant_gives_up_the_top_of_its_highest_range_first() -> None:
    # Given 50/50 rebalanced to 20/80, then to 60/40: variant 1 holds [0, 20) and [60, 100)
    ranges = assignment.initial_ranges([50.0, 50.0], [1, 2])
    ranges, _ = assignment.rebalanced(ranges, {1: 20.0, 2: 80.0})
    ranges, _ = assignment.rebalanced(ranges, {1: 60.0, 2: 40.0})
    assert ranges == [(0.0, 20.0, 1), (20.0, 60.0, 2), (60.0, 100.0, 1)]

    # When variant 1 shrinks to 30
    new, changed = assignment.rebalanced(ranges, {1: 30.0, 2: 70.0})

    # Then it gives up the top of its highest range, [70, 100), and keeps [0, 20) intact
    assert new == [(0.0, 20.0, 1), (20.0, 60.0, 2), (60.0, 70.0, 1), (70.0, 100.0, 2)]
    assert changed == [(70.0, 100.0)]


def test_a_draw_is_in_a_span_from_its_start_up_to_but_not_including_its_end() -> None:
    # Given the changed span [25, 50) of the draw space (draws are scaled by 100)
    spans = [(25.0, 50.0)]

    # Then the start belongs to it and the end does not, like the ranges
    assert assignment.in_spans(0.25, spans)
    assert assignment.in_spans(0.4999, spans)
    assert not assignment.in_spans(0.5, spans)
    assert not assignment.in_spans(0.2499, spans)


def test_changed_ranges_are_the_union_of_the_spans() -> None:
    # Given spans out of order, touching, overlapping and empty
    spans = [(60.0, 70.0), (5.0, 5.0), (20.0, 30.0), (10.0, 20.0), (25.0, 40.0), (80.0, 80.0)]

    # When merged (changed_ranges are the union over every rebalance)
    # Then touching and overlapping spans become one, and empty ones disappear
    assert assignment.merged_spans(spans) == [(10.0, 40.0), (60.0, 70.0)]
    assert assignment.merged_spans([]) == []


def test_growing_variants_take_the_freed_pieces_lowest_first_in_creation_order() -> None:
    # Given 40/40/10/5/5: variants 1 and 2 will free [20, 40) and [60, 80)
    ranges = assignment.initial_ranges([40.0, 40.0, 10.0, 5.0, 5.0], [1, 2, 3, 4, 5])

    # When rebalanced to 20/20/20/15/25 (variants 3, 4 and 5 grow by 10, 10 and 20)
    new, changed = assignment.rebalanced(ranges, {1: 20.0, 2: 20.0, 3: 20.0, 4: 15.0, 5: 25.0})

    # Then 3 takes the bottom of the pool, 4 the rest of that piece, 5 the next piece
    assert new == [
        (0.0, 20.0, 1),
        (20.0, 30.0, 3),
        (30.0, 40.0, 4),
        (40.0, 60.0, 2),
        (60.0, 80.0, 5),
        (80.0, 90.0, 3),
        (90.0, 95.0, 4),
        (95.0, 100.0, 5),
    ]
    assert changed == [(20.0, 40.0), (60.0, 80.0)]


def test_the_float_dust_of_a_move_goes_to_the_growing_variant_only() -> None:
    # Given 8/25/67, When 0.2 points move from variant 1 to variant 2 (in floating point the
    # freed 8.0 - 7.8 and the needed 25.2 - 25.0 differ by a few 1e-16)
    ranges = assignment.initial_ranges([8.0, 25.0, 67.0], [1, 2, 3])
    new, changed = assignment.rebalanced(ranges, {1: 7.8, 2: 25.2, 3: 67.0})

    # Then variant 2, the last (and only) growing one, takes all of [7.8, 8.0): variant 3,
    # whose share is unchanged, gets no sliver of it
    assert new == [(0.0, 7.8, 1), (7.8, 33.0, 2), (33.0, 100.0, 3)]
    assert changed == [(7.8, 8.0)]


def test_a_change_of_exactly_1e_9_points_is_still_dust() -> None:
    # Given variant 1 holding exactly 1e-9 points of the draw space
    ranges = [(0.0, 1e-9, 1), (1e-9, 100.0, 2)]

    # When it is asked to hold 0
    new, changed = assignment.rebalanced(ranges, {1: 0.0, 2: 100.0})

    # Then a change of at most 1e-9 points is ignored: nobody moves
    assert new == ranges and changed == []


def test_a_0_percent_variant_has_no_range() -> None:
    # Given 50/0/50
    # Then the ranges are [0, 50) and [50, 100): the 0% variant has none, not an empty one
    assert assignment.initial_ranges([50.0, 0.0, 50.0], [1, 2, 3]) == [
        (0.0, 50.0, 1),
        (50.0, 100.0, 3),
    ]


def test_initial_ranges_need_one_id_per_allocation() -> None:
    with pytest.raises(ValueError):
        assignment.initial_ranges([50.0, 50.0], [1, 2, 3])


def test_a_draw_on_a_boundary_belongs_to_the_range_above() -> None:
    # Given ranges [0, 50) and [50, 100)
    ranges = [(0.0, 50.0, 1), (50.0, 100.0, 2)]
    # Then point 50 is in the second (point < end decides, as in the cumulative walk)
    assert assignment.variant_at(0.5, ranges) == 2
    assert assignment.variant_at(0.4999, ranges) == 1


def test_a_draw_past_the_last_range_gets_the_last_range() -> None:
    # Given ranges that end a hair below 100 (the rounding remainder)
    ranges = [(0.0, 50.0, 1), (50.0, 60.0, 2), (60.0, 99.9999995, 3)]
    # Then a draw past them gets the variant of the last range
    assert assignment.variant_at(1.0 - 2.0**-53, ranges) == 3


def test_empty_ranges_are_dropped() -> None:
    # Given stored ranges with an empty one for a 0% variant, and the same shares again
    ranges = [(0.0, 50.0, 1), (50.0, 50.0, 3), (50.0, 100.0, 2)]
    new, changed = assignment.rebalanced(ranges, {1: 50.0, 2: 50.0, 3: 0.0})
    # Then nobody moves and the empty range is gone
    assert new == [(0.0, 50.0, 1), (50.0, 100.0, 2)]
    assert changed == []


def test_a_growing_variant_stops_taking_when_what_it_still_needs_is_dust() -> None:
    # Given variant 1 holding [0, 1e-9) and [50, 60), variant 2 the rest
    ranges = [(0.0, 1e-9, 1), (1e-9, 50.0, 2), (50.0, 60.0, 1), (60.0, 100.0, 2)]
    held = (50.0 - 1e-9) + 40.0

    # When variant 1 goes to 0, new variant 3 asks for 2e-9 points and variant 4 for 10
    new, changed = assignment.rebalanced(ranges, {1: 0.0, 2: held, 3: 2e-9, 4: 10.0})

    # Then 3 takes the lowest piece, [0, 1e-9), and what it still needs (1e-9) is dust:
    # the last growing variant, 4, takes the whole of [50, 60)
    assert new == [(0.0, 1e-9, 3), (1e-9, 50.0, 2), (50.0, 60.0, 4), (60.0, 100.0, 2)]
    assert changed == [(0.0, 1e-9), (50.0, 60.0)]
