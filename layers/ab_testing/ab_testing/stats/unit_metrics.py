"""The analyzer's per-metric summaries, ratio metrics and CUPED read-outs, kept apart from the
analyzer so each concern stays in its own module (formulas: unitsums.py and cuped.py)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from . import cuped
from .comparisons import TreatmentResult, compare_treatments
from .descriptive import Summary, summarize
from .inputs import (
    AnalysisInput,
    AnalysisMethod,
    MetricSpec,
    MetricTotals,
    RatioTotals,
    VariantInput,
)
from .messages import REASON_TEXT, joined
from .report import sequential_dict
from .unitsums import UnitSums, from_metric, from_ratio, ratio_summary


def unit_sums(inp: AnalysisInput, spec: MetricSpec, variant: VariantInput) -> UnitSums | None:
    """The unit-level sums of a metric in a variant (None for an undeclared ratio)."""
    if spec.kind != "ratio":
        return from_metric(variant.metrics.get(spec.name) or MetricTotals())
    ratio = next((r for r in inp.ratio_metrics if r.name == spec.name), None)
    if ratio is None:
        return None
    return from_ratio(
        variant.metrics.get(ratio.numerator) or MetricTotals(),
        variant.metrics.get(ratio.denominator) or MetricTotals(),
        variant.ratios.get(spec.name) or RatioTotals(),
    )


def metric_summaries(
    inp: AnalysisInput, specs: Sequence[MetricSpec], variants: Sequence[VariantInput]
) -> dict[str, dict[int, Summary]]:
    """Summary of every metric in every variant: ordinary metrics from their totals, ratio
    metrics by the delta method over units."""
    out: dict[str, dict[int, Summary]] = {}
    for spec in specs:
        per_variant: dict[int, Summary] = {}
        for v in variants:
            if spec.kind == "ratio":
                sums = unit_sums(inp, spec, v)
                per_variant[v.variant_id] = ratio_summary(sums) if sums else Summary()
            else:
                per_variant[v.variant_id] = summarize(v.metrics.get(spec.name) or MetricTotals())
        out[spec.name] = per_variant
    return out


def cuped_results(
    inp: AnalysisInput,
    spec: MetricSpec,
    control: VariantInput | None,
    treatments: Sequence[VariantInput],
    confidence: float,
    rho: float,
) -> tuple[cuped.CupedFit, list[TreatmentResult]] | None:
    """The CUPED fit of one metric and the comparisons on its adjusted summaries; None when
    the experiment names no covariate."""
    if inp.covariate is None or control is None:
        return None
    groups = {}
    for v in (control, *treatments):
        sums = unit_sums(inp, spec, v)
        if sums is None:
            return None
        groups[v.variant_id] = sums
    fitted = cuped.fit(groups)
    if fitted.reason is not None:
        return fitted, []
    adjusted = fitted.adjusted
    results = compare_treatments(
        adjusted[control.variant_id],
        [(v.variant_id, adjusted[v.variant_id]) for v in treatments],
        spec.direction,
        confidence,
        rho,
    )
    return fitted, results


def cuped_dict(
    fitted: cuped.CupedFit,
    adjusted: TreatmentResult | None,
    raw: TreatmentResult,
    method: AnalysisMethod,
    alpha: float,
) -> dict[str, Any]:
    """``metrics[name].comparisons[i].cuped``: the adjusted read-out next to the raw one.

    ``decides`` is true when the analysis decided on this adjusted read-out (winner, guardrails,
    trade-off rule); false when no adjustment could be made and it used the unadjusted one."""
    out: dict[str, Any] = {
        "decides": adjusted is not None,
        "absolute_difference": None,
        "absolute_ci": None,
        "relative_lift": None,
        "relative_ci": None,
        "p_value": None,
        "p_value_adjusted": None,
        "sequential": None,
        "is_significant": False,
        "variance_reduction": None,
        "theta": fitted.theta[0] if fitted.theta else None,
        "units": fitted.units,
        "units_with_covariate": fitted.units_with_covariate,
        "availability": {
            str(vid): (with_ / units if units else None)
            for vid, (with_, units) in fitted.availability.items()
        },
        "availability_p_value": fitted.availability_p,
        "reason": fitted.reason,
        "note": _note(fitted),
    }
    if adjusted is None:
        return out
    w = adjusted.welch
    chosen = adjusted.chosen_p(method)
    reduction = None
    if w.se is not None and raw.welch.se:
        reduction = 1.0 - (w.se / raw.welch.se) ** 2
    out.update(
        {
            "absolute_difference": w.difference,
            "absolute_ci": list(w.ci) if w.ci else None,
            "relative_lift": w.relative_lift,
            "relative_ci": list(w.relative_ci) if w.relative_ci else None,
            "p_value": w.p_value,
            "p_value_adjusted": adjusted.p_adjusted,
            "sequential": sequential_dict(adjusted),
            "is_significant": chosen is not None and chosen < alpha,
            "variance_reduction": reduction,
            "reason": w.reason,
        }
    )
    return out


def availability_shares(fitted: cuped.CupedFit, labels: Mapping[int, str]) -> str:
    """ "62.0% of Variant 1 (Control) and 41.3% of Variant 2": who has the covariate."""
    return joined(
        [
            f"{with_ / units * 100:.1f}% of {labels.get(vid, f'Variant {vid}')}"
            for vid, (with_, units) in fitted.availability.items()
            if units
        ]
    )


def _note(fitted: cuped.CupedFit) -> str | None:
    missing = fitted.units - fitted.units_with_covariate
    if fitted.reason is not None:
        return REASON_TEXT.get(fitted.reason, fitted.reason)
    if missing <= 0:
        return None
    return (
        f"{missing} of {fitted.units} units have no covariate: they are kept, with a "
        "has-covariate indicator in the adjustment, so nothing is dropped"
    )
