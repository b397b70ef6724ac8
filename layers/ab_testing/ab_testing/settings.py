"""Typed settings read from environment variables that template.yaml sets with !Ref.

A plain dataclass (no pydantic): every function reads these at import, the hot path too."""

from __future__ import annotations

import dataclasses
import math
import os
from collections.abc import Mapping
from dataclasses import dataclass
from functools import lru_cache


@dataclass(frozen=True)
class Settings:
    experiments_table: str = "ab_experiments"
    variants_table: str = "ab_variants"
    assignments_table: str = "ab_assignments"
    results_table: str = "ab_results"
    insights_table: str = "ab_insights"
    # How long a warm Lambda trusts its in-memory copy of an experiment and its variants.
    cache_ttl_seconds: float = 5.0
    # Running totals of a hot variant can be spread over N items, summed when read.
    totals_shards: int = 1
    # Scheduled insights carry expires_at (DynamoDB TTL) this many days ahead; 0 = kept forever.
    insights_ttl_days: float = 0.0

    def __post_init__(self) -> None:
        for name in ("cache_ttl_seconds", "insights_ttl_days"):
            value = getattr(self, name)
            if math.isnan(value) or value < 0:
                raise ValueError(f"{name} must be a number >= 0, got {value!r}")
        if not 1 <= self.totals_shards <= 100:
            raise ValueError(f"totals_shards must be 1 to 100, got {self.totals_shards!r}")

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> Settings:
        """From the variables template.yaml sets (AB_EXPERIMENTS_TABLE, ...); a value that is
        not a number where one is needed is a ValueError naming the variable."""
        source = os.environ if env is None else env
        values: dict[str, object] = {}
        for field in dataclasses.fields(cls):
            variable = _VARIABLES[field.name]
            if variable not in source:
                continue
            raw = source[variable]
            kind: type = type(field.default)  # every field has a default of its type
            values[field.name] = raw if kind is str else _number(variable, raw, kind)
        return cls(**values)  # type: ignore[arg-type]


def _number(variable: str, raw: str, kind: type) -> float | int:
    """A number as CloudFormation passes it: ASCII digits ("2", "2.0", "5e0", "inf"); an
    integer setting takes a whole number written either way."""
    try:
        if not raw.isascii():
            raise ValueError
        number = float(raw)
        if kind is int:
            if not number.is_integer():
                raise ValueError
            return int(number)
        return number
    except ValueError:
        raise ValueError(f"{variable} must be {kind.__name__}, got {raw!r}") from None


_VARIABLES = {
    "experiments_table": "AB_EXPERIMENTS_TABLE",
    "variants_table": "AB_VARIANTS_TABLE",
    "assignments_table": "AB_ASSIGNMENTS_TABLE",
    "results_table": "AB_RESULTS_TABLE",
    "insights_table": "AB_INSIGHTS_TABLE",
    "cache_ttl_seconds": "AB_CACHE_TTL_SECONDS",
    "totals_shards": "AB_TOTALS_SHARDS",
    "insights_ttl_days": "AB_INSIGHTS_TTL_DAYS",
}


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    return Settings.from_env()
