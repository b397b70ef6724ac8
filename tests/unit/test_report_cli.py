"""`abtest analyze` text and the request signing of `abtest report`/`analyze`."""

from __future__ import annotations

import pytest

from ab_testing.stats import StatisticalAnalyzer
from emulator.cli import build_parser
from emulator.report_cli import _signed, render_text
from tests.unit.test_stats_verdict import fewshot


def test_analyze_prints_the_verdict_warnings_and_a_table_per_metric() -> None:
    # Given the few-shot analysis
    answer = StatisticalAnalyzer().analyze(fewshot(min_sample_size=100))
    # When printed
    text = render_text(answer)
    # Then the verdict names the variant, every warning is listed, every metric has a table
    assert "Verdict: Recommend Variant 2 (Few-shot)" in text
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
