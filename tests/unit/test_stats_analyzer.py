"""The analysis answer: the guide's example, decision rules, degenerate data, JSON safety."""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime
from typing import Any

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy import stats
from statsmodels.stats.multitest import multipletests

from ab_testing.stats import StatisticalAnalyzer
from ab_testing.stats.inputs import AnalysisInput, MetricSpec, MetricTotals
from ab_testing.stats.report import to_json_safe
from tests.unit.stats_helpers import experiment, one_per_unit, rescaled, two_groups, variant

GUIDE_KEYS = {
    "experiment_id",
    "analysis_date",
    "variant_stats",
    "p_value",
    "is_significant",
    "recommended_winner_id",
    "recommendation_confidence",
    "recommendation_reason",
    "sufficient_sample_size",
    "current_sample_size",
    "required_sample_size",
}
NEW_KEYS = {
    "analysis_method",
    "confidence_level",
    "primary_metric",
    "metrics",
    "srm",
    "power",
    "guardrails",
    "regressions",
    "warnings",
    "trade_offs",
    "decision",
}


def analyze(inp: AnalysisInput) -> dict[str, Any]:
    result = StatisticalAnalyzer().analyze(inp)
    json.dumps(result, allow_nan=False)  # strict JSON: no NaN or Infinity anywhere
    assert not any("could not be completed" in w for w in result["warnings"])
    return result


def test_guide_example_recommends_variant_2_with_the_guide_sentence() -> None:
    # Given the guide's example: control 150 results at 0.72 (sd 0.15), treatment 148 at 0.85
    control, treatment = rescaled(150, 0.72, 0.15, 1), rescaled(148, 0.85, 0.12, 2)
    inp = two_groups(control, treatment, min_sample_size=100)
    # When analyzed
    r = analyze(inp)
    # Then the answer has the guide's fields and recommends variant 2 with the exact sentence
    assert GUIDE_KEYS | NEW_KEYS == set(r)
    assert r["is_significant"] is True and r["recommended_winner_id"] == 2
    assert r["recommendation_confidence"] == 0.95
    assert r["recommendation_reason"] == (
        "Variant 2 (variant-2) shows 18.1% improvement with 148 units. "
        "Mean: 0.850 (vs control: 0.720)"
    )
    assert r["p_value"] == pytest.approx(
        stats.ttest_ind(control, treatment, equal_var=False).pvalue, rel=1e-8
    )
    assert r["sufficient_sample_size"] is True
    assert r["current_sample_size"] == 298 and r["required_sample_size"] == 100
    v1 = r["variant_stats"]["1"]
    assert v1["mean"] == pytest.approx(0.72) and v1["std"] == pytest.approx(0.15)
    assert v1["count"] == 150 and v1["is_control"] is True and v1["name"] == "control"
    assert {"min", "max", "units", "units_assigned"} <= set(v1)
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ", r["analysis_date"])
    comparison = r["metrics"]["score"]["comparisons"][0]
    assert comparison["p_value_adjusted"] == comparison["p_value"]
    assert comparison["bayesian"]["chance_to_beat_control"] > 0.99
    assert r["srm"]["flagged"] is False and r["power"]["required_units_per_variant"] > 0


def test_analysis_date_comes_from_the_clock() -> None:
    # Given a fixed clock
    clock = datetime(2025, 1, 15, 10, 30, 0, 123456, tzinfo=UTC)
    inp = two_groups([1.0, 2.0, 3.0], [2.0, 3.0, 4.0])
    # Then the date is UTC ISO with seconds precision and a Z suffix
    r = StatisticalAnalyzer(clock=lambda: clock).analyze(inp)
    assert r["analysis_date"] == "2025-01-15T10:30:00Z"


