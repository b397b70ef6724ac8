"""Contention on running totals: how many results per second one totals item takes.

    .venv/bin/python benchmarks/bench_contention.py [--seconds 3] [--seed 7]

A discrete-event simulation of ab_testing.ledger.Ledger.record as written: each result reads
(one BatchGetItem), then sends one TransactWriteItems holding the raw result, the totals item
of its (variant, metric, shard) and the unit's assignment item. DynamoDB cancels a transaction
with TransactionConflict when another transaction on one of its items is still in flight;
the ledger then sleeps uniform(0, 4 ms x attempt) and reads and tries again, up to its
_ATTEMPTS; after the last one the result is refused (503, the client may retry later).

Latencies are assumptions, printed with the figures (in-region DynamoDB, warm connections):
a read round trip READ_MS, the network each way NET_MS, and HOLD_MS during which a committing
transaction holds its items. The shard of a unit is a hash, so shards draw uniformly.

Printed: for 1, 4 and 16 shards and rising arrival rates on one (variant, metric), the share
of results written, retries per result and the latency the contention adds (p50, p99); then
the high-traffic case of docs/capacity.md (2,000 requests/s, four metrics, two variants) at
the recommended shard count; then a batch of 100 written result by result (as today) against
folded into one totals update per (variant, metric, shard) per transaction.
"""

from __future__ import annotations

import argparse
import heapq
import itertools
import math
import random
import statistics
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass, field

from _local import ROOT  # noqa: F401  first: sys.path and fake AWS credentials

from ab_testing.ledger import _ATTEMPTS as ATTEMPTS

READ_MS = 4.0
NET_MS = 3.0
HOLD_MS = 10.0
HOLD_PER_ITEM_MS = 0.1  # a transaction of 100 items is assumed to hold them 10 ms longer
BACKOFF_MS = 4.0  # the ledger sleeps uniform(0, 0.004 * (attempt + 1)) seconds
TX_ITEM_LIMIT = 100  # TransactWriteItems holds at most 100 items
RATES = (25, 50, 100, 200, 400, 800, 1600)
SHARDS = (1, 4, 16)
RECOMMENDED_SHARDS = 32  # docs/capacity.md: 1,000 results/s on one (variant, metric)


@dataclass
class Job:
    """One transaction's worth of work: the items it writes and how many results it carries."""

    arrival: float
    items: tuple[tuple[object, ...], ...]
    results: int
    attempt: int = 0
    done: float | None = None
    written: bool = False
    then: Callable[[float], None] | None = None  # what starts when this job finishes


@dataclass
class Simulator:
    rng: random.Random
    busy_until: dict[tuple[object, ...], float] = field(default_factory=lambda: defaultdict(float))
    queue: list[tuple[float, int, Callable[[float], None]]] = field(default_factory=list)
    order: itertools.count = field(default_factory=itertools.count)
    retries: int = 0
    transactions: int = 0

    def at(self, when: float, action: Callable[[float], None]) -> None:
        heapq.heappush(self.queue, (when, next(self.order), action))

    def run(self) -> None:
        while self.queue:
            when, _, action = heapq.heappop(self.queue)
            action(when)

    def start(self, job: Job, now: float) -> None:
        """Read, then submit the transaction (one attempt of the ledger's loop)."""
        self.at(now + (READ_MS + NET_MS) / 1000, lambda t: self.submit(job, t))

    def submit(self, job: Job, now: float) -> None:
        if any(self.busy_until[item] > now for item in job.items):
            job.attempt += 1
            self.retries += job.results
            if job.attempt >= ATTEMPTS:
                self.finish(job, now + NET_MS / 1000, written=False)
                return
            backoff = self.rng.uniform(0, BACKOFF_MS * job.attempt) / 1000
            self.start(job, now + NET_MS / 1000 + backoff)
            return
        self.transactions += 1
        hold = (HOLD_MS + HOLD_PER_ITEM_MS * max(0, len(job.items) - 3)) / 1000
        for item in job.items:
            self.busy_until[item] = now + hold
        self.finish(job, now + hold + NET_MS / 1000, written=True)

    def finish(self, job: Job, when: float, *, written: bool) -> None:
        job.done, job.written = when, written
        if job.then is not None:
            self.at(when, job.then)


