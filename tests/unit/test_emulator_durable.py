"""The local store's durability: journal, snapshots, recovery and refusal of damaged files.

Each test runs the in-process DynamoDB with the template's tables; "a crash" is a second store
opened on the same files while the first one was never closed (nothing of it saved on exit).
"""

from __future__ import annotations

import errno
import json
import os
import subprocess
import zlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from emulator.durable import DurableStore, StateBusy, StateLock, state_owner
from emulator.dynamo import InProcessDynamo, dynamodb_client
from emulator.journal import JournalError, journal_files
from emulator.snapshot import StateFileError
from emulator.template import create_tables, load_template

TABLE = "ab_results"
ONE = {"experiment_id": {"N": "1"}}


class Opened:
    def __init__(self, path: Path, snapshot_every: int = 1000) -> None:
        self.dynamo = InProcessDynamo("us-east-1")
        self.dynamo.start()
        self.client = dynamodb_client("us-east-1")
        tables = create_tables(self.client, load_template())
        self.store = DurableStore(path, self.dynamo, list(tables.values()), snapshot_every)
        self.recovery = self.store.open()

    def put(self, i: int, **extra: Any) -> None:
        item = {"experiment_id": {"N": "1"}, "result_id": {"S": f"r{i:03d}"}, **extra}
        self.client.put_item(TableName=TABLE, Item=item)

    def ids(self) -> list[str]:
        pages = self.client.get_paginator("scan").paginate(TableName=TABLE)
        return sorted(item["result_id"]["S"] for page in pages for item in page["Items"])

    def close(self) -> None:
        self.store.close()
        self.dynamo.stop()


@pytest.fixture
def opened() -> Iterator[list[Opened]]:
    stores: list[Opened] = []
    yield stores
    for store in stores:
        store.dynamo.stop()


def open_store(stores: list[Opened], path: Path, snapshot_every: int = 1000) -> Opened:
    store = Opened(path, snapshot_every)
    stores.append(store)
    return store


def three_written(opened: list[Opened], path: Path) -> tuple[Opened, Path]:
    """A store at `path` with three acknowledged writes (r000-r002), and its journal."""
    store = open_store(opened, path)
    for i in range(3):
        store.put(i)
    return store, next(iter(journal_files(path).values()))


def test_items_survive_a_close_and_reopen(opened: list[Opened], tmp_path: Path) -> None:
    # Given items written (more than one batch, binary values included) and a clean close
    path = tmp_path / "state.json"
    first = open_store(opened, path)
    for i in range(60):
        first.put(i, blob={"B": bytes([i, 255])}, nested={"M": {"l": {"L": [{"B": b"\x00"}]}}})
    first.close()
    # When the state is opened again
    second = open_store(opened, path)
    # Then every item is back, binary values included, from a plain JSON file and no journal
    assert second.recovery.items == 60 and second.recovery.replayed == 0
    item = second.client.get_item(
        TableName=TABLE, Key={"experiment_id": {"N": "1"}, "result_id": {"S": "r007"}}
    )["Item"]
    assert item["blob"]["B"] == bytes([7, 255])
    assert item["nested"]["M"]["l"]["L"][0]["B"] == b"\x00"
    assert len(json.loads(path.read_text())["tables"][TABLE]) == 60
    assert not list(tmp_path.glob(".state-*"))


def test_a_crash_loses_no_acknowledged_write(opened: list[Opened], tmp_path: Path) -> None:
    # Given writes acknowledged, a snapshot in the middle, and a crash (no close)
    path = tmp_path / "state.json"
    first = open_store(opened, path)
    for i in range(10):
        first.put(i)
    first.store.snapshot()
    for i in range(10, 15):
        first.put(i)
    first.client.delete_item(
        TableName=TABLE, Key={"experiment_id": {"N": "1"}, "result_id": {"S": "r003"}}
    )
    # When another store opens the same files
    second = open_store(opened, path)
    # Then the snapshot plus the journal hold everything, the delete included
    assert second.ids() == [f"r{i:03d}" for i in range(15) if i != 3]
    assert (second.recovery.items, second.recovery.replayed) == (10, 6)
    # And the replayed journal was folded into a new snapshot
    assert list(journal_files(path)) == [json.loads(path.read_text())["journal_generation"] + 1]


