"""The locks: every environment installs exact versions with hashes, and they agree.

requirements/dev.txt is what `make run` and `make test` install; the layers' requirements.txt
are what `sam build` installs into the Lambda layers. The layers must carry the versions the
tests ran on, and the venv must hold what its lock says.
"""

from __future__ import annotations

import re
import tomllib
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path

import pytest
from packaging.markers import Marker
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

ROOT = Path(__file__).resolve().parents[2]
DEV_LOCK = ROOT / "requirements" / "dev.txt"
UWSGI_LOCK = ROOT / "requirements" / "uwsgi.txt"  # built from its sdist into the same venv
LAYER_LOCKS = [
    ROOT / "layers" / "ab_testing" / "requirements.txt",
    ROOT / "layers" / "ab_testing" / "requirements-tracing.txt",
    ROOT / "layers" / "stats_deps" / "requirements.txt",
]
TOOL_LOCKS = [ROOT / "requirements" / name for name in ("checkov.txt", "sam.txt", "uv.txt")]
PIN = re.compile(r"^(?P<name>[A-Za-z0-9._-]+)==(?P<version>[^\s;]+)\s*(?:;(?P<marker>.*))?$")


def entries(lock: Path) -> list[tuple[str, str, str | None, list[str]]]:
    """(name, version, marker, hashes) of each requirement of a lock file."""
    text = re.sub(r"\\\n", " ", lock.read_text())
    found = []
    for line in text.splitlines():
        line = line.split(" #", 1)[0].strip()
        if not line or line.startswith("#"):
            continue
        requirement, *options = re.split(r"\s+--hash=", line)
        match = PIN.match(requirement.strip())
        assert match, f"{lock.name}: not an exact pin: {line[:80]}"
        marker = match["marker"].strip() if match["marker"] else None
        found.append((canonicalize_name(match["name"]), match["version"], marker, options))
    return found


def pins(lock: Path, environment: dict[str, str] | None = None) -> dict[str, str]:
    """name -> version, for the requirements whose marker holds in `environment`."""
    return {
        name: pinned
        for name, pinned, marker, _ in entries(lock)
        if marker is None or Marker(marker).evaluate(environment)
    }


@pytest.mark.parametrize(
    "lock",
    [DEV_LOCK, UWSGI_LOCK, *LAYER_LOCKS, *TOOL_LOCKS],
    ids=lambda p: str(p.relative_to(ROOT)),
)
def test_every_requirement_is_an_exact_version_with_sha256_hashes(lock: Path) -> None:
    found = entries(lock)
    assert found
    for name, _, _, hashes in found:
        assert hashes, f"{name} has no hash"
        assert all(re.fullmatch(r"sha256:[0-9a-f]{64}", h.split()[0]) for h in hashes), name


def test_the_venv_holds_exactly_what_the_dev_lock_pins() -> None:
    wrong = {}
    for name, pinned in {**pins(DEV_LOCK), **pins(UWSGI_LOCK)}.items():
        try:
            installed = version(name)
        except PackageNotFoundError:
            installed = "missing"
        if installed != pinned:
            wrong[name] = (pinned, installed)
    assert wrong == {}


@pytest.mark.parametrize("lock", LAYER_LOCKS, ids=lambda p: str(p.relative_to(ROOT)))
def test_the_layers_carry_the_versions_the_tests_ran_on(lock: Path) -> None:
    # On Lambda's python3.13, x86_64 Linux: what `sam build` installs.
    lambda_env = {
        "python_version": "3.13",
        "python_full_version": "3.13.0",
        "sys_platform": "linux",
        "platform_system": "Linux",
        "platform_machine": "x86_64",
        "implementation_name": "cpython",
        "platform_python_implementation": "CPython",
    }
    tested = pins(DEV_LOCK, lambda_env)
    layer = pins(lock, lambda_env)
    assert layer
    assert {name: tested.get(name) for name in layer} == layer


def test_the_locked_versions_are_within_pyprojects_ranges() -> None:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    declared = [
        *project["dependencies"],
        *project["optional-dependencies"]["dev"],
        *project["optional-dependencies"]["mutation"],
    ]
    locked = pins(DEV_LOCK)
    for text in declared:
        requirement = Requirement(text)
        name = canonicalize_name(requirement.name)
        assert requirement.specifier.contains(locked[name], prereleases=True), (text, locked[name])


def test_the_layer_ranges_are_pyprojects() -> None:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    runtime = {
        canonicalize_name(Requirement(t).name): Requirement(t) for t in project["dependencies"]
    }
    for source in [lock.with_suffix(".in") for lock in LAYER_LOCKS]:
        for line in source.read_text().splitlines():
            if line.strip() and not line.startswith("#"):
                requirement = Requirement(line)
                name = canonicalize_name(requirement.name)
                assert str(requirement.specifier) == str(runtime[name].specifier), source.name
