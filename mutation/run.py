"""Mutation testing of the core modules with mutmut, and the score it gives.

mutmut derives module names from file paths, and the layer lives under layers/ab_testing/, so
this lays out a copy of the project in .mutation/ with the package at the top
(.mutation/ab_testing), runs ``mutmut run`` there on the chosen modules within a time budget,
and prints the score: killed / (all mutants - equivalent ones), per module and in total.
Survivors that no test can kill are listed with a reason in mutation/equivalent.txt.

    python mutation/run.py                      # every core module, 40 minutes
    python mutation/run.py --modules ledger store --budget 900
    python mutation/run.py --report             # the score of what has run so far
    python mutation/run.py --fresh              # start again from the current code

Results are kept in .mutation/mutants between runs: a new run continues where the last one
stopped (``--fresh`` throws them away; do that after changing the code or the tests).
"""

from __future__ import annotations

import argparse
import re
import shutil
import signal
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
STAGE = ROOT / ".mutation"
EQUIVALENT = ROOT / "mutation" / "equivalent.txt"
MUTMUT = [sys.executable, "-m", "mutmut"]

# The core: name -> (module under layers/ab_testing/ab_testing, function name prefix or "").
CORE: dict[str, tuple[str, str]] = {
    "ledger": ("ledger", ""),
    "store": ("store", ""),
    "assignment": ("assignment", ""),
    "service": ("service", ""),
    "results": ("results", ""),
    "decision": ("stats/decision", ""),
    "srm": ("stats/srm", ""),
    "thresholds": ("scheduled", "x_auto_stop_reason"),  # the auto-stop thresholds only
    "http": ("http", ""),
    "errors": ("errors", ""),
}
# What mutants run against: the unit and integration tests, without the emulator's own
# (they start servers) and the slow simulations.
PYTEST_ARGS = [
    "-m",
    "not slow and not e2e",
    "-p",
    "no:cacheprovider",
    "--ignore-glob=tests/unit/test_emulator_*.py",
    "--ignore=tests/integration/test_emulator_server.py",
    "--ignore=tests/e2e",
]
KILLED = {"killed", "timeout", "caught by type check", "segfault"}
LINE = re.compile(r"^\s+(\S+__mutmut_\d+): (.+)$")