def test_a_snapshot_holds_whole_transactions_and_the_journal_restarts(
    opened: list[Opened], tmp_path: Path
) -> None:
    # Given a transaction of two writes, then a snapshot
    path = tmp_path / "state.json"
    first = open_store(opened, path)
    first.client.transact_write_items(
        TransactItems=[
            {
                "Put": {
                    "TableName": TABLE,
                    "Item": {"experiment_id": {"N": "1"}, "result_id": {"S": "a"}},
                }
            },
            {
                "Put": {
                    "TableName": TABLE,
                    "Item": {"experiment_id": {"N": "1"}, "result_id": {"S": "b"}},
                }
            },
        ]
    )
    generation = first.store.journal.generation if first.store.journal else 0
    first.store.snapshot()
    # Then the state file has both, and only the new, empty journal is left
    saved = json.loads(path.read_text())
    assert sorted(i["result_id"]["S"] for i in saved["tables"][TABLE]) == ["a", "b"]
    assert saved["journal_generation"] == generation
    assert list(journal_files(path)) == [generation + 1]
    assert journal_files(path)[generation + 1].read_text().count("\n") == 1  # header only


def test_a_full_journal_is_folded_into_a_snapshot_in_the_background(
    opened: list[Opened], tmp_path: Path
) -> None:
    # Given a store that snapshots every 5 journaled writes
    path = tmp_path / "state.json"
    first = open_store(opened, path, snapshot_every=5)
    # When 5 writes are acknowledged
    for i in range(5):
        first.put(i)
    # Then a snapshot with all of them is written and their journal deleted
    assert first.store.saved.wait(60)
    saved = json.loads(path.read_text())
    assert len(saved["tables"][TABLE]) == 5
    assert min(journal_files(path)) > saved["journal_generation"]


def test_a_torn_last_journal_line_is_dropped_and_reported(
    opened: list[Opened], tmp_path: Path
) -> None:
    # Given three acknowledged writes and a fourth cut off by a crash mid-write
    path = tmp_path / "state.json"
    _, journal = three_written(opened, path)
    with journal.open("ab") as fh:
        fh.write(b'{"op":"PutItem","params":{"TableName":"ab_res')
    # When the state is opened again
    second = open_store(opened, path)
    # Then the three are there and the torn line is reported
    assert second.ids() == ["r000", "r001", "r002"]
    assert second.recovery.torn == [f"{journal} line 5"]


def test_a_damaged_journal_line_is_refused_with_a_way_out(
    opened: list[Opened], tmp_path: Path
) -> None:
    # Given a journal whose second entry is garbage, followed by a good one
    path = tmp_path / "state.json"
    _, journal = three_written(opened, path)
    lines = journal.read_bytes().split(b"\n")
    lines[2] = b"garbage"
    damaged = b"\n".join(lines)
    journal.write_bytes(damaged)
    # When the state is opened again / Then it is refused, saying which line and how to recover
    with pytest.raises(JournalError, match=r"line 3 is damaged ") as refused:
        Opened(path)
    # And the recovery it suggests keeps every write but the damaged one, and the file as it was
    run_suggested(refused.value)
    assert open_store(opened, path).ids() == ["r000", "r002"]
    assert journal.with_name(journal.name + ".line3.damaged").read_bytes() == damaged


def run_suggested(refusal: Exception) -> None:
    """Run the shell command a refusal's message ends with, in backquotes."""
    message = str(refusal)
    assert message.endswith("`"), message
    command = message[message.rindex("`", 0, -1) + 1 : -1]
    subprocess.run(["sh", "-c", command], check=True)


