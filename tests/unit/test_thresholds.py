"""Every threshold the README and docs/statistics.md promise, tested on both sides of its edge.

- the sample-ratio check flags p < 0.001 (docs/statistics.md), so p = 0.005 is not a mismatch;
- ``sufficient_sample_size`` is true when every variant has *at least* ``min_sample_size``
  units with a primary-metric result (README), so exactly ``min_sample_size`` is enough;
- no automatic decision *before* ``min_duration_days`` (README), so on that day it may stop;
- ``max_duration_days``: stop after this many days, so on that day it stops.
"""

from __future__ import annotations

from typing import Any

import pytest
from scipy import stats as scipy_stats

from ab_testing.experiment import Experiment
from ab_testing.scheduled import auto_stop_reason
from ab_testing.stats.analyzer import StatisticalAnalyzer
from ab_testing.stats.inputs import AnalysisInput, MetricSpec, MetricTotals, VariantInput
from ab_testing.stats.srm import srm_check

BINARY = MetricSpec("resolution_rate", "binary", "higher", 0.0, 1.0)


def chi2_p(observed: list[int]) -> float:
    """The reference: scipy's Pearson chi-square against equal allocation."""
    return float(scipy_stats.chisquare(observed).pvalue)


# ------------------------------------------------------------------ SRM threshold 0.001


def test_srm_p_between_one_in_a_thousand_and_one_in_a_hundred_is_not_a_mismatch() -> None:
    # Given a 50/50 split observed as 1,000 vs 1,125 units: scipy's p lies in (0.001, 0.01)
    observed = [1000, 1125]
    p = chi2_p(observed)
    assert 0.001 < p < 0.01
    # When the default check runs
    result = srm_check(observed, [50.0, 50.0])
    # Then it reports scipy's p-value and does not flag it (only p < 0.001 is a mismatch)
    assert result.p_value == pytest.approx(p, rel=1e-9)
    assert result.flagged is False


def test_srm_p_below_one_in_a_thousand_is_a_mismatch() -> None:
    # Given 1,000 vs 1,200 units on a 50/50 split: scipy's p is below 0.001
    observed = [1000, 1200]
    p = chi2_p(observed)
    assert p < 0.001
    # When / Then the check flags it
    result = srm_check(observed, [50.0, 50.0])
    assert result.p_value == pytest.approx(p, rel=1e-9)
    assert result.flagged is True


def test_srm_flags_strictly_below_the_threshold() -> None:
    # Given a threshold equal to the observed p-value exactly
    observed = [1000, 1125]
    p = srm_check(observed, [50.0, 50.0]).p_value
    assert p is not None
    # Then p == threshold is not flagged, and a hair above p is
    assert srm_check(observed, [50.0, 50.0], threshold=p).flagged is False
    assert srm_check(observed, [50.0, 50.0], threshold=p * 1.000001).flagged is True


def variant(vid: int, control: bool, units: int, successes: int, assigned: int) -> VariantInput:
    values = [[1.0]] * successes + [[0.0]] * (units - successes)
    return VariantInput(
        variant_id=vid,
        name="Control" if control else f"Treatment {vid}",
        is_control=control,
        traffic_allocation=50.0,
        units_assigned=assigned,
        metrics={BINARY.name: MetricTotals.from_units(values)},
    )


def analyse(control: VariantInput, treatment: VariantInput, min_sample: int) -> dict[str, Any]:
    inp = AnalysisInput(
        experiment_id=1,
        primary_metric=BINARY,
        variants=(control, treatment),
        min_sample_size=min_sample,
    )
    return StatisticalAnalyzer().analyze(inp)


def test_analysis_with_srm_p_of_0_005_still_recommends_the_winner() -> None:
    # Given a clearly better treatment and assignment counts whose SRM p-value is ~0.005
    assert 0.001 < chi2_p([1000, 1125]) < 0.01
    result = analyse(
        variant(1, True, 1000, 300, assigned=1000),
        variant(2, False, 1125, 450, assigned=1125),
        min_sample=100,
    )
    # Then the sample-ratio check is not flagged and the winner is recommended
    assert result["srm"]["flagged"] is False
    assert result["recommended_winner_id"] == 2


