"""CUPED in the analysis answer: which read-out decides, and what is said when the adjustment is
withheld because having a covariate depends on the variant."""

from __future__ import annotations

import random
from decimal import Decimal
from typing import Any

import pytest

from ab_testing.stats.analyzer import StatisticalAnalyzer
from ab_testing.stats.inputs import (
    AnalysisInput,
    MetricTotals,
    RatioTotals,
    VariantInput,
)
from tests.unit.stats_helpers import COST, RATIO, RATIO_SPEC, RESOLUTION


def totals(values: list[Decimal], xs: list[Decimal | None]) -> MetricTotals:
    """One result per unit, with the covariate sums the ledger keeps (None: no covariate)."""
    base = MetricTotals.from_units([[v] for v in values])
    has = [(v, x) for v, x in zip(values, xs, strict=True) if x is not None]
    return MetricTotals(
        **{f: getattr(base, f) for f in base.__dataclass_fields__ if not f.startswith("cov_")},
        cov_units=len(has),
        cov_sum=sum((x for _, x in has), Decimal(0)),
        cov_sum_sq=sum((x * x for _, x in has), Decimal(0)),
        cov_x_sum=sum((x * v for v, x in has), Decimal(0)),
        cov_x_count=sum((x for _, x in has), Decimal(0)),
        cov_h_sum=sum((v for v, _ in has), Decimal(0)),
        cov_h_count=Decimal(len(has)),
    )


def arm(vid: int, units: int, availability: float, lift: float, seed: int) -> VariantInput:
    """Units whose resolution and cost follow last month's resolution rate x (the covariate)."""
    rng = random.Random(seed)
    xs = [Decimal(str(round(rng.random(), 3))) for _ in range(units)]
    resolved = [Decimal(int(rng.random() < 0.2 + 0.5 * float(x) + lift)) for x in xs]
    cost = [
        Decimal(str(round(0.001 + 0.002 * float(x) + 0.0004 * lift + 0.0005 * rng.random(), 6)))
        for x in xs
    ]
    seen = [x if rng.random() < availability else None for x in xs]
    with_x = [(x, c, r) for x, c, r in zip(seen, cost, resolved, strict=True) if x is not None]
    return VariantInput(
        variant_id=vid,
        name="Control" if vid == 1 else "Few-shot",
        is_control=vid == 1,
        traffic_allocation=50.0,
        units_assigned=units,
        metrics={"resolution_rate": totals(resolved, seen), "cost_usd": totals(cost, seen)},
        ratios={
            "cost_per_resolution": RatioTotals(
                units=units,
                cross=sum((c * r for c, r in zip(cost, resolved, strict=True)), Decimal(0)),
                cov_units=len(with_x),
                cov_sum=sum((x for x, _, _ in with_x), Decimal(0)),
                cov_sum_sq=sum((x * x for x, _, _ in with_x), Decimal(0)),
            )
        },
    )


def cuped_experiment(availability: tuple[float, float] = (0.8, 0.8), **kw: Any) -> AnalysisInput:
    """Resolution 0.45 -> 0.55 at a higher cost, with a covariate for some units."""
    return AnalysisInput(
        experiment_id=7,
        primary_metric=RESOLUTION,
        secondary_metrics=(COST, RATIO_SPEC),
        variants=(arm(1, 600, availability[0], 0.0, 1), arm(2, 600, availability[1], 0.1, 2)),
        ratio_metrics=(RATIO,),
        covariate="prior_resolution_rate",
        min_sample_size=100,
        **kw,
    )


def pct(value: float) -> str:
    return f"{value * 100:+.1f}%".replace("-", "\u2212")


def test_the_decision_uses_the_adjusted_read_out_and_says_so() -> None:
    # Given a covariate for 80% of the units of each arm, and an accepted cost increase
    inp = cuped_experiment(acceptable_regressions={"cost_usd": 0.5, "cost_per_resolution": 0.5})
    # When analysed
    answer = StatisticalAnalyzer().analyze(inp)
    cuped = {m: answer["metrics"][m]["comparisons"][0]["cuped"] for m in answer["metrics"]}
    # Then every metric is decided on its adjusted read-out, which the answer marks
    assert all(c["decides"] and c["reason"] is None for c in cuped.values())
    assert answer["p_value"] == cuped["resolution_rate"]["p_value_adjusted"]
    assert answer["decision"]["action"] == "ship"
    # And the sentences quote the adjusted numbers: the primary metric's lift ...
    lift = cuped["resolution_rate"]["relative_lift"]
    assert f"shows {lift * 100:.1f}% improvement" in answer["recommendation_reason"]
    raw = answer["metrics"]["resolution_rate"]["comparisons"][0]["relative_lift"]
    assert f"{raw * 100:.1f}%" != f"{lift * 100:.1f}%"  # (the adjustment shows at this size)
    assert answer["recommendation_reason"].endswith(
        "The lifts, intervals and p-values of resolution_rate, cost_usd and cost_per_resolution "
        "are CUPED-adjusted; the means are as observed."
    )
    # ... the trade-off rule's worsening of each cost ...
    for check in answer["decision"]["checks"]:
        assert check["worsening"] == cuped[check["metric"]]["relative_lift"]
    # ... and the trade-off line, labelled, with the ratio's adjusted interval
    (line,) = answer["trade_offs"]
    low, high = cuped["cost_per_resolution"]["relative_ci"]
    assert line == (
        f"Variant 2: {cuped['resolution_rate']['absolute_difference'] * 100:+.1f} points "
        f"resolution_rate at {pct(cuped['cost_usd']['relative_lift'])} cost_usd: "
        f"cost_per_resolution {pct(cuped['cost_per_resolution']['relative_lift'])} "
        f"(95% interval {pct(low)} to {pct(high)}) (CUPED-adjusted)"
    )
    # And no warning about availability
    assert not any("withheld" in w for w in answer["warnings"])


def test_cuped_is_withheld_with_a_warning_when_availability_depends_on_the_arm() -> None:
    # Given a covariate for 90% of the control's units and 10% of the treatment's
    answer = StatisticalAnalyzer().analyze(cuped_experiment((0.9, 0.1)))
    comparison = answer["metrics"]["resolution_rate"]["comparisons"][0]
    cuped = comparison["cuped"]
    # Then there is no adjusted read-out, and the entry says why
    assert cuped["decides"] is False and cuped["absolute_difference"] is None
    assert cuped["reason"] == "covariate_availability_differs"
    assert "differs between the variants beyond chance" in cuped["note"]
    assert cuped["availability_p_value"] < 0.001
    shares = cuped["availability"]
    assert shares["1"] == pytest.approx(0.9, abs=0.05) and shares["2"] == pytest.approx(
        0.1, abs=0.05
    )
    # And the decision is on the unadjusted comparison
    assert answer["p_value"] == comparison["p_value_adjusted"]
    assert not any("CUPED" in line for line in answer["trade_offs"])
    assert "CUPED" not in answer["recommendation_reason"]
    # And a warning per metric names it and the availability in each variant
    warned = [w for w in answer["warnings"] if w.startswith("CUPED on ")]
    assert len(warned) == 3
    first = next(w for w in warned if "resolution_rate" in w)
    assert (
        f"available for {shares['1'] * 100:.1f}% of Variant 1 (Control) and "
        f"{shares['2'] * 100:.1f}% of Variant 2 (Few-shot)" in first
    )
    assert "the decision uses the unadjusted comparison" in first