def test_an_empty_newest_journal_is_refused_not_started_without_it(
    opened: list[Opened], tmp_path: Path
) -> None:
    # Given acknowledged writes whose journal was then cut to 0 bytes (its header gone too)
    path = tmp_path / "state.json"
    _, journal = three_written(opened, path)
    journal.write_bytes(b"")
    # When the state is opened again / Then it is refused, naming the file and a way out,
    # and nothing was changed
    with pytest.raises(JournalError, match=r"is empty: .*create|is empty: .*empty journal") as e:
        Opened(path)
    assert journal.read_bytes() == b""
    assert not path.exists()
    # And the way out starts without that journal's writes
    run_suggested(e.value)
    assert open_store(opened, path).ids() == []


def test_a_missing_newest_journal_is_refused_not_started_without_it(
    opened: list[Opened], tmp_path: Path
) -> None:
    # Given a state file saved with r000-r002, then two writes in the journal after it
    path = tmp_path / "state.json"
    first, _ = three_written(opened, path)
    first.close()
    second = open_store(opened, path)
    second.put(3)
    second.put(4)
    # When that journal is lost (after a crash) and the state is opened again
    journals = journal_files(path)
    (newest,) = journals.values()
    newest.unlink()
    saved = path.read_bytes()
    # Then it is refused, naming the journal, and the state file is unchanged
    with pytest.raises(JournalError, match=rf"{newest.name} is missing: ") as refused:
        Opened(path)
    assert path.read_bytes() == saved
    assert journal_files(path) == {}
    # And the way out it names starts from the state file alone
    run_suggested(refused.value)
    assert open_store(opened, path).ids() == ["r000", "r001", "r002"]


def test_a_state_file_of_an_older_server_starts_without_its_next_journal(
    opened: list[Opened], tmp_path: Path
) -> None:
    # Given a state file as a server before the next-journal-first rule wrote it (a crash at
    # its start could leave no journal after it, with nothing lost)
    path = tmp_path / "state.json"
    first, _ = three_written(opened, path)
    first.close()
    state = json.loads(path.read_bytes())
    del state["next_journal_first"]
    path.write_text(json.dumps(state))
    for journal in journal_files(path).values():
        journal.unlink()
    # When it is opened / Then it starts with what it holds
    assert open_store(opened, path).ids() == ["r000", "r001", "r002"]


def test_a_state_file_always_has_its_next_journal_beside_it(
    opened: list[Opened], tmp_path: Path
) -> None:
    # Given a store opened, written, crashed, reopened (a replay), closed, reopened
    path = tmp_path / "state.json"
    three_written(opened, path)
    replayed = open_store(opened, path)
    saved = json.loads(path.read_bytes())["journal_generation"]
    replayed.close()
    after_close = json.loads(path.read_bytes())["journal_generation"]
    # Then each time the journal after the state file's last one is there, and only it
    assert list(journal_files(path)) == [after_close + 1]
    assert after_close >= saved >= 1
    reopened = open_store(opened, path)
    assert list(journal_files(path)) == [after_close + 1]
    assert reopened.ids() == ["r000", "r001", "r002"]


def test_a_new_journal_is_never_seen_without_its_header(
    opened: list[Opened], tmp_path: Path
) -> None:
    # Given a store just opened / Then its journal has its header, and no half-made file is left
    path = tmp_path / "state.json"
    open_store(opened, path)
    (journal,) = journal_files(path).values()
    assert json.loads(journal.read_bytes().split(b"\n")[0]) == {"journal": 2, "generation": 1}
    assert [p.name for p in tmp_path.iterdir() if p.name.endswith(".new")] == []


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (b"", "is empty"),
        (b'{"version": 1, "tables": {"ab_results": [{"experiment_id"', "not valid JSON"),
        (b"[1, 2]", "wrong shape"),
        (b'{"version": 1, "tables": {"ab_results": {"a": 1}}}', "wrong shape"),
        (b'{"version": 7, "tables": {}}', "version 7"),
        (b'{"tables": {"ab_results": [{"result_id": {"S": "x"}}]}}', "refuses"),
    ],
)
def test_a_damaged_state_file_is_refused_never_started_empty(
    opened: list[Opened], tmp_path: Path, content: bytes, message: str
) -> None:
    # Given a state file that is empty, truncated, of the wrong shape or refused by DynamoDB
    path = tmp_path / "state.json"
    path.write_bytes(content)
    # When it is opened / Then it is refused with what is wrong and how to recover
    with pytest.raises(StateFileError, match=message) as raised:
        store = Opened(path)
        opened.append(store)
    assert "mv " in str(raised.value) or "use the release" in str(raised.value)
    assert path.read_bytes() == content  # left as it was


