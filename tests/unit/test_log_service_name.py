"""Every log line names its stack, as the metrics do (POWERTOOLS_SERVICE_NAME from the template)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
LOG_ONE_LINE = "from ab_testing.observability import logger; logger.info('hello')"


@pytest.mark.parametrize(
    ("service", "expected"), [("ab-testing-prod", "ab-testing-prod"), (None, "ab-testing")]
)
def test_log_lines_carry_the_stacks_service_name(service: str | None, expected: str) -> None:
    env = {k: v for k, v in os.environ.items() if k != "POWERTOOLS_SERVICE_NAME"}
    if service is not None:
        env["POWERTOOLS_SERVICE_NAME"] = service
    env["PYTHONPATH"] = str(ROOT / "layers" / "ab_testing")
    done = subprocess.run(
        [sys.executable, "-c", LOG_ONE_LINE], env=env, capture_output=True, text=True, check=True
    )
    line = json.loads((done.stdout or done.stderr).strip().splitlines()[-1])
    assert (line["message"], line["service"]) == ("hello", expected)


def test_the_template_names_the_service_after_the_stack() -> None:
    from tests.unit.test_deploy_settings import FUNCTION_GLOBALS

    variables = FUNCTION_GLOBALS["Environment"]["Variables"]
    assert variables["POWERTOOLS_SERVICE_NAME"] == {"Fn::Sub": "ab-testing-${AWS::StackName}"}
