"""The report page of a simulated experiment, rendered by headless Chromium from the local API.

The experiment is the issue's few-shot prompt (+16 points resolution, +38% cost and tokens,
+6% slower). The page is fetched and drawn by the system's chromium (`make chromium` installs
Debian's package), then checked: one chart per metric, the verdict names the variant, no
request leaves the page's origin, no console error. Screenshots land in the test's tmp_path and
in .artifacts/ for people to look at.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from tests.e2e.conftest import ROOT, LocalApi
from tests.fewshot_scenario import COST_METRIC, METRICS, users

CHROMIUM = Path("/usr/bin/chromium")
FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
ARTIFACTS = ROOT / ".artifacts"

pytestmark = pytest.mark.e2e


def simulate(api: LocalApi, rounds: int = 4, users_per_round: int = 50) -> int:
    """Create, start and fill the few-shot experiment; a scheduled analysis after each round.

    The arms' data come from seeded streams, so only the random split of the 200 users varies
    between runs; every split from 60/140 to 140/60 recommends the few-shot prompt with its
    three regressions, shipped under the declared acceptable regressions
    (tests/unit/test_stats_verdict.py checks that whole range)."""
    status, created = api.call(
        "POST",
        "/api/v1/experiments/",
        {
            "name": "Few-shot prompt",
            "experiment_type": "prompt",
            "primary_metric": "resolution_rate",
            "secondary_metrics": list(METRICS[1:]),
            "metrics": [COST_METRIC],
            "variants": [
                {"name": "Control", "is_control": True, "traffic_allocation": 50.0},
                {"name": "Few-shot", "is_control": False, "traffic_allocation": 50.0},
            ],
            "min_sample_size": 60,
            # the team accepts up to 100% worse on each cost: the rule can ship it
            "acceptable_regressions": {m: 1.0 for m in METRICS[1:]},
        },
    )
    assert status == 201, created
    experiment_id = int(created["id"])
    assert api.call("POST", f"/api/v1/experiments/{experiment_id}/start")[0] == 200
    # One result per metric and user keeps the run short (the unit test has repeat users).
    arms = {True: users("control", 10**6, 1, 1), False: users("treatment", 10**6, 2, 1)}
    user_id = 0
    for _ in range(rounds):
        for _ in range(users_per_round):
            user_id += 1
            status, variant = api.call(
                "POST",
                "/api/v1/experiments/get-variant",
                {"experiment_name": "Few-shot prompt", "user_id": user_id},
            )
            assert status == 200, variant
            values = next(arms[variant["variant"]["is_control"]])
            results = [
                {
                    "experiment_name": "Few-shot prompt",
                    "metric_name": metric,
                    "metric_value": value,
                    "user_id": user_id,
                }
                for metric, per_user in values.items()
                for value in per_user
            ]
            status, body = api.call(
                "POST", "/api/v1/experiments/record-results", {"results": results}
            )
            assert status in (200, 201), body
        status, run = api.call("POST", "/_local/scheduled-analysis")
        assert status == 200 and run["analysed"] == 1, run
    return experiment_id


def browse(url: str, shots: Path) -> dict[str, Any]:
    """Open the page in chromium; what it requested, logged, and shows."""
    from playwright.sync_api import sync_playwright

    origin = url.split("/api/")[0]
    seen: dict[str, Any] = {"requests": [], "errors": []}
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=str(CHROMIUM), args=FLAGS)
        try:
            page = browser.new_page(viewport={"width": 1100, "height": 900})
            page.on("request", lambda r: seen["requests"].append(r.url))
            page.on("console", lambda m: m.type == "error" and seen["errors"].append(m.text))
            page.on("pageerror", lambda e: seen["errors"].append(str(e)))
            page.goto(url, wait_until="load")
            page.screenshot(path=str(shots / "report.png"), full_page=True)
            seen["verdict"] = page.inner_text("#verdict")
            seen["sections"] = page.eval_on_selector_all(
                "section.metric",
                "els => els.map(e => [e.dataset.metric, e.querySelectorAll('svg.chart').length])",
            )
            seen["charts"] = page.eval_on_selector_all("svg.chart", "els => els.length")
            phone = browser.new_page(viewport={"width": 390, "height": 844})
            phone.on("request", lambda r: seen["requests"].append(r.url))
            phone.goto(url, wait_until="load")
            phone.screenshot(path=str(shots / "report-phone.png"), full_page=True)
            seen["phone_overflow"] = phone.evaluate(
                "document.documentElement.scrollWidth - window.innerWidth"
            )
            phone.emulate_media(media="print")
            phone.pdf(path=str(shots / "report.pdf"))
        finally:
            browser.close()
    seen["foreign"] = [u for u in seen["requests"] if not u.startswith(origin)]
    return seen


@pytest.mark.skipif(not CHROMIUM.exists(), reason="run `make chromium` (make test does)")
def test_report_page_of_the_fewshot_experiment_in_chromium(
    local_api: LocalApi, tmp_path: Path
) -> None:
    # Given the simulated few-shot experiment with three scheduled analyses
    experiment_id = simulate(local_api)
    status, analysis = local_api.call("GET", f"/api/v1/experiments/{experiment_id}/analyze")
    assert status == 200

    # Then the recommendation names the variant and carries the three regressions
    reason = analysis["recommendation_reason"]
    assert analysis["recommended_winner_id"] is not None, reason
    assert "Few-shot" in reason and "units" in reason
    for metric in ("cost_usd", "token_usage", "response_time"):
        assert f"metric {metric} (higher is worse)" in reason
    assert any("before min_duration_days" in w for w in analysis["warnings"])

    # When `abtest report` writes the page and `abtest analyze` prints the verdict
    page_file = tmp_path / "report.html"
    cli = [sys.executable, "-m", "emulator"]
    subprocess.run(
        [*cli, "report", str(experiment_id), "--out", str(page_file), "--url", local_api.url],
        check=True,
        cwd=ROOT,
        timeout=120,
    )
    printed = subprocess.run(
        [*cli, "analyze", str(experiment_id), "--url", local_api.url],
        check=True,
        cwd=ROOT,
        timeout=120,
        capture_output=True,
        text=True,
    ).stdout
    decision = printed.splitlines()[1]
    assert decision.startswith("Decision: Ship Variant") and "(Few-shot)" in decision
    trade_off = analysis["trade_offs"][0]
    assert trade_off.startswith("Variant ") and " at +" in trade_off and trade_off in printed
    assert all(f"\n{m} (" in printed for m in METRICS)
    html = page_file.read_text()
    assert html.startswith("<!DOCTYPE html>") and "<script" not in html

    # And chromium draws the page served by the API
    url = f"{local_api.url}/api/v1/experiments/{experiment_id}/report"
    seen = browse(url, tmp_path)

    ARTIFACTS.mkdir(exist_ok=True)
    for name in ("report.png", "report-phone.png", "report.pdf"):
        shutil.copy(tmp_path / name, ARTIFACTS / f"fewshot-{name}")
    (ARTIFACTS / "fewshot-analysis.json").write_text(json.dumps(analysis, indent=2))

    # Then: one chart per metric, the verdict names the variant, nothing from elsewhere,
    # no console error, and no sideways scrolling on a phone
    assert sorted(name for name, _ in seen["sections"]) == sorted(METRICS)
    assert all(count == 1 for _, count in seen["sections"])
    assert seen["charts"] >= len(METRICS) + 2  # + lift over time, + units over time
    # (the decision and its trade-off first, in the words `abtest analyze` printed)
    assert seen["verdict"].startswith(decision.removeprefix("Decision: "))
    assert trade_off in seen["verdict"]
    assert seen["foreign"] == [] and seen["errors"] == []
    assert seen["phone_overflow"] <= 0
    assert (tmp_path / "report.png").stat().st_size > 10_000
