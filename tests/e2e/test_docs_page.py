"""The API's docs page in headless Chromium: every operation listed, one tried, and not one
request to another origin (it works offline and behind a strict proxy)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import GUIDE_EXPERIMENT
from tests.e2e.conftest import LocalApi
from tests.e2e.test_report_page import CHROMIUM, FLAGS

pytestmark = pytest.mark.e2e


def test_the_docs_page_lists_and_tries_the_api_with_nothing_from_elsewhere(
    local_api: LocalApi, tmp_path: Path
) -> None:
    from playwright.sync_api import sync_playwright

    assert local_api.call("POST", "/api/v1/experiments/", GUIDE_EXPERIMENT)[0] == 201
    document = json.loads(
        (Path(__file__).resolve().parents[2] / "docs" / "openapi.json").read_text()
    )
    expected = {
        f"{method.upper()} {path}"
        for path, item in document["paths"].items()
        for method in item
        if method in {"get", "post", "patch", "put", "delete"}
    }
    seen: dict[str, Any] = {"requests": [], "errors": []}
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=str(CHROMIUM), args=FLAGS)
        try:
            page = browser.new_page()
            page.on("request", lambda r: seen["requests"].append(r.url))
            page.on("console", lambda m: m.type == "error" and seen["errors"].append(m.text))
            page.on("pageerror", lambda e: seen["errors"].append(str(e)))
            page.goto(f"{local_api.url}/api/v1/docs", wait_until="load")
            page.wait_for_selector("details.op")
            listed = set(
                page.eval_on_selector_all("details.op", "els => els.map(e => e.dataset.op)")
            )
            # When the list of experiments is tried from the page
            item = page.locator('details.op[data-op="GET /api/v1/experiments"]')
            item.locator("summary").click()
            item.locator("button").click()
            page.wait_for_selector(
                'details.op[data-op="GET /api/v1/experiments"] pre.answer[data-status]'
            )
            answer = item.locator("pre.answer").inner_text()
            page.screenshot(path=str(tmp_path / "docs.png"), full_page=True)
        finally:
            browser.close()
    # Then every operation of the document is on the page, the try answered, no error, and
    # nothing was asked of another origin
    assert listed == expected
    assert answer.startswith("200") and GUIDE_EXPERIMENT["name"] in answer
    assert seen["errors"] == []
    assert [u for u in seen["requests"] if not u.startswith(local_api.url)] == []
