"""Multiple-comparison adjustment across the treatments of an experiment."""

from __future__ import annotations

from collections.abc import Sequence


def holm(p_values: Sequence[float | None]) -> list[float | None]:
    """Holm (1979) step-down adjusted p-values; ``None`` entries are left out and kept as None.

    With the m available p-values sorted ascending p_(1) <= ... <= p_(m):
    adj_(j) = min(1, max_{i <= j} (m - i + 1) p_(i)). Controls the family-wise error rate under
    any dependence, and reject(adj <= alpha) is Holm's procedure at level alpha.
    """
    indexed = sorted(
        ((p, i) for i, p in enumerate(p_values) if p is not None), key=lambda item: item[0]
    )
    m = len(indexed)
    out: list[float | None] = [None] * len(p_values)
    running = 0.0
    for rank, (p, i) in enumerate(indexed):
        running = max(running, (m - rank) * p)
        out[i] = min(1.0, running)
    return out
