"""What the report page shows, taken from an analysis answer and the insight history.

Pure functions over the JSON answers (dicts), so the page can be rendered from a live analysis,
from stored insights, or from a file: nothing here reads DynamoDB or loads scipy.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from ab_testing.report_svg import BAD, GOOD, NEUTRAL, IntervalRow
from ab_testing.stats.messages import joined


@dataclass(frozen=True)
class Point:
    """One analysis of the history, reduced to what the time charts need."""

    at: datetime
    analysis: Mapping[str, Any]


def parse_time(stamp: str) -> datetime:
    return datetime.fromisoformat(stamp.replace("Z", "+00:00"))


def variant_names(analysis: Mapping[str, Any]) -> dict[str, str]:
    """variant id (as a string) -> "Variant 2 (Few-shot)"."""
    out = {}
    for vid, stats in (analysis.get("variant_stats") or {}).items():
        name = str(stats.get("name") or "").strip()
        out[str(vid)] = f"Variant {vid} ({name})" if name else f"Variant {vid}"
    return out


def verdict_of(comparison: Mapping[str, Any], direction: str) -> str:
    """GOOD, BAD or NEUTRAL: significant and in the metric's good direction, or not."""
    diff = comparison.get("absolute_difference")
    if not comparison.get("is_significant") or diff is None or diff == 0:
        return NEUTRAL
    better = diff > 0 if direction == "higher" else diff < 0
    return GOOD if better else BAD


ADJUSTED = "CUPED-adjusted"
UNADJUSTED = "unadjusted"


def readouts(comparison: Mapping[str, Any]) -> list[tuple[str, Mapping[str, Any]]]:
    """The read-outs of one comparison to show, each with its label: the comparison alone, or,
    where the decision used the CUPED-adjusted read-out, the unadjusted one and the adjusted one
    beside it (same keys: differences, lifts, intervals, p-values, is_significant)."""
    cuped = comparison.get("cuped")
    if isinstance(cuped, Mapping) and cuped.get("decides"):
        return [(UNADJUSTED, comparison), (ADJUSTED, cuped)]
    return [("", comparison)]


def labelled(name: str, label: str) -> str:
    """ "Variant 2 (Few-shot), CUPED-adjusted"."""
    return f"{name}, {label}" if label else name


def adjusted_metrics(analysis: Mapping[str, Any]) -> list[str]:
    """The metrics whose decision used the CUPED-adjusted read-out."""
    return [
        str(name)
        for name, metric in (analysis.get("metrics") or {}).items()
        if any(len(readouts(c)) > 1 for c in (metric or {}).get("comparisons") or [])
    ]


def interval_rows(
    metric: Mapping[str, Any], names: Mapping[str, str], method: str
) -> tuple[list[IntervalRow], str]:
    """Each treatment's lift (percent) with its interval, or the difference when there is no
    lift; and the unit of the axis ("%" or "")."""
    shown = [
        (names.get(str(c.get("variant_id")), f"Variant {c.get('variant_id')}"), tag, r)
        for c in metric.get("comparisons") or []
        for tag, r in readouts(c)
    ]
    direction = str(metric.get("direction") or "higher")
    relative = all(r.get("relative_lift") is not None for _, _, r in shown) and method != (
        "sequential"
    )
    rows = []
    for label, tag, c in shown:
        verdict = verdict_of(c, direction)
        if relative:
            ci = c.get("relative_ci") or [None, None]
            scale = 100.0
            estimate = c["relative_lift"]
        else:
            seq = (c.get("sequential") or {}).get("ci") if method == "sequential" else None
            ci = seq or c.get("absolute_ci") or [None, None]
            scale = 1.0
            estimate = c.get("absolute_difference")
        if estimate is None:
            continue
        low, high = (None if v is None else v * scale for v in ci)
        rows.append(IntervalRow(label, estimate * scale, low, high, verdict, tag))
    return rows, "%" if relative else ""