@pytest.mark.parametrize(("shift", "winner"), [(-8.0, 2), (8.0, None)])
def test_lower_is_better_metric(shift: float, winner: int | None) -> None:
    # Given a response time where lower is better, and a treatment that decreases or increases it
    spec = MetricSpec("response_time", direction="lower")
    inp = two_groups(rescaled(400, 100, 20, 3), rescaled(400, 100 + shift, 20, 4), spec=spec)
    # When analyzed
    r = analyze(inp)
    # Then only the decrease wins, and the sentence says which direction counted
    assert r["is_significant"] is True
    assert r["recommended_winner_id"] == winner
    if winner:
        assert r["recommendation_reason"].startswith(
            "Variant 2 (variant-2) shows 8.0% reduction (lower response_time is better) with 400 "
            "units."
        )
    else:
        assert "significantly worse" in r["recommendation_reason"]
        assert r["recommendation_confidence"] == 0.0


def _three_treatments(method: str = "fixed_horizon", n: int = 300) -> AnalysisInput:
    means = {1: 0.50, 2: 0.52, 3: 0.58, 4: 0.55}
    variants = [
        variant(
            vid,
            {"score": one_per_unit(rescaled(n, m, 0.3, vid))},
            is_control=vid == 1,
            allocation=25,
        )
        for vid, m in means.items()
    ]
    return experiment(variants, analysis_method=method)


def test_more_than_two_variants_use_holm_adjusted_p_values() -> None:
    # Given a control and three treatments
    r = analyze(_three_treatments())
    comparisons = r["metrics"]["score"]["comparisons"]
    raw = [c["p_value"] for c in comparisons]
    # Then the adjusted p-values are Holm's, the best treatment wins, and the top-level
    # p-value is its adjusted one
    ref = multipletests(raw, method="holm")[1]
    assert [c["p_value_adjusted"] for c in comparisons] == pytest.approx(list(ref), rel=1e-12)
    assert r["recommended_winner_id"] == 3
    assert r["p_value"] == pytest.approx(comparisons[1]["p_value_adjusted"])
    assert r["p_value"] > comparisons[1]["p_value"]
    assert r["recommendation_reason"].startswith(
        "Variant 3 (variant-3) shows 16.0% improvement with 300 units"
    )


def test_sequential_method_uses_always_valid_p_values() -> None:
    # Given the same data analyzed sequentially
    r = analyze(_three_treatments("sequential", n=1000))
    comparisons = r["metrics"]["score"]["comparisons"]
    # Then the top-level p-value is the adjusted always-valid one, larger than Welch's
    assert r["analysis_method"] == "sequential"
    winner = next(c for c in comparisons if c["variant_id"] == r["recommended_winner_id"])
    assert r["p_value"] == winner["sequential"]["p_value_adjusted"]
    assert all(c["sequential"]["p_value"] >= c["p_value"] for c in comparisons)


def test_sample_ratio_mismatch_blocks_the_winner() -> None:
    # Given a clear winner but 10,000 vs 11,000 units assigned at 50/50
    control, treatment = rescaled(500, 0.5, 0.1, 5), rescaled(500, 0.6, 0.1, 6)
    inp = experiment(
        [
            variant(1, {"score": one_per_unit(control)}, is_control=True, units_assigned=10000),
            variant(2, {"score": one_per_unit(treatment)}, units_assigned=11000),
        ]
    )
    # When analyzed
    r = analyze(inp)
    # Then no winner, and the reason says why
    assert r["srm"]["flagged"] is True and r["srm"]["p_value"] < 0.001
    assert r["recommended_winner_id"] is None
    assert "Sample ratio mismatch" in r["recommendation_reason"]
    assert r["is_significant"] is True


