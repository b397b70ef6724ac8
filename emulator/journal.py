"""The write-ahead journal: every successful DynamoDB write since the last snapshot, in order.

One file per generation, ``<state file>.journal.<generation>``: a header line, then one line
per write, ``<crc32 of the rest, 8 hex digits> {"op": "<operation>", "params": <the request
body as sent>}``: a line that was changed, even into other valid JSON, no longer matches its
checksum (journals of format 1, without it, are still read). A line is
written with one ``write`` call while the call lock is held, so lines are in the order the
writes were applied. A caller that needs its write (or what it read) to be durable waits in
`wait_durable`: whoever takes the sync lock first flushes every line written so far with one
fsync (a group commit), and the others usually find their line already covered.

A crash can leave only the last line half written: that write was never acknowledged, so
reading drops it (and says so); anything else that does not parse is damage.
"""

from __future__ import annotations

import json
import logging
import os
import re
import shlex
import threading
import zlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

FORMAT = 2  # 1: the same lines without their checksum
log = logging.getLogger("emulator.state")


class JournalError(ValueError):
    """A journal that cannot be replayed as it is; the message says what and how to recover."""


def journal_path(state_path: Path, generation: int) -> Path:
    return state_path.with_name(f"{state_path.name}.journal.{generation}")


def journal_files(state_path: Path) -> dict[int, Path]:
    """Every journal file of a state file, by generation."""
    pattern = re.compile(re.escape(state_path.name) + r"\.journal\.(\d+)$")
    found = {}
    for candidate in state_path.parent.glob(f"{state_path.name}.journal.*"):
        match = pattern.match(candidate.name)
        if match:
            found[int(match.group(1))] = candidate
    return dict(sorted(found.items()))


def empty_journal_command(path: Path, generation: int) -> str:
    """The shell command that writes an empty journal (its header alone) at `path`."""
    header = json.dumps({"journal": FORMAT, "generation": generation})
    return f"printf '%s\\n' {shlex.quote(header)} > {shlex.quote(str(path))}"


def delete_line_command(path: Path, number: int) -> str:
    """The shell command that deletes line `number` of `path`, keeping the file as it was
    beside it (``<path>.line<number>.damaged``; GNU and BSD sed alike)."""
    return f"sed -i.line{number}.damaged '{number}d' {shlex.quote(str(path))}"


def fsync_directory(directory: Path) -> None:
    """Make a rename or a new file in `directory` durable."""
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


class Journal:
    """The open journal of one generation: appends, group commits, close."""

    def __init__(
        self,
        state_path: Path,
        generation: int,
        full_at: int = 0,
        full: threading.Event | None = None,
    ) -> None:
        """`full` is set once the journal holds `full_at` entries (time for a snapshot)."""
        self.generation = generation
        self.full_at = full_at
        self.full = full
        self.path = journal_path(state_path, generation)
        # Made under another name and renamed once its header is on disk: a journal file is
        # never without its header, so an empty one can only be damage.
        fresh = self.path.with_name(self.path.name + ".new")
        self._fd = os.open(fresh, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_APPEND, 0o644)
        header = {"journal": FORMAT, "generation": generation}
        self._write((json.dumps(header) + "\n").encode())
        os.fsync(self._fd)
        os.replace(fresh, self.path)
        fsync_directory(self.path.parent)
        self.size = os.fstat(self._fd).st_size  # where the next entry starts
        self._last_start = self.size
        self.broken: OSError | None = None  # a failure that left the file other than it was
        self.sync_failed: OSError | None = None  # a sync failed: nothing confirmed after it
        self.entries = 0
        self._synced = 0
        self._sync_lock = threading.Lock()

    def _write(self, data: bytes) -> None:
        view = memoryview(data)
        while view:
            written = os.write(self._fd, view)
            view = view[written:]

    def append(self, operation: str, params: bytes) -> int:
        """Write one entry (the caller holds the call lock) before its call is applied; its
        position for wait_durable. Raises OSError (a full disk, an I/O error) with the file
        as it was before: a part written is cut off again."""
        if self.broken is not None:
            raise self.broken
        if self.sync_failed is not None:
            raise self.sync_failed
        entry = b'{"op":"' + operation.encode() + b'","params":' + params + b"}"
        record = b"%08x " % zlib.crc32(entry) + entry + b"\n"
        try:
            self._write(record)
        except OSError:
            self._cut_back_to(self.size)
            raise
        self._last_start = self.size
        self.size += len(record)
        self.entries += 1
        if self.full is not None and self.entries >= self.full_at:
            self.full.set()
        return self.entries

    def retract(self, position: int) -> None:
        """Take back the entry at `position`, the last one written: its call was refused, so
        it changed nothing (the caller holds the call lock). Positions are not reused."""
        if position != self.entries or self.broken is not None:
            return
        self._cut_back_to(self._last_start)
        self.size = self._last_start

    def _cut_back_to(self, size: int) -> None:
        """The file back to `size` bytes; if that fails too, no entry is written any more
        (an entry after the damage would make it damage in the middle of the journal)."""
        try:
            os.ftruncate(self._fd, size)
        except OSError as exc:
            self.broken = exc

    def position(self) -> int:
        return self.entries

    def wait_durable(self, position: int) -> None:
        """Return once every entry up to `position` is on disk; raise OSError if they cannot
        be made so.

        A failed sync is final for this file: the kernel may have dropped the pages it could
        not write, so a later sync that succeeds proves nothing. The journal then takes no
        entry and confirms none after the last sync that worked, and `full` is set so that
        the store saves a snapshot, which makes everything durable again (`DurableStore`)."""
        if self._synced >= position:
            return
        with self._sync_lock:
            if self._synced >= position:
                return
            if self.sync_failed is not None:
                raise self.sync_failed
            target = self.entries
            try:
                os.fdatasync(self._fd)
            except OSError as exc:
                self.sync_failed = exc
                log.error(
                    "%s could not be synced to disk (%s): calls are answered 503 until a "
                    "snapshot holds everything",
                    self.path,
                    exc.strerror or exc,
                )
                if self.full is not None:
                    self.full.set()
                raise
            self._synced = target

    def close(self) -> None:
        """Flush what is left and close (the caller holds the call lock: no append races).
        Entries that cannot be synced were never confirmed to anyone: closing goes on."""
        try:
            self.wait_durable(self.entries)
        except OSError:
            pass
        finally:
            with self._sync_lock:
                os.close(self._fd)


