"""The typed answers the client hands back."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class Variant:
    """The variant a unit gets: use ``config`` to configure the call under test."""

    id: int
    name: str
    is_control: bool
    config: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Variant:
        return cls(
            id=int(data["id"]),
            name=str(data["name"]),
            is_control=bool(data.get("is_control", False)),
            config=dict(data.get("config") or {}),
        )


@dataclass(frozen=True)
class Refusal:
    """A result or exposure the service did not count, and why (given to ``on_refusal``)."""

    kind: str  # "result" | "exposure"
    item: dict[str, Any]
    status: int
    reason: str
    message: str


@dataclass(frozen=True)
class ClientStats:
    """Counters since the client was created."""

    requests: int  # HTTP requests sent, retries included
    results_sent: int  # results the service counted (first time or as a duplicate of a retry)
    exposures_sent: int
    refused: int  # results and exposures not counted (see Refusal)
    dropped: int  # discarded because the queue was full
    queued: int  # waiting to be sent now
    conflicts: int  # units whose ledger variant differed from the one served (see docs)
