"""Pydantic models: request bodies as the product guide writes them, and the domain records."""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from typing import Annotated, Any, Literal

from pydantic import (
    AfterValidator,
    AwareDatetime,
    BaseModel,
    ConfigDict,
    Field,
    StringConstraints,
    ValidationInfo,
    field_validator,
    model_validator,
)

from ab_testing import metrics, targeting
from ab_testing.experiment import (
    ALLOCATION_TOLERANCE,
    AnalysisMethod,
    ExperimentType,
    Metric,
    Ratio,
    unit_override_key,
)
from ab_testing.stats.inputs import MetricSpec, RatioSpec

Name = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=200)]
MetricName = Annotated[
    str, StringConstraints(strip_whitespace=True, pattern=r"^[A-Za-z0-9_.:-]{1,64}$")
]
MAX_VARIANTS = 20
MAX_UNIT_BYTES = 512  # a unit is part of a DynamoDB sort key (at most 1,024 bytes)
MAX_CONFIG_BYTES = 64 * 1024  # an experiment and its variants must fit DynamoDB's 400 KB items
MAX_CONFIG_DEPTH = 32  # objects and arrays inside one another, as DynamoDB allows for maps
MAX_INTEGER_ID = 10**15 - 1


def _unit_bytes(value: str) -> str:
    if len(value.encode("utf-8")) > MAX_UNIT_BYTES:
        raise ValueError(f"must be at most {MAX_UNIT_BYTES} bytes in UTF-8")
    return value


def _nesting_depth(value: Any) -> int:
    """How many objects/arrays sit inside one another (without recursion: input is hostile)."""
    deepest = 0
    pending: list[tuple[Any, int]] = [(value, 1)]
    while pending:
        current, depth = pending.pop()
        if isinstance(current, dict | list):
            deepest = max(deepest, depth)
            children = current.values() if isinstance(current, dict) else current
            pending.extend((child, depth + 1) for child in children)
    return deepest


def _storable(value: float) -> float:
    """Numbers DynamoDB stores exactly: 0, or a magnitude between 1e-9 and 1e15."""
    if value != 0 and not 1e-9 <= abs(value) <= 1e15:
        raise ValueError("must be 0 or have a magnitude between 1e-9 and 1e15")
    return value


UnitId = Annotated[str, StringConstraints(min_length=1), AfterValidator(_unit_bytes)]
UserNumber = Annotated[int, Field(ge=-MAX_INTEGER_ID, le=MAX_INTEGER_ID)]
ExperimentId = Annotated[int, Field(ge=1, le=MAX_INTEGER_ID)]
Storable = Annotated[float, AfterValidator(_storable)]


def _condition(value: dict[Any, Any]) -> dict[Any, Any]:
    targeting.check(value)
    return value


# A targeting condition (docs/targeting.md). Keys are taken as sent: dict[Any, Any], as
# dict[str, Any] would strip their whitespace (str_strip_whitespace) and change the paths.
Condition = Annotated[dict[Any, Any], AfterValidator(_condition)]
Attributes = Annotated[dict[Any, Any], AfterValidator(targeting.check_attributes)]
LayerName = Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9_.-]{1,64}$")]
AttributePath = Annotated[
    str, StringConstraints(pattern=r"^[A-Za-z0-9_-]{1,64}(\.[A-Za-z0-9_-]{1,64}){0,7}$")
]


class _Strict(BaseModel):
    # defer_build: a request model's validator is built on its first use, so a function
    # builds only the models it reads (get-variant never builds ExperimentIn): cold starts.
    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True, defer_build=True)


class LayerIn(_Strict):
    """An experiment's part of a layer: the units whose position in the layer (a hash of the
    layer's name and the unit, docs/assignment.md section 13) lies in [range[0], range[1]).
    Experiments of one layer whose ranges overlap cannot run at the same time."""

    name: LayerName
    range: list[float] = Field(min_length=2, max_length=2)
    # The layer's holdout (docs/assignment.md section 14): the units of this range get the
    # control of every experiment of the layer; this experiment compares them with the rest.
    holdout: bool = False

    @field_validator("range")
    @classmethod
    def _part_of_unit_interval(cls, value: list[float]) -> list[float]:
        start, end = value
        if not (math.isfinite(start) and math.isfinite(end) and 0 <= start < end <= 1):
            raise ValueError("a layer range is [start, end) with 0 <= start < end <= 1")
        return value


