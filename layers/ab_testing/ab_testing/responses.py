"""Pydantic models of the API's answers: what docs/openapi.json promises a client.

The handlers build plain dicts (the hot path stays light); these models describe them for the
OpenAPI document, and the contract tests (schemathesis) check every answer against them.
Objects may carry more fields than listed (new fields are not a breaking change).
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, Field, RootModel

from ab_testing.experiment import Experiment, ExperimentType, Status


class ErrorBody(BaseModel):
    """Every 4xx and 5xx answer of the API."""

    error: str = Field(description="a stable code: validation_error, not_found, conflict, ...")
    message: str = Field(description="what is wrong, for a person")
    field: str | None = Field(None, description="the field, parameter or header at fault")
    errors: list[dict[str, str]] | None = Field(
        None, description="every validation problem, each with its field and message"
    )


class ExperimentCreated(BaseModel):
    id: int
    name: str
    status: Status
    message: str


class ExperimentListed(BaseModel):
    id: int
    name: str | None = None
    description: str | None = None
    experiment_type: ExperimentType | None = None
    status: Status | None = None
    primary_metric: str | None = None
    secondary_metrics: list[str] | None = None
    target_percentage: float | None = None
    min_sample_size: int | None = None
    confidence_level: float | None = None
    created_at: str | None = None
    started_at: str | None = None
    stopped_at: str | None = None
    winner_variant_id: int | None = None


class ExperimentPage(BaseModel):
    experiments: list[ExperimentListed]
    count: int = Field(description="experiments on this page")
    next_cursor: str | None = Field(None, description="pass as ?cursor= for the next page")


class ExperimentOut(RootModel[Experiment]):
    """An experiment as stored, with its variants (GET /api/v1/experiments/{id})."""


class LayerExperiment(BaseModel):
    id: int
    name: str
    status: Status
    range: list[float] = Field(description="[start, end) of the layer positions it takes")
    holdout: bool = Field(
        False, description="the layer's holdout: its range gets every experiment's control"
    )


class LayerOut(BaseModel):
    name: str
    held: list[list[float]] = Field(
        description="[start, end) spans held by its running or paused experiments, merged"
    )
    free: list[list[float]] = Field(description="[start, end) spans a new experiment may take")
    experiments: list[LayerExperiment] = Field(description="all but the archived ones")
    holdout: LayerExperiment | None = Field(
        None,
        description="the running or paused holdout; its analysis compares the held-out units "
        "with the rest of the layer",
    )


class Layers(BaseModel):
    layers: list[LayerOut]


class SegmentComparison(BaseModel):
    variant_id: int
    absolute_difference: float | None
    absolute_ci: list[float | None] | None
    relative_lift: float | None
    relative_ci: list[float | None] | None
    p_value: float | None
    p_value_holm: float | None = Field(description="Holm-adjusted over every segment")
    significant_after_holm: bool
    is_significant: bool | None
    reason: str | None


class Segment(BaseModel):
    segment: str = Field(description='the value kept at assignment, "(none)" or "(other)"')
    units: dict[str, int] = Field(description="units assigned per variant id")
    variant_stats: dict[str, dict[str, Any]]
    srm: dict[str, Any]
    comparisons: list[SegmentComparison]


class Segments(BaseModel):
    experiment_id: int
    attribute: str
    metric: str
    segments: list[Segment]
    multiple_testing: dict[str, Any]
    notes: list[str]


class TracesIn(BaseModel):
    """ExportTraceServiceRequest in OTLP/JSON (protobuf is the other encoding)."""

    resourceSpans: list[dict[str, Any]] = Field(default_factory=list)  # noqa: N815


class PartialSuccess(BaseModel):
    rejectedSpans: str = Field(description="spans that gave no counted result")  # noqa: N815
    errorMessage: str = Field(description="how many spans, for which reason")  # noqa: N815


class TracesAccepted(BaseModel):
    """ExportTraceServiceResponse in OTLP/JSON: empty when every span counted."""

    partialSuccess: PartialSuccess | None = None  # noqa: N815


class Message(BaseModel):
    message: str


class StatusChanged(BaseModel):
    message: str
    experiment_id: int
    status: Status


class Stopped(StatusChanged):
    winner_variant_id: int | None = None
    winner_reason: str | None = None
    p_value: float | None = None
    promoted: bool | None = None


class AllocationOut(BaseModel):
    id: int
    name: str
    traffic_allocation: float


class Rebalanced(BaseModel):
    message: str
    experiment_id: int
    target_percentage: float
    variants: list[AllocationOut]


class VariantAnswer(BaseModel):
    id: int
    name: str
    config: dict[str, Any]
    is_control: bool


class VariantAssigned(BaseModel):
    experiment_id: int
    experiment_name: str
    unit: str = Field(description='"user:<id>" or "session:<id>"')
    variant: VariantAnswer | None
    reason: Literal[
        "assigned",
        "existing_assignment",
        "not_in_target",
        "not_targeted",
        "not_in_layer",
        "holdout",
        "experiment_not_running",
        "override",
        "winner_promoted",
    ]


class ResultRecorded(BaseModel):
    """recorded=false (with reason and message) when the result is not counted."""

    experiment_id: int
    metric_name: str
    unit: str
    recorded: bool
    duplicate: bool | None = None
    result_id: str | None = None
    variant_id: int | None = None
    metric_value: float | None = None
    recorded_at: str | None = None
    reason: Literal["experiment_not_running", "override", "no_assignment"] | None = None
    message: str | None = None


class BatchItem(BaseModel):
    """One item of a batch: a ResultRecorded or an ErrorBody, with its index and status."""

    index: int
    status: int
    recorded: bool | None = None
    error: str | None = None
    message: str | None = None


class BatchRecorded(BaseModel):
    results: list[BatchItem]
    recorded: int
    failed: int
    not_counted: int


class Analysis(BaseModel):
    """The analysis (the guide's analysis fields and the richer parts beside them)."""

    experiment_id: int | None
    experiment_name: str
    status: Status
    analysis_date: str
    variant_stats: dict[str, Any]
    p_value: float | None
    is_significant: bool
    recommended_winner_id: int | None
    recommendation_confidence: float | None
    recommendation_reason: str
    sufficient_sample_size: bool
    current_sample_size: int
    required_sample_size: int | None
    analysis_method: str | None
    confidence_level: float | None = None
    primary_metric: str | None = None
    metrics: dict[str, Any] | None = None
    srm: dict[str, Any] | None = None
    power: dict[str, Any] | None = None
    guardrails: list[Any] | dict[str, Any] | None = None
    warnings: list[str] | None = None
    decision: dict[str, Any] | None = Field(
        None,
        description=(
            "the declared trade-off rule's decision: action (ship, do_not_ship, "
            "needs_decision, keep_running), reason, variant_id, acceptable_regressions, and "
            "per metric its worsening, interval, limit and verdict"
        ),
    )


class VariantSummary(BaseModel):
    variant_id: int
    name: str
    is_control: bool
    traffic_allocation: float
    units_assigned: int
    results_collected: int
    results_by_metric: dict[str, int]


class Summary(BaseModel):
    experiment_id: int
    name: str
    status: Status
    experiment_type: ExperimentType
    primary_metric: str
    days_running: float | None
    users_assigned: int
    results_collected: int
    variants: list[VariantSummary]
    winner_variant_id: int | None
    latest_insight: dict[str, Any] | None


class InsightsPage(BaseModel):
    experiment_id: int
    insights: list[dict[str, Any]]
    next_cursor: str | None


class Reconciliation(BaseModel):
    experiment_id: int
    results_read: int
    totals_checked: int
    differences: list[dict[str, Any]]
    clean: bool


class ResultRow(BaseModel):
    """One raw result, as stored in ab_results."""

    result_id: str
    experiment_id: int
    variant_id: int
    unit: str
    user_id: str | None = Field(description="the user part of unit (null for a session)")
    session_id: str | None = Field(description="the session part of unit (null for a user)")
    metric_name: str
    metric_value: float
    idempotency_key: str | None
    occurred_at: str | None
    recorded_at: str


class ResultsPage(BaseModel):
    experiment_id: int
    results: list[ResultRow]
    count: int
    next_cursor: str | None


class AssignmentRow(BaseModel):
    """One stored assignment, as in ab_assignments."""

    experiment_id: int
    unit: str
    user_id: str | None
    session_id: str | None
    variant_id: int
    assigned_at: str
    source: str = Field(description="hash, or session_alias for a user who kept a session's")


class AssignmentsPage(BaseModel):
    experiment_id: int
    assignments: list[AssignmentRow]
    count: int
    next_cursor: str | None


class PublishedVariant(BaseModel):
    id: int
    name: str
    is_control: bool
    traffic_allocation: float
    config: dict[str, Any]


class PublishedExperiment(BaseModel):
    """What a client needs to assign units itself (docs/assignment.md, section 12)."""

    id: int
    name: str
    status: Status
    salt: str
    target_percentage: float
    max_target_percentage: float
    variants: list[PublishedVariant]
    ranges: list[tuple[float, float, int]] = Field(
        description="[start, end, variant_id] tiling [0, 100) of the variant draw"
    )
    changed_ranges: list[tuple[float, float]] = Field(
        description="spans of the variant draw whose units are asked of get-variant"
    )
    overrides: dict[str, int] = Field(description="unit key to variant id")
    promoted: bool
    winner_variant_id: int | None = None
    metrics: list[str] = Field(
        default_factory=list,
        description="the metrics the experiment declares (primary first): what it counts",
    )


class Definitions(BaseModel):
    algorithm: str = Field(description="sha256-53bit-ranges-v1")
    experiments: list[PublishedExperiment]


class ExposureItem(BaseModel):
    """One exposure's answer: the variant the ledger holds, or an ErrorBody's fields."""

    index: int
    status: int
    variant_id: int | None = None
    reason: str | None = None
    error: str | None = None
    message: str | None = None


class ExposuresRecorded(BaseModel):
    results: list[ExposureItem]
    assigned: int
    failed: int
