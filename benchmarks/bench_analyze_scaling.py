"""Does analyze stay flat as results grow? And how many DynamoDB calls does one result cost?

Runs entirely under moto (no AWS account):

    .venv/bin/python benchmarks/bench_analyze_scaling.py [--max-results 50000] [--units 2000]

It creates the product guide's experiment (2 variants, primary resolution_rate, secondary
satisfaction_score and response_time), starts it, assigns the units, then records results
through ``ExperimentService.record`` and, at each checkpoint (1,000 ... 50,000 results),
measures one analyze: the DynamoDB items read (``ExperimentAnalysis.snapshot``), the calls it
makes (counted with botocore's ``before-call.dynamodb`` hook) and its median wall time.

moto backs up every table a TransactWriteItems touches with a deep copy (to roll back on
failure), which makes each write O(size of ab_results) and 50,000 writes hours long. The
loading phase therefore uses the project's ``emulator.moto_transactions`` (item-level backups,
same semantics). The calls-per-result figure is taken before that patch, on unmodified moto,
and the final reconciliation proves the totals equal the raw results.
"""

from __future__ import annotations

import argparse
import contextlib
import random
import statistics
import sys
import time
from collections import Counter
from collections.abc import Callable, Iterator
from typing import Any

import _local  # noqa: F401  (first: sys.path and fake AWS credentials)
import boto3
from moto import mock_aws

from ab_testing.analysis import ExperimentAnalysis
from ab_testing.reconcile import reconcile
from ab_testing.service import ExperimentService
from ab_testing.settings import Settings
from ab_testing.store import Store
from emulator import moto_transactions
from emulator.template import create_tables
from tests.conftest import guide_experiment

CHECKPOINTS = (1_000, 5_000, 10_000, 25_000, 50_000)
CALLS_SAMPLE = 500


class CallCounter:
    """Counts DynamoDB API calls by operation name through botocore's event hooks."""

    def __init__(self, client: Any) -> None:
        self.calls: Counter[str] = Counter()
        client.meta.events.register("before-call.dynamodb", self._count)

    def _count(self, model: Any, **_: Any) -> None:
        self.calls[model.name] += 1

    @contextlib.contextmanager
    def counting(self) -> Iterator[Counter[str]]:
        self.calls.clear()
        seen: Counter[str] = Counter()
        yield seen
        seen.update(self.calls)


def random_result(rng: random.Random, experiment_id: int, units: int) -> dict[str, Any]:
    metric, value = rng.choice(
        [
            ("resolution_rate", 1 if rng.random() < 0.4 else 0),
            ("satisfaction_score", rng.randint(2, 10) / 2),
            ("response_time", rng.randint(30, 900) / 100),
        ]
    )
    return {
        "experiment_id": experiment_id,
        "user_id": rng.randrange(units),
        "metric_name": metric,
        "metric_value": value,
    }


def median_time(run: Callable[[], Any], repeats: int) -> float:
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        run()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def measure(
    analysis: ExperimentAnalysis, counter: CallCounter, experiment_id: int, repeats: int
) -> dict[str, Any]:
    """Items read and calls made by one analyze, and its median time."""
    _, _, items = analysis.snapshot(experiment_id)
    with counter.counting() as calls:
        analysis.snapshot(experiment_id)
    measured: dict[str, Any] = {"items": items, "calls": dict(calls)}
    measured["snapshot_s"] = median_time(lambda: analysis.snapshot(experiment_id), repeats)
    try:
        analysis.analyze(experiment_id)
    except Exception as exc:  # the analyzer is still being written: measure snapshot only
        measured["analyze_s"] = None
        measured["analyze_error"] = f"{type(exc).__name__}: {exc}"
        return measured
    with counter.counting() as calls:
        analysis.analyze(experiment_id)
    measured["calls"] = dict(calls)
    measured["analyze_s"] = median_time(lambda: analysis.analyze(experiment_id), repeats)
    return measured