class PriceIn(_Strict):
    """A model's price in USD per million tokens, for cost_usd from traces (docs/otlp.md)."""

    input_per_million: Storable = Field(ge=0, le=10_000, allow_inf_nan=False)
    output_per_million: Storable = Field(ge=0, le=10_000, allow_inf_nan=False)


class VariantIn(_Strict):
    name: Name
    description: str = Field("", max_length=2000)
    is_control: bool = False
    traffic_allocation: Storable = Field(ge=0, le=100, allow_inf_nan=False)
    config: dict[str, Any] = Field(default_factory=dict)

    @field_validator("config")
    @classmethod
    def _config_size(cls, value: dict[str, Any]) -> dict[str, Any]:
        if _nesting_depth(value) > MAX_CONFIG_DEPTH:
            raise ValueError(f"config must nest at most {MAX_CONFIG_DEPTH} levels deep")
        if len(json.dumps(value, separators=(",", ":")).encode()) > MAX_CONFIG_BYTES:
            raise ValueError(f"config must be at most {MAX_CONFIG_BYTES // 1024} KB as JSON")
        return value


class MetricDefinition(_Strict):
    """A metric an experiment declares for itself, beyond the built-in catalogue."""

    name: MetricName
    kind: Literal["binary", "continuous", "count"] = "continuous"
    direction: Literal["higher", "lower"] = "higher"
    lower: Storable | None = Field(None, allow_inf_nan=False)
    upper: Storable | None = Field(None, allow_inf_nan=False)
    decimals: int = Field(metrics.DEFAULT_DECIMALS, ge=0, le=metrics.MAX_DECIMALS)

    @model_validator(mode="after")
    def _ordered_bounds(self) -> MetricDefinition:
        if self.lower is not None and self.upper is not None and self.lower >= self.upper:
            raise ValueError(f"lower ({self.lower:g}) must be below upper ({self.upper:g})")
        problem = metrics.precision_problem(self.spec())
        if problem:
            raise ValueError(problem)
        return self

    def spec(self, guardrail: bool = False) -> MetricSpec:
        return Metric(**self.model_dump()).spec(guardrail)


class RatioMetricDefinition(_Strict):
    """A ratio of two metrics' per-unit sums, e.g. cost per resolution (sum cost / sum resolved
    over units), analysed with the delta method."""

    name: MetricName
    numerator: MetricName
    denominator: MetricName
    direction: Literal["higher", "lower"] = "lower"

    @model_validator(mode="after")
    def _two_metrics(self) -> RatioMetricDefinition:
        if self.numerator == self.denominator:
            raise ValueError("numerator and denominator must be two different metrics")
        return self

    def spec(self) -> RatioSpec:
        return Ratio(**self.model_dump()).spec()


# The largest relative worsening of one metric a team accepts (0.10: 10% worse).
AcceptableRegression = Annotated[
    float, Field(gt=0, le=100, allow_inf_nan=False), AfterValidator(_storable)
]


def check_limits_name_own_metrics(limits: dict[str, float], own: list[Any]) -> None:
    """A ValueError naming the first limit that is not on a metric of the experiment."""
    for name in limits:
        if name not in own:
            raise ValueError(
                f"{name!r} is not a metric of this experiment (primary or secondary): "
                f"an acceptable regression names one of {', '.join(map(str, own))}"
            )


