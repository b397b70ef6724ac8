"""Inline SVG charts of the report page: no scripts, no fonts, no requests elsewhere.

Colour says good (blue) or bad (vermillion), from the Okabe-Ito palette that readers with
any common colour-vision deficiency can tell apart; shape, line style and a text label say it
again for anyone who cannot see the colour (triangle up and solid line: better; triangle down
and dashed line: worse; circle and dotted line: no clear difference).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from html import escape

GOOD, BAD, NEUTRAL = "good", "bad", "neutral"
COLOURS = {GOOD: "#0072B2", BAD: "#D55E00", NEUTRAL: "#6b6b6b"}
DASHES = {GOOD: "", BAD: "6 3", NEUTRAL: "1 3"}
WORDS = {GOOD: "better", BAD: "worse", NEUTRAL: "no clear difference"}
SERIES = ("#0072B2", "#E69F00", "#009E73", "#CC79A7", "#56B4E9", "#D55E00", "#F0E442")


@dataclass(frozen=True)
class IntervalRow:
    """One treatment's estimate and interval on one metric."""

    label: str
    estimate: float
    low: float | None
    high: float | None
    verdict: str  # GOOD, BAD or NEUTRAL
    note: str = ""  # a second line under the label: which read-out ("CUPED-adjusted")


@dataclass(frozen=True)
class Series:
    """A line over time, with an optional band (low, high) at each point."""

    label: str
    points: Sequence[tuple[float, float]]  # (x, y)
    bands: Sequence[Sequence[tuple[float, float, float]]] = ()  # [(x, low, high)] per band
    colour: str = SERIES[0]


def _nice(value: float) -> str:
    """An axis label of at most six characters, never in exponent notation above 1: 1,040,
    25.3k, 1.2M (the label sits left of the axis and a longer one is cut off)."""
    size = abs(value)
    if size >= 1e6:
        return f"{value / 1e6:.3g}M"
    if size >= 1e4:
        return f"{value / 1e3:.3g}k"
    if size >= 1000:
        return f"{value:,.0f}"
    return f"{value:.3g}"


def marker(verdict: str, x: float, y: float, size: float = 6.0) -> str:
    """Triangle up (better), triangle down (worse) or circle (no clear difference)."""
    colour = COLOURS[verdict]
    if verdict == NEUTRAL:
        return f'<circle cx="{x:.1f}" cy="{y:.1f}" r="{size * 0.8:.1f}" fill="{colour}"/>'
    sign = -1 if verdict == GOOD else 1
    pts = [
        (x, y + sign * size),
        (x - size, y - sign * size * 0.8),
        (x + size, y - sign * size * 0.8),
    ]
    coords = " ".join(f"{px:.1f},{py:.1f}" for px, py in pts)
    return f'<polygon points="{coords}" fill="{colour}"/>'


def _bounds(values: Sequence[float], include: float | None = None) -> tuple[float, float]:
    finite = [v for v in values if math.isfinite(v)]
    if include is not None:
        finite.append(include)
    lo, hi = (min(finite), max(finite)) if finite else (-1.0, 1.0)
    if lo == hi:
        lo, hi = lo - 1.0, hi + 1.0
    pad = (hi - lo) * 0.08
    return lo - pad, hi + pad


def interval_chart(rows: Sequence[IntervalRow], title: str, unit: str = "%") -> str:
    """A forest plot: each treatment's estimate and interval against a line at zero."""
    width, left, right, row_h, top = 640, 170, 20, 38, 30
    height = top + row_h * max(len(rows), 1) + 34
    values = [v for r in rows for v in (r.estimate, r.low, r.high) if v is not None]
    lo, hi = _bounds(values, 0.0)

    def sx(v: float) -> float:
        return left + (v - lo) / (hi - lo) * (width - left - right)

    parts = [
        f'<svg class="chart" viewBox="0 0 {width} {height}" role="img" '
        f'aria-label="{escape(title)}" xmlns="http://www.w3.org/2000/svg">',
        f"<title>{escape(title)}</title>",
        f'<line x1="{sx(0):.1f}" y1="{top - 10}" x2="{sx(0):.1f}" y2="{height - 30}" '
        'stroke="#222" stroke-width="1.2"/>',
        f'<text x="{sx(0):.1f}" y="{top - 14}" text-anchor="middle" class="axis">0 (no change)'
        "</text>",
    ]
    for i, r in enumerate(rows):
        y = top + row_h * i + row_h / 2
        colour = COLOURS[r.verdict]
        parts.append(
            f'<text x="{left - 10}" y="{y + (-3 if r.note else 4):.1f}" text-anchor="end" '
            f'class="label">{escape(r.label)}</text>'
        )
        if r.note:
            parts.append(
                f'<text x="{left - 10}" y="{y + 13:.1f}" text-anchor="end" class="axis">'
                f"{escape(r.note)}</text>"
            )
        if r.low is not None and r.high is not None:
            dash = f' stroke-dasharray="{DASHES[r.verdict]}"' if DASHES[r.verdict] else ""
            parts.append(
                f'<line x1="{sx(r.low):.1f}" y1="{y:.1f}" x2="{sx(r.high):.1f}" y2="{y:.1f}" '
                f'stroke="{colour}" stroke-width="3"{dash}/>'
            )
        parts.append(marker(r.verdict, sx(r.estimate), y))
        parts.append(
            f'<text x="{sx(r.estimate):.1f}" y="{y + 17:.1f}" text-anchor="middle" '
            f'class="value">{r.estimate:+.1f}{unit} {WORDS[r.verdict]}</text>'
        )
    for v in (lo, hi):
        parts.append(
            f'<text x="{sx(v):.1f}" y="{height - 12}" text-anchor="middle" class="axis">'
            f"{_nice(v)}{unit}</text>"
        )
    parts.append("</svg>")
    return "".join(parts)


