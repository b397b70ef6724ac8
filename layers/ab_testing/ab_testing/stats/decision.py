"""Decision rules: which treatment, if any, is recommended, and why.

A winner must (in this order): come from an experiment with a control that has data, pass the
sample-ratio check, be significantly better than the control in the metric's direction (by the
Holm-adjusted p-value of the chosen method), come from an experiment where every variant has
reached ``min_sample_size`` units, and not significantly regress any guardrail metric. Among the
treatments left, the one with the largest improvement wins.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

from . import messages as msg
from .inputs import Direction, MetricSpec, alpha_of
from .srm import SrmResult


@dataclass(frozen=True)
class Candidate:
    """One treatment's result on the primary metric."""

    variant_id: int
    p_value: float | None  # Holm-adjusted p-value of the chosen method
    difference: float | None
    relative_lift: float | None
    mean: float | None
    count: int  # units of the variant on the primary metric
    reason: str | None = None
    label: str = ""  # "Variant 2 (Few-shot)"

    @property
    def name(self) -> str:
        return self.label or f"Variant {self.variant_id}"


@dataclass(frozen=True)
class DecisionContext:
    metric: MetricSpec
    confidence_level: float
    control_present: bool
    control_mean: float | None
    srm: SrmResult
    sufficient_sample_size: bool
    smallest_units: int
    min_sample_size: int
    srm_threshold: float = msg.SRM_THRESHOLD
    adjusted: bool = False  # True when the p-values are Holm-adjusted (> 1 treatment)
    has_results: bool = True  # False when no variant has any result for the metric
    control_reason: str | None = None  # why the control has no usable mean, if it has none
    guardrail_regressions: Mapping[int, Sequence[str]] = field(default_factory=dict)

    @property
    def alpha(self) -> float:
        return alpha_of(self.confidence_level)


@dataclass(frozen=True)
class Decision:
    winner_id: int | None
    p_value: float | None
    is_significant: bool
    reason: str
    confidence: float = 0.0


def gain(difference: float, direction: Direction) -> float:
    """The difference signed so that positive means better."""
    return difference if direction == "higher" else -difference


def winner_reason(c: Candidate, metric: MetricSpec, control_mean: float) -> str:
    """The sentence of a recommended winner (the product guide's wording when higher is better)."""
    mean_t = c.mean if c.mean is not None else float("nan")
    common = {
        "label": c.name,
        "count": c.count,
        "mean_t": mean_t,
        "mean_c": control_mean,
    }
    if c.relative_lift is None:
        better = "higher" if metric.direction == "higher" else "lower"
        return msg.WINNER_NO_LIFT.format(
            diff=c.difference or 0.0, better=better, metric=metric.name, **common
        )
    lift = abs(c.relative_lift) * 100
    if metric.direction == "higher":
        return msg.WINNER_HIGHER.format(lift=lift, **common)
    return msg.WINNER_LOWER.format(lift=lift, metric=metric.name, **common)


def _no_test_reason(ctx: DecisionContext, candidates: Sequence[Candidate]) -> str:
    codes = [c.reason for c in candidates if c.reason]
    if not codes or all(code == msg.NO_DATA for code in codes):
        return msg.NO_TREATMENT_RESULTS.format(metric=ctx.metric.name)
    code = next((c for c in codes if c != msg.NO_DATA), codes[0])
    detail = msg.REASON_TEXT.get(code, code)
    return msg.NOT_TESTABLE.format(metric=ctx.metric.name, detail=detail)


def _no_winner_reason(
    ctx: DecisionContext, tested: Sequence[Candidate], top_p: float | None
) -> str:
    direction = ctx.metric.direction
    worse = [
        c
        for c in tested
        if c.p_value is not None
        and c.p_value < ctx.alpha
        and c.difference is not None
        and gain(c.difference, direction) < 0
    ]
    if worse:
        names = [c.name for c in worse]
        ids = msg.joined(names)
        verb = "is" if len(names) == 1 else "are"
        p = min(c.p_value for c in worse if c.p_value is not None)
        return msg.ONLY_WORSE.format(metric=ctx.metric.name, ids=ids, verb=verb, p=msg.format_p(p))
    adjusted = ", Holm-adjusted" if ctx.adjusted else ""
    return msg.NOT_SIGNIFICANT.format(
        metric=ctx.metric.name, p=msg.format_p(top_p), alpha=ctx.alpha, adjusted=adjusted
    )


def _precheck(ctx: DecisionContext, candidates: Sequence[Candidate]) -> str | None:
    """A reason that rules out any comparison, or None."""
    if not ctx.control_present:
        return msg.NO_CONTROL
    if not candidates:
        return msg.NO_TREATMENT
    if not ctx.has_results:
        return msg.NO_RESULTS.format(metric=ctx.metric.name)
    if ctx.control_mean is None:
        if ctx.control_reason in (None, msg.NO_DATA):
            return msg.NO_CONTROL_RESULTS.format(metric=ctx.metric.name)
        detail = msg.REASON_TEXT.get(ctx.control_reason, ctx.control_reason)
        return msg.NOT_TESTABLE.format(metric=ctx.metric.name, detail=detail)
    return None


def decide(ctx: DecisionContext, candidates: Sequence[Candidate]) -> Decision:
    """Apply the decision rules to the treatments' results on the primary metric."""
    early = _precheck(ctx, candidates)
    if early is not None:
        return Decision(None, None, False, early)
    tested = [c for c in candidates if c.p_value is not None and c.difference is not None]
    top_p = min((c.p_value for c in tested if c.p_value is not None), default=None)
    significant = top_p is not None and top_p < ctx.alpha
    if ctx.srm.flagged:
        p = msg.format_p(ctx.srm.p_value)
        reason = msg.SRM_DETECTED.format(p=p, threshold=ctx.srm_threshold)
        return Decision(None, top_p, significant, reason)
    if not tested:
        return Decision(None, None, False, _no_test_reason(ctx, candidates))
    direction = ctx.metric.direction
    better = [
        c
        for c in tested
        if c.p_value is not None
        and c.p_value < ctx.alpha
        and gain(c.difference or 0.0, direction) > 0
    ]
    if not better:
        return Decision(None, top_p, significant, _no_winner_reason(ctx, tested, top_p))
    best = max(better, key=lambda c: gain(c.difference or 0.0, direction))
    if not ctx.sufficient_sample_size:
        reason = msg.TOO_SMALL.format(
            label=best.name,
            p=msg.format_p(best.p_value),
            units=ctx.smallest_units,
            required=ctx.min_sample_size,
        )
        return Decision(None, top_p, significant, reason)
    eligible = [c for c in better if not ctx.guardrail_regressions.get(c.variant_id)]
    if not eligible:
        names = ", ".join(ctx.guardrail_regressions.get(best.variant_id, ()))
        reason = msg.GUARDRAIL_REGRESSION.format(
            label=best.name, metric=ctx.metric.name, guardrails=names
        )
        return Decision(None, top_p, significant, reason)
    winner = max(eligible, key=lambda c: gain(c.difference or 0.0, direction))
    reason = winner_reason(winner, ctx.metric, ctx.control_mean or 0.0)
    return Decision(winner.variant_id, winner.p_value, True, reason, ctx.confidence_level)
