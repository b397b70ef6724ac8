"""Reconciliation: recompute an experiment's running totals from its raw results.

The transaction that records a result keeps totals and raw results in step; this check proves
it, and finds any drift (a manual edit, a bug) by comparing every field.
"""

from __future__ import annotations

from collections import defaultdict
from decimal import Decimal
from typing import Any

from ab_testing.ledger import Ledger
from ab_testing.records import summed_totals
from ab_testing.stats.inputs import MetricTotals
from ab_testing.store import Store

FIELDS = (
    "results",
    "total",
    "total_sq",
    "min",
    "max",
    "units",
    "unit_sum_sq",
    "unit_count_sq",
    "unit_sum_count",
)


def reconcile(store: Store, experiment_id: int) -> dict[str, Any]:
    """Every difference between stored totals and totals recomputed from ab_results."""
    raw: dict[tuple[int, str], dict[str, list[Decimal]]] = defaultdict(lambda: defaultdict(list))
    results_read = 0
    for item in Ledger(store).raw_results(experiment_id):
        results_read += 1
        key = (int(item["variant_id"]), str(item["metric_name"]))
        raw[key][str(item["unit"])].append(Decimal(item["metric_value"]))
    expected = {key: MetricTotals.from_units(units.values()) for key, units in raw.items()}

    stored = summed_totals(store.query_experiment_items(experiment_id, prefix="totals#"))

    differences = []
    for key in sorted(set(expected) | set(stored)):
        want, have = expected.get(key, MetricTotals()), stored.get(key, MetricTotals())
        for field in FIELDS:
            a, b = _number(getattr(want, field)), _number(getattr(have, field))
            if a != b:
                differences.append(
                    {
                        "variant_id": key[0],
                        "metric": key[1],
                        "field": field,
                        "from_results": _show(a),
                        "stored": _show(b),
                    }
                )
    return {
        "experiment_id": experiment_id,
        "results_read": results_read,
        "totals_checked": len(set(expected) | set(stored)),
        "differences": differences,
        "clean": not differences,
    }


def _number(value: Any) -> Decimal | None:
    return None if value is None else Decimal(str(value)).normalize()


def _show(value: Decimal | None) -> str | None:
    return None if value is None else format(value, "f")
