"""Typed settings read from environment variables that template.yaml sets with !Ref."""

from __future__ import annotations

import os
from collections.abc import Mapping
from functools import lru_cache

from pydantic import BaseModel, ConfigDict, Field


class Settings(BaseModel):
    model_config = ConfigDict(frozen=True, populate_by_name=True)

    experiments_table: str = Field("ab_experiments", alias="AB_EXPERIMENTS_TABLE")
    variants_table: str = Field("ab_variants", alias="AB_VARIANTS_TABLE")
    assignments_table: str = Field("ab_assignments", alias="AB_ASSIGNMENTS_TABLE")
    results_table: str = Field("ab_results", alias="AB_RESULTS_TABLE")
    insights_table: str = Field("ab_insights", alias="AB_INSIGHTS_TABLE")
    # How long a warm Lambda trusts its in-memory copy of an experiment and its variants.
    cache_ttl_seconds: float = Field(5.0, ge=0, alias="AB_CACHE_TTL_SECONDS")
    # Running totals of a hot variant can be spread over N items, summed when read.
    totals_shards: int = Field(1, ge=1, le=100, alias="AB_TOTALS_SHARDS")
    # Scheduled insights carry expires_at (DynamoDB TTL) this many days ahead; 0 = kept forever.
    insights_ttl_days: float = Field(0, ge=0, alias="AB_INSIGHTS_TTL_DAYS")

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> Settings:
        source = os.environ if env is None else env
        known = {f.alias for f in cls.model_fields.values() if f.alias}
        return cls.model_validate({k: v for k, v in source.items() if k in known})


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    return Settings.from_env()
