"""What operators see in AWS: request ids on log lines, the metrics alarms watch, tracing, TTL."""

from __future__ import annotations

import io
import json
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from datetime import datetime
from typing import Any

import pytest

from emulator.events import FakeLambdaContext, api_gateway_event
from emulator.template import function_environment, load_template
from tests.conftest import ROOT, guide_experiment, invoke, load_handler

TEMPLATE = load_template()


@pytest.fixture
def logs() -> Iterator[io.StringIO]:
    """What the service's logger writes (its handler keeps the stream it was created with)."""
    from ab_testing.observability import logger

    # Swapped without setStream, which flushes the previous stream: in a second pytest run in
    # the same process (mutmut's), that is the first run's capture, closed by then.
    handler = logger.registered_handler  # type: ignore[attr-defined]
    stream, previous = io.StringIO(), handler.stream
    handler.stream = stream
    yield stream
    handler.stream = previous


def log_lines(stream: io.StringIO) -> list[dict[str, Any]]:
    lines = stream.getvalue().splitlines()
    stream.truncate(0)
    stream.seek(0)
    return [json.loads(line) for line in lines if line.startswith("{")]


def emf_records(text: str) -> list[dict[str, Any]]:
    return [json.loads(line) for line in text.splitlines() if '"_aws"' in line]


def test_api_log_lines_carry_the_lambda_and_api_gateway_request_ids(
    aws: Any, logs: io.StringIO
) -> None:
    # Given an API Gateway event with its request id, and a Lambda context with its own
    event = api_gateway_event(
        "GET", "/api/v1/experiments/abc", resource="/api/v1/experiments/{id}",
        path_parameters={"id": "abc"}, body=None,
    )  # fmt: skip
    event["requestContext"]["requestId"] = "apigw-7f3a"
    context = FakeLambdaContext("GetExperimentFunction", aws_request_id="lambda-91c2")

    # When the handler refuses the request (and logs why)
    answer = load_handler("get_experiment").handler(event, context)

    # Then its log line names both requests, and the function
    assert answer["statusCode"] == 400
    (line,) = [x for x in log_lines(logs) if x["message"] == "request refused"]
    assert line["correlation_id"] == "apigw-7f3a"
    assert line["function_request_id"] == "lambda-91c2"
    assert line["function_name"] == "GetExperimentFunction"


def test_request_ids_do_not_leak_into_the_next_invocation(aws: Any, logs: io.StringIO) -> None:
    handler = load_handler("get_experiment").handler
    first = api_gateway_event("GET", "/x", resource="/x", path_parameters={"id": "abc"}, body=None)
    handler(first, FakeLambdaContext("F", aws_request_id="first"))
    second = api_gateway_event("GET", "/x", resource="/x", path_parameters={"id": "def"}, body=None)
    log_lines(logs)
    handler(second, FakeLambdaContext("F", aws_request_id="second"))
    (line,) = log_lines(logs)
    assert line["function_request_id"] == "second"
    assert line["correlation_id"] == second["requestContext"]["requestId"]


def started_experiment_with_a_result() -> int:
    status, created = invoke("create_experiment", "POST", "/x", body=guide_experiment())
    assert status == 201
    experiment_id = str(created["id"])
    assert invoke("start_experiment", "POST", "/x", path_parameters={"id": experiment_id})[0] == 200
    body = {"experiment_id": created["id"], "user_id": 7}
    assert invoke("get_variant", "POST", "/x", body=body)[0] == 200
    result = {**body, "metric_name": "resolution_rate", "metric_value": 1}
    assert invoke("record_result", "POST", "/x", body=result)[0] == 201
    return int(created["id"])


