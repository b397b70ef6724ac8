"""Which models describe each route: the registry docs/openapi.json is generated from.

template.yaml says which routes exist; this table says, for each of them, the pydantic models
of its query string, body and answers. A route in the template without an entry here fails
``python -m ab_testing.openapi`` and the contract tests with a message naming what to add.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

from pydantic import BaseModel, Field

from ab_testing import responses as r
from ab_testing.models import ExperimentIn, GetVariantIn, RebalanceIn, RecordResultIn
from ab_testing.queries import ExportQuery, InsightsQuery, ListQuery, SegmentsQuery, StopQuery
from ab_testing.results import MAX_BATCH

Plane = Literal["data", "admin"]
CSV, JSONL, HTML = "text/csv", "application/x-ndjson", "text/html"


class RecordResultsIn(BaseModel):
    """Body of POST /api/v1/experiments/record-results: 1 to 100 results.

    Each item is validated on its own (as a RecordResultIn body) and answered in its place in
    ``results``: one bad item does not refuse the others, so the items are any JSON here.
    """

    results: list[Any] = Field(min_length=1, max_length=MAX_BATCH)


class ExposuresIn(BaseModel):
    """Body of POST /api/v1/experiments/exposures: 1 to 100 units a client assigned itself.

    Each item (an ExposureIn body) is answered in its place in ``results``.
    """

    exposures: list[Any] = Field(min_length=1, max_length=MAX_BATCH)


@dataclass(frozen=True)
class Operation:
    operation_id: str
    summary: str
    plane: Plane
    answer: type[BaseModel] | None  # None: an answer that is not a JSON object (see media)
    status: int = 200
    body: type[BaseModel] | None = None
    query: type[BaseModel] | None = None
    path_id: bool = False  # the path has an {id} parameter (a positive integer)
    media: tuple[str, ...] = ()  # other media types of the success answer
    also: dict[int, str] = field(default_factory=dict)  # more statuses: {status: why}
    tags: tuple[str, ...] = ("experiments",)
    example: dict[str, Any] | None = None  # a body that works on a fresh local stack


E = "/api/v1/experiments"
EXPERIMENT_EXAMPLE: dict[str, Any] = {
    "name": "Lead Qualification Prompt Test",
    "description": "Testing new prompt with few-shot examples vs current prompt",
    "experiment_type": "prompt",
    "primary_metric": "resolution_rate",
    "secondary_metrics": ["satisfaction_score", "response_time"],
    "variants": [
        {
            "name": "Control",
            "is_control": True,
            "traffic_allocation": 50.0,
            "config": {"system_prompt": "You are an AI assistant...", "include_examples": False},
        },
        {
            "name": "Treatment - Few Shot Examples",
            "traffic_allocation": 50.0,
            "config": {"system_prompt": "You are an AI assistant...", "include_examples": True},
        },
    ],
    "target_percentage": 100.0,
    "min_sample_size": 100,
    "confidence_level": 0.95,
}
RESULT_EXAMPLE: dict[str, Any] = {
    "experiment_id": 1,
    "user_id": 123,
    "metric_name": "resolution_rate",
    "metric_value": 1,
    "idempotency_key": "conversation-1",
}
_LIFECYCLE_409 = {409: "the transition is not allowed from the current status"}

ROUTES: dict[tuple[str, str], Operation] = {
    ("POST", E): Operation(
        "createExperiment",
        "Create an experiment in draft",
        "admin",
        r.ExperimentCreated,
        status=201,
        body=ExperimentIn,
        example=EXPERIMENT_EXAMPLE,
        also={409: "an experiment with this name already exists"},
    ),
    ("GET", E): Operation(
        "listExperiments",
        "List experiments, oldest first, a page at a time",
        "admin",
        r.ExperimentPage,
        query=ListQuery,
    ),
    ("GET", E + "/{id}"): Operation(
        "getExperiment", "One experiment with its variants", "admin", r.ExperimentOut, path_id=True
    ),
    ("PATCH", E + "/{id}"): Operation(
        "rebalanceExperiment",
        "New traffic allocations and/or target_percentage, for new units only",
        "admin",
        r.Rebalanced,
        body=RebalanceIn,
        path_id=True,
        also={409: "the experiment is stopped or archived"},
    ),
    ("POST", E + "/{id}/start"): Operation(
        "startExperiment",
        "Start (draft to running)",
        "admin",
        r.Message,
        path_id=True,
        also={
            409: "the transition is not allowed from the current status, or a running or "
            "paused experiment of its layer holds an overlapping range"
        },
    ),
    ("POST", "/api/v1/otlp/v1/traces"): Operation(
        "exportTraces",
        "OTLP/HTTP traces (protobuf or JSON): GenAI spans become results (docs/otlp.md)",
        "data",
        r.TracesAccepted,
        body=r.TracesIn,
        media=("application/x-protobuf",),
        tags=("opentelemetry",),
    ),
    ("GET", "/api/v1/layers"): Operation(
        "listLayers",
        "Layers: their experiments, the ranges held and the ranges free",
        "admin",
        r.Layers,
        tags=("layers",),
    ),
    ("POST", E + "/{id}/pause"): Operation(
        "pauseExperiment",
        "Pause (running to paused)",
        "admin",
        r.StatusChanged,
        path_id=True,
        also=_LIFECYCLE_409,
    ),
    ("POST", E + "/{id}/resume"): Operation(
        "resumeExperiment",
        "Resume (paused to running)",
        "admin",
        r.StatusChanged,
        path_id=True,
        also=_LIFECYCLE_409,
    ),
    ("POST", E + "/{id}/stop"): Operation(
        "stopExperiment",
        "Stop, optionally declaring and promoting the winner",
        "admin",
        r.Stopped,
        query=StopQuery,
        path_id=True,
        also=_LIFECYCLE_409,
    ),
    ("POST", E + "/{id}/archive"): Operation(
        "archiveExperiment",
        "Archive a stopped experiment",
        "admin",
        r.StatusChanged,
        path_id=True,
        also=_LIFECYCLE_409,
    ),
    ("GET", E + "/{id}/analyze"): Operation(
        "analyzeExperiment",
        "The statistical analysis, from running totals",
        "admin",
        r.Analysis,
        path_id=True,
    ),
    ("GET", E + "/{id}/summary"): Operation(
        "experimentSummary",
        "Units assigned and results collected per variant",
        "admin",
        r.Summary,
        path_id=True,
    ),
    ("GET", E + "/{id}/insights"): Operation(
        "experimentInsights",
        "Scheduled analyses, newest first, a page at a time",
        "admin",
        r.InsightsPage,
        query=InsightsQuery,
        path_id=True,
    ),
    ("GET", E + "/{id}/segments"): Operation(
        "experimentSegments",
        "One metric by segment: each analysed alone, Holm-adjusted across segments",
        "admin",
        r.Segments,
        query=SegmentsQuery,
        path_id=True,
    ),
    ("GET", E + "/{id}/reconciliation"): Operation(
        "reconcileExperiment",
        "Running totals checked against the raw results",
        "admin",
        r.Reconciliation,
        path_id=True,
    ),
    ("GET", E + "/{id}/report"): Operation(
        "experimentReport",
        "The report page: one self-contained HTML document",
        "admin",
        None,
        path_id=True,
        media=(HTML,),
    ),
    ("GET", E + "/{id}/results"): Operation(
        "exportResults",
        "Raw results, one row per result, a page at a time",
        "admin",
        r.ResultsPage,
        query=ExportQuery,
        path_id=True,
        media=(JSONL, CSV),
        tags=("export",),
    ),
    ("GET", E + "/{id}/assignments"): Operation(
        "exportAssignments",
        "Stored assignments, one row per unit, a page at a time",
        "admin",
        r.AssignmentsPage,
        query=ExportQuery,
        path_id=True,
        media=(JSONL, CSV),
        tags=("export",),
    ),
    ("POST", E + "/get-variant"): Operation(
        "getVariant",
        "The unit's sticky variant (and why)",
        "data",
        r.VariantAssigned,
        body=GetVariantIn,
        tags=("data plane",),
        example={"experiment_id": 1, "user_id": 123},
    ),
    ("POST", E + "/record-result"): Operation(
        "recordResult",
        "Record one result exactly once (201 when counted now, 200 otherwise)",
        "data",
        r.ResultRecorded,
        status=201,
        body=RecordResultIn,
        example=RESULT_EXAMPLE,
        also={
            200: "not counted now: a retry (duplicate: true) or a unit left out (reason)",
            409: "idempotency_key_reused: this key was used with another value",
        },
        tags=("data plane",),
    ),
    ("POST", E + "/record-results"): Operation(
        "recordResults",
        "Up to 100 results, each recorded on its own",
        "data",
        r.BatchRecorded,
        body=RecordResultsIn,
        tags=("data plane",),
        example={"results": [RESULT_EXAMPLE]},
    ),
    ("GET", E + "/definitions"): Operation(
        "experimentDefinitions",
        "Running, paused and promoted experiments, for clients that assign locally",
        "data",
        r.Definitions,
        tags=("data plane",),
        also={304: "unchanged since the ETag sent in If-None-Match"},
    ),
    ("POST", E + "/exposures"): Operation(
        "recordExposures",
        "Up to 100 units a client assigned itself, written to the assignment ledger",
        "data",
        r.ExposuresRecorded,
        body=ExposuresIn,
        tags=("data plane",),
        example={"exposures": [{"experiment_id": 1, "user_id": 123, "variant_id": 1}]},
    ),
    ("GET", "/api/v1/openapi.json"): Operation(
        "openapiDocument",
        "This OpenAPI document",
        "admin",
        None,
        media=("application/json",),
        tags=("meta",),
    ),
    ("GET", "/api/v1/docs"): Operation(
        "apiDocsPage",
        "Interactive API documentation (HTML)",
        "admin",
        None,
        media=(HTML,),
        tags=("meta",),
    ),
}


def allowed_methods(path: str) -> list[str]:
    """The methods a resource path (as in the template) answers, sorted."""
    return sorted(method for method, p in ROUTES if p == path)
