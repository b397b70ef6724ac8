"""The local store's durability: state file + journal, recovery at start, snapshots, owner lock.

- Every successful write call is in the journal, on disk, before its answer goes out
  (`emulator.dynamo` hands it over under the call lock; `emulator.journal` syncs it).
- At start the state file is loaded and the journals younger than it are replayed, in order.
  Then a fresh snapshot is written and the replayed journals are deleted.
- A snapshot reads every table while holding the call lock and switches to a new journal
  before letting go, so it never holds half a transaction and never misses or repeats a write.
  It reads the backend's items directly, as JSON text, and parses them after letting go: a
  Scan would copy and measure every item, holding every call back meanwhile.
  The file is written after the lock is released; only then are the older journals deleted
  (a crash in between replays them over the previous snapshot, which does not hold them).
- Snapshots are taken when the journal reaches `snapshot_every` entries or half as many
  entries as the last snapshot held items, whichever is more (so the time spent reading the
  tables stays a bounded share of the time spent writing, and a replay never takes longer
  than a load), and on close.
- The state file has one owner at a time: an exclusive lock on ``<state file>.lock``, which
  also records the owner's pid and URL (the operating system releases it if the owner dies).
"""

from __future__ import annotations

import fcntl
import json
import logging
import os
import threading
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from emulator.dynamo import DynamoError, InProcessDynamo
from emulator.journal import (
    Journal,
    JournalError,
    delete_line_command,
    empty_journal_command,
    journal_files,
    journal_path,
    read_journal,
)
from emulator.snapshot import (
    Snapshot,
    StateFileError,
    read_snapshot,
    start_empty,
    write_snapshot,
)

log = logging.getLogger("emulator.state")

BATCH_SIZE = 25  # BatchWriteItem's limit
SNAPSHOT_EVERY = 5_000  # journal entries, at least; more once the tables hold more items
RESYNC_EVERY = 1.0  # seconds between snapshots tried after a journal could not be synced


class StateBusy(RuntimeError):
    """Another process owns the state file."""

    def __init__(self, path: Path, pid: int | None, url: str) -> None:
        self.path, self.pid, self.url = path, pid, url
        who = f"process {pid}" if pid else "another process"
        where = f" (serving {url})" if url else ""
        super().__init__(f"{path} is in use by {who}{where}: stop it first, or use another file")


