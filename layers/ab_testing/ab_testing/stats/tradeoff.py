"""The trade-off line: what a treatment gains on the success metric and pays in cost or latency.

"Variant 2: +16.0 points resolution_rate at +38.0% cost_usd: cost_per_resolution -8.0%
(95% interval -14.0% to -2.0%)". Shown when the primary metric is a success metric and a
secondary metric is a cost or latency (lower is better, named for cost, latency, tokens or
time); the ratio part appears when a ratio metric divides that cost by the success metric.
The numbers are those the decision used: where that was the CUPED-adjusted read-out, the line
ends with "(CUPED-adjusted)" (naming the metrics when only some of them were).
"""

from __future__ import annotations

from collections.abc import Collection, Mapping, Sequence

from .comparisons import TreatmentResult
from .inputs import MetricSpec, RatioSpec

COST_WORDS = ("cost", "latency", "token", "time")


def _is_cost(spec: MetricSpec) -> bool:
    return spec.direction == "lower" and any(w in spec.name for w in COST_WORDS)


def _pct(value: float | None) -> str | None:
    return None if value is None else f"{value * 100:+.1f}%".replace("-", "\u2212")


def _gain(spec: MetricSpec, r: TreatmentResult) -> str | None:
    if spec.kind == "binary" and r.welch.difference is not None:
        points = f"{r.welch.difference * 100:+.1f}".replace("-", "\u2212")
        return f"{points} points {spec.name}"
    lift = _pct(r.welch.relative_lift)
    return f"{lift} {spec.name}" if lift else None


def trade_off_lines(
    specs: Sequence[MetricSpec],
    results: Mapping[str, Sequence[TreatmentResult]],
    ratios: Sequence[RatioSpec],
    confidence: float,
    adjusted: Collection[str] = (),
) -> list[str]:
    """One line per treatment, or none when the experiment has no such pair of metrics.
    ``adjusted``: the metrics whose ``results`` are CUPED-adjusted."""
    primary = specs[0]
    if primary.kind == "ratio" or _is_cost(primary):
        return []
    cost = next((s for s in specs[1:] if s.kind != "ratio" and _is_cost(s)), None)
    if cost is None:
        return []
    ratio = next(
        (r for r in ratios if r.numerator == cost.name and r.denominator == primary.name), None
    )
    costs = {r.variant_id: r for r in results.get(cost.name, ())}
    per_ratio = {r.variant_id: r for r in results.get(ratio.name, ())} if ratio else {}
    lines = []
    for r in results.get(primary.name, ()):
        gain, paid = _gain(primary, r), costs.get(r.variant_id)
        price = _pct(paid.welch.relative_lift) if paid else None
        if gain is None or price is None:
            continue
        line = f"Variant {r.variant_id}: {gain} at {price} {cost.name}"
        ratio_result = per_ratio.get(r.variant_id)
        shown = [primary.name, cost.name]
        if ratio is not None and ratio_result is not None:
            lift = _pct(ratio_result.welch.relative_lift)
            ci = ratio_result.welch.relative_ci
            if lift is not None:
                shown.append(ratio.name)
                line += f": {ratio.name} {lift}"
                if ci is not None:
                    line += f" ({confidence * 100:g}% interval {_pct(ci[0])} to {_pct(ci[1])})"
        lines.append(line + _label([name for name in shown if name in adjusted], len(shown)))
    return lines


def _label(adjusted: Sequence[str], shown: int) -> str:
    if not adjusted:
        return ""
    if len(adjusted) == shown:
        return " (CUPED-adjusted)"
    return f" (CUPED-adjusted: {', '.join(adjusted)})"
