"""An experiment as stored: plain dataclasses, built from what DynamoDB holds.

These are read on every get-variant and record-result, so they import nothing heavy (no
pydantic: docs/architecture's cold-start budget). What a client sends is validated by the
pydantic models of ab_testing.models, which turn into these once they are valid.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any, Literal

from ab_testing import assignment, metrics
from ab_testing.stats.inputs import MetricSpec, RatioSpec

ExperimentType = Literal["prompt", "model", "agent_config", "feature", "ui"]
Status = Literal["draft", "running", "paused", "stopped", "archived"]
AnalysisMethod = Literal["fixed_horizon", "sequential"]
ALLOCATION_TOLERANCE = 1e-6


def unit_override_key(unit: str) -> str:
    """Override keys as unit keys: "123" means user 123; "session:abc" stays as it is."""
    return unit if unit.startswith(("user:", "session:")) else f"user:{unit}"


@dataclass(kw_only=True)
class Layer:
    """An experiment's part of a layer (docs/assignment.md sections 13 and 14)."""

    name: str
    range: list[float]
    holdout: bool = False

    def as_fields(self) -> dict[str, Any]:
        """As stored and published: a layer that is not a holdout is written as before
        holdouts existed ({"name", "range"}), so a rollback still reads it."""
        fields: dict[str, Any] = {"name": self.name, "range": list(self.range)}
        if self.holdout:
            fields["holdout"] = True
        return fields


@dataclass(kw_only=True)
class Metric:
    """A metric an experiment declares for itself, beyond the built-in catalogue."""

    name: str
    kind: Literal["binary", "continuous", "count"] = "continuous"
    direction: Literal["higher", "lower"] = "higher"
    lower: float | None = None
    upper: float | None = None
    decimals: int = metrics.DEFAULT_DECIMALS

    def spec(self, guardrail: bool = False) -> MetricSpec:
        lower, upper = self.lower, self.upper
        if self.kind == "binary":
            lower, upper = 0.0, 1.0
        return MetricSpec(
            self.name, self.kind, self.direction, lower, upper, guardrail, self.decimals
        )


@dataclass(kw_only=True)
class Ratio:
    """A ratio of two metrics' per-unit sums, analysed with the delta method."""

    name: str
    numerator: str
    denominator: str
    direction: Literal["higher", "lower"] = "lower"

    def spec(self) -> RatioSpec:
        return RatioSpec(self.name, self.numerator, self.denominator, self.direction)


@dataclass(kw_only=True)
class Variant:
    id: int
    name: str
    description: str = ""
    is_control: bool
    traffic_allocation: float
    config: dict[str, Any] = field(default_factory=dict)