def stage(fresh: bool) -> None:
    """The project laid out for mutmut: the package at the top, everything tests need."""
    if fresh and STAGE.exists():
        shutil.rmtree(STAGE)
    STAGE.mkdir(exist_ok=True)
    package = ROOT / "layers" / "ab_testing" / "ab_testing"
    copies = {
        "ab_testing": package,
        "tests": ROOT / "tests",
        "functions": ROOT / "functions",
        "emulator": ROOT / "emulator",
        "events": ROOT / "events",
        "docs": ROOT / "docs",
    }
    for name, source in copies.items():
        target = STAGE / name
        if target.exists():
            shutil.rmtree(target)
        shutil.copytree(source, target, ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copy2(ROOT / "template.yaml", STAGE / "template.yaml")
    files = ", ".join(sorted({f'"ab_testing/{m}.py"' for m, _ in CORE.values()}))
    also = ", ".join(f'"{n}"' for n in ("functions", "emulator", "events", "docs", "template.yaml"))
    args = ", ".join(f'"{a}"' for a in PYTEST_ARGS)
    config = (
        "\n[tool.mutmut]\n"
        'source_paths = ["ab_testing"]\n'
        f"only_mutate = [{files}]\n"
        f"also_copy = [{also}]\n"
        'pytest_add_cli_args_test_selection = ["tests/unit", "tests/integration"]\n'
        f"pytest_add_cli_args = [{args}]\n"
        "use_git_change_detection = false\n"
    )
    (STAGE / "pyproject.toml").write_text((ROOT / "pyproject.toml").read_text() + config)


def results() -> dict[str, str]:
    """{mutant name: status} of every mutant generated so far."""
    out = subprocess.run(
        [*MUTMUT, "results", "--all", "true"], cwd=STAGE, capture_output=True, text=True
    ).stdout
    return {m.group(1): m.group(2).strip() for m in map(LINE.match, out.splitlines()) if m}


def module_of(mutant: str) -> str:
    dotted = mutant.split(".x", 1)[0].removeprefix("ab_testing.")
    return dotted.replace(".", "/")


def belongs(mutant: str, names: list[str]) -> str | None:
    """Which of the chosen core entries a mutant belongs to, if any."""
    function = mutant.rsplit(".", 1)[-1]
    for name in names:
        module, prefix = CORE[name]
        if module_of(mutant) == module and function.startswith(prefix):
            return name
    return None


def equivalents() -> dict[str, str]:
    """mutation/equivalent.txt: '<mutant name>  <why no test can kill it>' per line."""
    found: dict[str, str] = {}
    for line in EQUIVALENT.read_text(encoding="utf-8").splitlines():
        if line.strip() and not line.startswith("#"):
            name, _, reason = line.strip().partition(" ")
            found[name] = reason.strip()
    return found


def run(modules: list[str], budget: float) -> None:
    """mutmut on the modules' mutants not yet checked, stopped (cleanly) at the budget."""
    if not (STAGE / "mutants").exists():
        # The first run generates every mutant and maps tests to functions.
        module, prefix = CORE[modules[0]]
        names = [f"ab_testing.{module.replace('/', '.')}.{prefix}*"]
    else:
        names = [n for n, s in results().items() if belongs(n, modules) and s == "not checked"]
        if not names:
            return
    process = subprocess.Popen([*MUTMUT, "run", "--max-children", "1", *names], cwd=STAGE)
    deadline = time.monotonic() + budget
    while process.poll() is None:
        if time.monotonic() > deadline:
            print(f"time budget of {budget:.0f} s spent: stopping mutmut", flush=True)
            process.send_signal(signal.SIGINT)
            process.wait()
            return
        time.sleep(2)  # polling a child process, not waiting on test work


def report(modules: list[str]) -> float:
    statuses = {n: s for n, s in results().items() if belongs(n, modules)}
    equivalent = equivalents()
    per_module: dict[str, Counter[str]] = {}
    survivors = []
    for name, status in sorted(statuses.items()):
        counts = per_module.setdefault(str(belongs(name, modules)), Counter())
        if name in equivalent and status not in KILLED:
            counts["equivalent"] += 1
        elif status in KILLED:
            counts["killed"] += 1
        elif status == "not checked":
            counts["not checked"] += 1
        else:
            counts["survived"] += 1
            survivors.append(f"{name}: {status}")
    total: Counter[str] = Counter()
    print(f"{'module':<18}{'killed':>8}{'survived':>10}{'equivalent':>12}{'unrun':>8}{'score':>8}")
    for module, counts in sorted(per_module.items()):
        total.update(counts)
        print(f"{module:<18}" + _row(counts))
    print(f"{'total':<18}" + _row(total))
    if survivors:
        print("\nsurvivors (kill them with a test, or list them in mutation/equivalent.txt):")
        print("\n".join(f"  {s}" for s in survivors))
    return _score(total)


def _score(counts: Counter[str]) -> float:
    tested = counts["killed"] + counts["survived"]
    return 100.0 * counts["killed"] / tested if tested else 0.0


def _row(c: Counter[str]) -> str:
    return (
        f"{c['killed']:>8}{c['survived']:>10}{c['equivalent']:>12}{c['not checked']:>8}"
        f"{_score(c):>7.1f}%"
    )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--modules", nargs="+", choices=sorted(CORE), default=sorted(CORE))
    parser.add_argument("--budget", type=float, default=2400, help="seconds for this run")
    parser.add_argument("--fresh", action="store_true", help="forget earlier results")
    parser.add_argument("--report", action="store_true", help="only print the score")
    args = parser.parse_args()
    if not args.report:
        stage(args.fresh)
        deadline = time.monotonic() + args.budget
        for module in args.modules:
            left = deadline - time.monotonic()
            if left <= 0:
                break
            run([module], left)
    score = report(args.modules)
    print(f"\nmutation score: {score:.1f}% of checked, non-equivalent mutants killed")
    return 0


if __name__ == "__main__":
    sys.exit(main())
