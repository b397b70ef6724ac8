"""The trade-off line of an experiment with a success metric and a cost metric."""

from __future__ import annotations

from decimal import Decimal

from ab_testing.stats.analyzer import StatisticalAnalyzer
from ab_testing.stats.inputs import (
    AnalysisInput,
    MetricSpec,
    MetricTotals,
    RatioTotals,
    VariantInput,
)
from tests.unit.stats_helpers import COST, RATIO, RESOLUTION


def _variant(vid: int, resolved: int, cost: str, units: int = 1000) -> VariantInput:
    res = [[1 if i < resolved else 0] for i in range(units)]
    costs = [[Decimal(cost)] for _ in range(units)]
    cross = sum((Decimal(cost) * r[0] for r in res), Decimal(0))
    return VariantInput(
        variant_id=vid,
        name=f"v{vid}",
        is_control=vid == 1,
        traffic_allocation=50.0,
        units_assigned=units,
        metrics={
            "resolution_rate": MetricTotals.from_units(res),
            "cost_usd": MetricTotals.from_units(costs),
        },
        ratios={"cost_per_resolution": RatioTotals(units=units, cross=cross)},
    )


def test_success_and_cost_give_a_trade_off_line_with_the_ratio_interval() -> None:
    # Given resolution 30% -> 46% while the cost per call rises 38%
    inp = AnalysisInput(
        experiment_id=1,
        primary_metric=RESOLUTION,
        secondary_metrics=(COST, MetricSpec("cost_per_resolution", "ratio", "lower")),
        variants=(_variant(1, 300, "0.001"), _variant(2, 460, "0.00138")),
        ratio_metrics=(RATIO,),
    )
    # When analysed
    answer = StatisticalAnalyzer().analyze(inp)
    # Then the verdict carries the trade-off, with cost per resolution's change and interval
    (line,) = answer["trade_offs"]
    assert line.startswith("Variant 2: +16.0 points resolution_rate at +38.0% cost_usd: ")
    # 0.00138 / 0.46 vs 0.001 / 0.30: -10.0%
    assert "cost_per_resolution \u221210.0% (95% interval \u2212" in line
    ratio = answer["metrics"]["cost_per_resolution"]["variant_stats"]
    assert ratio["1"]["mean"] == float(Decimal("0.001") / Decimal("0.3"))


def test_no_trade_off_line_without_a_cost_metric() -> None:
    inp = AnalysisInput(
        experiment_id=1,
        primary_metric=RESOLUTION,
        variants=(_variant(1, 300, "0.001"), _variant(2, 460, "0.00138")),
    )
    assert StatisticalAnalyzer().analyze(inp)["trade_offs"] == []
