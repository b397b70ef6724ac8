"""Holm adjustment equals statsmodels."""

from __future__ import annotations

import numpy as np
import pytest
from statsmodels.stats.multitest import multipletests

from ab_testing.stats.multiple import holm


@pytest.mark.parametrize("seed", range(20))
def test_holm_equals_statsmodels(seed: int) -> None:
    # Given 1 to 12 p-values, some tied, some tiny
    rng = np.random.default_rng(seed)
    p = rng.uniform(0, 0.2, int(rng.integers(1, 13))) ** 2
    p[: len(p) // 3] = p[0]
    # When adjusted
    ours = holm(p.tolist())
    # Then statsmodels' Holm agrees to 1e-12
    ref = multipletests(p, method="holm")[1]
    assert np.allclose(np.asarray(ours, dtype=float), ref, rtol=1e-12, atol=0)


def test_missing_p_values_are_left_out() -> None:
    # Given a treatment without a p-value
    ours = holm([0.01, None, 0.04])
    # Then the others are adjusted as a family of two
    assert ours[1] is None
    assert ours[0] == pytest.approx(0.02) and ours[2] == pytest.approx(0.04)
    assert holm([]) == []
