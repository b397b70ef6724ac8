"""The published assignment algorithm (docs/assignment.md of the service), standard library only.

The service and this client share the algorithm through its specification and its test
vectors (docs/assignment_vectors.json), not through code.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from ab_testing_client.answers import Variant
from ab_testing_client.targeting import condition_matches, layer_position

ALGORITHM = "sha256-53bit-ranges-v1"
ALGORITHMS = (ALGORITHM, ALGORITHM + "+holdouts")  # the second: a layer has a holdout
_SCALE = float(2**53)


def unit_key(user_id: int | str | None, session_id: str | None) -> str:
    """``user:<id>`` when a user is known, else ``session:<id>``; ids stripped of spaces."""
    if user_id is not None:
        if isinstance(user_id, bool) or not isinstance(user_id, int | str):
            raise TypeError("user_id must be an integer or a string")
        return "user:" + _id(str(user_id))
    if session_id is not None:
        return "session:" + _id(session_id)
    raise ValueError("give user_id or, for anonymous traffic, session_id")


def _id(raw: str) -> str:
    value = raw.strip()
    if not value:
        raise ValueError("a user_id or session_id must not be empty")
    return value


def draws(salt: str, unit: str) -> tuple[float, float]:
    """The coverage draw and the variant draw, each a 53-bit fraction in [0, 1)."""
    digest = hashlib.sha256(f"{salt}:{unit}".encode()).digest()
    cover = (int.from_bytes(digest[0:8], "big") >> 11) / _SCALE
    pick = (int.from_bytes(digest[8:16], "big") >> 11) / _SCALE
    return cover, pick


def ranges_from_allocations(
    allocations: Sequence[float], ids: Sequence[int]
) -> list[tuple[float, float, int]]:
    """Cumulative allocations in order, 0% variants skipped, the last open one up to 100."""
    ranges: list[tuple[float, float, int]] = []
    cumulative = 0.0
    for share, variant_id in zip(allocations, ids, strict=True):
        if share > 0:
            start, cumulative = cumulative, cumulative + share
            ranges.append((start, cumulative, variant_id))
    if ranges:
        ranges[-1] = (ranges[-1][0], 100.0, ranges[-1][2])
    return ranges


def variant_at(pick: float, ranges: Sequence[tuple[float, float, int]]) -> int:
    point = pick * 100.0
    for _, end, variant_id in ranges:
        if point < end:
            return variant_id
    return ranges[-1][2]


def _layer(data: dict[str, Any] | None) -> tuple[str, float, float] | None:
    if not data:
        return None
    start, end = data["range"]
    return str(data["name"]), float(start), float(end)


@dataclass(frozen=True)
class Holdout:
    """The running or paused holdout of an experiment's layer (docs/assignment.md 14)."""

    experiment_id: int
    running: bool
    start: float
    end: float
    control_variant_id: int
    other_variant_id: int

    @classmethod
    def from_json(cls, data: dict[str, Any] | None) -> Holdout | None:
        if not data:
            return None
        start, end = data["range"]
        return cls(
            experiment_id=int(data["experiment_id"]),
            running=data.get("status") == "running",
            start=float(start),
            end=float(end),
            control_variant_id=int(data["control_variant_id"]),
            other_variant_id=int(data["other_variant_id"]),
        )

    def group(self, position: float) -> int:
        inside = self.start <= position < self.end
        return self.control_variant_id if inside else self.other_variant_id


# What evaluate() decides: a variant id, "none" (no variant), "ask" (only the server knows),
# or "held" (held out by the layer's holdout: the control, and nothing stored for it).
ASK = "ask"
NONE = "none"
HELD = "held"