class ExperimentIn(_Strict):
    """Body of POST /api/v1/experiments/ (the guide's Quick Start step 1).

    Fields are validated in this order, so later checks can see the fields above them.
    """

    name: Name
    description: str = Field("", max_length=2000)
    experiment_type: ExperimentType
    metrics: list[MetricDefinition] = Field(default_factory=list, max_length=20)
    ratio_metrics: list[RatioMetricDefinition] = Field(default_factory=list, max_length=10)
    # CUPED: the name of a number per unit from before the experiment, sent with get-variant
    # (or the unit's first result) as "covariates": {name: value}.
    covariate: MetricName | None = None
    primary_metric: MetricName
    secondary_metrics: list[MetricName] = Field(default_factory=list, max_length=20)
    guardrail_metrics: list[MetricName] = Field(default_factory=list, max_length=20)
    # The declared trade-off rule: per metric of the experiment, the largest relative
    # worsening accepted (0.10: 10% worse) for a variant to be shipped (docs/statistics.md).
    acceptable_regressions: dict[MetricName, AcceptableRegression] = Field(
        default_factory=dict, max_length=20
    )
    variants: list[VariantIn] = Field(max_length=MAX_VARIANTS)
    target_percentage: Storable = Field(100.0, gt=0, le=100, allow_inf_nan=False)
    min_sample_size: int = Field(100, ge=2, le=100_000_000)
    confidence_level: Storable = Field(0.95, gt=0, lt=1, allow_inf_nan=False)
    minimum_detectable_effect: Storable = Field(0.10, gt=0, le=10, allow_inf_nan=False)
    analysis_method: AnalysisMethod = "fixed_horizon"
    # Units (control + treatment) at which the sequential confidence sequence is tightest;
    # by default twice the planned units per variant (the power read-out at the MDE).
    sequential_tuning_units: int | None = Field(None, ge=2, le=10**12)
    auto_stop: bool = False
    min_duration_days: Storable = Field(7.0, ge=0, le=3650, allow_inf_nan=False)
    # The bounds on the number itself (not on the union): JSON Schema's exclusiveMinimum and
    # maximum in the OpenAPI document, where generated clients see them.
    max_duration_days: (
        Annotated[float, Field(gt=0, le=3650, allow_inf_nan=False), AfterValidator(_storable)]
        | None
    ) = None
    overrides: dict[UnitId, Name] = Field(default_factory=dict, max_length=1000)
    # Who may enter: a condition on the attributes sent with get-variant (docs/targeting.md).
    targeting: Condition | None = None
    # Mutual exclusion with the other experiments of a layer (docs/assignment.md section 13).
    layer: LayerIn | None = None
    # Attributes kept with each assignment, to break results down by (docs/statistics.md).
    segment_attributes: list[AttributePath] = Field(default_factory=list, max_length=5)
    # Model prices for cost_usd from OpenTelemetry spans (docs/otlp.md); over the built-in table.
    prices: dict[Annotated[str, StringConstraints(min_length=1, max_length=200)], PriceIn] = Field(
        default_factory=dict, max_length=50
    )

    @field_validator("segment_attributes")
    @classmethod
    def _unique_segments(cls, value: list[str]) -> list[str]:
        if len(set(value)) != len(value):
            raise ValueError("an attribute must not be repeated")
        return value

    @field_validator("max_duration_days")
    @classmethod
    def _max_after_min(cls, value: float | None, info: ValidationInfo) -> float | None:
        least = info.data.get("min_duration_days", 0)
        if value is not None and value < least:
            raise ValueError(f"must be at least min_duration_days ({least:g})")
        return value

    @field_validator("metrics")
    @classmethod
    def _unique_metrics(cls, value: list[MetricDefinition]) -> list[MetricDefinition]:
        own = [m.name for m in value]
        if len(set(own)) != len(own):
            raise ValueError("each declared metric name must be unique")
        return value

    @field_validator("primary_metric")
    @classmethod
    def _known_primary(cls, value: str, info: ValidationInfo) -> str:
        _check_known(value, info.data.get("metrics", []), info.data.get("ratio_metrics", []))
        return value

    @field_validator("secondary_metrics")
    @classmethod
    def _known_secondary(cls, value: list[str], info: ValidationInfo) -> list[str]:
        for name in value:
            _check_known(name, info.data.get("metrics", []), info.data.get("ratio_metrics", []))
        if info.data.get("primary_metric") in value:
            raise ValueError("the primary metric must not also be a secondary metric")
        if len(set(value)) != len(value):
            raise ValueError("a metric must not be repeated")
        return value

    @field_validator("guardrail_metrics")
    @classmethod
    def _guardrails_are_secondary(cls, value: list[str], info: ValidationInfo) -> list[str]:
        secondary = info.data.get("secondary_metrics", [])
        for name in value:
            if name not in secondary:
                raise ValueError(f"guardrail metric {name!r} must be one of the secondary_metrics")
        return value

    @field_validator("acceptable_regressions")
    @classmethod
    def _limits_of_own_metrics(cls, value: dict[str, float], info: ValidationInfo) -> dict:
        own = [info.data.get("primary_metric"), *info.data.get("secondary_metrics", [])]
        check_limits_name_own_metrics(value, own)
        return value

    @model_validator(mode="after")
    def _ratios_of_declared_metrics(self) -> ExperimentIn:
        _check_ratios(self)
        return self

    @field_validator("layer")
    @classmethod
    def _holdout_shape(cls, value: LayerIn | None, info: ValidationInfo) -> LayerIn | None:
        if value is not None and value.holdout and "variants" in info.data:
            _check_holdout(info.data, value)
        return value

    @field_validator("variants")
    @classmethod
    def _valid_variants(cls, value: list[VariantIn]) -> list[VariantIn]:
        _check_variants(value)
        return value

    @field_validator("overrides")
    @classmethod
    def _overrides_name_variants(cls, value: dict[str, str], info: ValidationInfo) -> dict:
        names = {v.name for v in info.data.get("variants", [])}
        units: dict[str, str] = {}
        for unit, variant in value.items():
            if variant not in names:
                raise ValueError(f"{unit!r} is pinned to an unknown variant {variant!r}")
            key = unit_override_key(unit)
            if key in units:
                raise ValueError(f"{units[key]!r} and {unit!r} name the same unit")
            units[key] = unit
        return value


