"""The decision rules of docs/statistics.md, one at a time, on hand-made treatment results.

A winner must: come from an experiment with a control that has data, pass the sample-ratio
check, be significantly better than the control in the metric's direction, come from an
experiment where every variant reached min_sample_size units, and not significantly regress a
guardrail; among those left, the largest improvement wins.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import pytest

from ab_testing.stats.decision import Candidate, DecisionContext, decide, gain, winner_reason
from ab_testing.stats.inputs import MetricSpec
from ab_testing.stats.srm import SrmResult

HIGHER = MetricSpec("resolution_rate", "binary", "higher")
LOWER = MetricSpec("response_time", "continuous", "lower")
CLEAN_SRM = SrmResult(0.5, False, [100.0, 100.0], [100, 100])


def context(**changes: Any) -> DecisionContext:
    base = DecisionContext(
        metric=HIGHER,
        confidence_level=0.95,
        control_present=True,
        control_mean=0.5,
        srm=CLEAN_SRM,
        sufficient_sample_size=True,
        smallest_units=200,
        min_sample_size=100,
    )
    return replace(base, **changes)


def candidate(vid: int, p: float | None, diff: float | None, **changes: Any) -> Candidate:
    mean = None if diff is None else 0.5 + diff
    lift = None if diff is None else diff / 0.5
    return Candidate(vid, p, diff, lift, mean, 200, **changes)


def test_a_significantly_better_treatment_wins() -> None:
    decision = decide(context(), [candidate(2, 0.01, 0.1)])
    assert (decision.winner_id, decision.p_value, decision.is_significant) == (2, 0.01, True)
    assert decision.confidence == 0.95
    assert decision.reason == (
        "Variant 2 shows 20.0% improvement with 200 units. Mean: 0.600 (vs control: 0.500)"
    )


def test_significance_is_strictly_below_alpha() -> None:
    ctx = context(confidence_level=0.9)
    decision = decide(ctx, [candidate(2, ctx.alpha, 0.1)])
    assert (decision.winner_id, decision.is_significant) == (None, False)
    assert decision.reason.startswith("No significant difference on resolution_rate yet")
    assert "p = 0.1000" in decision.reason and "not below 0.1)" in decision.reason
    assert decide(ctx, [candidate(2, ctx.alpha * 0.999, 0.1)]).winner_id == 2


@pytest.mark.parametrize(("confidence", "p"), [(0.95, 0.05), (0.9, 0.1), (0.99, 0.01)])
def test_a_p_value_equal_to_the_written_alpha_is_not_significant(
    confidence: float, p: float
) -> None:
    # Given the p-value as written (0.05 at 95%), not as 1 - 0.95 computes in floating point
    decision = decide(context(confidence_level=confidence), [candidate(2, p, 0.1)])
    # Then it is not below alpha: no winner
    assert (decision.winner_id, decision.is_significant) == (None, False)


def test_holm_adjustment_is_named_in_the_reason() -> None:
    decision = decide(context(adjusted=True), [candidate(2, 0.2, 0.1), candidate(3, 0.3, 0.1)])
    assert decision.reason.endswith("not below 0.05, Holm-adjusted).")
    assert decision.p_value == 0.2


def test_the_largest_improvement_among_significant_ones_wins() -> None:
    found = decide(
        context(),
        [candidate(2, 0.001, 0.05), candidate(3, 0.04, 0.08), candidate(4, 0.2, 0.2)],
    )
    assert (found.winner_id, found.p_value) == (3, 0.04)


def test_lower_is_better_metrics_win_by_going_down() -> None:
    ctx = context(metric=LOWER, control_mean=2.0)
    up = Candidate(2, 0.001, 0.5, 0.25, 2.5, 300)
    down = Candidate(3, 0.01, -0.4, -0.2, 1.6, 300)
    decision = decide(ctx, [up, down])
    assert decision.winner_id == 3
    assert decision.reason.startswith(
        "Variant 3 shows 20.0% reduction (lower response_time is better) with 300 units."
    )


def test_only_worse_treatments_keep_the_control() -> None:
    decision = decide(context(), [candidate(2, 0.001, -0.1), candidate(3, 0.01, -0.05)])
    assert (decision.winner_id, decision.is_significant) == (None, True)
    assert decision.reason == (
        "No variant beats the control on resolution_rate: Variant 2 and Variant 3 are "
        "significantly worse (p = 0.0010). Keep the control."
    )
    three = decide(
        context(),
        [candidate(2, 0.002, -0.1), candidate(3, 0.01, -0.05), candidate(4, 0.03, -0.2)],
    )
    assert "on resolution_rate: Variant 2, Variant 3 and Variant 4 are significantly" in (
        three.reason
    )
    one = decide(context(), [candidate(2, 0.001, -0.1), candidate(3, 0.5, 0.01)])
    assert "control on resolution_rate: Variant 2 is significantly worse" in one.reason
    assert decision.confidence == 0.0


@pytest.mark.parametrize(
    ("p", "diff"),
    [(0.3, -0.1), (0.05, -0.1), (0.01, 0.0)],
    ids=["not significant", "p equal to alpha", "no difference"],
)
def test_a_treatment_is_worse_only_when_significantly_below_the_control(
    p: float, diff: float
) -> None:
    # Given one treatment that is not significantly worse: p not below alpha, or no difference
    decision = decide(context(), [candidate(2, p, diff)])
    # Then the reason is "no significant difference", not "significantly worse"
    assert decision.winner_id is None
    assert decision.reason == (
        f"No significant difference on resolution_rate yet (best p = {p:.4f}, not below 0.05)."
    )


def test_a_sample_ratio_mismatch_blocks_everything() -> None:
    srm = SrmResult(0.0001, True, [100.0, 100.0], [80, 120])
    decision = decide(context(srm=srm, srm_threshold=0.001), [candidate(2, 0.01, 0.1)])
    assert (decision.winner_id, decision.p_value, decision.is_significant) == (None, 0.01, True)
    assert decision.reason.startswith(
        "Sample ratio mismatch detected (p = 0.0001, threshold 0.001)"
    )


def test_too_small_a_sample_blocks_the_winner_and_says_how_small() -> None:
    ctx = context(sufficient_sample_size=False, smallest_units=42, min_sample_size=100)
    decision = decide(ctx, [candidate(2, 0.01, 0.1)])
    assert (decision.winner_id, decision.is_significant, decision.p_value) == (None, True, 0.01)
    assert decision.reason.startswith(
        "Variant 2 looks better (p = 0.0100) but the sample is too small: the smallest "
        "variant has 42 units and at least 100 per variant are required."
    )


def test_too_small_a_sample_names_the_largest_improvement() -> None:
    # Given two significantly better treatments and too few units
    ctx = context(sufficient_sample_size=False, smallest_units=42, min_sample_size=100)
    decision = decide(ctx, [candidate(2, 0.001, 0.05), candidate(3, 0.04, 0.08)])
    # Then the one with the largest improvement is named, and p_value is the smallest p
    assert decision.reason.startswith("Variant 3 looks better (p = 0.0400)")
    assert (decision.winner_id, decision.p_value) == (None, 0.001)


def test_too_small_a_sample_names_the_largest_reduction_on_a_lower_metric() -> None:
    ctx = context(metric=LOWER, control_mean=2.0, sufficient_sample_size=False)
    down_a = Candidate(2, 0.01, -0.2, -0.1, 1.8, 300)
    down_b = Candidate(3, 0.02, -0.4, -0.2, 1.6, 300)
    decision = decide(ctx, [down_a, down_b])
    assert decision.reason.startswith("Variant 3 looks better (p = 0.0200)")


def test_a_guardrail_regression_passes_the_win_to_the_next_best() -> None:
    ctx = context(guardrail_regressions={3: ["response_time"]})
    decision = decide(ctx, [candidate(2, 0.01, 0.05), candidate(3, 0.01, 0.1)])
    assert decision.winner_id == 2


def test_a_guardrail_regression_of_every_better_treatment_blocks_the_winner() -> None:
    ctx = context(guardrail_regressions={2: ["response_time", "token_usage"]})
    decision = decide(ctx, [candidate(2, 0.01, 0.1)])
    assert (decision.winner_id, decision.p_value, decision.is_significant) == (None, 0.01, True)
    assert decision.reason == (
        "Variant 2 is better on resolution_rate but significantly regresses guardrail metric "
        "response_time, token_usage; no winner is recommended."
    )


@pytest.mark.parametrize(
    ("changes", "start"),
    [
        ({"control_present": False}, "No control variant is defined"),
        ({"has_results": False}, "No results for resolution_rate yet."),
        ({"control_mean": None}, "The control has no results for resolution_rate yet."),
        (
            {"control_mean": None, "control_reason": "no_data"},
            "The control has no results for resolution_rate yet.",
        ),
        (
            {"control_mean": None, "control_reason": "zero_variance"},
            "No test is possible on resolution_rate: the values are constant",
        ),
        (
            {"control_mean": None, "control_reason": "some_new_code"},
            "No test is possible on resolution_rate: some_new_code.",
        ),
    ],
)
def test_nothing_to_compare(changes: dict[str, Any], start: str) -> None:
    decision = decide(context(**changes), [candidate(2, 0.001, 0.1)])
    assert (decision.winner_id, decision.p_value, decision.is_significant) == (None, None, False)
    assert decision.reason.startswith(start)


def test_no_treatment_at_all() -> None:
    decision = decide(context(), [])
    assert decision.reason == "No treatment variant to compare with the control."


def test_untestable_treatments_say_why() -> None:
    no_data = candidate(2, None, None, reason="no_data")
    flat = candidate(3, None, None, reason="zero_variance")
    assert (
        decide(context(), [no_data]).reason == "No treatment has results for resolution_rate yet."
    )
    assert decide(context(), [no_data, flat]).reason.startswith(
        "No test is possible on resolution_rate: the values are constant"
    )
    assert decide(context(), [candidate(2, None, None)]).reason == (
        "No treatment has results for resolution_rate yet."
    )


def test_a_difference_without_a_p_value_is_not_a_test() -> None:
    # Given a treatment with a difference but no p-value (fewer than 2 units in a group)
    few = candidate(2, None, 0.1, reason="too_few_units")
    # When the decision is taken
    decision = decide(context(), [few])
    # Then nothing was tested, and the reason says why
    assert (decision.winner_id, decision.p_value, decision.is_significant) == (None, None, False)
    assert decision.reason == (
        "No test is possible on resolution_rate: fewer than 2 units in a variant, so no "
        "variance can be estimated."
    )


def test_an_untestable_treatment_with_an_unknown_code_names_the_code() -> None:
    # Given a treatment whose reason code has no sentence (a code newer than the wording)
    odd = candidate(3, None, None, reason="some_new_code")
    # When the decision explains why nothing was tested
    decision = decide(context(), [candidate(2, None, None, reason="no_data"), odd])
    # Then the code itself is the detail
    assert decision.reason == "No test is possible on resolution_rate: some_new_code."


def test_gain_is_signed_by_direction() -> None:
    assert gain(0.3, "higher") == 0.3
    assert gain(0.3, "lower") == -0.3


def test_a_winner_against_a_control_mean_of_0_gives_the_absolute_difference() -> None:
    # Given a control whose mean is 0 and a significantly better treatment
    winner = Candidate(2, 0.01, 0.25, None, 0.25, 50)
    # When the decision is taken
    decision = decide(context(control_mean=0.0), [winner])
    # Then the sentence gives the absolute difference against the control's 0
    assert decision.winner_id == 2
    assert decision.reason.endswith("with 50 units. Mean: 0.250 (vs control: 0.000)")
    assert "absolute difference of +0.25" in decision.reason


def test_winner_reason_without_a_relative_lift() -> None:
    c = Candidate(2, 0.01, 0.25, None, 0.25, 50)
    assert winner_reason(c, HIGHER, 0.0) == (
        "Variant 2 shows an absolute difference of +0.25 (higher resolution_rate is better; "
        "relative lift undefined because the control mean is 0) with 50 units. "
        "Mean: 0.250 (vs control: 0.000)"
    )
    lower = Candidate(2, 0.01, -0.25, None, None, 50)
    assert "(lower response_time is better;" in winner_reason(lower, LOWER, 0.0)
    assert "Mean: nan" in winner_reason(lower, LOWER, 0.0)
