"""mutation/run.py's sampling and the interval it prints for a sampled score."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
from statsmodels.stats.proportion import proportion_confint

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "mutation"))

import run as mutation  # noqa: E402


@pytest.mark.parametrize(("killed", "tested"), [(45, 50), (1, 3), (0, 12), (40, 40), (301, 330)])
def test_the_interval_is_statsmodels_wilson_interval(killed: int, tested: int) -> None:
    low, high = proportion_confint(killed, tested, alpha=0.05, method="wilson")
    assert mutation.wilson(killed, tested) == pytest.approx((100 * low, 100 * high), abs=1e-9)


def test_a_sample_takes_every_survivor_and_n_unchecked_mutants_per_module() -> None:
    # Given mutants of two modules: some survived, many unchecked, some killed
    statuses = {
        **{f"ab_testing.ledger.x_record__mutmut_{i}": "not checked" for i in range(30)},
        **{f"ab_testing.store.x_put__mutmut_{i}": "not checked" for i in range(5)},
        "ab_testing.ledger.x_record__mutmut_99": "survived",
        "ab_testing.store.x_put__mutmut_99": "killed",
    }
    names = [n for n, s in statuses.items() if s != "killed"]
    # When 10 per module are drawn, twice
    first = mutation._sampled(names, statuses, ["ledger", "store"], 10)
    second = mutation._sampled(names, statuses, ["ledger", "store"], 10)
    # Then the survivor is tried again, 10 of ledger's and all 5 of store's are drawn, the
    # same ones each time, and nothing killed is run again
    assert "ab_testing.ledger.x_record__mutmut_99" in first
    assert sum(".ledger." in n and statuses[n] == "not checked" for n in first) == 10
    assert sum(".store." in n for n in first) == 5
    assert first == second
    assert "ab_testing.store.x_put__mutmut_99" not in first


def test_survivors_are_run_again_unless_listed_as_equivalent() -> None:
    statuses = {
        "ab_testing.store.x_put__mutmut_1": "survived",
        "ab_testing.store.x_put__mutmut_2": "survived",
        "ab_testing.store.x_put__mutmut_3": "not checked",
        "ab_testing.store.x_put__mutmut_4": "no tests",
        "ab_testing.store.x_put__mutmut_5": "killed",
        "ab_testing.ledger.x_record__mutmut_1": "survived",
    }
    equivalent = {"ab_testing.store.x_put__mutmut_2": "no test can tell"}
    assert mutation.unsettled(statuses, ["store"], equivalent) == [
        "ab_testing.store.x_put__mutmut_1",
        "ab_testing.store.x_put__mutmut_3",
        "ab_testing.store.x_put__mutmut_4",
    ]
