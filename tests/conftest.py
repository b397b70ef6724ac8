"""Shared fixtures: DynamoDB from moto with the tables of template.yaml, handlers by file."""

from __future__ import annotations

import contextlib
import copy
import functools
import importlib.util
import json
import os
import sys
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "layers" / "ab_testing"))

# Never reach real AWS from a test.
os.environ.setdefault("AWS_DEFAULT_REGION", "us-east-1")
os.environ["AWS_ACCESS_KEY_ID"] = "testing"
os.environ["AWS_SECRET_ACCESS_KEY"] = "testing"
os.environ.pop("AWS_ENDPOINT_URL_DYNAMODB", None)
os.environ.pop("AWS_PROFILE", None)


def _enforce_template_iam() -> None:
    """Every handler call below checks its DynamoDB calls against its own template policy."""
    from emulator import iam
    from emulator.template import load_template

    iam.install(iam.Enforcer.from_template(load_template()))


_enforce_template_iam()

GUIDE_EXPERIMENT: dict[str, Any] = {
    "name": "Lead Qualification Prompt Test",
    "description": "Testing new prompt with few-shot examples vs current prompt",
    "experiment_type": "prompt",
    "primary_metric": "resolution_rate",
    "secondary_metrics": ["satisfaction_score", "response_time"],
    "variants": [
        {
            "name": "Control",
            "is_control": True,
            "traffic_allocation": 50.0,
            "config": {
                "system_prompt": "You are an AI assistant for mortgage CRM...",
                "include_examples": False,
            },
        },
        {
            "name": "Treatment - Few Shot Examples",
            "is_control": False,
            "traffic_allocation": 50.0,
            "config": {
                "system_prompt": "You are an AI assistant for mortgage CRM...",
                "include_examples": True,
                "examples": [
                    "User: What documents do I need? Assistant: For a purchase...",
                    "User: How long does approval take? Assistant: Typically...",
                ],
            },
        },
    ],
    "target_percentage": 100.0,
    "min_sample_size": 100,
    "confidence_level": 0.95,
}


def guide_experiment(**changes: Any) -> dict[str, Any]:
    body = copy.deepcopy(GUIDE_EXPERIMENT)
    body.update(changes)
    return body


class FakeMonotonic:
    """A stand-in for time.monotonic that moves only when a test moves it."""

    def __init__(self) -> None:
        self.now = 1000.0

    def monotonic(self) -> float:
        return self.now


@functools.lru_cache(maxsize=1)
def parsed_template() -> dict[str, Any]:
    """template.yaml, parsed once per run (parsing it takes longer than creating the tables)."""
    from emulator.template import load_template

    return load_template()


@contextlib.contextmanager
def local_dynamodb() -> Iterator[Any]:
    """The DynamoDB `make run` serves (emulator.dynamo: moto, the shortcuts only where they
    passed their check, numbers of 38 digits), empty, with the five tables built from
    template.yaml's own definitions; a client of it. Inside moto's mock, so that no call of
    any kind can reach AWS."""
    import boto3
    from moto import mock_aws

    from emulator.dynamo import InProcessDynamo
    from emulator.template import create_tables

    with mock_aws():
        dynamo = InProcessDynamo("us-east-1")
        dynamo.start()
        try:
            client = boto3.client("dynamodb", region_name="us-east-1")
            create_tables(client, parsed_template())
            yield client
        finally:
            dynamo.stop()


def create_keyed_table(client: Any, name: str, range_type: str = "S") -> None:
    """Table `name` keyed by pk (a string) and sk (of `range_type`), paid per request."""
    client.create_table(
        TableName=name,
        KeySchema=[
            {"AttributeName": "pk", "KeyType": "HASH"},
            {"AttributeName": "sk", "KeyType": "RANGE"},
        ],
        AttributeDefinitions=[
            {"AttributeName": "pk", "AttributeType": "S"},
            {"AttributeName": "sk", "AttributeType": range_type},
        ],
        BillingMode="PAY_PER_REQUEST",
    )


@pytest.fixture
def aws() -> Iterator[Any]:
    """The local DynamoDB with the tables of template.yaml (`local_dynamodb`)."""
    from ab_testing import runtime

    with local_dynamodb() as client:
        runtime.reset()
        yield client
        runtime.reset()


@pytest.fixture
def aws_sent(monkeypatch: pytest.MonkeyPatch) -> Iterator[Any]:
    """moto's mock alone, with the tables of template.yaml: botocore builds and sends every
    request to it, retries included (for the tests of what botocore does on the wire). The
    endpoint is AWS's own, which moto's mock intercepts (a test before may have pointed the
    process at the in-process DynamoDB's unreachable one)."""
    import boto3
    from moto import mock_aws

    from ab_testing import runtime
    from emulator.template import create_tables

    monkeypatch.delenv("AWS_ENDPOINT_URL_DYNAMODB", raising=False)
    with mock_aws():
        runtime.reset()
        client = boto3.client("dynamodb", region_name="us-east-1")
        create_tables(client, parsed_template())
        yield client
        runtime.reset()


@pytest.fixture
def service(aws: Any) -> Any:
    from ab_testing.service import ExperimentService
    from ab_testing.settings import Settings
    from ab_testing.store import Store

    return ExperimentService(Store(Settings(), client=aws), cache_ttl_seconds=0)


_HANDLERS: dict[str, ModuleType] = {}


def function_id(function_dir: str) -> str:
    """The template's logical id of the function whose CodeUri is functions/<dir>/."""
    from emulator.template import function_ids_by_code_uri, load_template

    return function_ids_by_code_uri(load_template())[f"functions/{function_dir}"]


def load_handler(function_dir: str) -> ModuleType:
    """functions/<dir>/app.py as its own module (they are all called app.py).

    Its `handler` runs under the function's identity: IAM is enforced as in AWS.
    """
    from emulator import iam

    if function_dir not in _HANDLERS:
        path = ROOT / "functions" / function_dir / "app.py"
        spec = importlib.util.spec_from_file_location(f"handler_{function_dir}", path)
        assert spec and spec.loader
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        module.handler = iam.as_function(function_id(function_dir), module.handler)
        _HANDLERS[function_dir] = module
    return _HANDLERS[function_dir]


def invoke(
    function_dir: str,
    method: str,
    path: str,
    *,
    resource: str | None = None,
    body: Any = None,
    raw_body: str | None = None,
    query: dict[str, str] | None = None,
    path_parameters: dict[str, str] | None = None,
) -> tuple[int, Any]:
    """Calls a handler with an API Gateway proxy event; returns (status, decoded JSON)."""
    from emulator.events import FakeLambdaContext, api_gateway_event

    text = raw_body if raw_body is not None else (None if body is None else json.dumps(body))
    event = api_gateway_event(
        method,
        path,
        resource=resource or path,
        path_parameters=path_parameters,
        query={k: [v] for k, v in (query or {}).items()},
        body=text,
        headers={"Content-Type": "application/json"},
    )
    answer = load_handler(function_dir).handler(event, FakeLambdaContext(function_dir))
    return answer["statusCode"], json.loads(answer["body"])


def load_event(name: str) -> dict[str, Any]:
    return json.loads((ROOT / "events" / f"{name}.json").read_text())
