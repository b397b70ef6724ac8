"""Cold start as deployed: import each handler from the `sam build` output with python3.13.

    .venv/bin/python benchmarks/bench_cold_start.py            # reuses .aws-sam/build
    .venv/bin/python benchmarks/bench_cold_start.py --build    # runs `sam build` first

Each handler is imported in a fresh `python3.13 -S -B` process whose sys.path is what Lambda
gives it: the built function directory, its layers' `python/` directories (in template
order), and a directory holding only boto3 (the runtime's copy; Lambda's /var/runtime).
`-B` stands for Lambda's read-only file system: nothing compiled on the first import is kept,
so whatever the build did not ship as .pyc is compiled again on every cold start.

Printed per handler: the CPU time of `import app` (median of RUNS processes), its ratio to
`import boto3` measured the same way right after it (so the load of a busy machine weighs on
both alike), and for the functions that carry the
stats layer, the CPU time of the first `from scipy import stats` after the handler.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
from pathlib import Path
from typing import Any

from _local import ROOT  # first: sys.path and fake AWS credentials

from emulator.template import function_environment, load_template

BUILD = ROOT / ".aws-sam" / "build"
RUNTIME = ROOT / ".aws-sam" / "bench-runtime"  # boto3 alone, as the Lambda runtime ships it
RUNS = 5
HOT_PATH = {
    "ExperimentDefinitionsFunction",
    "GetVariantFunction",
    "RecordExposuresFunction",
    "RecordResultFunction",
    "RecordResultsFunction",
}
GOAL = 1.6

PROBE = r"""
import json, sys, time, importlib.util
paths, app, scipy_too = json.loads(sys.argv[1]), sys.argv[2], sys.argv[3] == "1"
sys.path[:0] = paths
start = time.process_time()
if app == "-":
    import boto3  # noqa: F401
else:
    spec = importlib.util.spec_from_file_location("app", app)
    module = importlib.util.module_from_spec(spec)
    sys.modules["app"] = module
    spec.loader.exec_module(module)
    assert callable(module.handler)
handler_cpu = time.process_time() - start
heavy = sorted({n.split(".")[0] for n in sys.modules} & {"scipy", "numpy"})
scipy_cpu = None
if scipy_too:
    start = time.process_time()
    from scipy import stats  # noqa: F401
    scipy_cpu = time.process_time() - start
