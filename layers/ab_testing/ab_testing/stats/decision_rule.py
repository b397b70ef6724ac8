"""The declared trade-off rule: ship, do not ship, needs a decision, or keep running.

An experiment may declare ``acceptable_regressions``: per metric, the largest relative
worsening the team accepts (0.10: 10% worse). Given the recommendation on the primary metric
(a significantly better variant, no guardrail regressed), each other metric of that variant is
checked:

- with a declared limit: its worsening's interval wholly below the limit passes; wholly above
  it means ``do_not_ship``; across it (or an interval that cannot be bounded) means
  ``needs_decision``;
- without one: a significant worsening (the same test as the regression warnings) means
  ``needs_decision``: nobody said how much of it is acceptable.

``ship`` only when every check passes. Before the sample is sufficient the action is
``keep_running``; with no recommended variant it is ``do_not_ship``, for the recommendation's
own reason. Worsening is the relative change signed so that positive is worse (an increase of
a "lower is better" metric, a decrease of a "higher is better" one).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from .comparisons import TreatmentResult
from .inputs import AnalysisMethod, MetricSpec

SHIP, DO_NOT_SHIP, NEEDS_DECISION, KEEP_RUNNING = (
    "ship",
    "do_not_ship",
    "needs_decision",
    "keep_running",
)


def _pct(value: float) -> str:
    return f"{value * 100:+.1f}%".replace("-", "\u2212")


def worsening_interval(
    spec: MetricSpec,
    result: TreatmentResult,
    method: AnalysisMethod,
    control_mean: float | None,
) -> tuple[float | None, tuple[float, float] | None]:
    """The relative worsening and its interval (positive: worse). Under sequential analysis the
    interval is the confidence sequence's, relative to the control's mean."""
    lift = result.welch.relative_lift
    if method == "sequential":
        bounds = result.seq_ci
        if bounds is None or not control_mean or control_mean <= 0:
            relative = None
        else:
            relative = (bounds[0] / control_mean, bounds[1] / control_mean)
    else:
        relative = result.welch.relative_ci
    if spec.direction == "higher":
        lift = None if lift is None else -lift
        relative = None if relative is None else (-relative[1], -relative[0])
    return lift, relative


def decide_action(
    *,
    candidate: int | None,
    label: str,
    candidate_reason: str,
    sufficient: bool,
    specs: Sequence[MetricSpec],
    results: Mapping[str, Sequence[TreatmentResult]],
    regressed: set[str],
    limits: Mapping[str, float],
    method: AnalysisMethod,
    control_means: Mapping[str, float | None],
    confidence: float,
) -> dict[str, Any]:
    """The ``decision`` object of the analysis. ``regressed``: the metrics the candidate
    worsened significantly (the regression warnings); ``specs``: every metric but the
    primary."""
    if not sufficient:
        return _answer(KEEP_RUNNING, candidate_reason, None, [], limits)
    if candidate is None:
        return _answer(DO_NOT_SHIP, candidate_reason, None, [], limits)
    checks: list[dict[str, Any]] = []
    for spec in specs:
        result = next((r for r in results.get(spec.name, ()) if r.variant_id == candidate), None)
        if result is None:
            continue
        limit = limits.get(spec.name)
        worse, interval = worsening_interval(spec, result, method, control_means.get(spec.name))
        if limit is None:
            verdict = "regressed" if spec.name in regressed else "no_limit"
        elif interval is None:
            verdict = "unbounded"
        elif interval[0] > limit:
            verdict = "exceeds"
        elif interval[1] > limit:
            verdict = "straddles"
        else:
            verdict = "within"
        checks.append(
            {
                "metric": spec.name,
                "worsening": worse,
                "interval": list(interval) if interval is not None else None,
                "limit": limit,
                "verdict": verdict,
            }
        )
    level = f"{confidence * 100:g}%"
    exceeded = [c for c in checks if c["verdict"] == "exceeds"]
    if exceeded:
        return _answer(DO_NOT_SHIP, _sentence(label, exceeded, level), candidate, checks, limits)
    open_ = [c for c in checks if c["verdict"] in ("regressed", "straddles", "unbounded")]
    if open_:
        return _answer(NEEDS_DECISION, _sentence(label, open_, level), candidate, checks, limits)
    reason = f"{label} is better on the primary metric"
    within = [c for c in checks if c["verdict"] == "within"]
    if within:
        reason += ", and " + "; ".join(
            f"{c['metric']} {_pct(c['worsening'])} stays under the accepted "
            f"{_pct(c['limit'])} ({level} interval up to {_pct(c['interval'][1])})"
            for c in within
        )
    return _answer(SHIP, reason + ".", candidate, checks, limits)


def _sentence(label: str, checks: list[dict[str, Any]], level: str) -> str:
    parts = []
    for c in checks:
        worse = "" if c["worsening"] is None else f" {_pct(c['worsening'])}"
        if c["verdict"] == "regressed":
            parts.append(
                f"{c['metric']}{worse} is significantly worse and no acceptable regression "
                f"is declared for it"
            )
        elif c["verdict"] == "unbounded":
            parts.append(f"{c['metric']}{worse} has no bounded interval to hold to its limit")
        else:
            low, high = (_pct(v) for v in c["interval"])
            where = "above" if c["verdict"] == "exceeds" else "across"
            parts.append(
                f"{c['metric']}{worse} ({level} interval {low} to {high}) is {where} the "
                f"accepted {_pct(c['limit'])}"
            )
    return f"{label} is better on the primary metric, but " + "; ".join(parts) + "."


def _answer(
    action: str,
    reason: str,
    variant_id: int | None,
    checks: list[dict[str, Any]],
    limits: Mapping[str, float],
) -> dict[str, Any]:
    return {
        "action": action,
        "reason": reason,
        "variant_id": variant_id,
        "acceptable_regressions": dict(limits),
        "checks": checks,
    }