def history_points(
    insights: Sequence[Mapping[str, Any]], current: Mapping[str, Any], now: str
) -> list[Point]:
    """The stored analyses, oldest first, and the current one at the end."""
    points = []
    for item in insights:
        analysis = item.get("analysis")
        stamp = item.get("analysed_at")
        if isinstance(analysis, Mapping) and isinstance(stamp, str):
            points.append(Point(parse_time(stamp), analysis))
    points.sort(key=lambda p: p.at)
    points.append(Point(parse_time(now), current))
    return points


Band = list[tuple[float, float, float]]


def difference_series(
    points: Sequence[Point], metric: str, variant_id: str
) -> tuple[list[tuple[float, float]], Band, Band]:
    """(x days since the first point, difference), the fixed interval and the sequential band."""
    start = points[0].at
    line: list[tuple[float, float]] = []
    fixed: Band = []
    band: Band = []
    for p in points:
        x = (p.at - start).total_seconds() / 86400
        comparisons = ((p.analysis.get("metrics") or {}).get(metric) or {}).get("comparisons")
        c = next((c for c in comparisons or [] if str(c.get("variant_id")) == variant_id), None)
        if c is None or c.get("absolute_difference") is None:
            continue
        line.append((x, float(c["absolute_difference"])))
        if c.get("absolute_ci"):
            fixed.append((x, float(c["absolute_ci"][0]), float(c["absolute_ci"][1])))
        seq = (c.get("sequential") or {}).get("ci")
        if seq:
            band.append((x, float(seq[0]), float(seq[1])))
    return line, fixed, band


def units_series(points: Sequence[Point], variant_id: str) -> list[tuple[float, float]]:
    """(days since the first point, units assigned) of one variant."""
    start = points[0].at
    out = []
    for p in points:
        stats = (p.analysis.get("variant_stats") or {}).get(variant_id)
        if stats is None:
            continue
        units = stats.get("units_assigned")
        if units is None:
            units = stats.get("units") or 0
        out.append(((p.at - start).total_seconds() / 86400, float(units)))
    return out


DECISION_WORDS = {
    "ship": ("winner", "Ship {name}."),
    "do_not_ship": ("blocked", "Do not ship."),
    "needs_decision": ("wait", "Needs a decision: {name} gains on the primary metric at a cost."),
    "keep_running": ("wait", "Keep running: not enough data yet."),
}


def decision_lines(analysis: Mapping[str, Any]) -> tuple[str, list[str]]:
    """(kind, lines) of the declared decision rule, first on the page and in `abtest analyze`
    in the same words: what to do, why, then each trade-off line. An analysis without a
    decision (an older answer) gets its headline and reason."""
    decision = analysis.get("decision")
    if not isinstance(decision, Mapping) or decision.get("action") not in DECISION_WORDS:
        kind, words = headline(analysis)
        return kind, [words, str(analysis.get("recommendation_reason") or "")]
    kind, words = DECISION_WORDS[str(decision["action"])]
    variant = decision.get("variant_id")
    name = variant_names(analysis).get(str(variant), f"Variant {variant}")
    trade_offs = [str(line) for line in analysis.get("trade_offs") or []]
    lines = [words.format(name=name), str(decision.get("reason") or ""), *trade_offs]
    adjusted = adjusted_metrics(analysis)
    if adjusted:
        lines.append(
            f"Decided on the {ADJUSTED} read-out of {joined(adjusted)}: the rows labelled "
            f"{ADJUSTED} in the tables."
        )
    return kind, lines


def headline(analysis: Mapping[str, Any]) -> tuple[str, str]:
    """(kind, plain words) of the verdict: kind is "winner", "blocked" or "wait"."""
    winner = analysis.get("recommended_winner_id")
    names = variant_names(analysis)
    if winner is not None:
        return "winner", f"Recommend {names.get(str(winner), f'Variant {winner}')}."
    srm = analysis.get("srm") or {}
    if srm.get("flagged"):
        return "blocked", "Do not trust this experiment yet: the traffic split is off."
    if any(g.get("regressed") for g in analysis.get("guardrails") or []):
        return "blocked", "No winner: a guardrail metric got significantly worse."
    return "wait", "No winner yet: keep the control for now."
