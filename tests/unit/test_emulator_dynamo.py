"""The state file and its saver, on moto's in-memory mock (no network), and the CLI options."""

from __future__ import annotations

import json
import os
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import boto3
import pytest
from moto import mock_aws

from emulator.cli import build_parser, settings_from
from emulator.dynamo import BackgroundSaver, StateFile, configure_aws_environment
from emulator.template import DEFAULT_TEMPLATE, create_tables, load_template

AWS_NAMES = ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_REGION", "AWS_DEFAULT_REGION")


@pytest.fixture
def dynamodb(monkeypatch: pytest.MonkeyPatch) -> Iterator[Any]:
    monkeypatch.delenv("AWS_ENDPOINT_URL_DYNAMODB", raising=False)
    monkeypatch.delenv("AWS_ENDPOINT_URL", raising=False)
    with mock_aws():
        yield boto3.client(
            "dynamodb",
            region_name="us-east-1",
            aws_access_key_id="x",
            aws_secret_access_key="x",
        )


def test_state_round_trip_keeps_every_item(dynamodb: Any, tmp_path: Path) -> None:
    # Given the real tables with more items than one batch write, including binary values
    tables = create_tables(dynamodb, load_template(DEFAULT_TEMPLATE))
    for i in range(60):
        dynamodb.put_item(
            TableName="ab_results",
            Item={
                "experiment_id": {"N": "1"},
                "result_id": {"S": f"r{i:03d}"},
                "blob": {"B": bytes([i, 255])},
                "nested": {"M": {"l": {"L": [{"B": b"\x00"}, {"S": "x"}]}}},
            },
        )
    state = StateFile(tmp_path / "state.json", dynamodb, list(tables.values()))
    # When the state is dumped, the table emptied, and the state loaded back
    state.dump()
    for i in range(60):
        dynamodb.delete_item(
            TableName="ab_results",
            Key={"experiment_id": {"N": "1"}, "result_id": {"S": f"r{i:03d}"}},
        )
    loaded = state.load()
    # Then every item is back, binary values included, and the file is plain JSON
    assert loaded == 60
    items = dynamodb.scan(TableName="ab_results")["Items"]
    assert len(items) == 60
    by_id = {item["result_id"]["S"]: item for item in items}
    assert by_id["r007"]["blob"]["B"] == bytes([7, 255])
    assert by_id["r007"]["nested"]["M"]["l"]["L"][0]["B"] == b"\x00"
    saved = json.loads((tmp_path / "state.json").read_text())
    assert set(saved["tables"]) == set(tables.values())
    assert not list(tmp_path.glob(".state-*"))  # no temp file left behind


def test_missing_state_file_loads_nothing(dynamodb: Any, tmp_path: Path) -> None:
    # Given no state file / When it is loaded / Then nothing happens
    assert StateFile(tmp_path / "absent.json", dynamodb, []).load() == 0


class CountingState:
    def __init__(self) -> None:
        self.path = Path("unused")
        self.dumps = 0
        self.dumped = threading.Event()

    def dump(self) -> None:
        self.dumps += 1
        self.dumped.set()


def test_saver_dumps_only_when_dirty_and_on_stop() -> None:
    # Given a saver with a short interval
    state = CountingState()
    saver = BackgroundSaver(state, interval=0.05)  # type: ignore[arg-type]
    saver.start()
    # When nothing is written for a while
    time.sleep(0.2)
    # Then nothing is dumped
    assert state.dumps == 0
    # When a write is reported
    saver.mark_dirty()
    assert state.dumped.wait(2)
    # Then one dump happens, and one more on stop
    time.sleep(0.15)
    assert state.dumps == 1
    saver.stop()
    assert state.dumps == 2


def test_aws_environment_points_at_the_endpoint(monkeypatch: pytest.MonkeyPatch) -> None:
    # Given no credentials nor region in the environment (monkeypatch restores them after)
    for name in (*AWS_NAMES, "AWS_ENDPOINT_URL_DYNAMODB", "AWS_SESSION_TOKEN"):
        monkeypatch.setenv(name, "")
        monkeypatch.delenv(name)
    # When the environment is configured for an endpoint
    configure_aws_environment("http://127.0.0.1:1234")
    # Then the endpoint, us-east-1 and fake credentials are set
    assert os.environ["AWS_ENDPOINT_URL_DYNAMODB"] == "http://127.0.0.1:1234"
    assert os.environ["AWS_REGION"] == os.environ["AWS_DEFAULT_REGION"] == "us-east-1"
    assert os.environ["AWS_ACCESS_KEY_ID"] and os.environ["AWS_SECRET_ACCESS_KEY"]


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
