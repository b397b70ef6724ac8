"""Ratio metrics and CUPED: the variance reduction CUPED gives, and the DynamoDB calls of a
record-result when a ratio metric and a covariate are declared (run by bench_stats.py).

    python benchmarks/bench_unit_metrics.py
"""

from __future__ import annotations

import math
import random
from dataclasses import replace
from decimal import Decimal
from typing import Any

import _local  # noqa: F401  (first: sys.path and fake AWS credentials)
import numpy as np
from bench_analyze_scaling import CallCounter

from ab_testing.service import ExperimentService
from ab_testing.settings import Settings
from ab_testing.stats import AnalysisInput, MetricSpec, MetricTotals, StatisticalAnalyzer
from ab_testing.stats.inputs import VariantInput
from ab_testing.store import Store
from tests.conftest import guide_experiment, local_dynamodb

RHO = 0.7
CALLS_SAMPLE = 300


def _totals(y: np.ndarray, x: np.ndarray) -> MetricTotals:
    """Running totals of one result per unit, with the covariate sums the ledger keeps."""
    base = MetricTotals.from_units([[Decimal(repr(float(v)))] for v in y])

    def d(v: float) -> Decimal:
        return Decimal(repr(float(v)))

    return replace(
        base,
        cov_units=len(x),
        cov_sum=d(x.sum()),
        cov_sum_sq=d((x * x).sum()),
        cov_x_sum=d((x * y).sum()),
        cov_x_count=d(x.sum()),
        cov_h_sum=d(y.sum()),
        cov_h_count=len(x),
    )


def cuped_reduction(reps: int = 200, units: int = 1000, seed: int = 3) -> tuple[float, float]:
    """Mean variance_reduction reported by the analyzer, and the adjusted/raw width ratio."""
    rng = np.random.default_rng(seed)
    spec = MetricSpec("resolution_score")
    reductions, ratios = [], []
    for _ in range(reps):
        variants = []
        for vid in (1, 2):
            x = np.round(rng.normal(0, 1, units), 6)
            y = np.round(RHO * x + math.sqrt(1 - RHO**2) * rng.normal(0, 1, units), 6)
            variants.append(
                VariantInput(vid, f"v{vid}", vid == 1, 50.0, units, {spec.name: _totals(y, x)})
            )
        inp = AnalysisInput(1, spec, variants, covariate="prior_score")
        comparison = StatisticalAnalyzer().analyze(inp)["metrics"][spec.name]["comparisons"][0]
        cuped = comparison["cuped"]
        reductions.append(cuped["variance_reduction"])
        ratios.append(
            (cuped["absolute_ci"][1] - cuped["absolute_ci"][0])
            / (comparison["absolute_ci"][1] - comparison["absolute_ci"][0])
        )
    return float(np.mean(reductions)), float(np.mean(ratios))


def record_result_calls() -> tuple[float, dict[str, float]]:
    """DynamoDB calls per record-result with a ratio metric and a covariate declared."""
    rng = random.Random(5)
    with local_dynamodb() as client:
        service = ExperimentService(Store(Settings(), client=client), cache_ttl_seconds=3600)
        body = guide_experiment(
            secondary_metrics=["cost_usd"],
            ratio_metrics=[
                {
                    "name": "cost_per_resolution",
                    "numerator": "cost_usd",
                    "denominator": "resolution_rate",
                }
            ],
            covariate="prior_resolution_rate",
        )
        eid = int(service.create_experiment(body)["id"])
        service.start_experiment(eid)
        for unit in range(200):
            covariates = {"prior_resolution_rate": round(rng.random(), 3)}
            service.get_variant({"experiment_id": eid, "user_id": unit, "covariates": covariates})
        counter = CallCounter(client)
        with counter.counting() as calls:
            for _ in range(CALLS_SAMPLE):
                metric, value = rng.choice(
                    [("cost_usd", round(rng.random() * 0.002, 9)), ("resolution_rate", 1)]
                )
                answer: dict[str, Any] = service.record(
                    {
                        "experiment_id": eid,
                        "user_id": rng.randrange(200),
                        "metric_name": metric,
                        "metric_value": value,
                    }
                )
                assert answer["recorded"], answer
    per_result = sum(calls.values()) / CALLS_SAMPLE
    return per_result, {op: n / CALLS_SAMPLE for op, n in sorted(calls.items())}


def main() -> None:
    reduction, width = cuped_reduction()
    print(
        f"CUPED, covariate correlated {RHO} with the outcome, 200 experiments x 2 x 1,000 units: "
        f"variance reduction {reduction:.1%} (theory rho^2 = {RHO**2:.1%}), "
        f"interval width x{width:.3f} (theory sqrt(1 - rho^2) = {math.sqrt(1 - RHO**2):.3f})"
    )
    per_result, detail = record_result_calls()
    ops = ", ".join(f"{op}={n:g}" for op, n in detail.items())
    print(
        f"record-result with a ratio metric and a covariate: {per_result:g} DynamoDB calls per "
        f"result ({ops}; over {CALLS_SAMPLE} results)"
    )


if __name__ == "__main__":
    main()
