"""The local API under a bounded load, then the exactly-once checks on what it stored.

Starts `abtest serve` in a subprocess on a free port with a fresh state file, creates and starts
one experiment, then keeps N threads busy for a fixed time with a mix of get-variant for new
and returning users and keyed record-result calls, some of them repeats of a key already sent:

    .venv/bin/python benchmarks/bench_local_api.py            # 12 threads, 60 s
    .venv/bin/python benchmarks/bench_local_api.py --seconds 10

Prints requests/s, p50 and p99 of the answers, then checks that each key was counted once,
that each user was always answered the same variant and that the running totals reconcile.
Figures depend on the machine (and on what else runs on it): compare runs on one machine.
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import random
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from _local import ROOT  # first: sys.path and fake AWS credentials

EXPERIMENT = {
    "name": "Bench Local API",
    "experiment_type": "prompt",
    "primary_metric": "satisfaction_score",
    "variants": [
        {"name": "Control", "is_control": True, "traffic_allocation": 50.0},
        {"name": "Treatment", "traffic_allocation": 50.0, "config": {"examples": True}},
    ],
    "target_percentage": 100.0,
}
# Shares of the mix: new user, returning user, new keyed result, repeated key.
MIX = (("new", 0.3), ("returning", 0.3), ("result", 0.3), ("repeat", 0.1))


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class Client:
    """One keep-alive connection, as a service calling the API would hold."""

    def __init__(self, port: int) -> None:
        self.port = port
        self.connection = http.client.HTTPConnection("127.0.0.1", port, timeout=60)

    def call(self, method: str, path: str, body: Any = None) -> tuple[int, Any]:
        data = None if body is None else json.dumps(body)
        for attempt in (1, 2):
            try:
                self.connection.request(
                    method, path, body=data, headers={"Content-Type": "application/json"}
                )
                answer = self.connection.getresponse()
                return answer.status, json.loads(answer.read() or b"null")
            except (ConnectionError, http.client.HTTPException):
                self.connection.close()
                self.connection = http.client.HTTPConnection("127.0.0.1", self.port, timeout=60)
                if attempt == 2:
                    raise
        raise AssertionError("unreachable")


@dataclass
class Outcome:
    """What the load saw: latencies, statuses, every answered variant and result key."""

    latencies: list[float] = field(default_factory=list)
    statuses: Counter[int] = field(default_factory=Counter)
    variants: dict[str, set[int]] = field(default_factory=lambda: defaultdict(set))
    recorded: set[str] = field(default_factory=set)
    duplicates_answered: int = 0
    repeats_sent: int = 0
    lock: threading.Lock = field(default_factory=threading.Lock)


class Load:
    def __init__(self, port: int, experiment_id: int, seconds: float, threads: int) -> None:
        self.port = port
        self.experiment_id = experiment_id
        self.seconds = seconds
        self.threads = threads
        self.outcome = Outcome()
        self.users: list[str] = []  # users that got a variant
        self.keys: list[tuple[str, dict[str, Any]]] = []  # keys sent once
        self.next_id = 0
        self.lock = threading.Lock()

    def _new_id(self, prefix: str) -> str:
        with self.lock:
            self.next_id += 1
            return f"{prefix}-{self.next_id}"

    def _request(self, rng: random.Random) -> tuple[str, str, dict[str, Any]]:
        kind = rng.choices([k for k, _ in MIX], [w for _, w in MIX])[0]
        with self.lock:
            users, keys = list(self.users[-2000:]), list(self.keys[-2000:])
        if kind == "returning" and users:
            return (
                kind,
                "get-variant",
                {"experiment_id": self.experiment_id, "user_id": rng.choice(users)},
            )
        if kind == "repeat" and keys:
            return kind, "record-result", rng.choice(keys)[1]
        if kind in ("result", "repeat") and users:
            body = {
                "experiment_id": self.experiment_id,
                "user_id": rng.choice(users),
                "metric_name": "satisfaction_score",
                "metric_value": rng.choice([1, 2, 3, 4, 5]),
                "idempotency_key": self._new_id("key"),
            }
            return "result", "record-result", body
        return (
            "new",
            "get-variant",
            {"experiment_id": self.experiment_id, "user_id": self._new_id("user")},
        )

    def _worker(self, seed: int, deadline: float) -> None:
        rng = random.Random(seed)
        client = Client(self.port)
        while time.monotonic() < deadline:
            kind, endpoint, body = self._request(rng)
            started = time.perf_counter()
            status, answer = client.call("POST", f"/api/v1/experiments/{endpoint}", body)
            elapsed = time.perf_counter() - started
            self._note(kind, body, status, answer, elapsed)

    def _note(
        self, kind: str, body: dict[str, Any], status: int, answer: Any, elapsed: float
    ) -> None:
        out = self.outcome
        with out.lock:
            out.latencies.append(elapsed)
            out.statuses[status] += 1
            if status >= 300:
                return
            if kind in ("new", "returning"):
                out.variants[str(body["user_id"])].add(int(answer["variant"]["id"]))
            elif answer.get("duplicate"):
                out.duplicates_answered += 1
            else:
                out.recorded.add(body["idempotency_key"])
            out.repeats_sent += kind == "repeat"
        with self.lock:
            if kind == "new":
                self.users.append(str(body["user_id"]))
            elif kind == "result" and not answer.get("duplicate"):
                self.keys.append((body["idempotency_key"], body))

    def run(self) -> float:
        deadline = time.monotonic() + self.seconds
        workers = [
            threading.Thread(target=self._worker, args=(seed, deadline))
            for seed in range(self.threads)
        ]
        started = time.monotonic()
        for worker in workers:
            worker.start()
        for worker in workers:
            worker.join()
        return time.monotonic() - started


def start_server(state_dir: Path, port: int) -> subprocess.Popen[bytes]:
    env = {**os.environ, "AB_SCHEDULE_INTERVAL": "0"}
    env.pop("AWS_ENDPOINT_URL_DYNAMODB", None)
    log = (state_dir / "server.log").open("wb")
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "emulator",
            "serve",
            "--port",
            str(port),
            "--state-file",
            str(state_dir / "state.json"),
        ],
        cwd=ROOT,
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise SystemExit((state_dir / "server.log").read_text())
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return process
        except OSError:
            time.sleep(0.2)
    raise SystemExit("the local API did not start within 60 s")


def cpu_seconds(pid: int) -> float | None:
    """User + system CPU time of a process and its child processes, the API's workers (Linux
    /proc; None elsewhere)."""
    try:
        children = [
            int(child)
            for listing in Path(f"/proc/{pid}/task").glob("*/children")
            for child in listing.read_text().split()
        ]
        total = 0
        for process in [pid, *children]:
            fields = Path(f"/proc/{process}/stat").read_text().rpartition(")")[2].split()
            total += int(fields[11]) + int(fields[12])
    except OSError:
        return None
    return total / os.sysconf("SC_CLK_TCK")


def percentile(values: list[float], share: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(share * len(ordered)))]


def checks(client: Client, experiment_id: int, outcome: Outcome) -> list[str]:
    """The exactly-once checks; returns what failed."""
    failed = []
    _, summary = client.call("GET", f"/api/v1/experiments/{experiment_id}/summary")
    if summary["results_collected"] != len(outcome.recorded):
        failed.append(
            f"results counted {summary['results_collected']}, keys recorded {len(outcome.recorded)}"
        )
    if outcome.duplicates_answered < outcome.repeats_sent:
        failed.append(
            f"{outcome.repeats_sent} repeats sent, {outcome.duplicates_answered} answered duplicate"
        )
    split = [user for user, variants in outcome.variants.items() if len(variants) != 1]
    if split:
        failed.append(f"{len(split)} users were answered more than one variant")
    if summary["users_assigned"] != len(outcome.variants):
        failed.append(
            f"users assigned {summary['users_assigned']} != users answered {len(outcome.variants)}"
        )
    status, report = client.call("GET", f"/api/v1/experiments/{experiment_id}/reconciliation")
    if status != 200 or report.get("differences"):
        failed.append(f"reconciliation {status}: {report}")
    return failed


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=60.0)
    parser.add_argument("--threads", type=int, default=12)
    args = parser.parse_args()
    port = free_port()
    with tempfile.TemporaryDirectory(prefix="bench-local-api-") as tmp:
        server = start_server(Path(tmp), port)
        try:
            client = Client(port)
            status, created = client.call("POST", "/api/v1/experiments/", EXPERIMENT)
            assert status == 201, created
            experiment_id = int(created["id"])
            assert client.call("POST", f"/api/v1/experiments/{experiment_id}/start")[0] == 200
            load = Load(port, experiment_id, args.seconds, args.threads)
            cpu_before = cpu_seconds(server.pid)
            elapsed = load.run()
            cpu_after = cpu_seconds(server.pid)
            out = load.outcome
            print(f"threads {args.threads}, {elapsed:.1f} s, {len(out.latencies)} requests")
            print(f"statuses {dict(sorted(out.statuses.items()))}")
            print(f"requests/s {len(out.latencies) / elapsed:.1f}")
            print(f"p50 {statistics.median(out.latencies) * 1000:.1f} ms")
            print(f"p99 {percentile(out.latencies, 0.99) * 1000:.1f} ms")
            if cpu_before is not None and cpu_after is not None:
                # Less sensitive than requests/s to whatever else runs on the machine.
                per_request = (cpu_after - cpu_before) / len(out.latencies) * 1000
                print(f"server CPU {per_request:.2f} ms per request (its workers included)")
            print(
                f"users {len(out.variants)}, results recorded {len(out.recorded)}, "
                f"repeats sent {out.repeats_sent}, answered duplicate {out.duplicates_answered}"
            )
            failed = checks(client, experiment_id, out)
        finally:
            server.send_signal(signal.SIGINT)
            server.wait(timeout=120)
    for line in failed:
        print(f"FAILED: {line}")
    print("exactly-once checks: " + ("FAILED" if failed else "ok"))
    return 1 if failed else 0


if __name__ == "__main__":
    raise SystemExit(main())
