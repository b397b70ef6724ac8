"""The in-process DynamoDB: every boto3 client answered here, never over the network."""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import boto3
import pytest
from botocore.config import Config
from botocore.exceptions import EndpointConnectionError
from moto.core.request import Request as MotoRequest

from emulator.cli import build_parser, settings_from
from emulator.dynamo import (
    UNREACHABLE_ENDPOINT,
    InProcessDynamo,
    configure_aws_environment,
    deferred_durability,
)
from emulator.moto_answers import moto_environ
from emulator.service import Settings

AWS_NAMES = ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_REGION", "AWS_DEFAULT_REGION")


def create_table(client: Any) -> None:
    """Table "t", keyed by the string "pk"."""
    client.create_table(
        TableName="t",
        KeySchema=[{"AttributeName": "pk", "KeyType": "HASH"}],
        AttributeDefinitions=[{"AttributeName": "pk", "AttributeType": "S"}],
        BillingMode="PAY_PER_REQUEST",
    )


@pytest.fixture
def dynamo(monkeypatch: pytest.MonkeyPatch) -> Iterator[InProcessDynamo]:
    """The in-process DynamoDB, started: it answers the clients the test makes."""
    monkeypatch.setenv("AWS_ENDPOINT_URL_DYNAMODB", UNREACHABLE_ENDPOINT)
    backend = InProcessDynamo("us-east-1")
    backend.start()
    try:
        yield backend
    finally:
        backend.stop()


def test_aws_environment_never_reaches_aws(monkeypatch: pytest.MonkeyPatch) -> None:
    # Given no credentials nor region in the environment (monkeypatch restores them after)
    for name in (*AWS_NAMES, "AWS_ENDPOINT_URL_DYNAMODB", "AWS_SESSION_TOKEN"):
        monkeypatch.setenv(name, "")
        monkeypatch.delenv(name)
    # When the environment is configured
    region = configure_aws_environment()
    # Then us-east-1, fake credentials and an endpoint where nothing listens are set
    assert os.environ["AWS_ENDPOINT_URL_DYNAMODB"] == UNREACHABLE_ENDPOINT
    assert os.environ["AWS_REGION"] == os.environ["AWS_DEFAULT_REGION"] == region == "us-east-1"
    assert os.environ["AWS_ACCESS_KEY_ID"] and os.environ["AWS_SECRET_ACCESS_KEY"]