def _check_known(
    name: str, declared: list[MetricDefinition], ratios: Sequence[RatioMetricDefinition] = ()
) -> None:
    if any(r.name == name for r in ratios):
        return
    if metrics.resolve(name, [m.spec() for m in declared]) is None:
        known = ", ".join(sorted(metrics.CATALOGUE))
        raise ValueError(
            f"unknown metric {name!r}: use one of {known}, or declare it under 'metrics'"
        )


def _check_ratios(body: ExperimentIn) -> None:
    """Ratio names are new; their parts are declared metrics whose cross sum fits."""
    own = [m.spec() for m in body.metrics]
    names = [r.name for r in body.ratio_metrics]
    if len(set(names)) != len(names):
        raise ValueError("each ratio metric name must be unique")
    recorded = [body.primary_metric, *body.secondary_metrics]
    for ratio in body.ratio_metrics:
        if metrics.resolve(ratio.name, own) is not None:
            raise ValueError(f"ratio metric {ratio.name!r} has the name of a metric")
        parts = []
        for role, part in (("numerator", ratio.numerator), ("denominator", ratio.denominator)):
            spec = metrics.resolve(part, own)
            if spec is None or part not in recorded:
                raise ValueError(
                    f"ratio metric {ratio.name!r}: its {role} {part!r} must be the primary "
                    "or a secondary metric (a metric of this experiment, not a ratio)"
                )
            parts.append(spec)
        problem = metrics.ratio_precision_problem(ratio.name, parts[0], parts[1])
        if problem:
            raise ValueError(problem)


def _check_holdout(body: dict[str, Any], layer: LayerIn) -> None:
    """A holdout's two variants are its groups: the control holds the units of its range,
    the other everyone else in the layer; so its allocations are the range's width. ``body``:
    the fields validated before the layer."""
    variants: list[VariantIn] = body["variants"]
    if len(variants) != 2:
        raise ValueError(
            "a holdout has two variants: the held-out units (is_control) and the rest of the layer"
        )
    if body.get("target_percentage") != 100:
        raise ValueError("a holdout covers its whole layer: target_percentage must be 100")
    if body.get("targeting") is not None:
        raise ValueError("a holdout covers its whole layer: it takes no targeting")
    held = (layer.range[1] - layer.range[0]) * 100
    control = next(v for v in variants if v.is_control)
    if abs(control.traffic_allocation - held) > ALLOCATION_TOLERANCE:
        raise ValueError(
            f"a holdout's control holds the units of its range: its traffic_allocation must be "
            f"{held:.10g} (the width of [{layer.range[0]:g}, {layer.range[1]:g})), the other "
            f"variant's {100 - held:.10g}"
        )


def _check_variants(variants: list[VariantIn]) -> None:
    if len(variants) < 2:
        raise ValueError("an experiment needs at least two variants")
    controls = [v.name for v in variants if v.is_control]
    if len(controls) != 1:
        raise ValueError(f"exactly one variant must have is_control=true, found {len(controls)}")
    names = [v.name for v in variants]
    duplicates = sorted({n for n in names if names.count(n) > 1})
    if duplicates:
        raise ValueError(f"variant names must be unique, repeated: {', '.join(duplicates)}")
    total = math.fsum(v.traffic_allocation for v in variants)
    if abs(total - 100.0) > ALLOCATION_TOLERANCE:
        raise ValueError(f"traffic_allocation must sum to 100, got {total:g}")


