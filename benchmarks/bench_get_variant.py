"""get-variant on the hot path: DynamoDB calls per request, handler time, cold import cost.

Runs in-process against moto (no AWS account, no network):

    .venv/bin/python benchmarks/bench_get_variant.py

Numbers from moto say how much work the service does per call and how it splits between
boto3 and the service's own Python; they are not DynamoDB latencies.
"""

from __future__ import annotations

import importlib.util
import json
import os
import statistics
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Callable
from types import ModuleType
from typing import Any

from _local import ROOT  # first: sys.path and fake AWS credentials

CALLS = 200
IMPORT_RUNS = 5
HANDLER_FILE = ROOT / "functions" / "get_variant" / "app.py"
EXPERIMENT = {
    "name": "Bench Prompt Test",
    "experiment_type": "prompt",
    "primary_metric": "resolution_rate",
    "variants": [
        {"name": "Control", "is_control": True, "traffic_allocation": 50.0},
        {"name": "Treatment", "traffic_allocation": 50.0, "config": {"examples": True}},
    ],
    "target_percentage": 100.0,
}


class CallMeter:
    """Counts DynamoDB operations (botocore events) and the time spent inside boto3."""

    def __init__(self, client: Any) -> None:
        self.operations: Counter[str] = Counter()
        self.boto_seconds = 0.0
        client.meta.events.register("before-call.dynamodb", self._count)
        inner: Callable[[str, dict[str, Any]], Any] = client._make_api_call

        def timed(operation: str, params: dict[str, Any]) -> Any:
            start = time.perf_counter()
            try:
                return inner(operation, params)
            finally:
                self.boto_seconds += time.perf_counter() - start

        client._make_api_call = timed

    def _count(self, model: Any = None, **_: Any) -> None:
        self.operations[model.name] += 1

    def total(self) -> int:
        return sum(self.operations.values())


def load_handler() -> ModuleType:
    spec = importlib.util.spec_from_file_location("bench_get_variant_handler", HANDLER_FILE)
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def event(body: dict[str, Any]) -> dict[str, Any]:
    from emulator.events import api_gateway_event

    return api_gateway_event(
        "POST",
        "/api/v1/experiments/get-variant",
        resource="/api/v1/experiments/get-variant",
        path_parameters=None,
        body=json.dumps(body),
        headers={"Content-Type": "application/json"},
    )


def run_calls(
    handler: Callable[..., dict[str, Any]], meter: CallMeter, users: range, reason: str
) -> dict[str, Any]:
    per_call: list[int] = []
    handler_seconds: list[float] = []
    outside_share: list[float] = []
    operations: Counter[str] = Counter()
    for user in users:
        request = event({"experiment_name": EXPERIMENT["name"], "user_id": user})
        calls_before, boto_before = meter.total(), meter.boto_seconds
        ops_before = Counter(meter.operations)
        start = time.perf_counter()
        answer = handler(request, None)
        elapsed = time.perf_counter() - start
        body = json.loads(answer["body"])
        assert answer["statusCode"] == 200 and body["reason"] == reason, body
        per_call.append(meter.total() - calls_before)
        operations += meter.operations - ops_before
        handler_seconds.append(elapsed)
        outside_share.append(1.0 - (meter.boto_seconds - boto_before) / elapsed)
    return {
        "per_call": per_call,
        "operations": operations,
        "median_ms": statistics.median(handler_seconds) * 1000,
        "outside_share": statistics.median(outside_share),
    }


def in_process() -> dict[str, dict[str, Any]]:
    import boto3
    from moto import mock_aws

    from ab_testing.service import ExperimentService
    from ab_testing.settings import Settings
    from ab_testing.store import Store
    from emulator.template import create_tables

    with mock_aws():
        client = boto3.client("dynamodb", region_name="us-east-1")
        create_tables(client)
        service = ExperimentService(Store(Settings(), client=client))
        created = service.create_experiment(EXPERIMENT)
        service.start_experiment(created["id"])
        handler_module = load_handler()
        # The handler asks ab_testing.runtime for its service; hand it this one instead.
        handler_module.service = lambda: service  # type: ignore[attr-defined]
        meter = CallMeter(client)
        warm = event({"experiment_name": EXPERIMENT["name"], "user_id": -1})
        # Before each case, one throwaway call warms the experiment cache (AB_CACHE_TTL_SECONDS,
        # 5 s by default) and botocore's lazy loading; each case takes well under 5 s.
        handler_module.handler(warm)
        new = run_calls(handler_module.handler, meter, range(CALLS), "assigned")
        handler_module.handler(warm)
        returning = run_calls(handler_module.handler, meter, range(CALLS), "existing_assignment")
    return {"new": new, "returning": returning}


IMPORT_PROBE = """
import sys, time, importlib.util
root, what = sys.argv[1], sys.argv[2]
sys.path[:0] = [root + "/layers/ab_testing", root]
start = time.perf_counter()
if what == "boto3":
    import boto3
else:
    spec = importlib.util.spec_from_file_location("handler", what)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
elapsed = time.perf_counter() - start
heavy = sorted({n.split(".")[0] for n in sys.modules} & {"scipy", "numpy"})
print(elapsed, ",".join(heavy) or "-")
"""


def cold_import(what: str) -> tuple[float, set[str]]:
    times: list[float] = []
    heavy: set[str] = set()
    env = {"PATH": os.environ.get("PATH", ""), "AWS_DEFAULT_REGION": "us-east-1"}
    for _ in range(IMPORT_RUNS):
        done = subprocess.run(
            [sys.executable, "-c", IMPORT_PROBE, str(ROOT), what],
            capture_output=True,
            text=True,
            check=True,
            env=env,
            timeout=60,
        )
        seconds, modules = done.stdout.split()
        times.append(float(seconds))
        heavy |= {m for m in modules.split(",") if m != "-"}
    return statistics.median(times), heavy


def describe(counter: Counter[str]) -> str:
    return ", ".join(f"{name} x{count / CALLS:g}" for name, count in sorted(counter.items()))


def main() -> None:
    wall = time.perf_counter()
    print(f"get-variant benchmark: {CALLS} calls per case, moto in-process, cache warm")
    results = in_process()
    for label, key in (("returning unit", "returning"), ("new unit", "new")):
        data = results[key]
        calls = data["per_call"]
        print(
            f"DynamoDB calls per get-variant, {label}: mean {statistics.mean(calls):g} "
            f"(min {min(calls)}, max {max(calls)}) [{describe(data['operations'])}]"
        )
    for label, key in (("returning unit", "returning"), ("new unit", "new")):
        data = results[key]
        print(
            f"Median handler time per call, {label}: {data['median_ms']:.2f} ms; "
            f"share outside boto3: {data['outside_share']:.0%}"
        )

    handler_s, handler_heavy = cold_import(str(HANDLER_FILE))
    boto_s, _ = cold_import("boto3")
    print(
        f"Cold import, functions/get_variant/app.py: {handler_s * 1000:.0f} ms "
        f"(median of {IMPORT_RUNS} fresh interpreters)"
    )
    print(f"Cold import, boto3 alone: {boto_s * 1000:.0f} ms (median of {IMPORT_RUNS})")
    print(f"Cold import ratio, handler / boto3: {handler_s / boto_s:.2f}x")
    print(
        "scipy/numpy imported by the handler: "
        + (", ".join(sorted(handler_heavy)) if handler_heavy else "no")
    )
    print(f"Benchmark wall time: {time.perf_counter() - wall:.1f} s")


if __name__ == "__main__":
    main()
