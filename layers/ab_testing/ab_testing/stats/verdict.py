"""Movements in the bad direction on every declared metric, for the verdict's warnings.

The primary metric decides (Holm across treatments, in comparisons.py). Every other declared
metric is watched as one family: the p-values of the analysis method for every (metric,
treatment) pair are Holm-adjusted together (Holm 1979), and each pair that moves significantly
in the bad direction after adjustment is a warning, in ``warnings`` and in the sentence.
Guardrail metrics also block a winner, and for them the unadjusted p-value counts: a guardrail
is a safety check, so it errs toward caution (a regression is never hidden by the adjustment).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from .comparisons import TreatmentResult
from .decision import gain
from .inputs import AnalysisMethod, Direction, MetricSpec, alpha_of
from .multiple import holm


@dataclass(frozen=True)
class Movement:
    """One significant movement of a watched metric in its bad direction."""

    metric: str
    variant_id: int
    label: str  # "Variant 2 (Few-shot)"
    direction: Direction
    guardrail: bool
    difference: float
    ci: tuple[float, float] | None
    relative_lift: float | None
    relative_ci: tuple[float, float] | None
    p_value: float
    p_value_adjusted: float | None
    confidence_level: float

    def size(self) -> str:
        """ "+38.0% (95% CI +30.1% to +46.2%)", with the absolute interval when the relative
        one is not available (the sequential method bounds the difference only)."""
        level = f"{self.confidence_level * 100:g}% CI"
        if self.relative_lift is not None and self.relative_ci is not None:
            lo, hi = self.relative_ci
            return (
                f"{self.relative_lift * 100:+.1f}% ({level} {lo * 100:+.1f}% to {hi * 100:+.1f}%)"
            )
        absolute = f"{self.difference:+.4g}"
        if self.ci is not None:
            absolute += f", {level} {self.ci[0]:+.4g} to {self.ci[1]:+.4g}"
        if self.relative_lift is not None:
            return f"{self.relative_lift * 100:+.1f}% (difference {absolute})"
        return absolute

    def sentence(self) -> str:
        """What a reader needs: which variant, which metric, how much, how sure."""
        from .messages import format_p

        kind = "guardrail " if self.guardrail else ""
        worse = "higher" if self.direction == "lower" else "lower"
        p = format_p(self.p_value)
        if self.p_value_adjusted is not None and not self.guardrail:
            p += f", Holm-adjusted {format_p(self.p_value_adjusted).removeprefix('p ')}"
        return (
            f"{self.label} regresses {kind}metric {self.metric} ({worse} is worse): "
            f"{self.size()}, {p}"
        )

    def as_dict(self) -> dict[str, object]:
        return {
            "metric": self.metric,
            "variant_id": self.variant_id,
            "direction": self.direction,
            "guardrail": self.guardrail,
            "absolute_difference": self.difference,
            "absolute_ci": list(self.ci) if self.ci else None,
            "relative_lift": self.relative_lift,
            "relative_ci": list(self.relative_ci) if self.relative_ci else None,
            "p_value": self.p_value,
            "p_value_adjusted": self.p_value_adjusted,
            "message": self.sentence(),
        }


def bad_movements(
    specs: Sequence[MetricSpec],
    results: Mapping[str, Sequence[TreatmentResult]],
    method: AnalysisMethod,
    confidence_level: float,
    labels: Mapping[int, str],
) -> list[Movement]:
    """Significant bad-direction movements of the watched (non-primary) metrics."""
    alpha = alpha_of(confidence_level)
    pairs = [(spec, r) for spec in specs for r in results.get(spec.name, [])]
    adjusted = holm([r.chosen_p(method, adjusted=False) for _, r in pairs])
    out: list[Movement] = []
    for (spec, r), p_adj in zip(pairs, adjusted, strict=True):
        p = r.chosen_p(method, adjusted=False)
        diff = r.welch.difference
        if p is None or diff is None or gain(diff, spec.direction) >= 0:
            continue
        deciding = p if spec.guardrail else p_adj
        if deciding is None or deciding >= alpha:
            continue
        sequential = method == "sequential"
        out.append(
            Movement(
                metric=spec.name,
                variant_id=r.variant_id,
                label=labels.get(r.variant_id, f"Variant {r.variant_id}"),
                direction=spec.direction,
                guardrail=spec.guardrail,
                difference=diff,
                ci=r.seq_ci if sequential else r.welch.ci,
                relative_lift=r.welch.relative_lift,
                relative_ci=None if sequential else r.welch.relative_ci,
                p_value=p,
                p_value_adjusted=p_adj,
                confidence_level=confidence_level,
            )
        )
    return out


def variant_label(variant_id: int, name: str | None) -> str:
    """How a sentence names a variant: its id (the API's handle) and its name."""
    clean = (name or "").strip()
    return f"Variant {variant_id} ({clean})" if clean else f"Variant {variant_id}"


def with_movements(reason: str, movements: Sequence[Movement]) -> str:
    """The decision's sentence followed by every regression, so none is missed."""
    if not movements:
        return reason
    listed = "; ".join(m.sentence() for m in movements)
    stop = "" if reason.endswith(".") else "."
    return f"{reason}{stop} Warning: {listed}."
