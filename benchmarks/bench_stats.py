"""Benchmark of the analyzer and calibration of its tests.

Prints the median time of one analysis of an experiment with 4 variants x 5 metrics, then the
false-positive rates (fixed horizon with a single look, fixed horizon checked at 20 looks,
always-valid sequential test checked at 20 looks) and the 95% interval coverage over 2,000
seeded replications; then (bench_unit_metrics.py) the variance reduction CUPED reports and the
DynamoDB calls of a record-result with a ratio metric declared.

    python benchmarks/bench_stats.py
"""

from __future__ import annotations

import statistics
import time

import _local  # noqa: F401  (first: sys.path and fake AWS credentials)
import bench_unit_metrics
import numpy as np

from ab_testing.stats import (
    AnalysisInput,
    MetricSpec,
    MetricTotals,
    StatisticalAnalyzer,
    VariantInput,
)
from tests.unit.stats_helpers import simulate_coverage, simulate_looks

METRICS = [
    MetricSpec("quality_score"),
    MetricSpec("converted", kind="binary"),
    MetricSpec("tokens", kind="count", direction="lower"),
    MetricSpec("latency_ms", direction="lower", guardrail=True),
    MetricSpec("cost_usd", direction="lower", guardrail=True),
]


def _totals(rng: np.random.Generator, spec: MetricSpec, units: int) -> MetricTotals:
    """Unit-level totals of 1 to 4 results per unit."""
    per_unit = []
    for m in rng.integers(1, 5, units):
        if spec.kind == "binary":
            values = (rng.random(m) < 0.2).astype(int).tolist()
        elif spec.kind == "count":
            values = rng.poisson(300, m).tolist()
        else:
            values = np.round(rng.gamma(4.0, 0.2, m), 6).tolist()
        per_unit.append(values)
    return MetricTotals.from_units(per_unit)


def build_input(units: int = 2000, seed: int = 1) -> AnalysisInput:
    rng = np.random.default_rng(seed)
    variants = [
        VariantInput(
            variant_id=vid,
            name=f"variant-{vid}",
            is_control=vid == 1,
            traffic_allocation=25.0,
            units_assigned=units,
            metrics={spec.name: _totals(rng, spec, units) for spec in METRICS},
        )
        for vid in range(1, 5)
    ]
    return AnalysisInput(
        experiment_id=1,
        primary_metric=METRICS[0],
        variants=variants,
        secondary_metrics=METRICS[1:],
    )


def time_analysis(repeats: int = 50) -> float:
    """Median seconds of one analysis (after one warm-up run that loads scipy)."""
    inp = build_input()
    analyzer = StatisticalAnalyzer()
    analyzer.analyze(inp)
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        analyzer.analyze(inp)
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def main() -> None:
    median = time_analysis()
    print(f"analysis of 4 variants x 5 metrics: median {median * 1000:.2f} ms (50 runs)")
    start = time.perf_counter()
    rates = simulate_looks(reps=2000, looks=20, per_look=50)
    coverage = simulate_coverage(reps=2000)
    elapsed = time.perf_counter() - start
    print("A/A false-positive rate, alpha = 0.05, 2,000 replications:")
    print(f"  fixed horizon, single look     {rates['fixed_single_look']:.2%}")
    print(f"  fixed horizon, 20 looks        {rates['fixed_every_look']:.2%}")
    print(f"  sequential (always valid), 20  {rates['sequential_every_look']:.2%}")
    print(f"95% Welch interval coverage, 2,000 replications: {coverage:.2%}")
    print(f"simulations: {elapsed:.2f} s")
    bench_unit_metrics.main()


if __name__ == "__main__":
    main()
