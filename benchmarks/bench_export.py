"""`abtest export` of a large experiment from the local API: seconds, rows/s, and column types.

Starts `abtest serve` on a free port with a fresh state file, creates and starts one
experiment, assigns N users and records M results through record-results (100 a request), then
times `abtest export` in each format and reads the Parquet files back with DuckDB:

    .venv/bin/python benchmarks/bench_export.py                  # 20,000 results
    .venv/bin/python benchmarks/bench_export.py --results 5000

Prints, per format, the seconds and the rows/s of the whole export (all four tables, rows
counted over all of them), and the DuckDB type of every Parquet column. Figures depend on the
machine and what else runs on it: compare runs on one machine.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import duckdb
from _local import ROOT  # first: sys.path and fake AWS credentials
from bench_local_api import EXPERIMENT, Client, free_port, start_server


def populate(client: Client, users: int, results: int) -> None:
    status, created = client.call("POST", "/api/v1/experiments", EXPERIMENT)
    assert status == 201, created
    experiment_id = created["id"]
    assert client.call("POST", f"/api/v1/experiments/{experiment_id}/start")[0] == 200
    for user in range(users):
        body = {"experiment_id": experiment_id, "user_id": f"u{user}"}
        status, answer = client.call("POST", "/api/v1/experiments/get-variant", body)
        assert status == 200, answer
    batch: list[dict[str, object]] = []
    for n in range(results):
        batch.append(
            {
                "experiment_id": experiment_id,
                "user_id": f"u{n % users}",
                "metric_name": "satisfaction_score",
                "metric_value": (n % 41) / 8,
                "idempotency_key": f"k{n}",
            }
        )
        if len(batch) == 100 or n == results - 1:
            status, answer = client.call(
                "POST", "/api/v1/experiments/record-results", {"results": batch}
            )
            assert status == 200 and answer["recorded"] == len(batch), str(answer)[:500]
            batch = []


def export(port: int, fmt: str, out: Path) -> float:
    started = time.perf_counter()
    command = [sys.executable, "-m", "emulator", "export", "1", "--format", fmt, "--out", str(out)]
    done = subprocess.run(
        [*command, "--url", f"http://127.0.0.1:{port}"], capture_output=True, text=True, cwd=ROOT
    )
    elapsed = time.perf_counter() - started
    if done.returncode != 0:
        raise SystemExit(done.stderr)
    return elapsed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--users", type=int, default=2000)
    parser.add_argument("--results", type=int, default=20_000)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as folder:
        state = Path(folder)
        port = free_port()
        server = start_server(state, port)
        try:
            client = Client(port)
            started = time.perf_counter()
            populate(client, args.users, args.results)
            print(
                f"populated: {args.users} users, {args.results} results "
                f"in {time.perf_counter() - started:.1f} s"
            )
            print(f"machine load (1 min): {os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs")
            for fmt in ("csv", "jsonl", "parquet"):
                out = state / fmt
                elapsed = export(port, fmt, out)
                rows = args.users + args.results + 3  # + one experiment and two variants
                print(f"{fmt:8} {elapsed:6.2f} s  {rows / elapsed:8,.0f} rows/s")
        finally:
            server.terminate()
            server.wait(60)
        with duckdb.connect() as db:
            for table in ("ab_experiments", "ab_assignments", "ab_results"):
                path = state / "parquet" / f"{table}.parquet"
                described = db.execute(f"DESCRIBE SELECT * FROM '{path}'").fetchall()
                print(f"{table}: " + ", ".join(f"{row[0]} {row[1]}" for row in described))


if __name__ == "__main__":
    main()
