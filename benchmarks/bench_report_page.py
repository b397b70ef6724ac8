"""Time to render the report page from an analysis and a long insight history.

Prints milliseconds per render for 0, 100 and 500 stored insights (the function reads at most
500), and the page size. Run: .venv/bin/python benchmarks/bench_report_page.py
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT / "layers" / "ab_testing"), str(ROOT)]

from ab_testing.report_page import render_report  # noqa: E402
from ab_testing.stats import StatisticalAnalyzer  # noqa: E402
from tests.unit.test_stats_verdict import fewshot  # noqa: E402


def main() -> None:
    analysis = StatisticalAnalyzer().analyze(fewshot(min_sample_size=100))
    for size in (0, 100, 500):
        history = [
            {"analysed_at": f"2026-01-01T{h // 60:02d}:{h % 60:02d}:00Z", "analysis": analysis}
            for h in range(size)
        ]
        reps = 20
        start = time.perf_counter()
        for _ in range(reps):
            page = render_report({"id": 1, "name": "x"}, analysis, history, "2026-01-02T00:00:00Z")
        per = (time.perf_counter() - start) / reps * 1000
        print(
            f"history {size:4d} insights: {per:7.2f} ms per render, page {len(page) / 1024:.0f} KiB"
        )


if __name__ == "__main__":
    main()
