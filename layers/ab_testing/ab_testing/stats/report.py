"""Building blocks of the JSON answer: plain dicts of plain Python values."""

from __future__ import annotations

import math
from decimal import Decimal
from typing import Any

from . import messages as msg
from .comparisons import TreatmentResult
from .descriptive import Summary, to_float
from .inputs import AnalysisInput, AnalysisMethod
from .power import PowerResult
from .srm import SrmResult


def to_json_safe(value: Any) -> Any:
    """Plain JSON types, recursively; NaN and +/-Infinity become None."""
    if value is None or isinstance(value, bool | str):
        return value
    if isinstance(value, int):
        return int(value)
    if isinstance(value, float):
        return float(value) if math.isfinite(value) else None
    if isinstance(value, Decimal):
        return to_float(value)
    if isinstance(value, dict):
        return {str(k): to_json_safe(v) for k, v in value.items()}
    if isinstance(value, list | tuple | set | frozenset):
        return [to_json_safe(v) for v in value]
    if hasattr(value, "item"):  # numpy scalar
        return to_json_safe(value.item())
    return str(value)


def stats_dict(s: Summary) -> dict[str, Any]:
    """mean, std (of the results), count (results), min, max and units of one variant."""
    return {
        "mean": s.mean,
        "std": s.std,
        "count": s.results,
        "min": s.min,
        "max": s.max,
        "units": s.units,
    }


def sequential_dict(r: TreatmentResult) -> dict[str, Any]:
    """The always-valid read-out of one comparison, or why there is none."""
    return {
        "p_value": r.seq_p,
        "p_value_adjusted": r.seq_p_adjusted,
        "ci": list(r.seq_ci) if r.seq_ci else None,
        "reason": r.seq_reason,
    }


def comparison_dict(r: TreatmentResult, method: AnalysisMethod, alpha: float) -> dict[str, Any]:
    """One entry of ``metrics[name].comparisons``."""
    w = r.welch
    chosen = r.chosen_p(method)
    return {
        "variant_id": r.variant_id,
        "absolute_difference": w.difference,
        "absolute_ci": list(w.ci) if w.ci else None,
        "relative_lift": w.relative_lift,
        "relative_ci": list(w.relative_ci) if w.relative_ci else None,
        "relative_ci_reason": w.relative_ci_reason,
        "p_value": w.p_value,
        "p_value_adjusted": r.p_adjusted,
        "df": w.df,
        "is_significant": chosen is not None and chosen < alpha,
        "sequential": sequential_dict(r),
        "bayesian": {
            "chance_to_beat_control": r.bayes.chance_to_beat_control,
            "expected_loss": r.bayes.expected_loss,
        },
        "reason": w.reason,
        "test": w.test,
    }


def srm_dict(srm: SrmResult, ids: list[str], threshold: float) -> dict[str, Any]:
    return {
        "p_value": srm.p_value,
        "flagged": srm.flagged,
        "threshold": threshold,
        "expected": dict(zip(ids, srm.expected, strict=False)),
        "observed": dict(zip(ids, srm.observed, strict=False)),
    }


def power_dict(
    res: PowerResult, mde: float, power: float, alpha: float, planned: int, t_star: float
) -> dict[str, Any]:
    return {
        "minimum_detectable_effect": mde,
        "power": power,
        "alpha": round(alpha, 12),
        "required_units_per_variant": res.required_units_per_variant,
        "planned_units_per_variant": planned,
        "power_at_planned_size": res.power_at_planned_size,
        "sequential_tuning_units": t_star,
        "reason": res.reason,
    }


def failed_answer(inp: AnalysisInput, date: str, exc: Exception) -> dict[str, Any]:
    """A well-formed answer when the analysis itself failed (should not happen)."""
    reason = msg.ANALYSIS_FAILED.format(error=type(exc).__name__)
    return {
        "experiment_id": getattr(inp, "experiment_id", None),
        "analysis_date": date,
        "variant_stats": {},
        "p_value": None,
        "is_significant": False,
        "recommended_winner_id": None,
        "recommendation_confidence": 0.0,
        "recommendation_reason": reason,
        "sufficient_sample_size": False,
        "current_sample_size": 0,
        "required_sample_size": getattr(inp, "min_sample_size", None),
        "analysis_method": getattr(inp, "analysis_method", None),
        "confidence_level": getattr(inp, "confidence_level", None),
        "primary_metric": getattr(getattr(inp, "primary_metric", None), "name", None),
        "metrics": {},
        "srm": None,
        "power": None,
        "guardrails": [],
        "regressions": [],
        "warnings": [reason],
        "trade_offs": [],
        "decision": {
            "action": "keep_running",
            "reason": reason,
            "variant_id": None,
            "acceptable_regressions": dict(getattr(inp, "acceptable_regressions", {}) or {}),
            "checks": [],
        },
    }
