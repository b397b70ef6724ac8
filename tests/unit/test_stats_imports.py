"""The hot path must not load scipy or numpy."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

LAYER = Path(__file__).resolve().parents[2] / "layers" / "ab_testing"


def test_importing_the_stats_package_loads_neither_scipy_nor_numpy() -> None:
    # Given a fresh interpreter
    code = (
        "import sys\n"
        "import ab_testing, ab_testing.stats, ab_testing.stats.inputs\n"
        "from ab_testing.stats import MetricTotals, AnalysisInput\n"
        "heavy = sorted(m for m in sys.modules if m.split('.')[0] in ('scipy', 'numpy'))\n"
        "print(','.join(heavy))\n"
    )
    env = {**os.environ, "PYTHONPATH": str(LAYER)}
    # When the package and its inputs are imported
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, env=env, check=True
    )
    # Then no heavy module was imported
    assert out.stdout.strip() == ""


def test_the_analyzer_is_exported_lazily() -> None:
    # Given the package; when the analyzer is asked for, then it is the analyzer class
    from ab_testing.stats import StatisticalAnalyzer
    from ab_testing.stats.analyzer import StatisticalAnalyzer as Direct

    assert StatisticalAnalyzer is Direct