UNCONTENDED_MS = READ_MS + 2 * NET_MS + HOLD_MS


def summary(jobs: list[Job], sim: Simulator) -> tuple[float, float, float, float]:
    """(share written, retries per result, added latency p50 and p99 in ms)."""
    results = sum(j.results for j in jobs)
    written = [j for j in jobs if j.written]
    added = sorted((j.done or 0) - j.arrival - UNCONTENDED_MS / 1000 for j in written)
    p50 = 1000 * statistics.median(added) if added else math.nan
    p99 = 1000 * added[min(len(added) - 1, int(0.99 * len(added)))] if added else math.nan
    return sum(j.results for j in written) / results, sim.retries / results, p50, p99


def one_item(rate: float, shards: int, seconds: float, seed: int) -> tuple[float, ...]:
    """Results at `rate`/s on one (variant, metric), each from its own unit, one at a time."""
    rng = random.Random(seed)
    sim = Simulator(rng)
    jobs, now = [], 0.0
    for unit in itertools.count():
        now += rng.expovariate(rate)
        if now > seconds:
            break
        job = Job(now, (("totals", rng.randrange(shards)), ("unit", unit)), 1)
        jobs.append(job)
        sim.start(job, now)
    sim.run()
    return summary(jobs, sim)


def high_traffic(
    requests: float, metrics: int, variants: int, shards: int, seconds: float, seed: int
) -> tuple[float, ...]:
    """Every request is a new unit and records one result per metric, all sent at once."""
    rng = random.Random(seed)
    sim = Simulator(rng)
    jobs, now = [], 0.0
    for unit in itertools.count():
        now += rng.expovariate(requests)
        if now > seconds:
            break
        variant, shard = rng.randrange(variants), rng.randrange(shards)
        for metric in range(metrics):
            job = Job(now, (("totals", variant, metric, shard), ("unit", unit)), 1)
            jobs.append(job)
            sim.start(job, now)
    sim.run()
    return summary(jobs, sim)


def batch_keys(rng: random.Random, size: int, pairs: int, shards: int) -> list[tuple[object, ...]]:
    return [("totals", rng.randrange(pairs), rng.randrange(shards)) for _ in range(size)]


def per_key(keys: list[tuple[object, ...]]) -> list[list[int]]:
    """One transaction per totals item: its results and units (2 r + 1 <= 100 items)."""
    groups: dict[tuple[object, ...], list[int]] = defaultdict(list)
    for index, key in enumerate(keys):
        groups[key].append(index)
    limit = (TX_ITEM_LIMIT - 1) // 2
    return [g[i : i + limit] for g in groups.values() for i in range(0, len(g), limit)]


def chunks(keys: list[tuple[object, ...]]) -> list[list[int]]:
    """Results per folded transaction: r raw results + r unit items + k totals items <= 100."""
    out: list[list[int]] = [[]]
    seen: set[tuple[object, ...]] = set()
    for index, key in enumerate(keys):
        grows = key not in seen
        if 2 * (len(out[-1]) + 1) + len(seen) + grows > TX_ITEM_LIMIT:
            out.append([])
            seen = set()
            grows = True
        out[-1].append(index)
        if grows:
            seen.add(key)
    return out


GROUPING: dict[str, Callable[[list[tuple[object, ...]]], list[list[int]]]] = {
    "as today": lambda keys: [[i] for i in range(len(keys))],
    "folded": chunks,
    "per item": per_key,
}


