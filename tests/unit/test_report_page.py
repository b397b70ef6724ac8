"""The report page's rendering, from analysis answers (no DynamoDB, no browser)."""

from __future__ import annotations

import re
from dataclasses import replace
from typing import Any

from ab_testing.report_page import render_report
from ab_testing.report_svg import BAD, GOOD, NEUTRAL, IntervalRow, interval_chart
from ab_testing.stats import StatisticalAnalyzer
from tests.unit.test_stats_verdict import fewshot


def analysis(**kwargs: Any) -> dict[str, Any]:
    return StatisticalAnalyzer().analyze(fewshot(min_sample_size=100, **kwargs))


def test_good_and_bad_differ_by_more_than_colour() -> None:
    # Given one better, one worse and one unclear treatment
    rows = [
        IntervalRow("A", 5.0, 1.0, 9.0, GOOD),
        IntervalRow("B", -5.0, -9.0, -1.0, BAD),
        IntervalRow("C", 1.0, -3.0, 5.0, NEUTRAL),
    ]
    svg = interval_chart(rows, "lift")
    lines = re.findall(r"<line [^>]*stroke-width=\"3\"[^>]*>", svg)
    # Then each has its own marker shape, line style and word, not only its own colour
    assert len(lines) == 3
    assert "stroke-dasharray" not in lines[0]
    assert 'stroke-dasharray="6 3"' in lines[1] and 'stroke-dasharray="1 3"' in lines[2]
    assert svg.count("<polygon") == 2 and svg.count("<circle") == 1
    assert "better" in svg and "worse" in svg and "no clear difference" in svg


def test_page_has_every_part_and_escapes_names() -> None:
    # Given the few-shot analysis, two stored insights, and a hostile variant name
    current = analysis()
    current["variant_stats"]["2"]["name"] = "<script>alert(1)</script>"
    history = [
        {"analysed_at": "2026-01-01T00:00:00Z", "analysis": analysis()},
        {"analysed_at": "2026-01-02T00:00:00Z", "analysis": analysis()},
    ]
    # When rendered
    page = render_report(
        {"id": 1, "name": "Few-shot", "status": "running"}, current, history, "2026-01-03T00:00:00Z"
    )
    # Then it has the verdict, one section per metric, the time charts, SRM and guardrails
    assert page.count('<section class="metric"') == 4
    assert "<script>" not in page
    # And the decision and the trade-off come first, in the words `abtest analyze` prints
    from html import escape

    from ab_testing.report_data import decision_lines

    verdict = page[page.index('id="verdict"') : page.index('<section class="metric"')]
    _, lines = decision_lines(current)
    assert lines[0].startswith("Needs a decision: Variant 2 (<script>")  # escaped below
    assert all(escape(line) in verdict for line in lines)
    assert "&lt;script&gt;" in page
    for part in ("over time", "Units per variant", "Sample-ratio check", "Guardrails", "Warnings"):
        assert part in page
    # And the lift-over-time chart shows both bands (fixed and sequential) over three points
    over_time = page.split("over time</h2>")[1].split("<h2>")[0]
    assert (
        over_time.count('fill-opacity="0.12"') == 1 and over_time.count('fill-opacity="0.28"') == 1
    )
    assert "min_sample_size" in page and "@media print" in page and "max-width: 700px" in page


def test_page_for_a_sequential_experiment_plots_differences() -> None:
    # Given a sequential analysis (its interval bounds the difference, not the lift)
    current = analysis(analysis_method="sequential")
    page = render_report({"id": 1, "name": "x"}, current, [], "2026-01-03T00:00:00Z")
    # Then the metric charts say "Difference" rather than "Lift"
    assert "Difference with its 95% interval" in page


def test_page_without_data_still_renders() -> None:
    inp = fewshot()
    empty = replace(inp, variants=[replace(v, metrics={}) for v in inp.variants])
    current = StatisticalAnalyzer().analyze(empty)
    page = render_report({"id": 1, "name": "x"}, current, [], "2026-01-03T00:00:00Z")
    assert "Keep running: not enough data yet." in page and page.endswith("</html>")


def test_axis_labels_are_short_and_never_in_exponent_notation() -> None:
    # Given values a units chart meets: hundreds to millions, and small differences
    from ab_testing.report_svg import _nice

    cases = {
        1040.0: "1,040",
        25300.0: "25.3k",
        1_200_000.0: "1.2M",
        -0.707: "-0.707",
        0.0: "0",
        999.0: "999",
    }
    # Then each label is readable in six characters at most (a longer one is cut at the axis)
    for value, label in cases.items():
        assert _nice(value) == label
        assert len(label) <= 6 and "e+" not in label