def test_one_owner_per_state_file(tmp_path: Path) -> None:
    # Given a state file owned by this process, serving at a URL
    path = tmp_path / "state.json"
    lock = StateLock(path)
    lock.acquire()
    lock.record("http://127.0.0.1:9999")
    try:
        # When someone else asks / Then it is busy, with the owner's pid and URL
        with pytest.raises(StateBusy, match="in use by process"):
            StateLock(path).acquire()
        owner = state_owner(path)
        assert owner is not None and owner.url == "http://127.0.0.1:9999"
    finally:
        lock.release()
    # And once released, nobody owns it
    assert state_owner(path) is None


def test_a_snapshot_reads_what_a_consistent_scan_answers() -> None:
    # Given tables holding items of every attribute type
    dynamo = InProcessDynamo("us-east-1")
    dynamo.start()
    try:
        client = dynamodb_client("us-east-1")
        tables = create_tables(client, load_template())
        everything = {
            "b": {"B": b"\\x00\\xff"},
            "bs": {"BS": [b"\\x01", b"\\x02"]},
            "ss": {"SS": ["a", "b"]},
            "ns": {"NS": ["1", "2.5"]},
            "n": {"N": "-1.50"},
            "t": {"BOOL": True},
            "z": {"NULL": True},
            "l": {"L": [{"S": "x"}, {"B": b"\\x03"}, {"M": {"k": {"N": "1"}}}]},
            "m": {"M": {"nested": {"L": [{"SS": ["q"]}]}, "bin": {"B": b"\\x04"}}},
        }
        for i in range(30):
            client.put_item(
                TableName=TABLE,
                Item={
                    "experiment_id": {"N": str(i % 3)},
                    "result_id": {"S": f"r{i}"},
                    **everything,
                },
            )
        client.update_item(
            TableName=TABLE,
            Key={"experiment_id": {"N": "0"}, "result_id": {"S": "r0"}},
            UpdateExpression="ADD ss :s, n :one",
            ExpressionAttributeValues={":s": {"SS": ["c"]}, ":one": {"N": "1"}},
        )
        # When every table is read for a snapshot, and scanned the way DynamoDB answers
        for table in tables.values():
            with dynamo.lock:
                count, text = dynamo.table_items(table)
                params: dict[str, Any] = {"TableName": table, "ConsistentRead": True}
                scanned: list[Any] = []
                while True:
                    page = json.loads(dynamo.call("Scan", json.dumps(params).encode()))
                    scanned.extend(page.get("Items", []))
                    if not page.get("LastEvaluatedKey"):
                        break
                    params["ExclusiveStartKey"] = page["LastEvaluatedKey"]
            # Then both are the same items, in the same order
            assert json.loads(text) == scanned
            assert count == len(scanned)
        with dynamo.lock:
            assert dynamo.table_items(TABLE)[0] == 30
    finally:
        dynamo.stop()