def test_scheduled_metrics_are_the_ones_the_alarms_watch(
    aws: Any, capsys, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Given the environment the template gives the scheduled function, and a running experiment
    env = function_environment(TEMPLATE)
    for name in ("POWERTOOLS_SERVICE_NAME", "POWERTOOLS_METRICS_NAMESPACE"):
        monkeypatch.setenv(name, env[name])
    started_experiment_with_a_result()
    handler = load_handler("scheduled_analysis").handler
    capsys.readouterr()

    # When the hourly run and the daily reconciliation run
    handler({"id": "run-1"}, FakeLambdaContext("ScheduledAnalysisFunction"))
    handler({"id": "run-2", "reconcile": True}, FakeLambdaContext("ScheduledAnalysisFunction"))
    records = emf_records(capsys.readouterr().out)

    # Then each alarm's metric is emitted in its namespace with exactly its dimensions
    for alarm in ("ScheduledExperimentsFailedAlarm", "ReconciliationDifferencesAlarm"):
        spec = TEMPLATE["Resources"][alarm]["Properties"]
        dimensions = {d["Name"]: env["POWERTOOLS_SERVICE_NAME"] for d in spec["Dimensions"]}
        matching = [
            r
            for r in records
            if spec["MetricName"] in r
            and r["_aws"]["CloudWatchMetrics"][0]["Namespace"] == spec["Namespace"]
            and r["_aws"]["CloudWatchMetrics"][0]["Dimensions"] == [sorted(dimensions)]
            and all(r[k] == v for k, v in dimensions.items())
        ]
        assert len(matching) == 1, alarm
        assert matching[0][spec["MetricName"]] in (0, [0])  # a healthy run: no alarm


def test_insights_carry_their_expiry_when_a_retention_is_set(
    aws: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Given insights kept 30 days
    monkeypatch.setenv("AB_INSIGHTS_TTL_DAYS", "30")
    from ab_testing import runtime

    runtime.reset()
    experiment_id = started_experiment_with_a_result()

    # When the scheduled job writes an insight
    load_handler("scheduled_analysis").handler({}, FakeLambdaContext("Scheduled"))

    # Then the item has expires_at, epoch seconds 30 days after its analysis time
    (item,) = aws.query(
        TableName="ab_insights",
        KeyConditionExpression="experiment_id = :e",
        ExpressionAttributeValues={":e": {"N": str(experiment_id)}},
    )["Items"]
    analysed = datetime.fromisoformat(item["analysed_at"]["S"]).timestamp()
    assert int(item["expires_at"]["N"]) == int(analysed + 30 * 86400)


def test_insights_are_kept_without_a_retention(aws: Any) -> None:
    experiment_id = started_experiment_with_a_result()
    load_handler("scheduled_analysis").handler({}, FakeLambdaContext("Scheduled"))
    (item,) = aws.query(
        TableName="ab_insights",
        KeyConditionExpression="experiment_id = :e",
        ExpressionAttributeValues={":e": {"N": str(experiment_id)}},
    )["Items"]
    assert "expires_at" not in item


TRACING_PROBE = textwrap.dedent(
    """
    import json, sys
    sys.path[:0] = [sys.argv[1] + "/layers/ab_testing"]
    from ab_testing.observability import observed
    handler = observed(lambda event, context: "ok")
    patched = []
    if "aws_xray_sdk" in sys.modules:
        from aws_xray_sdk.core import patcher
        patched = sorted(patcher._PATCHED_MODULES)
    print(json.dumps({"xray_loaded": "aws_xray_sdk" in sys.modules, "patched": patched}))
    """
)


@pytest.mark.parametrize("mode", ["Active", "Disabled"])
def test_tracing_is_all_or_nothing(mode: str) -> None:
    # Given a fresh interpreter inside a Lambda environment with the template's AB_TRACING
    done = subprocess.run(
        [sys.executable, "-c", TRACING_PROBE, str(ROOT)],
        capture_output=True, text=True, timeout=120, check=False,
        env={"PATH": "/usr/bin:/bin", "AWS_DEFAULT_REGION": "us-east-1", "AB_TRACING": mode,
             "AWS_LAMBDA_FUNCTION_NAME": "probe", "LAMBDA_TASK_ROOT": "/var/task"},
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    seen = json.loads(done.stdout.strip().splitlines()[-1])

    # Then Active patches botocore (a subsegment per DynamoDB call), Disabled loads no X-Ray
    if mode == "Active":
        assert "botocore" in seen["patched"]
    else:
        assert seen == {"xray_loaded": False, "patched": []}
