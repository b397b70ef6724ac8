"""The issue's simulated prompt experiment: the few-shot prompt lifts resolution by 16 points
but costs 38% more tokens and money and is 6% slower. Users record one or two results each."""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np

METRICS = ("resolution_rate", "cost_usd", "token_usage", "response_time")
# (resolution rate, mean cost in USD, mean tokens, mean response time in ms) per arm
ARMS = {
    "control": (0.60, 0.0100, 1200.0, 2000.0),
    "treatment": (0.76, 0.0138, 1656.0, 2120.0),
}
COST_METRIC = {"name": "cost_usd", "kind": "continuous", "direction": "lower", "lower": 0}


def users(arm: str, count: int, seed: int, most: int = 2) -> Iterator[dict[str, list[float]]]:
    """One dict per user: metric name -> the user's results (one to ``most`` of each)."""
    rate, cost, tokens, latency = ARMS[arm]
    rng = np.random.default_rng(seed)
    for _ in range(count):
        k = int(rng.integers(1, most + 1))
        yield {
            "resolution_rate": [float(rng.random() < rate) for _ in range(k)],
            "cost_usd": [round(float(rng.normal(cost, 0.002)), 6) for _ in range(k)],
            "token_usage": [float(round(rng.normal(tokens, 200))) for _ in range(k)],
            "response_time": [round(float(rng.normal(latency, 150)), 1) for _ in range(k)],
        }
