"""The state file: every table's items at one moment, and which journals it already holds.

``{"version": 1, "journal_generation": G, "saved_at": ..., "tables": {name: [item, ...]}}``,
items in DynamoDB JSON as DynamoDB sends it (binary values base64-encoded). Journals of
generation G and older are inside the snapshot; younger ones are replayed over it. A state
file written before journals existed has no ``journal_generation`` and counts as 0.

A file that cannot be read as such (empty, truncated, wrong shape) is refused with a message
saying what is wrong and how to recover: never silently started empty.
"""

from __future__ import annotations

import json
import os
import shlex
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from emulator.journal import fsync_directory

STATE_VERSION = 1


class StateFileError(ValueError):
    """A state file that cannot be loaded; the message says what is wrong and what to do."""


@dataclass
class Snapshot:
    tables: dict[str, list[dict[str, Any]]] = field(default_factory=dict)
    journal_generation: int = 0
    # Written by a server that creates the next journal before the state file: then a missing
    # next journal means lost writes (older servers could leave none after a crash at start).
    next_journal_first: bool = True


def start_empty(path: Path) -> str:
    """How to start with no data, keeping the state file and its journals aside."""
    aside = shlex.quote(f"{path}.damaged")
    return (
        f"move it and its journals away to start with no data: "
        f"`mkdir {aside} && mv {shlex.quote(str(path))} {shlex.quote(str(path))}.journal.* "
        f"{aside}/`"
    )


def _damaged(path: Path, what: str) -> StateFileError:
    return StateFileError(f"{path} {what}: restore it from a backup, or {start_empty(path)}")


def read_snapshot(path: Path) -> Snapshot:
    """The saved snapshot; an empty one when the file does not exist."""
    if not path.exists():
        return Snapshot()
    text = path.read_bytes()
    if not text.strip():
        raise _damaged(path, "is empty")
    try:
        state = json.loads(text)
    except UnicodeDecodeError:
        raise _damaged(path, "is not UTF-8 text") from None
    except json.JSONDecodeError as exc:
        where = f"line {exc.lineno} column {exc.colno}"
        raise _damaged(path, f"is not valid JSON (truncated? {exc.msg} at {where})") from None
    return _checked(path, state)


def _checked(path: Path, state: Any) -> Snapshot:
    if not isinstance(state, dict) or not isinstance(state.get("tables"), dict):
        raise _damaged(path, 'has the wrong shape (no "tables" object)')
    if state.get("version", STATE_VERSION) != STATE_VERSION:
        raise StateFileError(
            f"{path} has version {state.get('version')!r}, this server reads version "
            f"{STATE_VERSION}: use the release that wrote it, or {start_empty(path)}"
        )
    generation = state.get("journal_generation", 0)
    if not isinstance(generation, int) or generation < 0:
        raise _damaged(path, "has the wrong shape (journal_generation)")
    for table, items in state["tables"].items():
        if not isinstance(items, list) or not all(
            isinstance(item, dict) and item for item in items
        ):
            raise _damaged(path, f"has the wrong shape (the items of {table})")
    return Snapshot(state["tables"], generation, state.get("next_journal_first") is True)


def write_snapshot(path: Path, snapshot: Snapshot) -> None:
    """Write atomically: a temporary file, fsync, rename, fsync of the directory."""
    state = {
        "version": STATE_VERSION,
        "journal_generation": snapshot.journal_generation,
        "next_journal_first": True,
        "saved_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "tables": snapshot.tables,
    }
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=".state-", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            json.dump(state, fh, separators=(",", ":"))
            fh.flush()
            os.fsync(fh.fileno())
        os.chmod(tmp, 0o644)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    fsync_directory(path.parent)