def show(size: int, m: dict[str, Any]) -> None:
    reads = sum(n for op, n in m["calls"].items() if op in ("Query", "GetItem"))
    calls = ", ".join(f"{op}={n}" for op, n in sorted(m["calls"].items()))
    line = (
        f"results={size:>6,}  items_read={m['items']:>3}  "
        f"query+getitem_calls={reads} ({calls})  snapshot_median={m['snapshot_s'] * 1000:7.1f} ms"
    )
    if m["analyze_s"] is not None:
        line += f"  analyze_median={m['analyze_s'] * 1000:7.1f} ms"
    else:
        line += f"  analyze=unavailable ({m['analyze_error']})"
    print(line, flush=True)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--max-results", type=int, default=50_000)
    parser.add_argument("--units", type=int, default=2_000)
    parser.add_argument("--repeats", type=int, default=7, help="analyze runs per checkpoint")
    parser.add_argument("--seed", type=int, default=2024)
    args = parser.parse_args(argv)
    checkpoints = [c for c in CHECKPOINTS if c < args.max_results] + [args.max_results]
    rng = random.Random(args.seed)
    began = time.perf_counter()

    with mock_aws():
        client = boto3.client("dynamodb", region_name="us-east-1")
        create_tables(client)
        counter = CallCounter(client)
        service = ExperimentService(Store(Settings(), client=client), cache_ttl_seconds=3600)
        analysis = ExperimentAnalysis(service)

        experiment_id = int(service.create_experiment(guide_experiment())["id"])
        service.start_experiment(experiment_id)
        for unit in range(args.units):
            service.get_variant({"experiment_id": experiment_id, "user_id": unit})
        print(
            f"experiment {experiment_id}: 2 variants, metrics resolution_rate (primary), "
            f"satisfaction_score, response_time; {args.units:,} units assigned",
            flush=True,
        )

        # DynamoDB calls per record-result, on unmodified moto.
        with counter.counting() as calls:
            for _ in range(CALLS_SAMPLE):
                service.record(random_result(rng, experiment_id, args.units))
        per_result = sum(calls.values()) / CALLS_SAMPLE
        detail = ", ".join(f"{op}={n / CALLS_SAMPLE:g}" for op, n in sorted(calls.items()))
        print(
            f"record-result: {per_result:g} DynamoDB calls per result "
            f"({detail}; over {CALLS_SAMPLE} results)",
            flush=True,
        )

        recorded = CALLS_SAMPLE
        measured: dict[int, dict[str, Any]] = {}
        load_started = time.perf_counter()
        moto_transactions.apply()  # item-level rollback: same semantics, flat cost
        print("loading with emulator.moto_transactions (item-level rollback)", flush=True)
        for checkpoint in checkpoints:
            while recorded < checkpoint:
                service.record(random_result(rng, experiment_id, args.units))
                recorded += 1
                if recorded % 5_000 == 0:
                    rate = (recorded - CALLS_SAMPLE) / (time.perf_counter() - load_started)
                    print(f"  ... {recorded:,} results ({rate:.0f}/s)", file=sys.stderr)
            measured[checkpoint] = measure(analysis, counter, experiment_id, args.repeats)
            show(checkpoint, measured[checkpoint])

        first, last = measured[checkpoints[0]], measured[checkpoints[-1]]
        label = f"{checkpoints[-1] // 1000}k/{checkpoints[0] // 1000}k"
        print(f"ratio {label}: items_read {last['items'] / first['items']:.2f}x", flush=True)
        print(
            f"ratio {label}: snapshot time {last['snapshot_s'] / first['snapshot_s']:.2f}x",
            flush=True,
        )
        if first["analyze_s"] is not None and last["analyze_s"] is not None:
            print(f"ratio {label}: analyze time {last['analyze_s'] / first['analyze_s']:.2f}x")
        else:
            print(f"ratio {label}: analyze time unavailable (analyzer did not run)")

        report = reconcile(service.store, experiment_id)
        print(
            f"reconcile: clean={report['clean']} results_read={report['results_read']:,} "
            f"totals_checked={report['totals_checked']} differences={len(report['differences'])}"
        )
    print(f"total wall time: {time.perf_counter() - began:.0f} s")
    return 0 if report["clean"] else 1


if __name__ == "__main__":
    raise SystemExit(main())