def batches(
    result_rate: float, pairs: int, shards: int, seconds: float, seed: int, *, mode: str
) -> tuple[float, ...]:
    """Batches of 100 results over `pairs` (variant, metric) pairs: as written, or folded
    into as few transactions as fit ("folded"), or into one transaction per totals item."""
    rng = random.Random(seed)
    sim = Simulator(rng)
    jobs, batch_jobs, now, unit = [], [], 0.0, 0
    while True:
        now += rng.expovariate(result_rate / 100)
        if now > seconds:
            break
        keys = batch_keys(rng, 100, pairs, shards)
        groups = GROUPING[mode](keys)
        chain = []
        for group in groups:
            items = {keys[i] for i in group} | {("unit", unit + i) for i in group}
            chain.append(Job(now, tuple(items), len(group)))
        unit += len(keys)
        for first, second in itertools.pairwise(chain):  # one Lambda: one after the other
            first.then = lambda t, job=second: sim.start(job, t)
        sim.start(chain[0], now)
        jobs.extend(chain)
        batch_jobs.append(chain)
    sim.run()
    written, retries, _, _ = summary(jobs, sim)
    spans = sorted(1000 * ((chain[-1].done or 0) - chain[0].arrival) for chain in batch_jobs)
    results = sum(j.results for j in jobs)
    return (
        written,
        retries,
        sim.transactions / results,
        statistics.median(spans),
        spans[int(0.99 * (len(spans) - 1))],
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=3.0, help="simulated seconds per row")
    parser.add_argument("--seed", type=int, default=7)
    args = parser.parse_args()
    print(
        f"assumed: read {READ_MS:g} ms, network {NET_MS:g} ms each way, items held "
        f"{HOLD_MS:g} ms per commit; ledger attempts {ATTEMPTS}; {args.seconds:g} s per row"
    )
    print("\n1. one (variant, metric), results one at a time, each from its own unit")
    print(f"{'shards':>6} {'results/s':>9} {'written':>8} {'retries':>8} {'+p50 ms':>8} "
          f"{'+p99 ms':>8}")  # fmt: skip
    for shards in SHARDS:
        for rate in RATES:
            written, retries, p50, p99 = one_item(rate, shards, args.seconds, args.seed)
            print(f"{shards:6} {rate:9} {written:8.2%} {retries:8.3f} {p50:8.1f} {p99:8.1f}")

    print("\n2. 2,000 LLM requests/s, 4 metrics each sent together, 2 variants (8,000 results/s)")
    for shards in (1, 16, RECOMMENDED_SHARDS):
        written, retries, p50, p99 = high_traffic(2000, 4, 2, shards, args.seconds, args.seed)
        print(
            f"  AB_TOTALS_SHARDS={shards:<3} written {written:8.2%}  retries/result "
            f"{retries:.3f}  added p50 {p50:.1f} ms  p99 {p99:.1f} ms"
        )
    print("   the same 1,000 results/s per (variant, metric), metrics of a request not together:")
    for shards in (16, RECOMMENDED_SHARDS):
        written, retries, p50, p99 = one_item(1000, shards, args.seconds, args.seed)
        print(
            f"  AB_TOTALS_SHARDS={shards:<3} written {written:8.2%}  retries/result "
            f"{retries:.3f}  added p50 {p50:.1f} ms  p99 {p99:.1f} ms"
        )

    print("\n3. record-results, batches of 100 over 8 (variant, metric) pairs")
    print(f"{'mode':>10} {'shards':>6} {'results/s':>9} {'written':>8} {'retries':>8} "
          f"{'tx/result':>9} {'batch p50':>9} {'batch p99':>9}")  # fmt: skip
    for shards, rate in ((1, 800), (1, 3200), (4, 3200), (1, 8000), (4, 8000), (16, 8000)):
        for mode in ("as today", "folded", "per item"):
            written, retries, per_result, p50, p99 = batches(
                rate, 8, shards, args.seconds, args.seed, mode=mode
            )
            print(
                f"{mode:>10} {shards:6} {rate:9} {written:8.2%} {retries:8.3f} "
                f"{per_result:9.3f} {p50:8.0f}ms {p99:8.0f}ms"
            )


if __name__ == "__main__":
    main()
