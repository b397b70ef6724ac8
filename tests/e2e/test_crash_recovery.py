"""Nothing acknowledged is lost: a write stream, a kill at a random moment, a restart.

Each round streams new assignments and keyed results from several threads, ends the server
(SIGKILL, or SIGHUP as when its terminal closes) once a random number of writes were
acknowledged, restarts it on the same state file and checks every acknowledged write.
"""

from __future__ import annotations

import http.client
import json
import random
import signal
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import guide_experiment
from tests.e2e.conftest import LocalApi

pytestmark = pytest.mark.e2e

WRITERS = 4


@dataclass
class Acknowledged:
    variants: dict[str, int] = field(default_factory=dict)  # user -> variant answered
    results: list[dict[str, Any]] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)
    count: int = 0
    reached: threading.Event = field(default_factory=threading.Event)
    target: int = 0
    refused: list[Any] = field(default_factory=list)  # answers that were not a success
    # Set just before the server is killed: a call in flight then may be answered 503 by a
    # worker that outlives its store for a moment ("failed on this call": the store could not
    # be reached). Nothing was acknowledged, so nothing is lost; any other refusal counts.
    killed: threading.Event = field(default_factory=threading.Event)

    def refuse(self, status: int, answer: Any) -> None:
        message = answer.get("message", "") if isinstance(answer, dict) else ""
        if not (status == 503 and self.killed.is_set() and "failed on this call" in message):
            self.refused.append((status, answer))

    def note(self) -> None:
        self.count += 1
        if self.count >= self.target:
            self.reached.set()


def post(connection: http.client.HTTPConnection, path: str, body: Any) -> tuple[int, Any]:
    connection.request("POST", path, json.dumps(body), {"Content-Type": "application/json"})
    answer = connection.getresponse()
    return answer.status, json.loads(answer.read())


def writer(api: LocalApi, experiment_id: int, prefix: str, acked: Acknowledged) -> None:
    """New users and their results until the server goes away."""
    connection = http.client.HTTPConnection("127.0.0.1", api.port, timeout=30)
    rng = random.Random(prefix)
    try:
        for n in range(100_000):
            user = f"{prefix}-{n}"
            status, answer = post(
                connection,
                "/api/v1/experiments/get-variant",
                {"experiment_id": experiment_id, "user_id": user},
            )
            if status != 200:
                acked.refuse(status, answer)
                return
            with acked.lock:
                acked.variants[user] = answer["variant"]["id"]
                acked.note()
            result = {
                "experiment_id": experiment_id,
                "user_id": user,
                "metric_name": "satisfaction_score",
                "metric_value": rng.choice([1, 2.5, 4]),
                "idempotency_key": f"{user}#result",
            }
            status, answer = post(connection, "/api/v1/experiments/record-result", result)
            if status != 201:
                acked.refuse(status, answer)
                return
            with acked.lock:
                acked.results.append(result)
                acked.note()
    except (ConnectionError, http.client.HTTPException, TimeoutError):
        return  # the server was ended: whatever was not answered was never acknowledged
    finally:
        connection.close()


def stream_then_end(
    api: LocalApi, experiment_id: int, round_: int, how: signal.Signals, rng: random.Random
) -> Acknowledged:
    acked = Acknowledged(target=rng.randrange(10, 60))
    threads = [
        threading.Thread(target=writer, args=(api, experiment_id, f"r{round_}w{w}", acked))
        for w in range(WRITERS)
    ]
    for thread in threads:
        thread.start()
    assert acked.reached.wait(120), "the writes never reached the target"
    assert api.process is not None
    if how == signal.SIGKILL:
        acked.killed.set()
    api.process.send_signal(how)
    api.process.wait(timeout=60)
    for thread in threads:
        thread.join(timeout=60)
    assert acked.refused == []
    return acked


def check_everything_is_there(api: LocalApi, experiment_id: int, acked: Acknowledged) -> None:
    # Every acknowledged assignment is stored: the user gets it back as an existing one
    for user, variant in acked.variants.items():
        status, answer = api.call(
            "POST",
            "/api/v1/experiments/get-variant",
            {"experiment_id": experiment_id, "user_id": user},
        )
        assert status == 200
        assert (answer["reason"], answer["variant"]["id"]) == ("existing_assignment", variant)
    # Every acknowledged result is stored: sent again, it is a duplicate
    for result in acked.results:
        status, answer = api.call("POST", "/api/v1/experiments/record-result", result)
        assert (status, answer.get("duplicate")) == (200, True), (result, answer)
    # And the running totals still equal the raw results
    status, report = api.call("GET", f"/api/v1/experiments/{experiment_id}/reconciliation")
    assert status == 200
    assert report["differences"] == []
    assert report["results_read"] >= len(acked.results)


def tear_the_last_journal_line(state: Path) -> None:
    """What a kill in the middle of a write leaves: the start of a line, no end."""
    journals = sorted(state.parent.glob("state.json.journal.*"), key=lambda p: int(p.suffix[1:]))
    with journals[-1].open("ab") as fh:
        fh.write(b'{"op":"PutItem","params":{"TableName":"ab_resu')