def test_guardrail_regression_blocks_the_winner_and_is_named() -> None:
    # Given a better primary metric but a significantly slower guardrail latency
    latency = MetricSpec("latency_ms", direction="lower", guardrail=True)
    inp = experiment(
        [
            variant(
                1,
                {
                    "score": one_per_unit(rescaled(400, 0.5, 0.1, 7)),
                    "latency_ms": one_per_unit(rescaled(400, 800, 100, 8)),
                },
                is_control=True,
            ),
            variant(
                2,
                {
                    "score": one_per_unit(rescaled(400, 0.6, 0.1, 9)),
                    "latency_ms": one_per_unit(rescaled(400, 900, 100, 10)),
                },
            ),
        ],
        secondary=[latency],
    )
    # When analyzed
    r = analyze(inp)
    # Then no winner, the reason names the guardrail, and the guardrail row says so
    assert r["recommended_winner_id"] is None
    assert "latency_ms" in r["recommendation_reason"]
    assert r["guardrails"][0]["regressed"] is True and r["guardrails"][0]["metric"] == "latency_ms"
    assert r["metrics"]["latency_ms"]["guardrail"] is True


def test_too_few_units_reports_p_value_but_no_winner() -> None:
    # Given a clear effect with 30 units per variant and min_sample_size 100
    inp = two_groups(rescaled(30, 0.5, 0.1, 11), rescaled(30, 0.7, 0.1, 12), min_sample_size=100)
    # When analyzed
    r = analyze(inp)
    # Then the p-value is reported, significant, but no recommendation yet
    assert r["is_significant"] is True and r["p_value"] < 0.001
    assert r["recommended_winner_id"] is None and r["sufficient_sample_size"] is False
    assert "too small" in r["recommendation_reason"]


def test_not_significant_reason_gives_the_p_value() -> None:
    # Given two identical-looking groups
    inp = two_groups(rescaled(200, 0.5, 0.1, 13), rescaled(200, 0.501, 0.1, 14))
    r = analyze(inp)
    # Then no winner and the reason quotes the p-value
    assert r["recommended_winner_id"] is None and r["is_significant"] is False
    assert "No significant difference" in r["recommendation_reason"]
    assert f"p = {r['p_value']:.4f}" in r["recommendation_reason"]


def test_binary_metric_matches_welch_on_zero_one_data() -> None:
    # Given a conversion metric
    rng = np.random.default_rng(15)
    c, t = (rng.random(3000) < 0.10).astype(float), (rng.random(3000) < 0.13).astype(float)
    r = analyze(two_groups(c, t, spec=MetricSpec("converted", kind="binary")))
    # Then the p-value is Welch's on 0/1 data
    assert r["p_value"] == pytest.approx(stats.ttest_ind(c, t, equal_var=False).pvalue, rel=1e-8)
    assert r["metrics"]["converted"]["kind"] == "binary"


def _degenerate_inputs() -> dict[str, AnalysisInput]:
    empty = MetricTotals()
    return {
        "no results": experiment(
            [variant(1, {"score": empty}, is_control=True), variant(2, {"score": empty})]
        ),
        "no variants": experiment([]),
        "no control": experiment([variant(1, {"score": one_per_unit([1, 2])})]),
        "control only": experiment([variant(1, {"score": one_per_unit([1, 2])}, is_control=True)]),
        "empty treatment": experiment(
            [
                variant(1, {"score": one_per_unit([1, 2, 3])}, is_control=True),
                variant(2, {}),
            ]
        ),
        "empty control": experiment(
            [variant(1, {}, is_control=True), variant(2, {"score": one_per_unit([1, 2, 3])})]
        ),
        "one unit each": two_groups([1.0], [2.0]),
        "zero variance": two_groups([1.0] * 50, [1.0] * 50),
        "zero variance, different": two_groups([1.0] * 50, [2.0] * 50),
        "control mean zero": two_groups([0.0] * 200, [0.0, 1.0] * 100),
        "huge values": two_groups(
            [1e15 + k for k in range(200)], [1e15 + 2 * k for k in range(200)]
        ),
        "overflowing values": two_groups([1e200, 2e200, 3e200], [4e200, 5e200, 6e200]),
        "nan totals": experiment(
            [
                variant(1, {"score": MetricTotals(3, float("nan"), 1.0, units=3)}, is_control=True),
                variant(2, {"score": one_per_unit([1, 2, 3])}),
            ]
        ),
        "bad confidence": two_groups([1.0, 2.0, 3.0], [2.0, 3.0, 5.0], confidence_level=1.5),
        "zero allocation": experiment(
            [
                variant(1, {"score": one_per_unit([1, 2, 3])}, is_control=True, allocation=0),
                variant(2, {"score": one_per_unit([2, 3, 4])}, allocation=0),
            ]
        ),
    }


