"""Mutation testing of the core modules with mutmut, and the score it gives.

mutmut derives module names from file paths, and the layer lives under layers/ab_testing/, so
this lays out a copy of the project in .mutation/ with the package at the top
(.mutation/ab_testing), runs ``mutmut run`` there on the chosen modules within a time budget,
and prints the score: killed / (all mutants - equivalent ones), per module and in total.
Survivors that no test can kill are listed with a reason in mutation/equivalent.txt.

    python mutation/run.py                      # every core module, 40 minutes
    python mutation/run.py --modules ledger store --budget 900
    python mutation/run.py --report             # the score of what has run so far
    python mutation/run.py --modules store --sample 40   # 40 of store's unchecked mutants
    python mutation/run.py --fresh              # start again from the current code

Results are kept in .mutation/<group>/mutants between runs: a new run continues where the
last one stopped and tries the survivors again with the current tests (``--fresh`` throws
everything away). mutmut itself forgets a module's results when that module, or one it imports,
has changed.
"""

from __future__ import annotations

import argparse
import math
import random
import re
import shutil
import signal
import statistics
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
STAGE = ROOT / ".mutation"
EQUIVALENT = ROOT / "mutation" / "equivalent.txt"
MUTMUT = [sys.executable, "-m", "mutmut"]

# The core: name -> (group, module under layers/ab_testing/ab_testing, function prefix or "").
# Each group runs in its own staged copy against the tests that exercise it, so a mutant of a
# pure module never waits for DynamoDB tests.
CORE: dict[str, tuple[str, str, str]] = {
    "decision": ("pure", "stats/decision", ""),
    "srm": ("pure", "stats/srm", ""),
    "thresholds": ("pure", "scheduled", "x_auto_stop_reason"),  # the auto-stop thresholds
    "assignment": ("pure", "assignment", ""),
    "http": ("http", "http", ""),
    "errors": ("http", "errors", ""),
    "ledger": ("data", "ledger", ""),
    "store": ("data", "store", ""),
    "service": ("data", "service", ""),
    "results": ("data", "results", ""),
}
UNIT = ["tests/unit"]
INTEGRATION = ["tests/integration"]
TESTS: dict[str, list[str]] = {
    "pure": UNIT,
    # Every handler goes through the HTTP glue: a narrower list left its header lookup, used
    # only by the definitions endpoint, with "no tests".
    "http": UNIT + INTEGRATION,
    "data": INTEGRATION,
}
# Without the emulator's own tests (they start servers), the slow simulations and the deploy
# settings test: it reads files under layers/, which the staged copy must not have
# (tests/conftest.py would put the unmutated package there first on sys.path).
PYTEST_ARGS = [
    "-m",
    "not slow and not e2e",
    "-p",
    "no:cacheprovider",
    "--ignore-glob=tests/unit/test_emulator_*.py",
    "--ignore=tests/integration/test_emulator_server.py",
    "--ignore=tests/unit/test_deploy_settings.py",
    "--ignore=tests/unit/test_mutation_tool.py",  # it imports this script, not staged
]
# Log calls are not behaviour a test should pin: their lines are not mutated.
DO_NOT_MUTATE = [r"logger\\.(debug|info|warning|error|exception)\\("]
KILLED = {"killed", "timeout", "caught by type check", "segfault"}
LINE = re.compile(r"^\s+(\S+__mutmut_\d+): (.+)$")


