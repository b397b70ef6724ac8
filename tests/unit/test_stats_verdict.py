"""Verdicts that see every metric: regressions are warnings, guardrails block, Holm across
the watched metrics, variants named and units counted."""

from __future__ import annotations

from typing import Any

import pytest
from statsmodels.stats.multitest import multipletests

from ab_testing.stats import StatisticalAnalyzer
from ab_testing.stats.inputs import AnalysisInput, MetricSpec, MetricTotals, VariantInput
from tests.fewshot_scenario import users

SPECS = {
    "resolution_rate": MetricSpec("resolution_rate", "binary", "higher", 0, 1),
    "cost_usd": MetricSpec("cost_usd", "continuous", "lower", 0, None),
    "token_usage": MetricSpec("token_usage", "count", "lower", 0, None),
    "response_time": MetricSpec("response_time", "continuous", "lower", 0, None),
}


ALL = {"cost_usd": 1.0, "token_usage": 1.0, "response_time": 1.0}  # up to 100% worse


def fewshot(guardrails: tuple[str, ...] = (), **kwargs: Any) -> AnalysisInput:
    variants = []
    for vid, arm, name, seed in ((1, "control", "Control", 1), (2, "treatment", "Few-shot", 2)):
        per_user = list(users(arm, 211, seed))
        metrics = {m: MetricTotals.from_units([u[m] for u in per_user]) for m in SPECS}
        variants.append(VariantInput(vid, name, vid == 1, 50.0, 211, metrics))
    secondary = [
        MetricSpec(s.name, s.kind, s.direction, s.lower, s.upper, s.name in guardrails)
        for s in list(SPECS.values())[1:]
    ]
    return AnalysisInput(1, SPECS["resolution_rate"], variants, secondary, **kwargs)


def test_fewshot_recommendation_carries_every_regression() -> None:
    # Given the few-shot prompt: +16 points resolution, +38% cost and tokens, +6% slower
    # (its team accepts up to 100% worse on each cost: the rule ships it)
    r = StatisticalAnalyzer().analyze(fewshot(min_sample_size=100, acceptable_regressions=ALL))
    # Then it is recommended, named, with its units (not its results) counted
    reason = r["recommendation_reason"]
    assert r["recommended_winner_id"] == 2
    assert reason.startswith("Variant 2 (Few-shot) shows")
    assert "with 211 units" in reason
    # And each regression is in the sentence and in the warnings, with its size and interval
    regressed = {m["metric"]: m for m in r["regressions"]}
    assert set(regressed) == {"cost_usd", "token_usage", "response_time"}
    for name, m in regressed.items():
        lo, hi = m["relative_ci"]
        assert 0 < lo < m["relative_lift"] < hi
        assert f"metric {name} (higher is worse): {m['relative_lift'] * 100:+.1f}%" in reason
        assert any(name in w and "95% CI" in w for w in r["warnings"])
    assert 0.30 < regressed["cost_usd"]["relative_lift"] < 0.46
    assert 0.03 < regressed["response_time"]["relative_lift"] < 0.09


def test_watched_metrics_are_holm_adjusted_together() -> None:
    r = StatisticalAnalyzer().analyze(fewshot(min_sample_size=100))
    raw = [r["metrics"][m]["comparisons"][0]["p_value"] for m in list(SPECS)[1:]]
    ref = multipletests(raw, method="holm")[1]
    adjusted = {m["metric"]: m["p_value_adjusted"] for m in r["regressions"]}
    assert [adjusted[m] for m in list(SPECS)[1:]] == pytest.approx(list(ref), rel=1e-12)


def test_a_guardrail_regression_still_blocks_and_is_in_the_sentence() -> None:
    # Given response_time declared as a guardrail
    r = StatisticalAnalyzer().analyze(fewshot(("response_time",), min_sample_size=100))
    # Then there is no winner, and the sentence says which guardrail regressed, by how much
    assert r["recommended_winner_id"] is None
    assert "regresses guardrail metric response_time" in r["recommendation_reason"]
    assert "Variant 2 (Few-shot) is better on resolution_rate" in r["recommendation_reason"]


def test_no_winner_sentence_still_names_the_regressions() -> None:
    # Given a sequential analysis where resolution does not move but tokens regress (guardrail)
    inp = fewshot(("token_usage",), min_sample_size=100, analysis_method="sequential")
    control, treatment = inp.variants
    same = {**treatment.metrics, "resolution_rate": control.metrics["resolution_rate"]}
    flat = AnalysisInput(
        1,
        inp.primary_metric,
        [control, VariantInput(2, "Few-shot", False, 50.0, 211, same)],
        inp.secondary_metrics,
        analysis_method="sequential",
    )
    r = StatisticalAnalyzer().analyze(flat)
    # Then the sentence says "no significant difference" and still names the regression
    reason = r["recommendation_reason"]
    assert reason.startswith("No significant difference on resolution_rate")
    assert "Variant 2 (Few-shot) regresses guardrail metric token_usage" in reason