class StateLock:
    """An exclusive lock on ``<state file>.lock`` holding ``{"pid": ..., "url": ...}``."""

    def __init__(self, state_path: Path) -> None:
        self.path = state_path.with_name(state_path.name + ".lock")
        self.state_path = state_path
        self._fd: int | None = None

    def acquire(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            owner = _owner_record(fd)
            os.close(fd)
            raise StateBusy(self.state_path, owner.get("pid"), owner.get("url", "")) from None
        self._fd = fd
        self.record("")

    def record(self, url: str) -> None:
        """Say who owns the state file and where it serves."""
        assert self._fd is not None
        data = json.dumps({"pid": os.getpid(), "url": url}).encode()
        os.ftruncate(self._fd, 0)
        os.pwrite(self._fd, data, 0)

    def release(self) -> None:
        if self._fd is not None:
            os.ftruncate(self._fd, 0)
            os.close(self._fd)  # closing the descriptor releases the lock
            self._fd = None


def _owner_record(fd: int) -> dict[str, Any]:
    try:
        record = json.loads(os.pread(fd, 4096, 0) or b"{}")
    except ValueError:
        return {}
    return record if isinstance(record, dict) else {}


def state_owner(state_path: Path) -> StateBusy | None:
    """Who owns the state file right now (None: nobody)."""
    probe = StateLock(state_path)
    if not probe.path.exists():
        return None
    try:
        probe.acquire()
    except StateBusy as busy:
        return busy
    probe.release()
    return None


@dataclass
class Recovery:
    items: int = 0
    replayed: int = 0
    torn: list[str] | None = None


class DurableStore:
    """Keeps an InProcessDynamo's tables in a state file plus journal; see the module doc."""

    def __init__(
        self,
        path: Path,
        dynamo: InProcessDynamo,
        tables: list[str],
        snapshot_every: int = SNAPSHOT_EVERY,
    ) -> None:
        self.path = Path(path)
        self.dynamo = dynamo
        self.tables = tables
        self.snapshot_every = snapshot_every
        self.journal: Journal | None = None
        self._saved_items = 0  # items in the last snapshot
        self.saved = threading.Event()  # set after each snapshot is on disk
        self._snapshot_lock = threading.Lock()
        self._wake = threading.Event()
        self._closing = False
        self._thread = threading.Thread(target=self._snapshots, name="snapshots", daemon=True)

    # ------------------------------------------------------------------ start

    def open(self) -> Recovery:
        """Load the state file, replay the journals, start journaling. Raises StateFileError
        or JournalError (with what is wrong and how to recover) on damage."""
        snapshot = read_snapshot(self.path)
        recovery = Recovery()
        with self.dynamo.lock:
            recovery.items = self._saved_items = self._load(snapshot)
            generation = self._replay(snapshot, recovery)
            if recovery.replayed or recovery.torn:
                texts = self._capture()
                # The journal after a snapshot exists before the snapshot does (so a missing
                # one is damage, `_replay`), and the journals it holds go only after it.
                self._switch_journal(generation + 1)
                write_snapshot(self.path, Snapshot(_items(texts), generation))
            else:  # nothing but empty journals: the state file holds everything
                generation = snapshot.journal_generation
                self._switch_journal(generation + 1)  # takes the place of an empty one
            self._delete_journals(keep=generation + 1)
        self._thread.start()
        return recovery

    def _load(self, snapshot: Snapshot) -> int:
        self._refuse_foreign(snapshot.tables, self.path)
        count = 0
        for table, items in snapshot.tables.items():
            for start in range(0, len(items), BATCH_SIZE):
                chunk = [{"PutRequest": {"Item": i}} for i in items[start : start + BATCH_SIZE]]
                try:
                    self.dynamo.call("BatchWriteItem", _json({"RequestItems": {table: chunk}}))
                except DynamoError as exc:
                    raise StateFileError(
                        f"{self.path} holds an item of {table} that DynamoDB refuses ({exc}): "
                        f"restore it from a backup, or {start_empty(self.path)}"
                    ) from None
            count += len(items)
        return count

    def _refuse_foreign(self, held: Iterable[str], where: Path) -> None:
        """Another TablePrefix (or another template) than the one that wrote the file: loading
        would drop those tables, and the next save would write the file without them."""
        held = set(held)
        if held - set(self.tables):
            raise StateFileError(
                f"{where} holds the tables {', '.join(sorted(held))}, but this server's tables "
                f"are {', '.join(sorted(self.tables))} (another TablePrefix?): start with the "
                f"parameters that made it, or give these tables a state file of their own "
                f"(--state-file {self.path.parent / 'other-state.json'}); nothing was changed"
            )

    def _replay(self, snapshot: Snapshot, recovery: Recovery) -> int:
        """Apply the journals younger than the snapshot; the last generation applied.

        A snapshot is written only once the journal after it exists (`open`, `snapshot`), so
        a state file that holds journals up to G (G > 0) without journal G + 1 beside it has
        lost the writes made since it was saved: refused, never started without them (but for a
        state file of a server before that rule, which a crash at start could leave so)."""
        covered = snapshot.journal_generation
        younger = {g: p for g, p in journal_files(self.path).items() if g > covered}
        if covered and covered + 1 not in younger and snapshot.next_journal_first:
            raise self._missing(covered + 1)
        generation = covered
        for g, path in younger.items():
            if g != generation + 1:
                raise self._missing(generation + 1)
            content = read_journal(path, g, last=g == max(younger))
            for _, params in content.entries:
                self._refuse_foreign(_tables_named(json.loads(params)), path)
            last_line = len(content.entries) + 1 if g == max(younger) else None
            for number, (operation, params) in enumerate(content.entries, start=2):
                try:
                    self.dynamo.call(operation, params.encode())
                except DynamoError as exc:
                    if number == last_line and _refused_as_made(exc):
                        # Written before its call was applied, refused by it, then cut back
                        # off the file: a crash came before that cut reached the disk.
                        log.info(
                            "%s line %d (%s) was refused when it was made: dropped",
                            path,
                            number,
                            operation,
                        )
                        break
                    raise JournalError(
                        f"{path} line {number} ({operation}) cannot be applied again ({exc}): "
                        f"to start without that one write, keeping every other, delete the "
                        f"line: `{delete_line_command(path, number)}`"
                    ) from None
            recovery.replayed += len(content.entries)
            if content.torn_line is not None:
                recovery.torn = [*(recovery.torn or []), f"{path} line {content.torn_line}"]
            generation = g
        return generation

    def _missing(self, generation: int) -> JournalError:
        path = journal_path(self.path, generation)
        return JournalError(
            f"{path} is missing: it held the writes made after {self.path} and the journals "
            f"before it were saved; put it back if you have it, or, to start without those "
            f"writes, create it empty: `{empty_journal_command(path, generation)}`"
        )

    # ------------------------------------------------------------------ snapshots

    def _capture(self) -> dict[str, str]:
        """Every item of every table, as JSON text per table (the caller holds the call lock;
        the text is parsed after it lets go, see `_items`)."""
        texts: dict[str, str] = {}
        count = 0
        for table in self.tables:
            items, texts[table] = self.dynamo.table_items(table)
            count += items
        self._saved_items = count
        return texts

    def _switch_journal(self, generation: int) -> Journal | None:
        """Start journal `generation` (the caller holds the call lock); the previous one."""
        previous = self.journal
        full_at = max(self.snapshot_every, self._saved_items // 2)
        self.journal = Journal(self.path, generation, full_at, self._wake)
        self.dynamo.write_log = self.journal
        if previous is not None:
            previous.close()
        return previous

    def snapshot(self) -> None:
        """Save every table now and drop the journals the state file then holds."""
        with self._snapshot_lock:
            with self.dynamo.lock:
                if self.journal is None or not self.journal.entries:
                    return
                try:  # the journal the snapshot replaces must hold what it confirmed
                    self.journal.wait_durable(self.journal.entries)
                except OSError:
                    failed = True  # it is marked: `resync` takes over
                else:
                    failed = False
                    texts = self._capture()
                    covered = self.journal.generation
                    self._switch_journal(covered + 1)
            if failed:
                self._resync_locked()
                return
            write_snapshot(self.path, Snapshot(_items(texts), covered))
            self._delete_journals(up_to=covered)
            self.saved.set()

    def _delete_journals(self, up_to: int | None = None, keep: int | None = None) -> None:
        for generation, path in journal_files(self.path).items():
            if (up_to is None or generation <= up_to) and generation != keep:
                path.unlink(missing_ok=True)

    def _snapshots(self) -> None:
        while True:
            failed = self.journal is not None and self.journal.sync_failed is not None
            self._wake.wait(RESYNC_EVERY if failed else None)
            self._wake.clear()
            if self._closing:
                return
            journal = self.journal
            if journal is None:
                continue
            try:
                if journal.sync_failed is not None:
                    self.resync()
                elif journal.entries >= journal.full_at:
                    self.snapshot()
            except Exception:
                log.exception("could not save a snapshot to %s (the journal grows)", self.path)

    def resync(self) -> None:
        """After a journal could not be synced: save a snapshot of everything, then go on with
        a new journal. The failed journal takes no write meanwhile, so nothing changes
        between the reading of the tables and the switch; until the snapshot is on disk,
        every call is answered 503, and one that raises here is tried again later."""
        with self._snapshot_lock:
            self._resync_locked()

    def _resync_locked(self) -> None:
        """`resync`, the caller holding the snapshot lock."""
        with self.dynamo.lock:
            failed = self.journal
            if failed is None or failed.sync_failed is None:
                return
            texts = self._capture()
        covered = failed.generation
        # The journal after the snapshot exists before the snapshot does (see `_replay`); if
        # the snapshot fails it stays, empty: harmless to a replay, replaced by the next try.
        following = Journal(self.path, covered + 1)
        try:
            write_snapshot(self.path, Snapshot(_items(texts), covered))
        except BaseException:
            following.close()
            raise
        with self.dynamo.lock:
            following.full_at = max(self.snapshot_every, self._saved_items // 2)
            following.full = self._wake
            self.journal = following
            self.dynamo.write_log = following
            failed.close()
        self._delete_journals(up_to=covered)
        self.saved.set()
        log.warning("%s holds everything again: calls are taken again", self.path)

    # ------------------------------------------------------------------ stop

    def close(self) -> None:
        """A final snapshot, then no more journaling."""
        self._closing = True
        self._wake.set()
        if self._thread.is_alive():
            self._thread.join()
        try:
            self.snapshot()
        finally:
            with self.dynamo.lock:
                self.dynamo.write_log = None
                if self.journal is not None:
                    self.journal.close()
                    self.journal = None


def _items(texts: dict[str, str]) -> dict[str, list[dict[str, Any]]]:
    return {table: json.loads(text) for table, text in texts.items()}


def _json(value: Any) -> bytes:
    return json.dumps(value, separators=(",", ":")).encode()


def _tables_named(params: Any) -> set[str]:
    """The tables a journaled call names (TableName, RequestItems, TransactItems)."""
    names = set()
    if isinstance(params, dict):
        if isinstance(params.get("TableName"), str):
            names.add(params["TableName"])
        if isinstance(params.get("RequestItems"), dict):
            names.update(params["RequestItems"])
        for entry in params.get("TransactItems") or ():
            for operation in entry.values() if isinstance(entry, dict) else ():
                names |= _tables_named(operation)
    return names


# What DynamoDB answers a well-formed write that it refuses at the time it is made.
_REFUSALS_AS_MADE = (
    "#ConditionalCheckFailedException",
    "#TransactionCanceledException",
    "#ValidationException",
)


def _refused_as_made(exc: DynamoError) -> bool:
    return any(name in str(exc) for name in _REFUSALS_AS_MADE)
