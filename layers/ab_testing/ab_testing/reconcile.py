"""Reconciliation: recompute an experiment's running totals from its raw results.

The transaction that records a result keeps totals and raw results in step; this check proves
it, and finds any drift (a manual edit, a bug) by comparing every field.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from decimal import Decimal, localcontext
from typing import Any

from ab_testing.ledger import Ledger
from ab_testing.records import summed_ratios, summed_totals
from ab_testing.stats.inputs import STORE_PRECISION, MetricTotals, RatioSpec, RatioTotals
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


def reconcile(store: Store, experiment_id: int, ratios: Sequence[RatioSpec] = ()) -> dict[str, Any]:
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
    checked = len(set(expected) | set(stored))
    if ratios:
        ratio_differences, ratios_checked = _ratio_differences(store, experiment_id, raw, ratios)
        differences += ratio_differences
        checked += ratios_checked
    return {
        "experiment_id": experiment_id,
        "results_read": results_read,
        "totals_checked": checked,
        "differences": differences,
        "clean": not differences,
    }


def _ratio_differences(
    store: Store,
    experiment_id: int,
    raw: dict[tuple[int, str], dict[str, list[Decimal]]],
    ratios: Sequence[RatioSpec],
) -> tuple[list[dict[str, Any]], int]:
    """The units and cross sum (sum N_i D_i) of each ratio metric, recomputed per variant."""
    stored = summed_ratios(store.query_experiment_items(experiment_id, prefix="ratio#"))
    variants = {vid for vid, _ in raw} | {vid for vid, _ in stored}
    differences = []
    for ratio in ratios:
        for vid in sorted(variants):
            num, den = raw.get((vid, ratio.numerator), {}), raw.get((vid, ratio.denominator), {})
            with localcontext(prec=STORE_PRECISION):
                cross = sum(
                    (sum(num[u], Decimal(0)) * sum(den[u], Decimal(0)) for u in num if u in den),
                    Decimal(0),
                )
            have = stored.get((vid, ratio.name), RatioTotals())
            for field, a, b in (
                ("units", Decimal(len(set(num) | set(den))), Decimal(have.units)),
                ("cross", cross, Decimal(str(have.cross))),
            ):
                if _number(a) != _number(b):
                    differences.append(
                        {
                            "variant_id": vid,
                            "metric": ratio.name,
                            "field": field,
                            "from_results": _show(_number(a)),
                            "stored": _show(_number(b)),
                        }
                    )
    return differences, len(ratios) * len(variants)


def _number(value: Any) -> Decimal | None:
    return None if value is None else Decimal(str(value)).normalize()


def _show(value: Decimal | None) -> str | None:
    return None if value is None else format(value, "f")
