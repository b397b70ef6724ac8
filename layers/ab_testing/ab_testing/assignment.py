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