def run_rounds(tmp_path: Path, how: signal.Signals, rounds: int, seed: int) -> None:
    rng = random.Random(seed)
    state = tmp_path / "state.json"
    api = LocalApi(state).start()
    try:
        status, created = api.call("POST", "/api/v1/experiments/", guide_experiment(name="crash"))
        assert status == 201
        experiment_id = int(created["id"])
        assert api.call("POST", f"/api/v1/experiments/{experiment_id}/start")[0] == 200
        everything = Acknowledged()
        for round_ in range(rounds):
            acked = stream_then_end(api, experiment_id, round_, how, rng)
            assert api.process is not None
            if how != signal.SIGKILL:
                assert api.process.returncode == 0, api.log_path.read_text()
            everything.variants.update(acked.variants)
            everything.results.extend(acked.results)
            if how == signal.SIGKILL and round_ == rounds - 1:
                tear_the_last_journal_line(state)
            api = LocalApi(state).start()
            check_everything_is_there(api, experiment_id, everything)
        if how == signal.SIGKILL:
            assert "never acknowledged, dropped it" in api.log_path.read_text()
    finally:
        if api.process is not None and api.process.poll() is None:
            api.stop()


def test_sigkill_at_a_random_moment_loses_no_acknowledged_write(tmp_path: Path) -> None:
    # Given a running experiment and a stream of writes / When the server is killed at a
    # random moment and restarted, three times / Then every acknowledged write is there
    run_rounds(tmp_path, signal.SIGKILL, rounds=3, seed=20)


def test_sighup_saves_everything_before_exiting(tmp_path: Path) -> None:
    # Given the same stream / When the terminal closes (SIGHUP), twice / Then the same holds
    run_rounds(tmp_path, signal.SIGHUP, rounds=2, seed=21)


def test_a_damaged_state_file_stops_the_server_with_one_line(tmp_path: Path) -> None:
    # Given a state file cut short
    state = tmp_path / "state.json"
    state.write_text('{"version": 1, "tables": {"ab_results": [{"experi')
    # When the server starts on it / Then it exits with 1 and one line saying what is wrong
    # and how to recover, no traceback
    error = refused_start(state)
    assert "is not valid JSON" in error
    assert f"`mkdir {state}.damaged && mv {state} {state}.journal.* {state}.damaged/`" in error


def refused_start(state: Path) -> str:
    """Start the server on `state`, which it must refuse: exit 1, no traceback, and exactly one
    ERROR line, which this returns."""
    api = LocalApi(state)
    with pytest.raises(RuntimeError, match="the local API exited"):
        api.start()
    assert api.process is not None and api.process.returncode == 1
    output = api.log_path.read_text()
    assert "Traceback" not in output
    errors = [line for line in output.splitlines() if "ERROR" in line]
    assert len(errors) == 1, output
    return errors[0]


def contents(folder: Path) -> list[tuple[str, bool, bytes]]:
    """Each file and folder with its bytes, but the server's lock file and the test's log."""
    return sorted(
        (p.name, p.is_dir(), p.read_bytes() if p.is_file() else b"")
        for p in folder.iterdir()
        if not p.name.endswith((".lock", ".log"))
    )


def _state_is_a_folder(state: Path) -> None:
    state.mkdir()


def _journal_is_a_folder(state: Path) -> None:
    (state.parent / f"{state.name}.journal.1").mkdir()


def _item_of_an_unknown_type(state: Path) -> None:
    item = {"pk": {"S": "1"}, "x": {"Q": "what type is Q?"}}
    state.write_text(json.dumps({"version": 1, "tables": {"ab_experiments": [item]}}))


def _journal_line_of_an_unknown_operation(state: Path) -> None:
    entry = {"op": "FrobnicateItem", "params": {"TableName": "ab_experiments"}}
    header = {"journal": 1, "generation": 1}
    journal = state.parent / f"{state.name}.journal.1"
    journal.write_text(json.dumps(header) + "\n" + json.dumps(entry) + "\n")


@pytest.mark.parametrize(
    ("damage", "said"),
    [
        (_state_is_a_folder, "state.json: Is a directory"),
        (_journal_is_a_folder, "state.json.journal.1: Is a directory"),
        (_item_of_an_unknown_type, "holds an item of ab_experiments that DynamoDB refuses"),
        (_journal_line_of_an_unknown_operation, "line 2 (FrobnicateItem) cannot be applied"),
    ],
    ids=["state-folder", "journal-folder", "unknown-type", "unknown-operation"],
)
def test_every_refused_start_is_one_line_and_changes_nothing(
    tmp_path: Path, damage: Any, said: str
) -> None:
    # Given state that cannot be used as it is
    folder = tmp_path / "local"
    folder.mkdir()
    state = folder / "state.json"
    damage(state)
    before = contents(folder)
    # When the server starts on it / Then it exits with 1 and one line saying what and where,
    # no traceback, and nothing changed
    assert said in refused_start(state)
    assert contents(folder) == before
