"""A spool on disk for queued results and exposures: what a process ended by SIGTERM, SIGKILL or
``os._exit`` had queued is delivered by the next client started with the same ``spool_dir``.

Each client process writes its own file, ``<spool_dir>/spool-<pid>-<random>.jsonl``, and holds
an exclusive ``flock`` on it while it lives (the operating system releases it when the process
dies, however it dies). Every queued item is one line, written before ``record`` returns:
``{"sid": "<id>", "kind": "result"|"exposure", "item": {...}}``; once the service has
settled items (counted, or refused for good) a line ``{"done": ["<id>", ...]}`` follows, and
when nothing is left pending the file is emptied. A line is written with one ``write`` call:
in the page cache at once, so it survives the death of the process (not of the machine: there
is no fsync per item).

At start, and on each later ``adopt``, a client takes over every file of the spool that no
live process locks: it moves their pending items into its own file and queue, then deletes
them. Results carry their idempotency key and exposures are kept once by the ledger, so an
item delivered twice (a process killed between the answer and its done line) still counts
once. Several processes may share one spool directory. POSIX only (``fcntl``).
"""

from __future__ import annotations

import fcntl
import json
import logging
import os
import uuid
from pathlib import Path
from typing import Any

logger = logging.getLogger("ab_testing_client")


class Spool:
    def __init__(self, directory: str | os.PathLike[str]) -> None:
        self.directory = Path(directory)
        self.directory.mkdir(parents=True, exist_ok=True)
        self._open_own()

    def _open_own(self) -> None:
        self.path = self.directory / f"spool-{os.getpid()}-{uuid.uuid4().hex[:8]}.jsonl"
        self._fd = os.open(self.path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
        fcntl.flock(self._fd, fcntl.LOCK_EX | fcntl.LOCK_NB)  # a new file: nobody else has it
        self.pending = 0

    def forked(self) -> None:
        """In a forked child: a file of its own (the parent's stays the parent's)."""
        os.close(self._fd)  # the child's copy: the parent keeps its file and its lock
        self._open_own()

    @staticmethod
    def new_id() -> str:
        return uuid.uuid4().hex

    def write(self, entries: list[tuple[str, str, dict[str, Any]]]) -> None:
        """(sid, kind, item) for each item, before it is queued (the caller holds the queue's
        lock). Raises OSError when the disk refuses: the items are then not queued."""
        lines = "".join(
            json.dumps({"sid": sid, "kind": kind, "item": item}, separators=(",", ":")) + "\n"
            for sid, kind, item in entries
        )
        _write_all(self._fd, lines.encode())
        self.pending += len(entries)

    def done(self, sids: list[str]) -> None:
        """Items the service settled; the file is emptied once none is pending."""
        if not sids:
            return
        self.pending -= len(sids)
        try:
            if self.pending <= 0:
                self.pending = 0
                os.ftruncate(self._fd, 0)
            else:
                line = json.dumps({"done": sids}, separators=(",", ":")) + "\n"
                _write_all(self._fd, line.encode())
        except OSError as exc:  # delivered anyway; at worst sent again, counted once
            logger.warning("ab_testing_client spool %s: %s", self.path, exc)

    def adopt(self) -> list[tuple[str, str, dict[str, Any]]]:
        """The pending items of every spool file no live process holds, written to this one's
        file; the adopted files are deleted."""
        adopted: list[tuple[str, str, dict[str, Any]]] = []
        for path in sorted(self.directory.glob("spool-*.jsonl")):
            if path == self.path:
                continue
            entries = _take(path)
            if entries:
                self.write(entries)
                adopted.extend(entries)
            if entries is not None:
                path.unlink(missing_ok=True)
        if adopted:
            logger.info(
                "ab_testing_client: %d items left in %s by ended processes will be sent",
                len(adopted),
                self.directory,
            )
        return adopted

    def close(self) -> None:
        try:
            if self.pending == 0:
                self.path.unlink(missing_ok=True)
        finally:
            os.close(self._fd)


def _take(path: Path) -> list[tuple[str, str, dict[str, Any]]] | None:
    """The pending entries of a spool file whose owner has ended; None when a live process
    holds it (or it is gone)."""
    try:
        fd = os.open(path, os.O_RDONLY)
    except FileNotFoundError:
        return None
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            return None  # its process lives
        try:
            if os.stat(path).st_ino != os.fstat(fd).st_ino:
                return None  # adopted and deleted by another process meanwhile
        except FileNotFoundError:
            return None
        with os.fdopen(os.dup(fd), "rb") as handle:
            data = handle.read()
    finally:
        os.close(fd)
    entries: dict[str, tuple[str, str, dict[str, Any]]] = {}
    for line in data.split(b"\n"):
        try:
            record = json.loads(line)
        except ValueError:
            continue  # a line cut short by the death of its writer: never acknowledged
        if not isinstance(record, dict):
            continue
        if "done" in record:
            for sid in record["done"]:
                entries.pop(sid, None)
        elif "sid" in record:
            entries[record["sid"]] = (record["sid"], record["kind"], record["item"])
    return list(entries.values())


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view) :]