class AllocationIn(_Strict):
    id: int | None = None
    name: str | None = None
    traffic_allocation: Storable = Field(ge=0, le=100, allow_inf_nan=False)

    @model_validator(mode="after")
    def _named(self) -> AllocationIn:
        if self.id is None and not self.name:
            raise ValueError("each variant needs its id or name")
        return self


class RebalanceIn(_Strict):
    """Body of PATCH /api/v1/experiments/{id}: new weights apply to new units only."""

    variants: list[AllocationIn] | None = Field(None, max_length=MAX_VARIANTS)
    target_percentage: (
        Annotated[float, Field(gt=0, le=100, allow_inf_nan=False), AfterValidator(_storable)] | None
    ) = None

    # The declared trade-off rule, replaced whole; every change is kept with its time in
    # acceptable_regressions_history.
    acceptable_regressions: dict[MetricName, AcceptableRegression] | None = Field(
        None, max_length=20
    )

    @model_validator(mode="after")
    def _something(self) -> RebalanceIn:
        if (self.variants, self.target_percentage, self.acceptable_regressions) == (None,) * 3:
            raise ValueError(
                "give variants (with traffic_allocation), target_percentage and/or "
                "acceptable_regressions"
            )
        named = [(v.id, None) if v.id is not None else (None, v.name) for v in self.variants or []]
        if len(set(named)) != len(named):
            raise ValueError("each variant may appear only once")
        return self


class _UnitRequest(_Strict):
    """What get-variant and record-result share: which experiment, which unit."""

    experiment_name: Name | None = None
    experiment_id: ExperimentId | None = None
    user_id: UserNumber | UnitId | None = None
    session_id: UnitId | None = None

    @field_validator("user_id", mode="before")
    @classmethod
    def _user_id_kind(cls, value: object) -> object:
        if isinstance(value, bool | float):
            raise ValueError("user_id must be an integer or a string")
        return value

    @model_validator(mode="after")
    def _check(self) -> _UnitRequest:
        if self.experiment_name is None and self.experiment_id is None:
            raise ValueError("give experiment_name (or experiment_id)")
        if self.user_id is None and self.session_id is None:
            raise ValueError("give user_id or, for anonymous traffic, session_id")
        return self


Covariates = Annotated[dict[MetricName, Any], Field(max_length=20)]


class GetVariantIn(_UnitRequest):
    """Body of POST /api/v1/experiments/get-variant.

    ``covariates`` (optional): numbers per unit from before the experiment; the one the
    experiment names as its ``covariate`` is stored once with the unit (CUPED).
    """

    covariates: Covariates | None = None
    # The unit's attributes, for the experiment's targeting; not stored.
    attributes: Attributes | None = None


class RecordResultIn(_UnitRequest):
    """Body of POST /api/v1/experiments/record-result.

    The idempotency key is scoped to the unit and the metric: one request id can serve as
    the key of every metric recorded for it.
    """

    metric_name: MetricName
    # Left as Any: metrics.validate_value names the exact problem (string, NaN, bound...).
    metric_value: Any
    idempotency_key: Annotated[str, StringConstraints(min_length=1, max_length=200)] | None = None
    occurred_at: AwareDatetime | None = None
    covariates: Covariates | None = None  # as with get-variant; kept only with a first result


class ExposureIn(_UnitRequest):
    """One item of POST /api/v1/experiments/exposures: a unit a client assigned itself.

    ``covariates`` (optional): as on get-variant; the experiment's covariate is stored with the
    unit when it is first stored (or later, while it has no results yet).
    """

    variant_id: ExperimentId
    covariates: Covariates | None = None
    attributes: Attributes | None = None  # checked against the experiment's targeting

    @model_validator(mode="after")
    def _one_unit(self) -> ExposureIn:
        if self.user_id is not None and self.session_id is not None:
            raise ValueError(
                "an exposure names one unit: user_id or session_id (a user with a session "
                "is asked of get-variant, which keeps the session's variant)"
            )
        return self
