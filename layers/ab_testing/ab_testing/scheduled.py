"""The scheduled job: analyse every running experiment, write an insight, emit CloudWatch
metrics (embedded metric format), stop experiments that opted into auto-stop, and once a day
reconcile running totals with raw results.

Automatic decisions always use the sequential (always-valid) analysis: the job looks every
hour, and a fixed-horizon test looked at that often would declare false winners. The insight's
headline is the experiment's own method (so it matches ``/analyze``), and each insight stores
the primary p-value of both methods.
"""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any

from aws_lambda_powertools import Metrics
from aws_lambda_powertools.metrics import MetricUnit

from ab_testing.analysis import ExperimentAnalysis, days_running
from ab_testing.experiment import Experiment
from ab_testing.http import json_safe
from ab_testing.observability import logger
from ab_testing.reconcile import reconcile

NAMESPACE = "ABTesting"


def headline(result: dict[str, Any]) -> dict[str, Any]:
    """The few figures worth following over time, taken from a full analysis."""
    primary = result.get("metrics", {}).get(result.get("primary_metric", ""), {})
    comparisons = primary.get("comparisons") or []
    winner = result.get("recommended_winner_id")
    chosen = next((c for c in comparisons if c.get("variant_id") == winner), None) or (
        comparisons[0] if comparisons else None
    )
    return {
        "p_value": result.get("p_value"),
        "is_significant": result.get("is_significant"),
        "relative_lift": chosen.get("relative_lift") if chosen else None,
        "recommended_winner_id": winner,
        "recommendation_reason": result.get("recommendation_reason"),
        "srm_flagged": bool((result.get("srm") or {}).get("flagged")),
    }


def primary_p_values(result: dict[str, Any]) -> dict[str, float | None]:
    """The primary metric's Holm-adjusted p-value of each method, for the headline treatment."""
    primary = result.get("metrics", {}).get(result.get("primary_metric", ""), {})
    comparisons = primary.get("comparisons") or []
    winner = result.get("recommended_winner_id")
    chosen = next((c for c in comparisons if c.get("variant_id") == winner), None)
    if chosen is None and comparisons:
        chosen = min(comparisons, key=lambda c: c.get("p_value_adjusted") or 1.0)
    if chosen is None:
        return {"p_value_fixed_horizon": None, "p_value_sequential": None}
    return {
        "p_value_fixed_horizon": chosen.get("p_value_adjusted"),
        "p_value_sequential": (chosen.get("sequential") or {}).get("p_value_adjusted"),
    }


def auto_stop_reason(experiment: Experiment, result: dict[str, Any], days: float) -> str | None:
    """Why an opted-in experiment should stop now, or None. Nothing before min_duration_days."""
    if not experiment.auto_stop or days < experiment.min_duration_days:
        return None
    regressed = sorted({g["metric"] for g in result.get("guardrails", []) if g.get("regressed")})
    if regressed:
        return f"guardrail regressed significantly: {', '.join(regressed)}"
    action = (result.get("decision") or {}).get("action")
    if action == "needs_decision":
        return None  # a trade-off nobody declared: people decide, the schedule does not
    if result.get("is_significant") and result.get("sufficient_sample_size"):
        return "sequential test conclusive with sufficient sample size"
    if experiment.max_duration_days is not None and days >= experiment.max_duration_days:
        return f"max_duration_days ({experiment.max_duration_days:g}) reached"
    return None