@dataclass
class JournalContent:
    generation: int
    path: Path
    entries: list[tuple[str, str]] = field(default_factory=list)  # (operation, params JSON)
    torn_line: int | None = None  # the half-written last line that was dropped


def _entry(line: bytes, checked: bool) -> tuple[str, str]:
    if checked:
        crc, space, line = line[:8], line[8:9], line[9:]
        if space != b" " or crc != b"%08x" % zlib.crc32(line):
            raise ValueError("its checksum does not match")
    record = json.loads(line)
    if not isinstance(record, dict) or not isinstance(record.get("op"), str):
        raise ValueError("not an entry")
    params = record.get("params")
    if not isinstance(params, dict):
        raise ValueError("an entry without params")
    return record["op"], json.dumps(params)


def _header(path: Path, line: bytes, generation: int) -> int:
    """The journal's format, once its header says it is this generation's journal."""
    try:
        header: Any = json.loads(line)
    except ValueError:
        header = None
    formats = [{"journal": f, "generation": generation} for f in (1, FORMAT)]
    if header not in formats:
        raise JournalError(
            f"{path} does not start with a journal header of generation {generation}: to "
            f"start without its writes, keep it aside and put an empty journal in its place: "
            f"`mv {shlex.quote(str(path))} {shlex.quote(str(path))}.damaged && "
            f"{empty_journal_command(path, generation)}`"
        )
    return int(header["journal"])


def read_journal(path: Path, generation: int, last: bool) -> JournalContent:
    """The entries of one journal file; only the last file may end with a torn line."""
    content = JournalContent(generation, path)
    lines = path.read_bytes().split(b"\n")
    ends_cleanly = lines[-1] == b""
    if ends_cleanly:
        lines.pop()
    if not lines:
        raise JournalError(
            f"{path} is empty: a journal is never written without its header, so this one was "
            f"cut short and the writes it held are gone; restore it from a backup, or, to "
            f"start without them, make it an empty journal: "
            f"`{empty_journal_command(path, generation)}`"
        )
    checked = _header(path, lines[0], generation) >= 2
    for number, line in enumerate(lines[1:], start=2):
        final = number == len(lines)
        try:
            if final and not ends_cleanly:
                raise ValueError("no end of line")
            content.entries.append(_entry(line, checked))
        except ValueError as exc:
            if final and last:
                content.torn_line = number
                break
            raise JournalError(
                f"{path} line {number} is damaged ({exc}): to start without that one write, "
                f"keeping every other, delete the line (the file as it is stays beside it as "
                f"{path.name}.line{number}.damaged): `{delete_line_command(path, number)}`"
            ) from None
    return content