class FullDisk:
    """os.write for the journal: refuses with ENOSPC (or EIO) while `full`, after writing
    `partial` bytes of the entry when asked, as a filling disk does."""

    def __init__(self, real: Any) -> None:
        self.real = real
        self.full = False
        self.partial = 0
        self.error = errno.ENOSPC
        self.refused = 0

    def __call__(self, fd: int, data: Any) -> int:
        if not self.full:
            return int(self.real(fd, data))
        self.refused += 1
        if self.partial:
            written = int(self.real(fd, bytes(data)[: self.partial]))
            self.partial = 0
            return written  # the next write of the rest fails
        raise OSError(self.error, os.strerror(self.error))


@pytest.mark.parametrize("error", [errno.ENOSPC, errno.EIO])
def test_a_write_the_journal_cannot_take_is_refused_with_nothing_done(
    opened: list[Opened], tmp_path: Path, monkeypatch: pytest.MonkeyPatch, error: int
) -> None:
    from emulator import journal as journal_module

    disk = FullDisk(os.write)
    disk.error = error
    monkeypatch.setattr(journal_module.os, "write", disk)
    path = tmp_path / "state.json"
    # Given three acknowledged writes
    store, journal = three_written(opened, path)
    size = journal.stat().st_size
    # When the disk refuses: one entry cut off halfway, then every write refused
    disk.full, disk.partial = True, 20
    refused = []
    for _attempt in range(4):  # the same write, retried
        with pytest.raises(store.client.exceptions.ClientError) as answer:
            store.put(3)
        refused.append(answer.value.response)
    # Then each attempt is DynamoDB's 503, nothing was applied (a retry is no duplicate), reads
    # go on, and the journal holds no part of it
    assert {r["Error"]["Code"] for r in refused} == {"ServiceUnavailable"}
    assert {r["ResponseMetadata"]["HTTPStatusCode"] for r in refused} == {503}
    assert store.ids() == ["r000", "r001", "r002"]
    assert journal.stat().st_size == size
    # When space returns: writes go on, with no restart
    disk.full = False
    store.put(3)
    store.put(4)
    # And after a crash (no close), everything answered is there, and nothing else
    again = open_store(opened, path)
    assert again.ids() == ["r000", "r001", "r002", "r003", "r004"]
    assert again.recovery.torn is None


def test_a_write_dynamodb_refuses_is_taken_back_from_the_journal(
    opened: list[Opened], tmp_path: Path
) -> None:
    # Given a stored item
    path = tmp_path / "state.json"
    store = open_store(opened, path)
    store.put(0)
    journal = next(iter(journal_files(path).values()))
    size = journal.stat().st_size
    # When a conditional write of it is refused, as a repeat is
    item = {"experiment_id": {"N": "1"}, "result_id": {"S": "r000"}}
    with pytest.raises(store.client.exceptions.ConditionalCheckFailedException):
        store.client.put_item(
            TableName=TABLE, Item=item, ConditionExpression="attribute_not_exists(result_id)"
        )
    # Then the journal is as it was: the refused write is not in it
    assert journal.stat().st_size == size
    # And a refused write whose taking back never reached the disk is dropped at start, with
    # what came before it kept
    with journal.open("ab") as fh:
        entry = {"op": "PutItem", "params": {"TableName": TABLE, "Item": item,
                 "ConditionExpression": "attribute_not_exists(result_id)"}}  # fmt: skip
        line = json.dumps(entry).encode()
        fh.write(b"%08x " % zlib.crc32(line) + line + b"\n")
    again = open_store(opened, path)
    assert again.ids() == ["r000"]


def test_a_line_changed_into_other_valid_json_is_damage_not_a_write(
    opened: list[Opened], tmp_path: Path
) -> None:
    # Given three writes, the second one's item changed on disk into another valid entry
    path = tmp_path / "state.json"
    _, journal = three_written(opened, path)
    lines = journal.read_bytes().split(b"\n")
    assert b"r001" in lines[2]
    lines[2] = lines[2].replace(b"r001", b"r999")
    journal.write_bytes(b"\n".join(lines))
    # When the state is opened again / Then the checksum tells: refused, naming the line
    with pytest.raises(JournalError, match=r"line 3 is damaged \(its checksum does not match\)"):
        Opened(path)