def stage(group: str, fresh: bool) -> Path:
    """The project laid out for mutmut: the package at the top, everything tests need."""
    where = STAGE / group
    if fresh and where.exists():
        shutil.rmtree(where)
    where.mkdir(parents=True, exist_ok=True)
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
        target = where / name
        if target.exists():
            shutil.rmtree(target)
        shutil.copytree(source, target, ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copy2(ROOT / "template.yaml", where / "template.yaml")
    files = ", ".join(sorted({f'"ab_testing/{m}.py"' for g, m, _ in CORE.values() if g == group}))
    also = ", ".join(f'"{n}"' for n in ("functions", "emulator", "events", "docs", "template.yaml"))
    args = ", ".join(f'"{a}"' for a in PYTEST_ARGS)
    tests = ", ".join(f'"{t}"' for t in TESTS[group])
    patterns = ", ".join(f'"{p}"' for p in DO_NOT_MUTATE)
    config = (
        "\n[tool.mutmut]\n"
        'source_paths = ["ab_testing"]\n'
        f"only_mutate = [{files}]\n"
        f"also_copy = [{also}]\n"
        f"pytest_add_cli_args_test_selection = [{tests}]\n"
        f"pytest_add_cli_args = [{args}]\n"
        f"do_not_mutate_patterns = [{patterns}]\n"
        "use_git_change_detection = false\n"
    )
    (where / "pyproject.toml").write_text((ROOT / "pyproject.toml").read_text() + config)
    return where


def results() -> dict[str, str]:
    """{mutant name: status} of every mutant generated so far, in every group."""
    found: dict[str, str] = {}
    for where in sorted(p for p in STAGE.glob("*") if (p / "mutants").exists()):
        out = subprocess.run(
            [*MUTMUT, "results", "--all", "true"], cwd=where, capture_output=True, text=True
        ).stdout
        found.update(
            {m.group(1): m.group(2).strip() for m in map(LINE.match, out.splitlines()) if m}
        )
    return found


def module_of(mutant: str) -> str:
    dotted = mutant.split(".x", 1)[0].removeprefix("ab_testing.")
    return dotted.replace(".", "/")


def belongs(mutant: str, names: list[str]) -> str | None:
    """Which of the chosen core entries a mutant belongs to, if any."""
    function = mutant.rsplit(".", 1)[-1]
    for name in names:
        _, module, prefix = CORE[name]
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


def run(group: str, modules: list[str], budget: float, fresh: bool, sample: int = 0) -> None:
    """mutmut on the modules' mutants not yet checked, stopped (cleanly) at the budget; with
    `sample`, on that many of each module's unchecked mutants, drawn at random (and every
    survivor again)."""
    where = stage(group, fresh)
    if not (where / "mutants").exists():
        # The first run generates the group's mutants and maps tests to functions.
        names = [f"ab_testing.{CORE[m][1].replace('/', '.')}.{CORE[m][2]}*" for m in modules]
    else:
        statuses = results()
        names = unsettled(statuses, modules, equivalents())
        if sample:
            names = _sampled(names, statuses, modules, sample)
        if not names:
            return
    process = subprocess.Popen([*MUTMUT, "run", "--max-children", "1", *names], cwd=where)
    deadline = time.monotonic() + budget
    while process.poll() is None:
        if time.monotonic() > deadline:
            print(f"time budget of {budget:.0f} s spent: stopping mutmut", flush=True)
            process.send_signal(signal.SIGINT)
            process.wait()
            return
        time.sleep(2)  # polling a child process, not waiting on test work


def unsettled(
    statuses: dict[str, str], modules: list[str], equivalent: dict[str, str]
) -> list[str]:
    """The modules' mutants still to run: unchecked ones, and survivors, which are tried again
    because the tests may have changed since; not those listed as equivalent."""
    again = {"not checked", "survived", "no tests"}
    return [
        n for n, s in statuses.items() if s in again and n not in equivalent and belongs(n, modules)
    ]


def _sampled(
    names: list[str], statuses: dict[str, str], modules: list[str], size: int
) -> list[str]:
    """Every survivor, and `size` unchecked mutants of each module drawn at random (seeded,
    so a rerun draws the same ones first)."""
    chosen = [n for n in names if statuses[n] != "not checked"]
    draw = random.Random(20261130)
    for module in modules:
        unchecked = sorted(
            n for n in names if statuses[n] == "not checked" and belongs(n, [module]) == module
        )
        chosen += draw.sample(unchecked, min(size, len(unchecked)))
    return chosen


def wilson(killed: int, tested: int) -> tuple[float, float]:
    """The 95% Wilson interval of a score estimated from `tested` mutants drawn at random."""
    if not tested:
        return 0.0, 100.0
    z = statistics.NormalDist().inv_cdf(0.975)
    p = killed / tested
    centre = (p + z * z / (2 * tested)) / (1 + z * z / tested)
    half = z * math.sqrt(p * (1 - p) / tested + z * z / (4 * tested * tested))
    half /= 1 + z * z / tested
    return 100 * max(0.0, centre - half), 100 * min(1.0, centre + half)


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
    for module, counts in sorted(per_module.items()):
        if counts["not checked"] and counts["killed"] + counts["survived"]:
            low, high = wilson(counts["killed"], counts["killed"] + counts["survived"])
            print(
                f"{module}: {counts['not checked']} mutants unrun; if those checked were drawn"
                f" at random (--sample), its score is {low:.1f}-{high:.1f}% (95% interval)"
            )
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
    parser.add_argument(
        "--sample",
        type=int,
        default=0,
        help="check N unchecked mutants per module, at random (once a first run has generated "
        "the group's mutants; a first run checks them in mutmut's order)",
    )
    args = parser.parse_args()
    if not args.report:
        deadline = time.monotonic() + args.budget
        for group in dict.fromkeys(CORE[m][0] for m in args.modules):
            left = deadline - time.monotonic()
            if left <= 0:
                break
            chosen = [m for m in args.modules if CORE[m][0] == group]
            run(group, chosen, left, args.fresh, args.sample)
    score = report(args.modules)
    print(f"\nmutation score: {score:.1f}% of checked, non-equivalent mutants killed")
    return 0


if __name__ == "__main__":
    sys.exit(main())