def test_analysis_with_srm_p_below_0_001_recommends_nothing() -> None:
    # Given the same data but assignment counts whose SRM p-value is below 0.001
    assert chi2_p([1000, 1200]) < 0.001
    result = analyse(
        variant(1, True, 1000, 300, assigned=1000),
        variant(2, False, 1125, 450, assigned=1200),
        min_sample=100,
    )
    # Then the mismatch blocks any recommendation
    assert result["srm"]["flagged"] is True
    assert result["recommended_winner_id"] is None


# ------------------------------------------------------------------ sufficient_sample_size


@pytest.mark.parametrize(
    ("smallest_units", "sufficient"),
    [(99, False), (100, True), (101, True)],
)
def test_sufficient_sample_size_means_at_least_min_sample_size_units(
    smallest_units: int, sufficient: bool
) -> None:
    # Given min_sample_size 100, a control with 400 units and a much better treatment
    result = analyse(
        variant(1, True, 400, 80, assigned=400),
        variant(2, False, smallest_units, int(smallest_units * 0.6), assigned=400),
        min_sample=100,
    )
    # Then exactly 100 units is enough; 99 is not, and no winner is recommended before that
    assert result["sufficient_sample_size"] is sufficient
    assert (result["recommended_winner_id"] == 2) is sufficient
    assert result["required_sample_size"] == 100


# ------------------------------------------------------------------ min/max_duration_days


def experiment(**changes: Any) -> Experiment:
    fields: dict[str, Any] = {
        "id": 1,
        "name": "thresholds",
        "experiment_type": "prompt",
        "primary_metric": "resolution_rate",
        "salt": "s",
        "created_at": "2026-01-01T00:00:00.000Z",
        "status": "running",
        "auto_stop": True,
        "min_duration_days": 7.0,
    }
    return Experiment.from_fields({**fields, **changes})


CONCLUSIVE = {"is_significant": True, "sufficient_sample_size": True, "guardrails": []}
REGRESSED = {
    "is_significant": False,
    "sufficient_sample_size": False,
    "guardrails": [{"metric": "response_time", "regressed": True}],
}


@pytest.mark.parametrize("result", [CONCLUSIVE, REGRESSED], ids=["conclusive", "guardrail"])
def test_no_automatic_stop_before_min_duration_days(result: dict[str, Any]) -> None:
    # Given an opted-in experiment with min_duration_days 7 and a stop-worthy analysis
    exp = experiment(min_duration_days=7.0)
    # Then nothing happens a moment before day 7, and it stops on day 7 itself
    assert auto_stop_reason(exp, result, 6.999) is None
    assert auto_stop_reason(exp, result, 7.0) is not None
    assert auto_stop_reason(exp, result, 7.5) is not None


def test_conclusive_needs_both_significance_and_sample_size() -> None:
    exp = experiment(min_duration_days=0.0)
    assert auto_stop_reason(exp, {**CONCLUSIVE, "sufficient_sample_size": False}, 1.0) is None
    assert auto_stop_reason(exp, {**CONCLUSIVE, "is_significant": False}, 1.0) is None
    reason = auto_stop_reason(exp, CONCLUSIVE, 1.0)
    assert reason is not None and "conclusive" in reason


def test_guardrail_regression_names_the_metric() -> None:
    reason = auto_stop_reason(experiment(min_duration_days=0.0), REGRESSED, 1.0)
    assert reason is not None and "response_time" in reason


def test_the_stop_reasons_in_full() -> None:
    # Given an opted-in experiment past min_duration_days
    exp = experiment(min_duration_days=0.0)
    # Then each stop reason reads as a sentence
    assert auto_stop_reason(exp, CONCLUSIVE, 1.0) == (
        "sequential test conclusive with sufficient sample size"
    )
    assert auto_stop_reason(exp, REGRESSED, 1.0) == (
        "guardrail regressed significantly: response_time"
    )