print(json.dumps({"handler": handler_cpu, "scipy": scipy_cpu, "heavy": heavy}))
"""

# What Lambda sets; each function also gets its environment from the template.
ENV = {
    "PATH": "/usr/bin:/bin",
    "AWS_DEFAULT_REGION": "us-east-1",
    "AWS_REGION": "us-east-1",
    "AWS_LAMBDA_FUNCTION_NAME": "bench",
    "LAMBDA_TASK_ROOT": "/var/task",
    "PYTHONHASHSEED": "0",
}


def python313() -> str:
    found = shutil.which("python3.13", path=_pyenv_path())
    if not found:
        sys.exit("python3.13 not found (pyenv install 3.13, or put it on PATH)")
    return found


def _pyenv_path() -> str:
    root = Path(os.environ.get("PYENV_ROOT", Path.home() / ".pyenv"))
    extra = [str(p / "bin") for p in sorted((root / "versions").glob("3.13*"))]
    return os.pathsep.join([*extra, os.environ.get("PATH", "")])


def sam() -> str:
    for candidate in (os.environ.get("SAM"), shutil.which("sam"), "/tmp/samcli/bin/sam"):
        if candidate and Path(candidate).exists():
            return candidate
    sys.exit("aws-sam-cli not found: set SAM=/path/to/sam (install it outside .venv)")


def build() -> None:
    env = {**os.environ, "PYENV_VERSION": "3.11.7:3.13.0", "SAM_CLI_TELEMETRY": "0"}
    subprocess.run([sam(), "build"], cwd=ROOT, env=env, check=True)


def runtime_dir(python: str) -> Path:
    """boto3 and botocore for python3.13, installed once beside the build."""
    if not (RUNTIME / "boto3").is_dir():
        subprocess.run(
            [python, "-m", "pip", "install", "--quiet", "--target", str(RUNTIME), "boto3"],
            check=True,
        )
    return RUNTIME


def functions(template: dict[str, Any]) -> dict[str, tuple[Path, list[Path]]]:
    """{function id: (built code dir, [built layer python dirs])} from the built template."""
    resources = template["Resources"]
    global_layers = ((template.get("Globals") or {}).get("Function") or {}).get("Layers") or []
    found = {}
    for lid, res in resources.items():
        if res.get("Type") != "AWS::Serverless::Function":
            continue
        props = res.get("Properties") or {}
        layers = [*global_layers, *(props.get("Layers") or [])]
        layer_ids = [layer["Ref"] for layer in layers if isinstance(layer, dict)]
        found[lid] = (BUILD / lid, [BUILD / layer / "python" for layer in layer_ids])
    return found


def measure(
    python: str, paths: list[Path], app: str, scipy_too: bool, runs: int, env: dict[str, str]
) -> dict[str, Any]:
    samples = []
    for _ in range(runs):
        done = subprocess.run(
            [python, "-S", "-B", "-c", PROBE, json.dumps([str(p) for p in paths]), app,
             "1" if scipy_too else "0"],
            capture_output=True, text=True, env={**env, **ENV}, cwd="/", check=False,
        )  # fmt: skip
        if done.returncode != 0:
            sys.exit(f"{app}: {done.stderr.strip()[-2000:]}")
        samples.append(json.loads(done.stdout.strip().splitlines()[-1]))
    scipy = [s["scipy"] for s in samples if s["scipy"] is not None]
    return {
        "handler": statistics.median(s["handler"] for s in samples),
        "scipy": statistics.median(scipy) if scipy else None,
        "heavy": samples[-1]["heavy"],
    }


def pyc_share(paths: list[Path]) -> str:
    """How many .py files of the layers ship a cpython-313 .pyc beside them."""
    sources = compiled = 0
    for root in paths:
        for py in root.rglob("*.py"):
            sources += 1
            cache = py.parent / "__pycache__" / f"{py.stem}.cpython-313.pyc"
            compiled += cache.exists() or py.with_suffix(".pyc").exists()
    return f"{compiled}/{sources}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--build", action="store_true", help="run sam build first")
    parser.add_argument("--runs", type=int, default=RUNS, help="fresh processes per handler")
    parser.add_argument("--only", help="comma-separated function ids (default: all)")
    args = parser.parse_args()
    if args.build or not (BUILD / "template.yaml").exists():
        build()
    python = python313()
    runtime = runtime_dir(python)
    template = load_template(BUILD / "template.yaml")
    source = load_template(ROOT / "template.yaml")
    baseline = measure(python, [runtime], "-", False, args.runs, {})["handler"]
    print(f"python3.13 cold imports from {BUILD.relative_to(ROOT)}, median of {args.runs} runs")
    print(f"import boto3: {baseline * 1000:.0f} ms CPU (ratio 1.00)")
    print(f"{'function':34} {'import ms':>9} {'x boto3':>8} {'scipy ms':>9}  heavy  .pyc")
    worst_hot = 0.0
    wanted = set(args.only.split(",")) if args.only else None
    for lid, (code, layers) in sorted(functions(template).items()):
        if wanted is not None and lid not in wanted:
            continue
        scipy_too = any("Stats" in layer.parent.name for layer in layers)
        env = function_environment(source, function_id=lid)
        result = measure(
            python, [code, *layers, runtime], str(code / "app.py"), scipy_too, args.runs, env
        )
        # boto3 again, right beside it: on a busy machine a ratio to a baseline measured
        # minutes earlier drifts with the load; one measured alongside does not.
        beside = measure(python, [runtime], "-", False, args.runs, {})["handler"]
        ratio = result["handler"] / beside
        if lid in HOT_PATH:
            worst_hot = max(worst_hot, ratio)
        scipy = f"{result['scipy'] * 1000:9.0f}" if result["scipy"] is not None else f"{'-':>9}"
        print(
            f"{lid:34} {result['handler'] * 1000:9.0f} {ratio:8.2f} {scipy}  "
            f"{','.join(result['heavy']) or '-':5}  {pyc_share(layers)}"
        )
    verdict = "meets" if worst_hot <= GOAL else "misses"
    print(f"hot path worst ratio {worst_hot:.2f} ({verdict} the goal of {GOAL}x import boto3)")


if __name__ == "__main__":
    main()
