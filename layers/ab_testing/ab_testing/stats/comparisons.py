"""All the comparisons of the treatments with the control on one metric, and guardrail checks."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from .bayesian import BayesianResult, bayesian_readout
from .decision import gain
from .descriptive import Summary
from .frequentist import Comparison, compare
from .inputs import AnalysisMethod, Direction, MetricKind, MetricSpec, alpha_of
from .messages import SEQUENTIAL_TOO_FEW
from .multiple import holm
from .sequential import MIN_UNITS_PER_ARM, confidence_sequence


@dataclass(frozen=True)
class TreatmentResult:
    """Everything computed for one treatment on one metric."""

    variant_id: int
    welch: Comparison
    seq_p: float | None
    seq_ci: tuple[float, float] | None
    bayes: BayesianResult
    p_adjusted: float | None = None
    seq_p_adjusted: float | None = None
    seq_reason: str | None = None  # why there is no sequential read-out

    def chosen_reason(self, method: AnalysisMethod) -> str | None:
        """Why the analysis method's p-value is missing, if it is."""
        if method == "sequential" and self.seq_p is None and self.welch.reason is None:
            return self.seq_reason
        return self.welch.reason

    def chosen_p(self, method: AnalysisMethod, adjusted: bool = True) -> float | None:
        """The p-value of the analysis method, Holm-adjusted or raw."""
        if method == "sequential":
            return self.seq_p_adjusted if adjusted else self.seq_p
        return self.p_adjusted if adjusted else self.welch.p_value


def sequential_result(
    welch: Comparison, control: Summary, treatment: Summary, alpha: float, rho: float
) -> tuple[float | None, tuple[float, float] | None, str | None]:
    """Always-valid p-value and confidence sequence, with t = units of both groups, or the
    reason there are none (an arm below ``MIN_UNITS_PER_ARM``)."""
    if welch.se is None or welch.difference is None:
        return None, None, None
    if min(control.units, treatment.units) < MIN_UNITS_PER_ARM:
        return None, None, SEQUENTIAL_TOO_FEW
    t = control.units + treatment.units
    p, lo, hi = (float(x) for x in confidence_sequence(welch.difference, welch.se, t, alpha, rho))
    if not all(math.isfinite(v) for v in (p, lo, hi)):
        return None, None, None
    return min(max(p, 0.0), 1.0), (lo, hi), None


def compare_treatments(
    control: Summary,
    treatments: Sequence[tuple[int, Summary]],
    direction: Direction,
    confidence_level: float,
    rho: float,
    kind: MetricKind = "continuous",
) -> list[TreatmentResult]:
    """Welch (or exact), sequential and Bayesian read-outs of each treatment, Holm-adjusted
    across them."""
    alpha = alpha_of(confidence_level)
    results = []
    for variant_id, treatment in treatments:
        welch = compare(control, treatment, confidence_level, kind)
        seq_p, seq_ci, seq_reason = sequential_result(welch, control, treatment, alpha, rho)
        bayes = bayesian_readout(welch.difference, welch.se, direction)
        results.append(
            TreatmentResult(variant_id, welch, seq_p, seq_ci, bayes, seq_reason=seq_reason)
        )
    # Holm across the treatments of this metric (the identity with a single treatment).
    adjusted = holm([r.welch.p_value for r in results])
    seq_adjusted = holm([r.seq_p for r in results])
    return [
        TreatmentResult(r.variant_id, r.welch, r.seq_p, r.seq_ci, r.bayes, a, s, r.seq_reason)
        for r, a, s in zip(results, adjusted, seq_adjusted, strict=True)
    ]


def guardrail_checks(
    specs: Sequence[MetricSpec],
    results: dict[str, list[TreatmentResult]],
    method: AnalysisMethod,
    alpha: float,
) -> tuple[list[dict[str, Any]], dict[int, list[str]]]:
    """Rows of the ``guardrails`` answer and, per treatment, the guardrails it regressed.

    A regression is a significant change in the bad direction by the raw (not Holm-adjusted)
    p-value of the analysis method: a guardrail is a safety check, so it errs toward caution.
    """
    rows: list[dict[str, Any]] = []
    regressions: dict[int, list[str]] = {}
    for spec in specs:
        if not spec.guardrail:
            continue
        for r in results.get(spec.name, []):
            p = r.chosen_p(method, adjusted=False)
            diff = r.welch.difference
            regressed = bool(
                p is not None and diff is not None and p < alpha and gain(diff, spec.direction) < 0
            )
            if regressed:
                regressions.setdefault(r.variant_id, []).append(spec.name)
            rows.append(
                {
                    "metric": spec.name,
                    "variant_id": r.variant_id,
                    "direction": spec.direction,
                    "regressed": regressed,
                    "p_value": p,
                    "absolute_difference": diff,
                    "relative_lift": r.welch.relative_lift,
                }
            )
    return rows, regressions