def test_every_plausible_split_of_the_e2e_users_gives_the_same_verdict() -> None:
    # Given the e2e test's 200 users (one result per metric), whose split between the arms
    # depends on the experiment's random salt
    control = list(users("control", 140, 1, 1))
    treatment = list(users("treatment", 140, 2, 1))
    for n_control in range(60, 141):
        arms = ((1, "Control", control[:n_control]), (2, "Few-shot", treatment[: 200 - n_control]))
        variants = [
            VariantInput(
                vid,
                name,
                vid == 1,
                50.0,
                len(us),
                {m: MetricTotals.from_units([u[m] for u in us]) for m in SPECS},
            )
            for vid, name, us in arms
        ]
        inp = AnalysisInput(
            1,
            SPECS["resolution_rate"],
            variants,
            list(SPECS.values())[1:],
            min_sample_size=60,
            acceptable_regressions=ALL,
        )
        r = StatisticalAnalyzer().analyze(inp)
        if r["srm"]["flagged"]:  # a split that unlikely is a mismatch by design (p < 0.001)
            continue
        # Then the few-shot prompt is recommended with its three regressions
        assert r["recommended_winner_id"] == 2, (n_control, r["recommendation_reason"])
        assert len(r["regressions"]) == 3


@pytest.mark.parametrize(
    ("limits", "action", "winner", "said"),
    [
        # every cost within what the team accepts: ship
        (
            {"cost_usd": 0.60, "token_usage": 0.60, "response_time": 0.20},
            "ship",
            2,
            "stays under the accepted +60.0%",
        ),
        # cost far above a 5% limit, with confidence: do not ship
        (
            {"cost_usd": 0.05, "token_usage": 0.60, "response_time": 0.20},
            "do_not_ship",
            None,
            "is above the accepted +5.0%",
        ),
        # a limit inside the interval of the worsening: the team must decide
        (
            {"cost_usd": 0.38, "token_usage": 0.60, "response_time": 0.20},
            "needs_decision",
            None,
            "is across the accepted +38.0%",
        ),
        # nothing declared while costs regress: nobody said how much is acceptable
        ({}, "needs_decision", None, "no acceptable regression is declared for it"),
    ],
    ids=["within", "exceeded", "straddled", "undeclared"],
)
def test_the_declared_trade_off_rule_decides(
    limits: dict[str, float], action: str, winner: int | None, said: str
) -> None:
    # Given the few-shot prompt (+16 points resolution, +38% cost and tokens, +6% slower)
    # and the team's acceptable regressions
    r = StatisticalAnalyzer().analyze(fewshot(min_sample_size=100, acceptable_regressions=limits))
    decision = r["decision"]
    # Then the decision is the rule's, with its reason, and only "ship" names a winner
    assert decision["action"] == action, decision["reason"]
    assert said in decision["reason"]
    assert r["recommended_winner_id"] == winner
    checks = {c["metric"]: c for c in decision["checks"]}
    assert set(checks) == {"cost_usd", "token_usage", "response_time"}
    cost = checks["cost_usd"]
    low, high = cost["interval"]
    # (the worsening and its interval are the regression's own lift and interval)
    moved = next(m for m in r["regressions"] if m["metric"] == "cost_usd")
    assert (cost["worsening"], [low, high]) == (moved["relative_lift"], moved["relative_ci"])


def test_the_rule_waits_for_a_sufficient_sample_and_a_better_variant() -> None:
    # Given too few units for the declared minimum / Then keep running, no winner
    early = StatisticalAnalyzer().analyze(fewshot(min_sample_size=5000, acceptable_regressions=ALL))
    assert (early["decision"]["action"], early["recommended_winner_id"]) == ("keep_running", None)


def test_auto_stop_leaves_an_undeclared_trade_off_to_people() -> None:
    from types import SimpleNamespace

    from ab_testing.scheduled import auto_stop_reason

    # Given an opted-in experiment whose sequential test is conclusive
    experiment = SimpleNamespace(auto_stop=True, min_duration_days=0, max_duration_days=None)
    conclusive = {"is_significant": True, "sufficient_sample_size": True, "guardrails": []}
    # When its decision is a trade-off nobody declared / Then it keeps running
    undecided = {**conclusive, "decision": {"action": "needs_decision"}}
    assert auto_stop_reason(experiment, undecided, 3.0) is None  # type: ignore[arg-type]
    # And it stops once the rule can decide
    shipped = {**conclusive, "decision": {"action": "ship"}}
    assert auto_stop_reason(experiment, shipped, 3.0) is not None  # type: ignore[arg-type]