@dataclass(kw_only=True)
class Experiment:
    """An experiment as stored, with its variants."""

    id: int
    name: str
    description: str = ""
    experiment_type: ExperimentType
    status: Status = "draft"
    primary_metric: str
    secondary_metrics: list[str] = field(default_factory=list)
    guardrail_metrics: list[str] = field(default_factory=list)
    acceptable_regressions: dict[str, float] = field(default_factory=dict)
    # Each PATCH of acceptable_regressions: {"changed_at", "from", "to"}, oldest first.
    acceptable_regressions_history: list[dict[str, Any]] = field(default_factory=list)
    metrics: list[Metric] = field(default_factory=list)
    ratio_metrics: list[Ratio] = field(default_factory=list)
    covariate: str | None = None
    variants: list[Variant] = field(default_factory=list)
    target_percentage: float = 100.0
    min_sample_size: int = 100
    confidence_level: float = 0.95
    minimum_detectable_effect: float = 0.10
    analysis_method: AnalysisMethod = "fixed_horizon"
    sequential_tuning_units: int | None = None
    auto_stop: bool = False
    min_duration_days: float = 7.0
    max_duration_days: float | None = None
    overrides: dict[str, str] = field(default_factory=dict)
    targeting: dict[Any, Any] | None = None
    layer: Layer | None = None
    segment_attributes: list[str] = field(default_factory=list)
    prices: dict[str, dict[str, float]] = field(default_factory=dict)
    # Spans per model that gave no cost_usd for want of a price (counted by the traces endpoint)
    unpriced_spans: dict[str, int] = field(default_factory=dict)
    salt: str
    created_at: str
    started_at: str | None = None
    stopped_at: str | None = None
    paused_at: str | None = None
    archived_at: str | None = None
    rebalanced_at: str | None = None
    winner_variant_id: int | None = None
    winner_reason: str | None = None
    promoted: bool = False
    stop_reason: str | None = None
    # Units per variant id when the allocation last changed (see ExperimentService.rebalance).
    srm_baseline: dict[str, int] = field(default_factory=dict)
    # Range-preserving rebalancing (docs/assignment.md): the variant draw's ranges once they
    # differ from the cumulative allocations, the spans that ever changed variant, and the
    # highest target_percentage ever set (units above today's target may still be stored).
    allocation_ranges: list[tuple[float, float, int]] | None = None
    changed_ranges: list[tuple[float, float]] = field(default_factory=list)
    max_target_percentage: float | None = None

    @classmethod
    def from_fields(cls, data: dict[str, Any]) -> Experiment:
        """From stored (or just validated) fields: unknown ones are left out, nested ones
        and numbers take their types, as the item's numbers come back as int or float."""
        known = {f.name for f in dataclasses.fields(cls)}
        values = {k: v for k, v in data.items() if k in known}
        for name, convert in _CONVERT.items():
            if values.get(name) is not None:
                values[name] = convert(values[name])
        return cls(**values)

    def as_fields(self, *, exclude: set[str] | frozenset[str] = frozenset()) -> dict[str, Any]:
        """Every field as plain data (nested ones as dicts), in declaration order."""
        return {
            f.name: _plain(getattr(self, f.name))
            for f in dataclasses.fields(self)
            if f.name not in exclude
        }

    def replace(self, **changes: Any) -> Experiment:
        return dataclasses.replace(self, **changes)

    def ranges(self) -> list[tuple[float, float, int]]:
        """Which variant id each part of the variant draw's [0, 100) goes to."""
        if self.allocation_ranges is not None:
            return list(self.allocation_ranges)
        return assignment.initial_ranges(
            [v.traffic_allocation for v in self.variants], [v.id for v in self.variants]
        )

    def metric_spec(self, name: str) -> MetricSpec | None:
        if name != self.primary_metric and name not in self.secondary_metrics:
            return None
        ratio = self.ratio(name)
        if ratio is not None:
            return MetricSpec(
                name, "ratio", ratio.direction, guardrail=name in self.guardrail_metrics
            )
        spec = metrics.resolve(name, [m.spec() for m in self.metrics])
        if spec is None:
            return None
        return dataclasses.replace(spec, guardrail=name in self.guardrail_metrics)

    def ratio(self, name: str) -> Ratio | None:
        return next((r for r in self.ratio_metrics if r.name == name), None)

    def ratios_of(self, metric: str) -> list[Ratio]:
        """The ratio metrics that have ``metric`` as numerator or denominator."""
        return [r for r in self.ratio_metrics if metric in (r.numerator, r.denominator)]

    @property
    def declared_metrics(self) -> list[str]:
        return [self.primary_metric, *self.secondary_metrics]

    def variant(self, variant_id: int) -> Variant | None:
        return next((v for v in self.variants if v.id == variant_id), None)

    @property
    def control(self) -> Variant:
        return next(v for v in self.variants if v.is_control)

    @property
    def is_holdout(self) -> bool:
        return self.layer is not None and self.layer.holdout

    def holdout_group(self, position: float) -> int:
        """A holdout's variant for a unit at ``position`` in the layer: the control inside
        the holdout's range, the other variant anywhere else (docs/assignment.md section 14)."""
        assert self.layer is not None
        start, end = self.layer.range
        inside = start <= position < end
        return next(v.id for v in self.variants if v.is_control == inside)


def _plain(value: Any) -> Any:
    if isinstance(value, Layer):
        return value.as_fields()
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {f.name: _plain(getattr(value, f.name)) for f in dataclasses.fields(value)}
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value] if isinstance(value, list) else tuple(value)
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    return value


def _floats(value: dict[str, Any]) -> dict[str, float]:
    return {str(k): float(v) for k, v in value.items()}


def _made(kind: type, value: Any) -> Any:
    return value if isinstance(value, kind) else kind(**value)


def _metric(value: Any) -> Metric:
    if isinstance(value, Metric):
        return value
    bounds = {k: float(value[k]) for k in ("lower", "upper") if value.get(k) is not None}
    decimals = {"decimals": int(value["decimals"])} if "decimals" in value else {}
    return Metric(**{**value, **bounds, **decimals})


def _layer(value: Any) -> Layer:
    if isinstance(value, Layer):
        return value
    return Layer(**{**value, "range": [float(x) for x in value["range"]]})


_CONVERT: dict[str, Any] = {
    "metrics": lambda items: [_metric(m) for m in items],
    "ratio_metrics": lambda items: [_made(Ratio, r) for r in items],
    "layer": _layer,
    "variants": lambda items: [_made(Variant, v) for v in items],
    "acceptable_regressions": _floats,
    "prices": lambda value: {str(k): _floats(v) for k, v in value.items()},
    "srm_baseline": lambda value: {str(k): int(v) for k, v in value.items()},
    "unpriced_spans": lambda value: {str(k): int(v) for k, v in value.items()},
    "allocation_ranges": lambda items: [(float(a), float(b), int(v)) for a, b, v in items],
    "changed_ranges": lambda items: [(float(a), float(b)) for a, b in items],
    **dict.fromkeys(
        (
            "target_percentage",
            "confidence_level",
            "minimum_detectable_effect",
            "min_duration_days",
            "max_duration_days",
            "max_target_percentage",
        ),
        float,
    ),
    **dict.fromkeys(("id", "min_sample_size", "sequential_tuning_units", "winner_variant_id"), int),
}
