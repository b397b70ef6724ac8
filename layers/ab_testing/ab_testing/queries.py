"""Query-string parameters as pydantic models: validated like bodies, documented like them.

Each model forbids unknown parameters, so a typo (``?stauts=running``) is a 400 that names it
instead of a filter silently ignored.
"""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field

from ab_testing.experiment import ExperimentType, Status

DEFAULT_PAGE = 50
MAX_PAGE = 100
DEFAULT_INSIGHTS_PAGE = 20
MAX_EXPORT_PAGE = 1000
DEFAULT_EXPORT_PAGE = 500
_TRUE = {"true", "1", "yes", ""}  # a bare ?declare_winner means yes
_FALSE = {"false", "0", "no"}


def _flag(value: object) -> object:
    if isinstance(value, str):
        raw = value.strip().lower()
        if raw in _TRUE:
            return True
        if raw in _FALSE:
            return False
        raise ValueError(f"must be true or false, got {raw!r}")
    return value


Flag = Annotated[bool, BeforeValidator(_flag)]
Cursor = Annotated[
    str,
    Field(
        min_length=1,
        max_length=1024,
        pattern=r"^[A-Za-z0-9_=-]+$",
        description="opaque: the next_cursor of the previous page",
    ),
]


class _Query(BaseModel):
    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)


class _Paged(_Query):
    cursor: Cursor | None = None


class ListQuery(_Paged):
    """GET /api/v1/experiments: filters and one page, oldest experiment first."""

    status: Status | None = None
    experiment_type: ExperimentType | None = None
    name: str | None = Field(
        None, min_length=1, max_length=200, description="experiments whose name starts with this"
    )
    limit: int = Field(
        DEFAULT_PAGE,
        ge=1,
        le=MAX_PAGE,
        description=f"page size (default {DEFAULT_PAGE}, at most {MAX_PAGE})",
    )


class StopQuery(_Query):
    declare_winner: Flag = Field(False, description="store the analysis's recommended winner")
    promote: Flag = Field(False, description="serve the winner to every unit from now on")


class InsightsQuery(_Paged):
    limit: int = Field(
        DEFAULT_INSIGHTS_PAGE,
        ge=1,
        le=MAX_PAGE,
        description=f"page size (default {DEFAULT_INSIGHTS_PAGE}, at most {MAX_PAGE})",
    )


class ExportQuery(_Paged):
    """The raw rows of one experiment, a page at a time, in key order."""

    format: Literal["json", "jsonl", "csv"] = Field(
        "json", description="json (default), jsonl (one object a line) or csv (with a header)"
    )
    limit: int = Field(
        DEFAULT_EXPORT_PAGE,
        ge=1,
        le=MAX_EXPORT_PAGE,
        description=f"rows per page (default {DEFAULT_EXPORT_PAGE}, at most {MAX_EXPORT_PAGE})",
    )


class SegmentsQuery(_Query):
    """GET /api/v1/experiments/{id}/segments: which attribute, which metric."""

    attribute: str = Field(
        min_length=1, max_length=600, description="one of the experiment's segment_attributes"
    )
    metric: str | None = Field(
        None, min_length=1, max_length=64, description="a declared metric (default: primary)"
    )