def test_page_shows_the_cuped_adjusted_read_out_that_decided_beside_the_unadjusted() -> None:
    from html import escape

    from ab_testing.report_data import decision_lines
    from tests.unit.test_stats_cuped_decision import cuped_experiment

    # Given an analysis decided on CUPED-adjusted comparisons
    limits = {"cost_usd": 0.5, "cost_per_resolution": 0.5}
    current = StatisticalAnalyzer().analyze(cuped_experiment(acceptable_regressions=limits))
    page = render_report({"id": 7, "name": "CUPED"}, current, [], "2026-01-03T00:00:00Z")
    for name, metric in current["metrics"].items():
        section = page.split(f'data-metric="{name}"')[1].split("</section>")[0]
        (c,) = metric["comparisons"]
        adjusted = c["cuped"]
        # Then each metric's table has a labelled row per read-out, the adjusted lift and
        # interval beside the unadjusted ones
        for label, r in (("unadjusted", c), ("CUPED-adjusted", adjusted)):
            low, high = r["relative_ci"]
            row = (
                f"<tr><td>Variant 2 (Few-shot), {label}</td>"
                f"<td>{r['absolute_difference']:.4g}</td><td>{r['relative_lift'] * 100:+.1f}%</td>"
                f"<td>{low * 100:+.1f}% to {high * 100:+.1f}%</td>"
            )
            assert row in section
            # And its chart has both rows, the read-out named under the variant
            chart = section.split("<table>")[0]
            assert 'class="label">Variant 2 (Few-shot)</text>' in chart
            assert f'class="axis">{label}</text>' in chart
    # And the decision names the adjusted read-out; its numbers are those of the labelled rows
    verdict = page[page.index('id="verdict"') : page.index('<section class="metric"')]
    _, lines = decision_lines(current)
    assert all(escape(line) in verdict for line in lines)
    assert lines[-1] == (
        "Decided on the CUPED-adjusted read-out of resolution_rate, cost_usd and "
        "cost_per_resolution: the rows labelled CUPED-adjusted in the tables."
    )
    ratio = current["metrics"]["cost_per_resolution"]["comparisons"][0]["cuped"]
    low, high = ratio["relative_ci"]
    trade_off = lines[2]
    assert f"{ratio['relative_lift'] * 100:+.1f}%".replace("-", "\u2212") in trade_off
    assert f"{low * 100:+.1f}% to {high * 100:+.1f}%".replace("-", "\u2212") in trade_off
    lift = current["metrics"]["resolution_rate"]["comparisons"][0]["cuped"]["relative_lift"]
    assert f"shows {lift * 100:.1f}% improvement" in current["recommendation_reason"]


def test_page_shows_one_unlabelled_row_when_cuped_is_withheld() -> None:
    from tests.unit.test_stats_cuped_decision import cuped_experiment

    # Given a covariate for 90% of the control and 10% of the treatment
    current = StatisticalAnalyzer().analyze(cuped_experiment((0.9, 0.1)))
    page = render_report({"id": 7, "name": "CUPED"}, current, [], "2026-01-03T00:00:00Z")
    # Then the tables show the unadjusted read-out only, and the warnings say why
    assert "CUPED-adjusted" not in page and ", unadjusted" not in page
    assert page.count("<li>CUPED on ") == 3 and "is withheld" in page


def test_page_says_who_is_in_the_experiment() -> None:
    # Given an experiment for Pro users on half of a layer, with a hostile value in its rule
    experiment = {
        "id": 3,
        "name": "Pro prompt",
        "status": "running",
        "target_percentage": 80.0,
        "targeting": {"plan": {"$in": ["pro", "<b>team</b>"]}},
        "layer": {"name": "support-bot", "range": [0.0, 0.5]},
        "segment_attributes": ["plan"],
    }

    # When its page is rendered
    page = render_report(experiment, analysis(), [], "2026-01-03T00:00:00Z")

    # Then it shows the share, the layer range and the condition, escaped
    who = page.split("<h2>Who is in it</h2>")[1]
    assert "80% of the units" in who and "support-bot" in who and "[0, 0.5)" in who
    assert '"$in"' in who and "&lt;b&gt;team&lt;/b&gt;" in who and "<b>team</b>" not in who
    assert "Segments kept with each unit: plan" in who and "/experiments/3/segments" in who

    # And an experiment without targeting says every unit may enter
    plain = render_report({"id": 1, "name": "x"}, analysis(), [], "2026-01-03T00:00:00Z")
    assert "No targeting: every unit may enter." in plain

    # And a layer's holdout says what its groups are
    holdout = {"id": 9, "name": "h", "layer": {"name": "bot", "range": [0.9, 1], "holdout": True}}
    held = render_report(holdout, analysis(), [], "2026-01-03T00:00:00Z")
    who = held.split("<h2>Who is in it</h2>")[1]
    assert "the holdout of layer <b>bot</b>" in who and "[0.9, 1)" in who