@dataclass(frozen=True)
class Definition:
    """One experiment as GET /api/v1/experiments/definitions publishes it."""

    id: int
    name: str
    status: str
    salt: str
    target_percentage: float
    max_target_percentage: float
    variants: dict[int, Variant]
    ranges: tuple[tuple[float, float, int], ...]
    changed_ranges: tuple[tuple[float, float], ...] = ()
    overrides: dict[str, int] = field(default_factory=dict)
    promoted: bool = False
    winner_variant_id: int | None = None
    metrics: tuple[str, ...] = ()  # declared, primary first (empty from older services)
    targeting: dict[str, Any] | None = None  # docs/targeting.md
    layer: tuple[str, float, float] | None = None  # name, range start, range end
    is_holdout: bool = False  # this experiment is its layer's holdout
    holdout: Holdout | None = None  # the holdout of its layer, if any runs or is paused

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Definition:
        return cls(
            id=int(data["id"]),
            name=str(data["name"]),
            status=str(data["status"]),
            salt=str(data["salt"]),
            target_percentage=float(data["target_percentage"]),
            max_target_percentage=float(
                data.get("max_target_percentage", data["target_percentage"])
            ),
            variants={int(v["id"]): Variant.from_json(v) for v in data["variants"]},
            ranges=tuple((float(a), float(b), int(v)) for a, b, v in data["ranges"]),
            changed_ranges=tuple((float(a), float(b)) for a, b in data.get("changed_ranges", [])),
            overrides={str(k): int(v) for k, v in (data.get("overrides") or {}).items()},
            promoted=bool(data.get("promoted")),
            winner_variant_id=data.get("winner_variant_id"),
            metrics=tuple(str(m) for m in data.get("metrics") or ()),
            targeting=data.get("targeting"),
            layer=_layer(data.get("layer")),
            is_holdout=bool((data.get("layer") or {}).get("holdout")),
            holdout=Holdout.from_json(data.get("holdout")),
        )

    @property
    def control(self) -> Variant | None:
        return next((v for v in self.variants.values() if v.is_control), None)

    def control_or_other(self, position: float) -> int:
        """A holdout's group for a unit at ``position`` of its layer."""
        assert self.layer is not None
        _, start, end = self.layer
        inside = start <= position < end
        return next(v.id for v in self.variants.values() if v.is_control == inside)

    def held_out(self, unit: str) -> bool:
        """Whether the unit lies in the range of its layer's holdout (running or paused)."""
        held = self.holdout
        if held is None or self.layer is None or self.is_holdout:
            return False
        return held.start <= layer_position(self.layer[0], unit) < held.end

    def holdout_entry(self, unit: str, attributes: dict[str, Any] | None) -> tuple[int, int] | None:
        """(holdout id, group) for a unit this experiment lets in by its targeting while its
        layer's holdout runs: the exposure the holdout records. None otherwise."""
        held = self.holdout
        if held is None or not held.running or self.layer is None or self.status != "running":
            return None
        if self.targeting is not None and not condition_matches(self.targeting, attributes or {}):
            return None
        return held.experiment_id, held.group(layer_position(self.layer[0], unit))

    def fixed(self, unit: str) -> int | str | None:
        """What holds whatever the ledger says: a promoted winner, a stopped experiment,
        an override. None when the unit's own assignment decides."""
        if self.promoted and self.winner_variant_id is not None:
            if self.held_out(unit) and self.control is not None:
                return self.control.id  # the holdout holds its units out of what was shipped
            return self.winner_variant_id
        if self.status not in ("running", "paused"):
            return NONE
        return self.overrides.get(unit)

    def evaluate(self, unit: str, attributes: dict[str, Any] | None = None) -> int | str:
        """The variant id a unit seen for the first time gets, NONE, or ASK where a unit may
        already hold a variant the published ranges do not show (see docs/assignment.md).

        A unit that the targeting or the layer keeps out gets NONE. The ledger may still
        hold a variant for it from when its attributes matched: only get-variant sees that
        (docs/targeting.md, "Local evaluation")."""
        if self.status != "running":
            return ASK  # paused: only units the ledger already holds get a variant
        if self.targeting is not None and not condition_matches(self.targeting, attributes or {}):
            return NONE
        if self.layer is not None:
            name, start, end = self.layer
            position = layer_position(name, unit)
            if self.is_holdout:
                return self.control_or_other(position)
            held = self.holdout
            if held is not None and held.start <= position < held.end:
                return HELD
            if not start <= position < end:
                return NONE
        cover, pick = draws(self.salt, unit)
        point = cover * 100.0
        if not point < self.max_target_percentage:
            return NONE
        if not point < self.target_percentage:
            return ASK  # inside a higher target set earlier: may be stored
        variant_point = pick * 100.0
        if any(a <= variant_point < b for a, b in self.changed_ranges):
            return ASK
        return variant_at(pick, self.ranges)
