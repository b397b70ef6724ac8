"""`abtest analyze` text and the request signing of `abtest report`/`analyze`."""

from __future__ import annotations

import re

import pytest

from ab_testing.stats import StatisticalAnalyzer
from emulator.cli import build_parser
from emulator.report_cli import _signed, render_text
from tests.unit.test_stats_verdict import fewshot


def decision_words(answer: dict) -> list[str]:
    """The decision's lines as the report page has them, as `abtest analyze` prints them."""
    from ab_testing.report_data import decision_lines

    _, lines = decision_lines(answer)
    return [f"Decision: {lines[0]}", *lines[1:]]


def test_analyze_prints_the_verdict_warnings_and_a_table_per_metric() -> None:
    # Given the few-shot analysis
    answer = StatisticalAnalyzer().analyze(fewshot(min_sample_size=100))
    # When printed
    text = render_text(answer)
    # Then the decision comes first, in the report page's words: what to do (nobody declared
    # how much cost is acceptable), why, and the trade-off; every warning is listed, every
    # metric has a table
    assert text.splitlines()[1:4] == decision_words(answer)
    assert text.splitlines()[1].startswith("Decision: Needs a decision: Variant 2 (Few-shot)")
    assert "resolution_rate at +" in text.splitlines()[3]
    assert text.count("  ! ") == len(answer["warnings"])
    for metric in answer["metrics"]:
        assert f"\n{metric} (" in text
    row = next(line for line in text.splitlines() if line.startswith("Variant 2 (Few-shot)  "))
    assert "yes" in row


def test_commands_take_url_and_key_from_flags_or_environment(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("AB_URL", "https://api.example.test/prod")
    monkeypatch.setenv("AB_API_KEY", "k-env")
    args = build_parser().parse_args(["report", "3", "--out", "r.html"])
    assert (args.experiment_id, args.url, args.key, args.out) == (
        3,
        "https://api.example.test/prod",
        "k-env",
        "r.html",
    )
    args = build_parser().parse_args(["analyze", "3", "--url", "http://x", "--api-key", "k"])
    assert (args.url, args.key) == ("http://x", "k")


def test_sigv4_signs_for_execute_api(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "AKIDEXAMPLE")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "secret")
    headers = _signed("https://abc.execute-api.eu-west-1.amazonaws.com/prod/x", "eu-west-1", {})
    auth = headers["Authorization"]
    assert auth.startswith("AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/")
    assert "/eu-west-1/execute-api/aws4_request" in auth


def test_analyze_in_a_terminal_colours_the_moves_and_names_them() -> None:
    # Given the few-shot analysis, whose treatment is better on resolution_rate and
    # significantly worse on cost_usd
    import io

    from emulator.report_cli import render_rich

    answer = StatisticalAnalyzer().analyze(fewshot(min_sample_size=100))
    # When printed for a terminal
    out = io.StringIO()
    render_rich(answer, out, width=160)
    text = out.getvalue()
    # Then it is coloured (ANSI escapes), the verdict and every warning are there, and each
    # metric has its table; a coloured row also says in words which way it moved
    assert "\x1b[" in text
    plain = re.sub(r"\x1b\[[0-9;]*m", "", text)
    flowing = " ".join(plain.split())  # the terminal wraps long lines
    assert all(" ".join(line.split()) in flowing for line in decision_words(answer))
    assert flowing.index("Decision: ") < flowing.index("Primary metric: ")
    assert plain.count("  ! ") == len(answer["warnings"])
    lines = plain.splitlines()
    for metric in answer["metrics"]:
        assert any(line.startswith(f"{metric} (") for line in lines)
    after_cost = lines[next(i for i, line in enumerate(lines) if line.startswith("cost_usd (sec"))]
    cost_row = next(
        line
        for line in lines[lines.index(after_cost) :]
        if line.startswith("│ Variant 2 (Few-shot)")
    )
    assert cost_row.rstrip(" │").endswith("worse")
    assert "better" in plain


def test_analyze_writes_plain_text_when_not_a_terminal(monkeypatch: pytest.MonkeyPatch) -> None:
    import io
    import json as json_module

    from emulator import report_cli

    answer = StatisticalAnalyzer().analyze(fewshot(min_sample_size=100))
    body = json_module.dumps(answer, default=str).encode()
    monkeypatch.setattr(report_cli, "fetch", lambda args, path: (body, "application/json"))
    out = io.StringIO()  # not a terminal
    args = build_parser().parse_args(["analyze", "1"])
    assert report_cli.analyze(args, out) == 0
    assert "\x1b[" not in out.getvalue()
    assert "Decision: Needs a decision: Variant 2 (Few-shot)" in out.getvalue()


def test_analyze_prints_the_cuped_adjusted_rows_that_decided() -> None:
    from tests.unit.test_stats_cuped_decision import cuped_experiment

    # Given an analysis decided on CUPED-adjusted comparisons
    limits = {"cost_usd": 0.5, "cost_per_resolution": 0.5}
    answer = StatisticalAnalyzer().analyze(cuped_experiment(acceptable_regressions=limits))
    # When printed
    text = render_text(answer)
    lines = text.splitlines()
    # Then the decision's lines are the page's, with the one naming the adjusted read-out
    assert lines[1 : 1 + len(decision_words(answer))] == decision_words(answer)
    assert "Decided on the CUPED-adjusted read-out of resolution_rate" in text
    # And each table has the unadjusted row and the adjusted one, labelled, with its own lift
    # and interval
    for name, metric in answer["metrics"].items():
        table = text.split(f"\n{name} (")[1].split("\n\n")[0]
        (c,) = metric["comparisons"]
        for label, r in (("unadjusted", c), ("CUPED-adjusted", c["cuped"])):
            row = next(
                ln for ln in table.splitlines() if ln.startswith(f"Variant 2 (Few-shot), {label} ")
            )
            low, high = r["relative_ci"]
            cells = row.split()
            assert f"{r['relative_lift'] * 100:+.1f}%" in cells
            assert f"{low * 100:+.1f}% to {high * 100:+.1f}%" in " ".join(cells)