def line_chart(
    series: Sequence[Series],
    title: str,
    *,
    x_labels: tuple[str, str] = ("", ""),
    reference: Sequence[tuple[float, str]] = (),
    zero_line: bool = False,
    floor: float | None = None,
) -> str:
    """Lines over time with shaded bands and dashed horizontal reference lines; ``floor`` is
    the lowest value the axis may show (0 for counts)."""
    width, left, right, top, bottom = 640, 60, 20, 20, 40
    height = 260
    xs = [x for s in series for x, _ in s.points]
    ys = [y for s in series for _, y in s.points]
    ys += [v for s in series for band in s.bands for _, a, b in band for v in (a, b)]
    ys += [r for r, _ in reference]
    x_lo, x_hi = (min(xs), max(xs)) if xs else (0.0, 1.0)
    if x_lo == x_hi:
        x_lo, x_hi = x_lo - 1.0, x_hi + 1.0
    y_lo, y_hi = _bounds(ys, 0.0 if zero_line else None)
    if floor is not None:
        y_lo = max(y_lo, floor)

    def sx(v: float) -> float:
        return left + (v - x_lo) / (x_hi - x_lo) * (width - left - right)

    def sy(v: float) -> float:
        return top + (y_hi - v) / (y_hi - y_lo) * (height - top - bottom)

    parts = [
        f'<svg class="chart" viewBox="0 0 {width} {height}" role="img" '
        f'aria-label="{escape(title)}" xmlns="http://www.w3.org/2000/svg">',
        f"<title>{escape(title)}</title>",
        f'<line x1="{left}" y1="{height - bottom}" x2="{width - right}" y2="{height - bottom}" '
        'stroke="#999"/>',
    ]
    if zero_line:
        parts.append(
            f'<line x1="{left}" y1="{sy(0):.1f}" x2="{width - right}" y2="{sy(0):.1f}" '
            'stroke="#222" stroke-width="1.2"/>'
        )
    for value, label in reference:
        parts.append(
            f'<line x1="{left}" y1="{sy(value):.1f}" x2="{width - right}" y2="{sy(value):.1f}" '
            'stroke="#222" stroke-dasharray="8 4"/>'
            f'<text x="{width - right}" y="{sy(value) - 4:.1f}" text-anchor="end" class="axis">'
            f"{escape(label)}</text>"
        )
    for s in series:
        for opacity, band in zip((0.12, 0.28), s.bands, strict=False):
            if len(band) < 1:
                continue
            upper = [f"{sx(x):.1f},{sy(b):.1f}" for x, _, b in band]
            lower = [f"{sx(x):.1f},{sy(a):.1f}" for x, a, _ in reversed(band)]
            parts.append(
                f'<polygon points="{" ".join(upper + lower)}" fill="{s.colour}" '
                f'fill-opacity="{opacity}" stroke="{s.colour}" stroke-opacity="0.5" '
                'stroke-dasharray="2 2"/>'
            )
        coords = " ".join(f"{sx(x):.1f},{sy(y):.1f}" for x, y in s.points)
        parts.append(
            f'<polyline points="{coords}" fill="none" stroke="{s.colour}" stroke-width="2"/>'
        )
        for x, y in s.points:
            parts.append(f'<circle cx="{sx(x):.1f}" cy="{sy(y):.1f}" r="2.5" fill="{s.colour}"/>')
    for value in (y_lo, y_hi):
        parts.append(
            f'<text x="{left - 6}" y="{sy(value) + 4:.1f}" text-anchor="end" class="axis">'
            f"{_nice(value)}</text>"
        )
    parts.append(
        f'<text x="{left}" y="{height - 18}" class="axis">{escape(x_labels[0])}</text>'
        f'<text x="{width - right}" y="{height - 18}" text-anchor="end" class="axis">'
        f"{escape(x_labels[1])}</text>"
    )
    parts.append(legend(series, width, height))
    parts.append("</svg>")
    return "".join(parts)


def legend(series: Sequence[Series], width: int, height: int) -> str:
    parts = []
    x = 60.0
    for s in series:
        parts.append(
            f'<rect x="{x:.0f}" y="{height - 11}" width="12" height="4" fill="{s.colour}"/>'
            f'<text x="{x + 16:.0f}" y="{height - 5}" class="axis">{escape(s.label)}</text>'
        )
        x += 24 + 7 * len(s.label)
    return "".join(parts)