def test_every_regressed_guardrail_is_named_once_in_order() -> None:
    # Given two regressed guardrails (one reported twice, as for two treatments) and one that
    # held
    result = {
        "is_significant": True,
        "sufficient_sample_size": True,
        "guardrails": [
            {"metric": "response_time", "regressed": True},
            {"metric": "cost_usd", "regressed": True},
            {"metric": "token_usage", "regressed": False},
            {"metric": "response_time", "regressed": True},
        ],
    }
    # When the job decides, Then the regression wins over the conclusive test and names both
    reason = auto_stop_reason(experiment(min_duration_days=0.0), result, 1.0)
    assert reason == "guardrail regressed significantly: cost_usd, response_time"


def test_an_analysis_without_guardrails_can_still_stop() -> None:
    # Given a conclusive analysis with no guardrails section at all
    result = {"is_significant": True, "sufficient_sample_size": True}
    # Then it stops as conclusive
    reason = auto_stop_reason(experiment(min_duration_days=0.0), result, 1.0)
    assert reason == "sequential test conclusive with sufficient sample size"


def test_max_duration_days_stops_on_that_day_and_not_before() -> None:
    # Given an inconclusive analysis and max_duration_days 30
    exp = experiment(min_duration_days=7.0, max_duration_days=30.0)
    inconclusive = {"is_significant": False, "sufficient_sample_size": False, "guardrails": []}
    # Then it runs on at 29.999 days and stops at 30
    assert auto_stop_reason(exp, inconclusive, 29.999) is None
    reason = auto_stop_reason(exp, inconclusive, 30.0)
    assert reason is not None and "max_duration_days (30)" in reason


def test_without_auto_stop_nothing_stops() -> None:
    exp = experiment(auto_stop=False, min_duration_days=0.0, max_duration_days=1.0)
    assert auto_stop_reason(exp, CONCLUSIVE, 100.0) is None
    assert auto_stop_reason(exp, REGRESSED, 100.0) is None


# ------------------------------------------------------------------ SRM edges


def test_srm_counts_negative_units_as_none_and_negative_weights_as_zero() -> None:
    assert srm_check([-5, 10], [50, 50]) == srm_check([0, 10], [50, 50])
    assert srm_check([100, 0], [100, -5]).p_value is None


def test_srm_drops_an_empty_cell_with_no_allocation() -> None:
    # Given three variants, one of them with 0% and no units: the other two are tested
    result = srm_check([500, 560, 0], [50, 50, 0])
    assert result.p_value == pytest.approx(chi2_p([500, 560]), rel=1e-12)
    assert result.expected == [530.0, 530.0, 0.0]
    assert result.observed == [500, 560, 0]


def test_srm_without_anything_to_test() -> None:
    # mismatched lengths, no weight at all, no units: no p-value and no flag
    for observed, allocation in (([10, 20], [50, 25, 25]), ([10, 20], [0, 0]), ([0, 0], [1, 1])):
        result = srm_check(observed, allocation)
        assert (result.p_value, result.flagged, result.statistic) == (None, False, None)
    assert srm_check([10, 20], [0, 0]).expected == [0.0, 0.0]


def test_srm_statistic_is_pearsons() -> None:
    result = srm_check([1000, 1125], [50, 50])
    assert result.statistic == pytest.approx(scipy_stats.chisquare([1000, 1125]).statistic)
    assert result.expected == [1062.5, 1062.5]


def test_srm_allocations_are_relative_weights() -> None:
    # 0.5/0.5 and 50/50 are the same split
    assert srm_check([10, 20], [0.5, 0.5]) == srm_check([10, 20], [50, 50])
    assert srm_check([10, 20], [0.5, 0.5]).p_value == pytest.approx(chi2_p([10, 20]))


def test_srm_units_in_a_cell_without_allocation_are_a_mismatch() -> None:
    # even a single unit in a 0% variant
    zero = srm_check([100, 1], [100, 0])
    assert (zero.p_value, zero.flagged, zero.statistic) == (0.0, True, None)
    assert zero.expected == [101.0, 0.0]
    assert zero.observed == [100, 1]


def test_srm_keeps_cells_with_less_than_one_expected_unit() -> None:
    result = srm_check([1, 0], [50, 50])
    assert result.p_value == pytest.approx(chi2_p([1, 0]))


def test_srm_with_one_cell_left_is_not_flagged() -> None:
    result = srm_check([100, 0], [100, 0])
    assert (result.p_value, result.flagged) == (None, False)
