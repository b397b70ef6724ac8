"""Results by segment: one metric of an experiment broken down by an attribute kept at assignment.

An experiment declares ``segment_attributes`` (at most MAX_ATTRIBUTES paths into the attributes
sent with get-variant, e.g. ``plan`` or ``client.locale``). When a unit is first assigned, the
value of each is stored with its assignment, as text of at most MAX_VALUE_CHARS characters
(strings as they are, other JSON values as compact JSON). A breakdown then reads the
experiment's assignments and raw results (two Queries, as reconciliation does), sums each
unit's results per segment, and runs the analyzer on each segment alone: lift, interval,
p-value and the sample-ratio check. The p-values of every treatment in every segment form one
family, adjusted by Holm's method, so "significant in some segment" keeps its error rate.
"""

from __future__ import annotations

import json
from collections import Counter, defaultdict
from decimal import Decimal
from typing import TYPE_CHECKING, Any

from ab_testing import dynamo, targeting
from ab_testing.errors import InvalidInput

if TYPE_CHECKING:
    from ab_testing.experiment import Experiment
    from ab_testing.store import Store

MAX_ATTRIBUTES = 5
MAX_VALUE_CHARS = 64
MAX_SEGMENTS = 20  # the largest segments; the others are pooled as OTHER
NONE = "(none)"  # units assigned without a value for the attribute
OTHER = "(other)"


def kept_values(experiment: Experiment, attributes: dict[str, Any] | None) -> dict[str, str]:
    """What an assignment keeps of the unit's attributes: {attribute: value as text}."""
    kept: dict[str, str] = {}
    for name in experiment.segment_attributes:
        value = targeting.at_path(attributes or {}, name)
        if value is None:
            continue
        text = value if isinstance(value, str) else json.dumps(value, separators=(",", ":"))
        kept[name] = text[:MAX_VALUE_CHARS]
    return kept