def test_every_client_is_answered_in_process_with_its_hooks(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # Given the in-process DynamoDB and a client made afterwards with before-call hooks, for
    # DynamoDB and for every service, registered first, as usual and last (but for the last
    # one on the bare event: registered after the backend's own, it would come after it)
    monkeypatch.setenv("AWS_ENDPOINT_URL_DYNAMODB", UNREACHABLE_ENDPOINT)
    dynamo = InProcessDynamo("us-east-1")
    dynamo.start()
    try:
        client = boto3.client("dynamodb", region_name="us-east-1")
        seen: list[tuple[str, str]] = []
        events = client.meta.events
        for event in ("before-call.dynamodb", "before-call", "before-call.*.*"):
            for register in (events.register_first, events.register, events.register_last):
                name = f"{event} {register.__name__}"
                if name == "before-call register_last":
                    continue
                register(event, lambda model, name=name, **_: seen.append((name, model.name)))
        # When a table is created, written and read
        create_table(client)
        client.put_item(TableName="t", Item={"pk": {"S": "a"}})
        item = client.get_item(TableName="t", Key={"pk": {"S": "a"}})["Item"]
    finally:
        dynamo.stop()
    # Then the answers came from the in-process backend and every call passed every hook
    assert item == {"pk": {"S": "a"}}
    assert [call for _, call in seen] == [
        c for c in ("CreateTable", "PutItem", "GetItem") for _ in range(8)
    ]
    # And once stopped, nothing answers in-process any more: the client fails fast
    with pytest.raises(EndpointConnectionError):
        once = Config(retries={"max_attempts": 1})
        boto3.client("dynamodb", region_name="us-east-1", config=once).list_tables()


def test_calls_answered_in_process_are_never_built_nor_sent(dynamo: InProcessDynamo) -> None:
    # Given a client that notes every request it would send
    client = boto3.client("dynamodb", region_name="us-east-1")
    sent: list[object] = []
    client.meta.events.register_first("before-send.dynamodb", lambda **kw: sent.append(kw))
    # When it calls, and a call is refused
    create_table(client)
    answer = client.list_tables()
    with pytest.raises(client.exceptions.ResourceNotFoundException) as missing:
        client.get_item(TableName="nope", Key={"pk": {"S": "a"}})
    # Then nothing was sent, and the answers read as botocore reads an endpoint's
    assert sent == []
    assert answer["TableNames"] == ["t"]
    assert answer["ResponseMetadata"]["HTTPStatusCode"] == 200
    assert answer["ResponseMetadata"]["RetryAttempts"] == 0
    assert missing.value.response["Error"]["Code"] == "ResourceNotFoundException"
    assert missing.value.response["ResponseMetadata"]["HTTPStatusCode"] == 400


def test_a_refused_transaction_carries_its_cancellation_reasons(dynamo: InProcessDynamo) -> None:
    # Given an item
    client = boto3.client("dynamodb", region_name="us-east-1")
    create_table(client)
    client.put_item(TableName="t", Item={"pk": {"S": "a"}, "v": {"B": b"\x00"}})
    put = {
        "TableName": "t",
        "Item": {"pk": {"S": "a"}},
        "ConditionExpression": "attribute_not_exists(pk)",
        "ReturnValuesOnConditionCheckFailure": "ALL_OLD",
    }
    # When a transaction's condition fails
    with pytest.raises(client.exceptions.TransactionCanceledException) as cancelled:
        client.transact_write_items(TransactItems=[{"Put": put}])
    # Then the modelled fields of the error are there, with the item as it was stored
    (reason,) = cancelled.value.response["CancellationReasons"]  # type: ignore[typeddict-item]
    assert reason["Code"] == "ConditionalCheckFailed"
    assert reason["Item"] == {"pk": {"S": "a"}, "v": {"B": b"\x00"}}


class NotedWrites:
    """A write log that keeps what it is given."""

    def __init__(self) -> None:
        self.writes: list[str] = []
        self.waits: list[int] = []  # the positions waited for

    def append(self, operation: str, params: bytes) -> int:
        self.writes.append(operation)
        return len(self.writes)

    def position(self) -> int:
        return len(self.writes)

    def wait_durable(self, position: int) -> None:
        self.waits.append(position)


def test_a_call_that_arrives_after_stop_is_refused_and_changes_nothing(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # Given the in-process DynamoDB with a write log, and a PutItem call as botocore made it
    monkeypatch.setenv("AWS_ENDPOINT_URL_DYNAMODB", UNREACHABLE_ENDPOINT)
    dynamo = InProcessDynamo("us-east-1")
    dynamo.start()
    log = NotedWrites()
    dynamo.write_log = log
    calls: list[tuple[Any, dict[str, Any]]] = []
    try:
        client = boto3.client("dynamodb", region_name="us-east-1")
        client.meta.events.register(
            "before-call.dynamodb", lambda model, params, **_: calls.append((model, params))
        )
        create_table(client)
        client.put_item(TableName="t", Item={"pk": {"S": "late"}})
        client.delete_item(TableName="t", Key={"pk": {"S": "late"}})
        put = next(call for call in calls if call[0].name == "PutItem")
        # When the same call reaches the backend once it has stopped (a call that was
        # already past the client's hooks when the server began to stop)
        dynamo.stop()
        http, parsed = dynamo.answer_call(*put)
        with dynamo.lock:
            left = dynamo.call("Scan", b'{"TableName":"t"}')
    finally:
        dynamo.stop()
    # Then it is refused with a server error, and nothing was written nor logged
    assert http.status_code == 500
    assert "stopped" in parsed["Error"]["Message"]
    assert json.loads(left)["Items"] == []
    assert log.writes == ["CreateTable", "PutItem", "DeleteItem"]


def test_calls_under_deferred_durability_leave_the_wait_to_the_caller(
    dynamo: InProcessDynamo,
) -> None:
    # Given a write log, and a client
    log = NotedWrites()
    dynamo.write_log = log
    client = boto3.client("dynamodb", region_name="us-east-1")
    create_table(client)
    # When a write and a read are made inside a deferred block, then a write outside it
    with deferred_durability() as pending:
        client.put_item(TableName="t", Item={"pk": {"S": "a"}})
        client.get_item(TableName="t", Key={"pk": {"S": "a"}})
        waited_inside = list(log.waits)
        pending.wait()
    after_block = list(log.waits)
    client.put_item(TableName="t", Item={"pk": {"S": "b"}})
    # Then nothing waited inside; the block's wait covered everything its calls wrote or saw
    # (the create, the put: position 2); the write outside waited for itself at once
    assert waited_inside == [1]  # the table's creation, before the block
    assert after_block == [1, 2]
    assert log.waits == [1, 2, 3]


@pytest.mark.parametrize(
    ("headers", "body"),
    [
        (
            {
                "X-Amz-Target": b"DynamoDB_20120810.GetItem",
                "Content-Type": b"application/x-amz-json-1.0",
                "User-Agent": b"Boto3/1",
                "Content-Length": "7",
                "amz-sdk-request": b"attempt=1; max=4",
            },
            b'{"a":1}',
        ),
        ({}, b""),
        ({"X-Amz-Meta-My_key": "v", "Transfer-Encoding": "chunked"}, b"abc"),
        ({"Host": "elsewhere:8000", "Content-Length": "99"}, b"x"),
        ({"content-type": "text/plain", "X-Other": "1"}, b""),
    ],
)
def test_the_request_moto_gets_is_the_one_it_would_build(
    headers: dict[str, object], body: bytes
) -> None:
    # Given moto's own request for a call, and the one built for the in-process backend
    theirs = MotoRequest.from_primitives(
        "POST", "https://dynamodb.us-east-1.amazonaws.com/", headers, body
    )
    ours = MotoRequest(moto_environ("POST", "dynamodb.us-east-1.amazonaws.com", headers, body))
    # Then their environs hold the same values, and the same body
    skip = ("wsgi.input", "werkzeug.request")
    assert [(k, v) for k, v in ours.environ.items() if k not in skip] == [
        (k, v) for k, v in theirs.environ.items() if k not in skip
    ]
    assert ours.get_data() == theirs.get_data() == body
    assert list(ours.headers) == list(theirs.headers)
    assert (ours.url, ours.host, ours.method) == (theirs.url, theirs.host, theirs.method)


def test_cli_options_and_environment(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    # Given environment defaults for the port, the schedule and the template
    monkeypatch.setenv("AB_PORT", "9001")
    monkeypatch.setenv("AB_SCHEDULE_INTERVAL", "0")
    monkeypatch.setenv("AB_TEMPLATE", str(tmp_path / "t.yaml"))
    # When `serve` is parsed with a few options
    args = build_parser().parse_args(
        ["serve", "--api-key", "k", "--parameter", "TablePrefix=dev_", "--project-root", "/p"]
    )
    settings = settings_from(args)
    # Then the options and the environment are both honoured
    assert (settings.host, settings.port, settings.schedule_interval) == ("127.0.0.1", 9001, 0)
    assert settings.template == tmp_path / "t.yaml"
    assert settings.api_key == "k"
    assert settings.parameters == {"TablePrefix": "dev_"}
    assert settings.state_path == Path("/p/.local/state.json")


@pytest.mark.parametrize(
    ("argv", "environ", "expected"),
    [
        (["serve", "--workers", "3"], None, 3),
        (["serve", "--workers", "0"], "2", 0),
        (["serve"], "2", 2),
    ],
)
def test_serve_takes_its_worker_count_from_the_option_then_the_environment(
    monkeypatch: pytest.MonkeyPatch, argv: list[str], environ: str | None, expected: int
) -> None:
    # Given AB_WORKERS set or not / When serve is parsed / Then the option wins
    if environ is not None:
        monkeypatch.setenv("AB_WORKERS", environ)
    assert settings_from(build_parser().parse_args(argv)).workers == expected


@pytest.mark.parametrize(("cores", "expected"), [(1, 0), (None, 0), (2, 1), (16, 1)])
def test_the_default_worker_count_follows_the_cores(
    monkeypatch: pytest.MonkeyPatch, cores: int | None, expected: int
) -> None:
    # Given no AB_WORKERS, on a machine of one core or several (None: unknown)
    monkeypatch.delenv("AB_WORKERS", raising=False)
    monkeypatch.setattr(os, "cpu_count", lambda: cores)
    # Then one worker beside the store where there is a second core, none otherwise
    assert settings_from(build_parser().parse_args(["serve"])).workers == expected


@pytest.mark.parametrize("value", ["-1", "two", "1.5"])
def test_a_worker_count_that_is_not_a_whole_number_is_refused(
    value: str, capsys: pytest.CaptureFixture[str]
) -> None:
    # When serve is given a bad count / Then it stops with a one-line usage error
    with pytest.raises(SystemExit) as stopped:
        build_parser().parse_args(["serve", "--workers", value])
    assert stopped.value.code == 2
    assert f"expected a whole number, 0 or more, got {value!r}" in capsys.readouterr().err


def test_settings_reach_a_worker_whole_with_their_paths_made_absolute(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    # Given settings with relative paths, keys and parameters, read in some directory
    monkeypatch.chdir(tmp_path)
    settings = Settings(
        port=0,
        template=Path("t.yaml"),
        project_root=Path("."),
        state_file=Path("state/s.json"),
        admin_key="a",
        data_key="d",
        parameters={"TablePrefix": "dev_"},
        workers=2,
    )
    # When they are sent as JSON and read back (a worker runs in another directory)
    sent = settings.to_json()
    monkeypatch.chdir("/")
    again = Settings.from_json(sent)
    # Then every value is the same, the paths pointing at the same files
    where = tmp_path.resolve()
    assert again == Settings(
        port=0,
        template=where / "t.yaml",
        project_root=where,
        state_file=where / "state" / "s.json",
        admin_key="a",
        data_key="d",
        parameters={"TablePrefix": "dev_"},
        workers=2,
    )
