"""Sample-ratio mismatch check equals scipy's chi-square goodness of fit."""

from __future__ import annotations

import pytest
from scipy import stats

from ab_testing.stats.srm import srm_check


@pytest.mark.parametrize(
    ("observed", "allocation"),
    [
        ([5000, 5100], [50, 50]),
        ([1000, 2050, 2950], [20, 40, 40]),
        ([812, 790, 805, 830], [25, 25, 25, 25]),
        ([90, 10], [90, 10]),
    ],
)
def test_srm_equals_scipy_chisquare(observed: list[int], allocation: list[float]) -> None:
    # Given assigned units and the configured allocation
    res = srm_check(observed, allocation)
    # Then statistic and p-value are scipy's chisquare with expected = N * allocation share
    expected = [sum(observed) * a / sum(allocation) for a in allocation]
    ref = stats.chisquare(observed, expected)
    assert res.statistic == pytest.approx(ref.statistic, rel=1e-12)
    assert res.p_value == pytest.approx(ref.pvalue, rel=1e-10)
    assert res.expected == pytest.approx(expected)
    assert res.flagged == bool(ref.pvalue < 0.001)


def test_srm_flags_a_clear_mismatch_only() -> None:
    # Given 50/50 allocation with 10,000 vs 10,600 units, and then a plausible split
    flagged = srm_check([10000, 10600], [50, 50])
    fine = srm_check([10000, 10100], [50, 50])
    # Then only the first is flagged at p < 0.001
    assert flagged.flagged and flagged.p_value is not None and flagged.p_value < 0.001
    assert not fine.flagged


def test_srm_degenerate_inputs() -> None:
    # Given no units, a single variant, and units in a variant with no allocation
    # Then no exception; no p-value when nothing can be tested, a flag when 0% got units
    assert srm_check([0, 0], [50, 50]).p_value is None
    assert srm_check([10], [100]).p_value is None
    zero = srm_check([100, 5], [100, 0])
    assert zero.flagged and zero.p_value == 0.0
    assert srm_check([100, 0], [100, 0]).p_value is None