def breakdown(
    store: Store, experiment: Experiment, attribute: str, metric: str | None = None
) -> dict[str, Any]:
    """The metric (the primary by default) per value of the attribute, each segment analysed
    alone, with the Holm-adjusted p-values across all of them."""
    from ab_testing.stats import StatisticalAnalyzer
    from ab_testing.stats.inputs import AnalysisInput, MetricTotals, VariantInput
    from ab_testing.stats.multiple import holm

    if attribute not in experiment.segment_attributes:
        declared = ", ".join(experiment.segment_attributes) or "none"
        raise InvalidInput(
            f"{attribute!r} is not one of the experiment's segment_attributes ({declared})",
            field="attribute",
        )
    name = metric or experiment.primary_metric
    spec = experiment.metric_spec(name)
    if spec is None or spec.kind == "ratio":
        raise InvalidInput(
            f"{name!r} is not a declared metric of experiment {experiment.id} that segments "
            f"can break down (ratio metrics cannot)",
            field="metric",
        )

    segment_of: dict[str, str] = {}
    units: Counter[tuple[str, int]] = Counter()
    for item in _assignments(store, experiment.id):
        value = (item.get("seg") or {}).get(attribute, NONE)
        segment_of[str(item["unit"])] = value
        if item.get("source") != "session_alias":  # one person, counted once (as the SRM)
            units[(value, int(item["variant_id"]))] += 1
    values: dict[tuple[str, int], dict[str, list[Decimal]]] = defaultdict(lambda: defaultdict(list))
    for result in _results(store, experiment.id, name):
        unit = str(result["unit"])
        key = (segment_of.get(unit, NONE), int(result["variant_id"]))
        values[key][unit].append(Decimal(result["metric_value"]))

    sizes = Counter[str]()
    for (segment, _), count in units.items():
        sizes[segment] += count
    shown = {s for s, _ in sizes.most_common(MAX_SEGMENTS)}
    pooled = lambda segment: segment if segment in shown else OTHER  # noqa: E731

    merged_units: Counter[tuple[str, int]] = Counter()
    for (segment, variant_id), count in units.items():
        merged_units[(pooled(segment), variant_id)] += count
    merged_values: dict[tuple[str, int], list[list[Decimal]]] = defaultdict(list)
    for (segment, variant_id), per_unit in values.items():
        merged_values[(pooled(segment), variant_id)].extend(per_unit.values())

    analyzer = StatisticalAnalyzer()
    segments: list[dict[str, Any]] = []
    for segment in sorted({s for s, _ in merged_units}, key=lambda s: (s == OTHER, s)):
        variants = tuple(
            VariantInput(
                variant_id=v.id,
                name=v.name,
                is_control=v.is_control,
                traffic_allocation=v.traffic_allocation,
                units_assigned=merged_units[(segment, v.id)],
                metrics={name: MetricTotals.from_units(merged_values[(segment, v.id)])},
            )
            for v in experiment.variants
        )
        result = analyzer.analyze(
            AnalysisInput(
                experiment_id=experiment.id,
                primary_metric=spec,
                variants=variants,
                confidence_level=experiment.confidence_level,
                min_sample_size=experiment.min_sample_size,
                analysis_method=experiment.analysis_method,
                sequential_tuning_units=experiment.sequential_tuning_units,
            )
        )
        segments.append(_segment(segment, result, name))

    family = [c for s in segments for c in s["comparisons"]]
    alpha = 1 - experiment.confidence_level
    for comparison, adjusted in zip(family, holm([c["p_value"] for c in family]), strict=True):
        comparison["p_value_holm"] = adjusted
        comparison["significant_after_holm"] = adjusted is not None and adjusted <= alpha
    return {
        "experiment_id": experiment.id,
        "attribute": attribute,
        "metric": name,
        "segments": segments,
        "multiple_testing": {
            "method": "holm",
            "family": f"every treatment in every segment ({len(family)} comparisons)",
            "alpha": alpha,
        },
        "notes": [
            f"Segments are the values of {attribute!r} kept when each unit was first assigned; "
            f"units without one are {NONE!r}, segments beyond the {MAX_SEGMENTS} largest are "
            f"pooled as {OTHER!r}.",
            "Each segment is analysed alone, without CUPED; a segment is a subgroup, so read "
            "its effect as exploratory unless it holds after the Holm adjustment.",
        ],
    }


def _segment(segment: str, result: dict[str, Any], metric: str) -> dict[str, Any]:
    read = result["metrics"][metric]
    return {
        "segment": segment,
        "units": {vid: s.get("units_assigned") for vid, s in result["variant_stats"].items()},
        "variant_stats": read["variant_stats"],
        "srm": {k: result["srm"].get(k) for k in ("p_value", "flagged", "observed", "expected")},
        "comparisons": [
            {
                key: comparison.get(key)
                for key in (
                    "variant_id",
                    "absolute_difference",
                    "absolute_ci",
                    "relative_lift",
                    "relative_ci",
                    "p_value",
                    "is_significant",
                    "reason",
                )
            }
            for comparison in read["comparisons"]
        ],
    }


def _assignments(store: Store, experiment_id: int) -> Any:
    return store.query_all(
        {
            "TableName": store.assignments,
            "KeyConditionExpression": "experiment_id = :e",
            "ProjectionExpression": "#u, variant_id, #src, seg",
            "ExpressionAttributeNames": {"#u": "unit", "#src": "source"},
            "ExpressionAttributeValues": dynamo.serialize({":e": experiment_id}),
        }
    )


def _results(store: Store, experiment_id: int, metric: str) -> Any:
    return store.query_all(
        {
            "TableName": store.results,
            "KeyConditionExpression": "experiment_id = :e",
            "FilterExpression": "metric_name = :m",
            "ProjectionExpression": "#u, variant_id, metric_value",
            "ExpressionAttributeNames": {"#u": "unit"},
            "ExpressionAttributeValues": dynamo.serialize({":e": experiment_id, ":m": metric}),
        }
    )