def test_a_journal_of_the_format_before_checksums_is_still_read(
    opened: list[Opened], tmp_path: Path
) -> None:
    # Given a journal written before lines had checksums (format 1)
    path = tmp_path / "state.json"
    item = {"experiment_id": {"N": "1"}, "result_id": {"S": "r042"}}
    entry = {"op": "PutItem", "params": {"TableName": TABLE, "Item": item}}
    header = {"journal": 1, "generation": 1}
    (tmp_path / "state.json.journal.1").write_text(
        json.dumps(header) + "\n" + json.dumps(entry) + "\n"
    )
    # When it is opened / Then its write is there
    assert open_store(opened, path).ids() == ["r042"]


class FailingSync:
    """os.fsync and os.fdatasync: fail with EIO while `failing`, as a disk with bad blocks."""

    def __init__(self, real: Any) -> None:
        self.real = real
        self.failing = False

    def __call__(self, fd: int) -> None:
        if self.failing:
            raise OSError(errno.EIO, os.strerror(errno.EIO))
        self.real(fd)


def test_a_write_that_cannot_be_synced_is_never_confirmed_and_a_snapshot_mends_it(
    opened: list[Opened], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import threading

    from emulator import durable

    sync, datasync = FailingSync(os.fsync), FailingSync(os.fdatasync)
    monkeypatch.setattr(os, "fsync", sync)
    monkeypatch.setattr(os, "fdatasync", datasync)
    monkeypatch.setattr(durable, "RESYNC_EVERY", 0.05)
    path = tmp_path / "state.json"
    # Given three acknowledged writes
    store, _ = three_written(opened, path)
    # When the disk cannot sync: a write is applied in memory but its sync fails
    sync.failing = datasync.failing = True
    answers = []
    for call in (lambda: store.put(3), store.ids, lambda: store.put(4)):
        with pytest.raises(store.client.exceptions.ClientError) as refused:
            call()
        answers.append(refused.value.response)
    # Then it is DynamoDB's 503, and so is every call after it, reads included: nothing is
    # confirmed on top of a write that may not be kept
    assert [a["ResponseMetadata"]["HTTPStatusCode"] for a in answers] == [503, 503, 503]
    assert "may or may not be kept" in answers[0]["Error"]["Message"]
    # When the disk heals: the store saves a snapshot of everything and goes on, no restart
    store.store.saved.clear()
    sync.failing = datasync.failing = False
    assert store.store.saved.wait(10)
    healed = threading.Event()
    for _ in range(100):
        try:
            store.put(4)
            healed.set()
            break
        except store.client.exceptions.ClientError:
            healed.wait(0.05)
    assert healed.is_set()
    assert store.ids() == ["r000", "r001", "r002", "r003", "r004"]
    # And after a crash every write confirmed is there (r003 was applied in memory, kept by
    # the snapshot: a 503 may or may not have been applied)
    again = open_store(opened, path)
    assert again.ids() == ["r000", "r001", "r002", "r003", "r004"]


def test_a_damaged_state_file_is_moved_aside_with_its_journals_by_the_command_given(
    opened: list[Opened], tmp_path: Path
) -> None:
    # Given a state file saved with writes, a journal after it, then the file cut short
    path = tmp_path / "state.json"
    first, _ = three_written(opened, path)
    first.close()
    path.write_bytes(path.read_bytes()[:40])
    journals = sorted(p.name for p in journal_files(path).values())
    # When opened / Then it is refused with the command that sets it and its journals aside
    with pytest.raises(StateFileError, match="is not valid JSON") as refused:
        Opened(path)
    run_suggested(refused.value)
    # And after running it the store starts empty, with every file kept in the folder aside
    assert open_store(opened, path).ids() == []
    aside = tmp_path / "state.json.damaged"
    assert sorted(p.name for p in aside.iterdir()) == sorted(["state.json", *journals])