class ScheduledAnalysis:
    def __init__(self, analysis: ExperimentAnalysis, metrics: Metrics | None = None) -> None:
        self.analysis = analysis
        self.service = analysis.service
        self.store = analysis.store
        self.metrics = metrics or Metrics(namespace=NAMESPACE)

    def run(self) -> dict[str, Any]:
        """Every running experiment, one at a time: a failure is logged and counted and never
        stops the others. Experiments without a single assigned unit are skipped."""
        analysed: list[dict[str, Any]] = []
        failed: list[dict[str, Any]] = []
        skipped: list[int] = []
        for listed in self.store.list_experiments("running", None):
            experiment_id = int(listed["experiment_id"])
            try:
                insight = self.analyse_one(experiment_id)
            except Exception as exc:  # one broken experiment must not stop the run
                logger.exception(
                    "scheduled analysis failed", extra={"experiment_id": experiment_id}
                )
                failed.append({"experiment_id": experiment_id, "error": str(exc)})
                continue
            if insight is None:
                skipped.append(experiment_id)
            else:
                analysed.append(insight)
        self.metrics.add_metric("ExperimentsAnalysed", MetricUnit.Count, len(analysed))
        self.metrics.add_metric("ExperimentsFailed", MetricUnit.Count, len(failed))
        self.metrics.flush_metrics()
        return {
            "analysed": len(analysed),
            "failed": len(failed),
            "skipped": len(skipped),
            "experiments": analysed,
            "failures": failed,
            "skipped_experiments": skipped,
        }

    def analyse_one(self, experiment_id: int) -> dict[str, Any] | None:
        # One read for both analyses: the insight's headline and the stop decision describe
        # the same totals even while traffic keeps arriving.
        experiment, (result, sequential) = self.analysis.experiment_and_analyses(
            experiment_id, (None, "sequential")
        )
        units = sum(int(v.get("units_assigned") or 0) for v in result["variant_stats"].values())
        if units == 0:
            return None
        now = self.service.clock()
        summary = headline(result)
        days = days_running(experiment, now) or 0.0
        stop_reason = auto_stop_reason(experiment, sequential, days)
        if stop_reason is not None:
            self.service.transition(
                experiment_id,
                "stop",
                winner_variant_id=sequential.get("recommended_winner_id"),
                winner_reason=sequential.get("recommendation_reason"),
                stop_reason=stop_reason,
            )
            logger.info(
                "experiment auto-stopped",
                extra={"experiment_id": experiment_id, "reason": stop_reason},
            )
        self.store.put_insight(
            experiment_id,
            now,
            {
                **summary,
                **primary_p_values(result),
                "analysis_method": experiment.analysis_method,
                "days_running": days,
                "auto_stopped": stop_reason is not None,
                "stop_reason": stop_reason,
                "analysis_json": json.dumps(json_safe(result), separators=(",", ":")),
                "expires_at": self._expires_at(now),
            },
        )
        self._emit(experiment_id, units, result, summary)
        return {
            "experiment_id": experiment_id,
            "analysed_at": now,
            **summary,
            "stop_reason": stop_reason,
        }

    def _expires_at(self, now: str) -> int | None:
        """The insight's TTL (epoch seconds), or None to keep it: AB_INSIGHTS_TTL_DAYS."""
        days = self.store.settings.insights_ttl_days
        if not days:
            return None
        return int(datetime.fromisoformat(now).timestamp() + days * 86400)

    def _emit(
        self, experiment_id: int, units: int, result: dict[str, Any], summary: dict[str, Any]
    ) -> None:
        """One embedded-metric-format record per experiment, with experiment_id as dimension."""
        stats = result["variant_stats"].values()
        self.metrics.add_dimension("experiment_id", str(experiment_id))
        self.metrics.add_metric("UnitsAssigned", MetricUnit.Count, units)
        self.metrics.add_metric(
            "ResultsRecorded", MetricUnit.Count, sum(int(v.get("count") or 0) for v in stats)
        )
        self.metrics.add_metric(
            "SampleRatioMismatch", MetricUnit.Count, 1 if summary["srm_flagged"] else 0
        )
        if summary["p_value"] is not None:
            self.metrics.add_metric("PrimaryPValue", MetricUnit.NoUnit, summary["p_value"])
        if summary["relative_lift"] is not None:
            self.metrics.add_metric(
                "PrimaryLiftPercent", MetricUnit.Percent, 100 * summary["relative_lift"]
            )
        self.metrics.flush_metrics()

    def reconcile_all(self) -> dict[str, Any]:
        """The daily check: running totals against raw results, for every running experiment."""
        reports = []
        for listed in self.store.list_experiments("running", None):
            report = reconcile(self.store, int(listed["experiment_id"]))
            if not report["clean"]:
                logger.error("running totals differ from raw results", extra=report)
            reports.append(report)
        differences = sum(1 for r in reports if not r["clean"])
        self.metrics.add_metric("ExperimentsReconciled", MetricUnit.Count, len(reports))
        self.metrics.add_metric("ReconciliationDifferences", MetricUnit.Count, differences)
        self.metrics.flush_metrics()
        return {"reconciled": len(reports), "with_differences": differences, "reports": reports}
