"""The hot-path handlers (get-variant, record-result(s), exposures, definitions) must import
without scipy, numpy or pydantic: each costs cold-start time those requests do not need
(benchmarks/bench_cold_start.py measures it as built)."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]

PROBE = textwrap.dedent(
    """
    import importlib.util
    import json
    import sys

    root, handler, preload = sys.argv[1], sys.argv[2], sys.argv[3:]
    for name in preload:  # only the control case preloads something
        importlib.import_module(name)
    sys.path[:0] = [root + "/layers/ab_testing", root]
    spec = importlib.util.spec_from_file_location(
        "probe_handler", root + "/functions/" + handler + "/app.py"
    )
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    assert callable(module.handler)
    heavy = sorted(
        name for name in sys.modules
        if name.split(".")[0] in {"scipy", "numpy", "pydantic", "pydantic_core"}
    )
    print(json.dumps(heavy))
    """
)


def heavy_modules_after_import(handler: str, *preload: str) -> list[str]:
    done = subprocess.run(
        [sys.executable, "-c", PROBE, str(ROOT), handler, *preload],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=ROOT,
        env={"PATH": "/usr/bin:/bin", "AWS_DEFAULT_REGION": "us-east-1"},
    )
    assert done.returncode == 0, done.stderr
    modules: list[str] = json.loads(done.stdout.strip().splitlines()[-1])
    return modules


@pytest.mark.parametrize(
    "handler",
    [
        "get_variant",
        "record_result",
        "record_results",
        "experiment_definitions",
        "record_exposures",
    ],
)
def test_hot_path_handler_imports_no_scipy_numpy_or_pydantic(handler: str) -> None:
    # Given a fresh interpreter with only the layer and the repository root on sys.path
    # When the handler module is loaded by file path, as Lambda would
    loaded = heavy_modules_after_import(handler)

    # Then none of scipy, numpy and pydantic came along
    assert loaded == [], f"{handler} pulled in {', '.join(loaded)}"


def test_probe_notices_a_heavy_module() -> None:
    # Given the same probe, told to import numpy before the handler
    # When it runs
    loaded = heavy_modules_after_import("get_variant", "numpy")

    # Then numpy is reported: an empty list above means absent, not unseen
    assert "numpy" in loaded
