"""Sample-ratio mismatch (SRM) check: are units assigned in the configured proportions?"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from .messages import SRM_THRESHOLD


@dataclass(frozen=True)
class SrmResult:
    p_value: float | None
    flagged: bool
    expected: list[float]
    observed: list[int]
    statistic: float | None = None


def srm_check(
    observed: Sequence[int], allocation: Sequence[float], threshold: float = SRM_THRESHOLD
) -> SrmResult:
    """Pearson chi-square goodness of fit of the assigned units against the traffic allocation.

    expected_i = N * a_i / sum(a); X^2 = sum (O_i - E_i)^2 / E_i ~ chi^2(k - 1) under H0
    (Pearson 1900; the SRM check of Fabijan et al. 2019, "Diagnosing Sample Ratio Mismatch").
    Flagged when p < threshold (0.001 by default). Cells with zero allocation and no units are
    dropped; units in a cell with zero allocation are a mismatch by definition (p = 0).
    """
    obs = [max(int(o), 0) for o in observed]
    alloc = [max(float(a), 0.0) for a in allocation]
    total, weight = sum(obs), sum(alloc)
    expected = [total * a / weight if weight > 0 else 0.0 for a in alloc]
    if total == 0 or weight <= 0 or len(obs) != len(alloc):
        return SrmResult(None, False, expected, obs)
    if any(e == 0 and o > 0 for o, e in zip(obs, expected, strict=True)):
        return SrmResult(0.0, True, expected, obs, None)
    cells = [(o, e) for o, e in zip(obs, expected, strict=True) if e > 0]
    if len(cells) < 2:
        return SrmResult(None, False, expected, obs)
    from scipy import stats

    statistic = sum((o - e) ** 2 / e for o, e in cells)
    p_value = float(stats.chi2.sf(statistic, len(cells) - 1))
    return SrmResult(p_value, p_value < threshold, expected, obs, statistic)
