"""Random targeting cases, and docs/targeting_vectors.json made from them.

Each case is a condition and a set of attributes drawn from small pools (so that conditions
match about as often as not), and the answer of the reference: GrowthBook's own Python SDK
(``growthbook.core.evalCondition``, installed by the dev lock). Run from the repository root:

    .venv/bin/python scripts/targeting_vectors.py > docs/targeting_vectors.json

tests/unit/test_targeting.py checks the service's and the Python client's evaluators against
many more cases drawn the same way, and against this file.
"""

from __future__ import annotations

import json
import random
import sys
from typing import Any

SEED = 20261207
VECTORS = 300

STRINGS = ["pro", "Pro", "free", "team", "", "2.1.0", "v2.10.0", "1.9.9-beta", "2.1.0-rc.1"]
STRINGS += ["é", "😀", "ｚ", "a@example.com", "en-GB", "10", "1"]
NUMBERS: list[Any] = [0, 1, -1, 2.5, 10, 1.0, 3, 100, 0.5, 2]
SCALARS: list[Any] = [*STRINGS, *NUMBERS, True, False, None]
PATHS = ["plan", "country", "age", "app.version", "app.build", "tags", "tags.0", "tags.length"]
PATHS += ["beta", "score", "missing", "app", "items", "items.0.sku"]
PATTERNS = ["^p", "o$", r"^\d+\.\d+", "[A-Z]", "a.c", "(?i)^PRO$", "^$", "@example", r"^v?2\."]
TYPES = ["string", "number", "boolean", "array", "object", "null"]


def scalar(rng: random.Random) -> Any:
    return rng.choice(SCALARS)


def value(rng: random.Random, depth: int = 0) -> Any:
    roll = rng.random()
    if depth < 2 and roll < 0.15:
        return [scalar(rng) for _ in range(rng.randrange(4))]
    if depth < 2 and roll < 0.22:
        return {k: scalar(rng) for k in rng.sample(["version", "build", "sku", "0"], 2)}
    return scalar(rng)


def attributes(rng: random.Random) -> dict[str, Any]:
    found: dict[str, Any] = {}
    for key in ["plan", "country", "age", "beta", "score"]:
        if rng.random() < 0.7:
            found[key] = value(rng)
    if rng.random() < 0.7:
        found["app"] = {"version": rng.choice(STRINGS[5:9] + NUMBERS[:3]), "build": value(rng)}
    if rng.random() < 0.7:
        found["tags"] = [scalar(rng) for _ in range(rng.randrange(4))]
    if rng.random() < 0.5:
        found["items"] = [{"sku": scalar(rng), "n": rng.choice(NUMBERS)} for _ in range(2)]
    return found


def operators(rng: random.Random, depth: int) -> dict[str, Any]:
    chosen: dict[str, Any] = {}
    for _ in range(rng.choice([1, 1, 2])):
        name = rng.choice(
            ["$eq", "$ne", "$lt", "$lte", "$gt", "$gte", "$veq", "$vne", "$vlt", "$vlte", "$vgt"]
            + ["$vgte", "$in", "$nin", "$all", "$regex", "$exists", "$type", "$not", "$size"]
            + ["$elemMatch"]
        )
        if name in ("$in", "$nin"):
            chosen[name] = [scalar(rng) for _ in range(rng.randrange(4))]
        elif name == "$all":
            chosen[name] = [value_condition(rng, depth + 1) for _ in range(rng.randrange(3))]
        elif name == "$regex":
            chosen[name] = rng.choice(PATTERNS)
        elif name == "$exists":
            chosen[name] = rng.random() < 0.5
        elif name == "$type":
            chosen[name] = rng.choice(TYPES)
        elif name in ("$not", "$size"):
            chosen[name] = value_condition(rng, depth + 1)
        elif name == "$elemMatch":
            chosen[name] = (
                condition(rng, depth + 1) if rng.random() < 0.5 else operators(rng, depth + 1)
            )
        else:
            chosen[name] = value(rng)
    return chosen


def value_condition(rng: random.Random, depth: int) -> Any:
    if depth > 3 or rng.random() < 0.3:
        return value(rng)
    return operators(rng, depth)


def condition(rng: random.Random, depth: int = 0) -> dict[str, Any]:
    found: dict[str, Any] = {}
    for _ in range(rng.choice([1, 1, 2])):
        roll = rng.random()
        if depth < 3 and roll < 0.2:
            key = rng.choice(["$and", "$or", "$nor"])
            found[key] = [condition(rng, depth + 1) for _ in range(rng.randrange(3))]
        elif depth < 3 and roll < 0.27:
            found["$not"] = condition(rng, depth + 1)
        else:
            found[rng.choice(PATHS)] = value_condition(rng, depth + 1)
    return found


def cases(seed: int, count: int) -> list[tuple[dict[str, Any], dict[str, Any]]]:
    rng = random.Random(seed)
    return [(condition(rng), attributes(rng)) for _ in range(count)]


def reference(condition_: dict[str, Any], attributes_: dict[str, Any]) -> bool:
    from growthbook.core import evalCondition

    return bool(evalCondition(attributes_, condition_))


def main() -> None:
    vectors = [
        {"condition": c, "attributes": a, "matches": reference(c, a)}
        for c, a in cases(SEED, VECTORS)
    ]
    document = {
        "version": 1,
        "reference": "growthbook (Python SDK) 4.0.0, growthbook.core.evalCondition",
        "seed": SEED,
        "vectors": vectors,
    }
    json.dump(document, sys.stdout, ensure_ascii=False, indent=1)
    print()


if __name__ == "__main__":
    main()