@pytest.mark.parametrize("case", list(_degenerate_inputs()))
def test_degenerate_data_gives_a_well_formed_answer(case: str) -> None:
    # Given degenerate data
    inp = _degenerate_inputs()[case]
    # When analyzed
    r = analyze(inp)
    # Then a well-formed, strict-JSON answer with a reason and no winner
    assert GUIDE_KEYS | NEW_KEYS == set(r)
    assert isinstance(r["recommendation_reason"], str) and r["recommendation_reason"]
    assert r["recommended_winner_id"] is None or case in ("huge values", "control mean zero")
    assert r["recommendation_confidence"] in (0.0, 0.95)


def test_degenerate_details() -> None:
    # Given specific degenerate inputs; then the reasons say what happened
    cases = _degenerate_inputs()
    assert "No results" in analyze(cases["no results"])["recommendation_reason"]
    assert "No control" in analyze(cases["no control"])["recommendation_reason"]
    zero = analyze(cases["control mean zero"])
    comparison = zero["metrics"]["score"]["comparisons"][0]
    assert comparison["relative_lift"] is None and comparison["reason"] == "control_mean_zero"
    assert zero["recommendation_reason"].startswith(
        "Variant 2 (variant-2) shows an absolute difference of +0.5 (higher score is better; "
        "relative lift undefined because the control mean is 0) with 200 units."
    )
    assert zero["power"]["required_units_per_variant"] is None
    assert zero["power"]["reason"] == "control_mean_zero"
    huge = analyze(cases["huge values"])
    assert huge["variant_stats"]["1"]["std"] == pytest.approx(np.std(range(200), ddof=1))
    flat = analyze(cases["zero variance"])
    assert flat["metrics"]["score"]["comparisons"][0]["reason"] == "zero_variance"


def test_to_json_safe_replaces_non_finite_values() -> None:
    # Given nested non-finite floats and numpy scalars
    value = {"a": [float("nan"), 1.0, (float("inf"), np.float64("-inf"))], 2: np.int64(3)}
    # Then they become None or plain Python numbers
    assert to_json_safe(value) == {"a": [None, 1.0, [None, None]], "2": 3}


_values = st.floats(min_value=-1e300, max_value=1e300, allow_nan=False, allow_infinity=False)
_units = st.lists(st.lists(_values, min_size=0, max_size=4), min_size=0, max_size=6)


@settings(max_examples=150, deadline=None)
@given(
    groups=st.lists(_units, min_size=1, max_size=4),
    direction=st.sampled_from(["higher", "lower"]),
    method=st.sampled_from(["fixed_horizon", "sequential"]),
    min_sample=st.integers(0, 5),
)
def test_any_data_gives_strict_json_without_internal_errors(
    groups: list[list[list[float]]], direction: str, method: str, min_sample: int
) -> None:
    # Given arbitrary finite values (tiny, huge, constant, empty) in 1 to 4 variants
    spec = MetricSpec("score", direction=direction)  # type: ignore[arg-type]
    variants = [
        variant(i + 1, {"score": MetricTotals.from_units(g)}, is_control=i == 0, allocation=10)
        for i, g in enumerate(groups)
    ]
    inp = experiment(variants, primary=spec, analysis_method=method, min_sample_size=min_sample)
    # When analyzed, then the answer is strict JSON, well-formed, and no step failed
    r = analyze(inp)
    assert GUIDE_KEYS | NEW_KEYS == set(r)
    assert r["recommended_winner_id"] in (None, *range(2, len(groups) + 1))
