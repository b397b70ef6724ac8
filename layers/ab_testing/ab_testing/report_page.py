"""The report page: one self-contained HTML document (inline CSS and SVG, no scripts, no
fonts or images from elsewhere), so it opens offline, from a file or from an S3 bucket alike.

It reads well on a phone (one column below 700 px, charts scale with their viewBox) and in
print (@media print: no backgrounds, no sections split across pages).
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from html import escape
from typing import Any

from ab_testing import report_data as data
from ab_testing.report_svg import SERIES, WORDS, Series, interval_chart, line_chart, marker
from ab_testing.stats.messages import RELATIVE_CI_UNBOUNDED

CSS = """
:root { --fg: #1a1a1a; --muted: #555; --line: #ddd; --good: #0072B2; --bad: #D55E00; }
* { box-sizing: border-box; }
body { font-family: system-ui, -apple-system, "Segoe UI", Roboto, sans-serif; color: var(--fg);
  margin: 0 auto; max-width: 980px; padding: 16px; line-height: 1.45; }
h1 { font-size: 1.6rem; margin: 0.2em 0; } h2 { font-size: 1.25rem; margin-top: 1.6em; }
h3 { font-size: 1.05rem; margin-bottom: 0.3em; }
.meta { color: var(--muted); font-size: 0.9rem; }
.verdict { border: 3px solid var(--line); border-radius: 8px; padding: 12px 16px; margin: 16px 0; }
.verdict.winner { border-color: var(--good); } .verdict.blocked { border-color: var(--bad); }
.verdict .headline { font-size: 1.3rem; font-weight: 700; margin: 0 0 6px; }
.warnings li { margin: 4px 0; } .warnings li::marker { content: "\\26A0\\FE0F  "; }
section.metric { border-top: 1px solid var(--line); padding-top: 6px; page-break-inside: avoid;
  break-inside: avoid; }
svg.chart { width: 100%; height: auto; max-width: 760px; display: block; }
svg .axis { font-size: 14px; fill: #444; } svg .label { font-size: 15px; fill: #111; }
svg .value { font-size: 14px; fill: #111; }
table { border-collapse: collapse; width: 100%; font-size: 0.9rem; margin: 6px 0; }
th, td { border-bottom: 1px solid var(--line); padding: 4px 6px; text-align: right; }
th:first-child, td:first-child { text-align: left; }
.tag { display: inline-block; border: 1px solid currentColor; border-radius: 4px;
  padding: 0 5px; font-size: 0.8rem; margin-left: 6px; }
.good { color: var(--good); } .bad { color: var(--bad); } .neutral { color: var(--muted); }
.key svg { vertical-align: middle; }
.scroll { overflow-x: auto; }
pre.rule { overflow-x: auto; background: #f6f6f6; padding: 8px; font-size: 0.85rem; }
@media (max-width: 700px) { body { padding: 8px; } h1 { font-size: 1.3rem; }
  table { font-size: 0.8rem; } }
@media print { body { max-width: none; padding: 0; } .verdict { border-width: 2px; }
  section, .verdict, table, svg { page-break-inside: avoid; break-inside: avoid; }
  a { color: inherit; text-decoration: none; } }
"""


def _pct(value: Any) -> str:
    return "–" if value is None else f"{value * 100:+.1f}%"


def _num(value: Any) -> str:
    if value is None:
        return "–"
    if isinstance(value, int):
        return f"{value:,}"
    return f"{value:.4g}"


def _p(value: Any) -> str:
    if value is None:
        return "–"
    return "< 0.0001" if value < 0.0001 else f"{value:.4f}"


def _key() -> str:
    items = []
    for verdict in ("good", "bad", "neutral"):
        shape = marker(verdict, 8, 8, 5)
        items.append(
            f'<span class="{verdict}"><svg width="16" height="16" aria-hidden="true">{shape}'
            f"</svg> {WORDS[verdict]}</span>"
        )
    return '<p class="key meta">Key: ' + " · ".join(items) + "</p>"


def _verdict(analysis: Mapping[str, Any]) -> str:
    kind, lines = data.decision_lines(analysis)
    first, *rest = lines
    detail = "".join(f"<p>{escape(line)}</p>" for line in rest if line)
    primary = str(analysis.get("recommendation_reason") or "")
    if analysis.get("decision") and primary:
        detail += f'<p class="meta">Primary metric: {escape(primary)}</p>'
    return (
        f'<div class="verdict {kind}" id="verdict"><p class="headline">{escape(first)}</p>'
        f"{detail}</div>"
    )


def _warnings(analysis: Mapping[str, Any]) -> str:
    warnings = analysis.get("warnings") or []
    if not warnings:
        return "<h2>Warnings</h2><p>None.</p>"
    items = "".join(f"<li>{escape(str(w))}</li>" for w in warnings)
    return f'<h2>Warnings</h2><ul class="warnings">{items}</ul>'


def _comparison_table(metric: Mapping[str, Any], names: Mapping[str, str]) -> str:
    rows = []
    stats = metric.get("variant_stats") or {}
    for vid, s in stats.items():
        rows.append(
            f"<tr><td>{escape(names.get(vid, vid))}</td><td>{_num(s.get('mean'))}</td>"
            f"<td>{_num(s.get('units'))}</td><td>{_num(s.get('count'))}</td></tr>"
        )
    head = "<tr><th>Variant</th><th>Mean</th><th>Units</th><th>Results</th></tr>"
    table = f'<div class="scroll"><table>{head}{"".join(rows)}</table></div>'
    comp = []
    shown = [
        (data.labelled(names.get(str(c.get("variant_id")), ""), tag), r)
        for c in metric.get("comparisons") or []
        for tag, r in data.readouts(c)
    ]
    for label, c in shown:
        verdict = data.verdict_of(c, str(metric.get("direction") or "higher"))
        ci = c.get("relative_ci") or [None, None]
        interval = f"{_pct(ci[0])} to {_pct(ci[1])}"
        if c.get("relative_ci_reason") == RELATIVE_CI_UNBOUNDED:
            interval = "unbounded"
        comp.append(
            f"<tr><td>{escape(label)}</td>"
            f"<td>{_num(c.get('absolute_difference'))}</td><td>{_pct(c.get('relative_lift'))}</td>"
            f"<td>{interval}</td><td>{_p(c.get('p_value'))}</td>"
            f"<td>{_p((c.get('sequential') or {}).get('p_value'))}</td>"
            f'<td class="{verdict}">{WORDS[verdict]}</td></tr>'
        )
    head = (
        "<tr><th>vs control</th><th>Difference</th><th>Lift</th><th>Lift interval</th>"
        "<th>p</th><th>Always-valid p</th><th>Reading</th></tr>"
    )
    return table + f'<div class="scroll"><table>{head}{"".join(comp)}</table></div>'


def _metric_section(
    name: str, metric: Mapping[str, Any], analysis: Mapping[str, Any], primary: bool
) -> str:
    names = data.variant_names(analysis)
    method = str(analysis.get("analysis_method") or "fixed_horizon")
    rows, unit = data.interval_rows(metric, names, method)
    direction = "higher" if metric.get("direction") == "higher" else "lower"
    role = "primary" if primary else ("guardrail" if metric.get("guardrail") else "secondary")
    what = "Lift" if unit == "%" else "Difference"
    level = f"{float(analysis.get('confidence_level') or 0.95) * 100:g}%"
    title = f"{name}: {what.lower()} of each treatment vs control, {level} interval"
    chart = interval_chart(rows, title, unit) if rows else "<p>No comparison yet.</p>"
    return (
        f'<section class="metric" data-metric="{escape(name)}"><h3>{escape(name)}'
        f'<span class="tag">{role}</span><span class="tag">{direction} is better</span></h3>'
        f'<p class="meta">{escape(what)} with its {level} interval against zero.</p>'
        f"{chart}{_comparison_table(metric, names)}</section>"
    )


def _over_time(analysis: Mapping[str, Any], points: Sequence[data.Point]) -> str:
    primary = str(analysis.get("primary_metric") or "")
    names = data.variant_names(analysis)
    metric = (analysis.get("metrics") or {}).get(primary) or {}
    charts = []
    for c in metric.get("comparisons") or []:
        vid = str(c.get("variant_id"))
        line, fixed, band = data.difference_series(points, primary, vid)
        if not line:
            continue
        series = Series(names.get(vid, vid), line, (band, fixed), SERIES[0])
        title = f"{primary}: difference of {names.get(vid, vid)} from control over time"
        charts.append(
            f"<h3>{escape(names.get(vid, vid))}</h3>"
            + line_chart([series], title, x_labels=_span(points), zero_line=True)
        )
    text = (
        '<p class="meta">Line: difference from control at each analysis. Dark band: the '
        "fixed-horizon interval (valid at one planned look). Light band: the always-valid "
        "sequential band (valid at every look).</p>"
    )
    return f"<h2>{escape(primary)} over time</h2>{text}{''.join(charts) or '<p>No history.</p>'}"


def _span(points: Sequence[data.Point]) -> tuple[str, str]:
    first, last = points[0].at, points[-1].at
    return first.strftime("%Y-%m-%d %H:%M"), last.strftime("%Y-%m-%d %H:%M")


def _units(analysis: Mapping[str, Any], points: Sequence[data.Point]) -> str:
    names = data.variant_names(analysis)
    series = [
        Series(names[vid], data.units_series(points, vid), (), SERIES[i % len(SERIES)])
        for i, vid in enumerate(names)
    ]
    power = analysis.get("power") or {}
    refs = [(float(analysis.get("required_sample_size") or 0), "min_sample_size")]
    needed = power.get("required_units_per_variant")
    if needed:
        refs.append((float(needed), f"needed for the MDE at {power.get('power', 0.8):.0%} power"))
    chart = line_chart(
        series, "Units per variant over time", x_labels=_span(points), reference=refs, floor=0.0
    )
    planned = power.get("power_at_planned_size")
    note = (
        f"<p>Power at the planned size ({_num(power.get('planned_units_per_variant'))} units "
        f"per variant) to detect a {float(power.get('minimum_detectable_effect') or 0):.0%} "
        f"relative change: {planned:.0%}.</p>"
        if planned is not None
        else ""
    )
    return f"<h2>Units per variant</h2>{chart}{note}"


def _srm(analysis: Mapping[str, Any]) -> str:
    srm = analysis.get("srm") or {}
    names = data.variant_names(analysis)
    rows = "".join(
        f"<tr><td>{escape(names.get(vid, vid))}</td><td>{_num(obs)}</td>"
        f"<td>{_num((srm.get('expected') or {}).get(vid))}</td></tr>"
        for vid, obs in (srm.get("observed") or {}).items()
    )
    status = (
        '<p class="bad">&#x2716; Mismatch: the split of units does not match the allocation.</p>'
        if srm.get("flagged")
        else '<p class="good">&#x2714; The split of units matches the allocation.</p>'
    )
    return (
        f"<h2>Sample-ratio check</h2>{status}<p class='meta'>Chi-square p = "
        f"{_p(srm.get('p_value'))} (flagged below {srm.get('threshold')}).</p>"
        f'<div class="scroll"><table><tr><th>Variant</th><th>Units</th><th>Expected</th></tr>'
        f"{rows}</table></div>"
    )


def _guardrails(analysis: Mapping[str, Any]) -> str:
    names = data.variant_names(analysis)
    adjusted = set(data.adjusted_metrics(analysis))

    def metric(name: str) -> str:  # guardrails decided on CUPED show its numbers: say so
        return escape(data.labelled(name, data.ADJUSTED if name in adjusted else ""))

    rows = "".join(
        f"<tr><td>{metric(str(g.get('metric')))}</td>"
        f"<td>{escape(names.get(str(g.get('variant_id')), ''))}</td>"
        f"<td>{_pct(g.get('relative_lift'))}</td><td>{_p(g.get('p_value'))}</td>"
        + (
            '<td class="bad">&#x2716; regressed</td>'
            if g.get("regressed")
            else '<td class="good">&#x2714; holds</td>'
        )
        + "</tr>"
        for g in analysis.get("guardrails") or []
    )
    if not rows:
        return "<h2>Guardrails</h2><p>No guardrail metrics declared.</p>"
    head = "<tr><th>Metric</th><th>Variant</th><th>Lift</th><th>p</th><th>Status</th></tr>"
    return f'<h2>Guardrails</h2><div class="scroll"><table>{head}{rows}</table></div>'


def _who(experiment: Mapping[str, Any]) -> str:
    """Who may enter: the share of units, the targeting condition and the layer range."""
    parts = []
    if experiment.get("target_percentage") is not None:
        parts.append(f"{_num(experiment['target_percentage'])}% of the units it may take")
    layer = experiment.get("layer")
    if layer and layer.get("holdout"):
        start, end = layer["range"]
        parts.append(
            f"the holdout of layer <b>{escape(str(layer['name']))}</b>: the units at positions "
            f"[{_num(start)}, {_num(end)}) get the control of every experiment of the layer; "
            "this report compares them (the control) with the rest of the layer"
        )
    elif layer:
        start, end = layer["range"]
        parts.append(
            f"layer <b>{escape(str(layer['name']))}</b>, positions [{_num(start)}, {_num(end)})"
        )
    condition = experiment.get("targeting")
    text = json.dumps(condition, ensure_ascii=False, indent=1)
    rule = (
        f"<pre class='rule'>{escape(text, quote=False)}</pre>"
        if condition
        else "<p>No targeting: every unit may enter.</p>"
    )
    kept = experiment.get("segment_attributes") or []
    segments = (
        f"<p>Segments kept with each unit: {escape(', '.join(kept))} (a breakdown per value: "
        f"GET /api/v1/experiments/{escape(str(experiment.get('id')))}/segments).</p>"
        if kept
        else ""
    )
    return f"<h2>Who is in it</h2><p>{' · '.join(parts)}</p>{rule}{segments}"


def render_report(
    experiment: Mapping[str, Any],
    analysis: Mapping[str, Any],
    insights: Sequence[Mapping[str, Any]],
    now: str,
) -> str:
    """The whole page for one experiment, its current analysis and its insight history."""
    points = data.history_points(insights, analysis, now)
    primary = str(analysis.get("primary_metric") or "")
    metrics = analysis.get("metrics") or {}
    sections = (
        [_metric_section(primary, metrics[primary], analysis, True)] if primary in (metrics) else []
    )
    sections += [
        _metric_section(name, m, analysis, False) for name, m in metrics.items() if name != primary
    ]
    title = f"{experiment.get('name', 'Experiment')} — A/B test report"
    meta = (
        f"Experiment {escape(str(experiment.get('id')))} · {escape(str(experiment.get('status')))}"
        f" · {escape(str(experiment.get('experiment_type') or ''))} · method "
        f"{escape(str(analysis.get('analysis_method')))} · analysed {escape(now)}"
    )
    body = "".join(
        [
            f"<h1>{escape(str(experiment.get('name', '')))}</h1><p class='meta'>{meta}</p>",
            _verdict(analysis),
            _warnings(analysis),
            "<h2>Metrics</h2>",
            _key(),
            *sections,
            _over_time(analysis, points),
            _units(analysis, points),
            _srm(analysis),
            _guardrails(analysis),
            _who(experiment),
        ]
    )
    return (
        '<!DOCTYPE html><html lang="en"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        '<meta http-equiv="Content-Security-Policy" content="default-src \'none\'; '
        "style-src 'unsafe-inline'; img-src data:\">"
        f"<title>{escape(title)}</title><style>{CSS}</style></head><body>{body}</body></html>"
    )
