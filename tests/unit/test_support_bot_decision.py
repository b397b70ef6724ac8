"""The declared trade-off rule on a ratio metric: a support bot whose new prompt resolves 8
points more conversations (46% to 54%) at 37% more cost per conversation, so each resolution
costs 1.37 / (54 / 46) - 1 = +16.7% more. The team declares how much of that it accepts."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest
from scipy import stats

from ab_testing.stats.analyzer import StatisticalAnalyzer
from ab_testing.stats.inputs import MetricSpec, MetricTotals, RatioTotals
from tests.unit.stats_helpers import RATIO, experiment, variant

UNITS = 6000  # per arm
RESOLUTION = {"control": 0.46, "treatment": 0.54}
COST = {"control": 0.0100, "treatment": 0.0137}
TRUTH = 1.37 / (0.54 / 0.46) - 1.0


def arm(name: str, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Per unit: one resolution (0/1) and one cost in USD."""
    rng = np.random.default_rng(seed)
    resolved = (rng.random(UNITS) < RESOLUTION[name]).astype(float)
    cost = np.round(rng.normal(COST[name], 0.002, UNITS), 6)
    return resolved, cost


DATA = {"control": arm("control", 5), "treatment": arm("treatment", 6)}


def support_bot(limits: dict[str, float] | None) -> dict:
    variants = []
    for vid, name in ((1, "control"), (2, "treatment")):
        resolved, cost = DATA[name]
        metrics = {
            "resolution_rate": MetricTotals.from_units([[float(v)] for v in resolved]),
            "cost_usd": MetricTotals.from_units([[float(v)] for v in cost]),
        }
        # (the cross sum of the ratio's delta-method variance, as the ledger keeps it)
        ratio = RatioTotals(units=UNITS, cross=float(np.dot(cost, resolved)))
        v = variant(vid, metrics, is_control=vid == 1)
        variants.append(replace(v, ratios={RATIO.name: ratio}))
    inp = experiment(
        variants,
        primary=MetricSpec("resolution_rate", kind="binary", lower=0, upper=1),
        secondary=[
            MetricSpec("cost_usd", direction="lower", lower=0),
            MetricSpec("cost_per_resolution", kind="ratio", direction="lower"),
        ],
        ratio_metrics=[RATIO],
        min_sample_size=1000,
        acceptable_regressions=limits or {},
    )
    return StatisticalAnalyzer().analyze(inp)


def test_the_measured_trade_off_is_the_simulated_one() -> None:
    r = support_bot(None)
    metrics = r["metrics"]
    # The resolution lift equals a two-proportion test on the same data (scipy)
    (res_c, cost_c), (res_t, cost_t) = DATA["control"], DATA["treatment"]
    welch = stats.ttest_ind(res_t, res_c, equal_var=False)
    primary = metrics["resolution_rate"]["comparisons"][0]
    assert primary["p_value"] == pytest.approx(welch.pvalue, rel=1e-9)
    # And the cost per resolution is the ratio of sums, with an interval around the truth
    ratio = metrics["cost_per_resolution"]["comparisons"][0]
    direct = (cost_t.sum() / res_t.sum()) / (cost_c.sum() / res_c.sum()) - 1.0
    assert ratio["relative_lift"] == pytest.approx(direct, rel=1e-9)
    low, high = ratio["relative_ci"]
    assert low < TRUTH < high and 0.05 < low and high < 0.25


@pytest.mark.parametrize(
    ("limits", "action", "winner"),
    [
        ({"cost_per_resolution": 0.25, "cost_usd": 0.60}, "ship", 2),
        ({"cost_per_resolution": 0.05, "cost_usd": 0.60}, "do_not_ship", None),
        (None, "needs_decision", None),
    ],
    ids=["accepted", "too-dear", "undeclared"],
)
def test_the_declared_limits_decide(
    limits: dict[str, float] | None, action: str, winner: int | None
) -> None:
    r = support_bot(limits)
    decision = r["decision"]
    assert decision["action"] == action, decision["reason"]
    assert r["recommended_winner_id"] == winner
    check = next(c for c in decision["checks"] if c["metric"] == "cost_per_resolution")
    ratio = r["metrics"]["cost_per_resolution"]["comparisons"][0]
    # The check reads the ratio metric's own lift and interval
    assert check["worsening"] == pytest.approx(ratio["relative_lift"])
    assert check["interval"] == pytest.approx(ratio["relative_ci"])
    if limits is None:
        assert "no acceptable regression is declared" in decision["reason"]
    elif action == "do_not_ship":
        assert "cost_per_resolution" in decision["reason"]
