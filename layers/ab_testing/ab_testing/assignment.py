"""Deterministic assignment: pure functions, written down in docs/assignment.md.

    digest = SHA-256(UTF-8(salt + ":" + unit))
    u_cover   = (big-endian uint64 of digest[0:8]  >> 11) / 2**53     in [0, 1)
    u_variant = (big-endian uint64 of digest[8:16] >> 11) / 2**53     in [0, 1)

The unit is in the experiment when ``u_cover * 100 < target_percentage``. The variant is the
first, in creation order, whose cumulative traffic_allocation exceeds ``u_variant * 100``.
Two disjoint slices of one digest give two independent draws, so coverage and variant choice
do not correlate. The salt is random per experiment, so a reused name starts afresh.
"""

from __future__ import annotations

import hashlib
import secrets
from collections.abc import Sequence

_SCALE = float(2**53)


def new_salt() -> str:
    return secrets.token_hex(8)


def unit_key(user_id: int | str | None, session_id: str | None) -> str:
    """The randomization unit: the user when known, else the session.

    An integer user id and its decimal string are the same unit (123 and "123").
    """
    if user_id is not None:
        return f"user:{user_id}"
    if session_id is not None:
        return f"session:{session_id}"
    raise ValueError("a unit needs a user_id or a session_id")


def draws(salt: str, unit: str) -> tuple[float, float]:
    """The coverage draw and the variant draw of a unit, each uniform on [0, 1)."""
    digest = hashlib.sha256(f"{salt}:{unit}".encode()).digest()
    cover = (int.from_bytes(digest[0:8], "big") >> 11) / _SCALE
    pick = (int.from_bytes(digest[8:16], "big") >> 11) / _SCALE
    return cover, pick


def in_target(cover: float, target_percentage: float) -> bool:
    return cover * 100.0 < target_percentage


def choose(pick: float, allocations: Sequence[float]) -> int:
    """Index of the variant for a draw, by cumulative allocation (percentages summing to 100)."""
    point = pick * 100.0
    cumulative = 0.0
    last_open = 0
    for index, share in enumerate(allocations):
        if share <= 0:
            continue
        cumulative += share
        last_open = index
        if point < cumulative:
            return index
    # Rounding can leave the cumulative sum a hair under 100: the last open variant takes it.
    return last_open


def assign(
    salt: str, unit: str, target_percentage: float, allocations: Sequence[float]
) -> int | None:
    """Index of the unit's variant, or None when the unit falls outside target_percentage."""
    cover, pick = draws(salt, unit)
    if not in_target(cover, target_percentage):
        return None
    return choose(pick, allocations)


# ---------------------------------------------------------------- range-preserving rebalancing
# The variant draw, as a point in [0, 100), falls in one of a list of ranges
# (start, end, variant id) that tile [0, 100). Before any rebalance the ranges are the
# cumulative allocations in creation order, so `variant_at` gives what `choose` gives. A
# rebalance moves only the smallest measure of points: each shrinking variant gives up the top
# of its ranges, each growing variant takes from what was given up. Points that ever changed
# variant are published as `changed` ranges: a local evaluator asks the server about those.

Range = tuple[float, float, int]
_DUST = 1e-9
Span = tuple[float, float]


def initial_ranges(allocations: Sequence[float], variant_ids: Sequence[int]) -> list[Range]:
    """The ranges `choose` implies: cumulative sums in order, the last open variant to 100."""
    ranges: list[Range] = []
    cumulative = 0.0
    for share, variant_id in zip(allocations, variant_ids, strict=True):
        if share <= 0:
            continue
        start, cumulative = cumulative, cumulative + share
        ranges.append((start, cumulative, variant_id))
    if ranges:  # the rounding remainder belongs to the last open variant
        start, _, variant_id = ranges[-1]
        ranges[-1] = (start, 100.0, variant_id)
    return ranges


def variant_at(pick: float, ranges: Sequence[Range]) -> int:
    """The variant id whose range holds the draw (ranges sorted by start, ending at 100)."""
    point = pick * 100.0
    for _, end, variant_id in ranges:
        if point < end:
            return variant_id
    return ranges[-1][2]


def in_spans(pick: float, spans: Sequence[Span]) -> bool:
    point = pick * 100.0
    return any(start <= point < end for start, end in spans)


def rebalanced(ranges: Sequence[Range], wanted: dict[int, float]) -> tuple[list[Range], list[Span]]:
    """New ranges with measure ``wanted[variant]`` each, and the spans that changed variant.

    The changed measure is the total variation distance between the old and new
    allocations, the least any reallocation can move.
    """
    held = dict.fromkeys(wanted, 0.0)
    for start, end, variant_id in ranges:
        held[variant_id] = held.get(variant_id, 0.0) + (end - start)
    # Float dust (33.33 + 33.33 is not exactly 66.66) is no reason to move anyone.
    excess = {v: d if abs(d := held[v] - share) > _DUST else 0.0 for v, share in wanted.items()}
    kept: list[Range] = []
    freed: list[Span] = []
    # Shrinking variants give up the top of their ranges, highest first.
    for start, end, variant_id in sorted(ranges, key=lambda r: -r[0]):
        give = min(max(excess[variant_id], 0.0), end - start)
        if give > 0:
            excess[variant_id] -= give
            cut = max(start, end - give)  # kept and freed share this one boundary value
            freed.append((cut, end))
            end = cut
        if end > start:
            kept.append((start, end, variant_id))
    growing = [(v, -e) for v, e in excess.items() if e < 0]
    if not growing:  # nothing to hand out (the shares are unchanged): nobody moves
        return _merged(list(ranges)), []
    freed.sort()
    taken: list[Range] = []
    pool = list(freed)
    for position, (variant_id, need) in enumerate(growing):
        last = position == len(growing) - 1
        while pool and (need > _DUST or last):
            start, end = pool.pop(0)
            cut = start + need
            if not last and start < cut < end:
                pool.insert(0, (cut, end))
                end = cut
            taken.append((start, end, variant_id))
            need -= end - start
    return _merged(kept + taken), _merged_spans(freed)


def _merged(ranges: list[Range]) -> list[Range]:
    out: list[Range] = []
    for start, end, variant_id in sorted(ranges):
        if end <= start:
            continue
        if out and out[-1][2] == variant_id and out[-1][1] == start:
            out[-1] = (out[-1][0], end, variant_id)
        else:
            out.append((start, end, variant_id))
    return out


def merged_spans(spans: Sequence[Span]) -> list[Span]:
    return _merged_spans(list(spans))


def _merged_spans(spans: list[Span]) -> list[Span]:
    out: list[Span] = []
    for start, end in sorted(spans):
        if end <= start:
            continue
        if out and start <= out[-1][1]:
            out[-1] = (out[-1][0], max(end, out[-1][1]))
        else:
            out.append((start, end))
    return out
