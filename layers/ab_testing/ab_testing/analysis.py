"""Analysis, summary and stopping with a winner, all from running totals (never a scan).

This module builds the analyzer's inputs from one Query of ab_variants; the statistics live in
ab_testing.stats and load scipy lazily, so nothing here is imported on the hot path.
"""

from __future__ import annotations

import json
from collections import defaultdict
from datetime import datetime
from typing import Any

from ab_testing.dynamo import plain
from ab_testing.errors import InvalidInput
from ab_testing.http import json_safe
from ab_testing.ledger import totals_from_item
from ab_testing.models import Experiment
from ab_testing.observability import logger
from ab_testing.service import ExperimentService
from ab_testing.stats.inputs import AnalysisInput, MetricTotals, VariantInput


class ExperimentAnalysis:
    def __init__(self, service: ExperimentService) -> None:
        self.service = service
        self.store = service.store

    def snapshot(self, experiment_id: int) -> tuple[Experiment, AnalysisInput, int]:
        """The experiment, the analyzer's input, and how many DynamoDB items it took."""
        experiment = self.store.get_experiment(experiment_id)
        items = self.store.query_experiment_items(experiment_id)
        totals: dict[tuple[int, str], MetricTotals] = defaultdict(MetricTotals)
        exposures: dict[int, int] = defaultdict(int)
        for item in items:
            sk = item["sk"]
            if sk.startswith("totals#"):
                key = (int(item["variant_id"]), str(item["metric"]))
                totals[key] = totals[key] + totals_from_item(item)
            elif sk.startswith("exposure#"):
                exposures[int(item["variant_id"])] += int(item.get("units_assigned", 0))
        specs = [
            s
            for s in (experiment.metric_spec(m) for m in experiment.declared_metrics)
            if s is not None
        ]
        variants = [
            VariantInput(
                variant_id=v.id,
                name=v.name,
                is_control=v.is_control,
                traffic_allocation=v.traffic_allocation,
                units_assigned=exposures[v.id],
                metrics={s.name: totals[(v.id, s.name)] for s in specs},
            )
            for v in experiment.variants
        ]
        inp = AnalysisInput(
            experiment_id=experiment.id,
            primary_metric=specs[0],
            secondary_metrics=tuple(specs[1:]),
            variants=tuple(variants),
            confidence_level=experiment.confidence_level,
            min_sample_size=experiment.min_sample_size,
            minimum_detectable_effect=experiment.minimum_detectable_effect,
            analysis_method=experiment.analysis_method,
        )
        return experiment, inp, len(items)

    def analyze(
        self, experiment_id: int, method: str | None = None, analyzer: Any = None
    ) -> dict[str, Any]:
        """The analysis; ``method`` overrides the experiment's analysis_method."""
        from dataclasses import replace

        from ab_testing.stats.analyzer import StatisticalAnalyzer

        experiment, inp, _ = self.snapshot(experiment_id)
        if method is not None:
            inp = replace(inp, analysis_method=method)  # type: ignore[arg-type]
        result: dict[str, Any] = (analyzer or StatisticalAnalyzer()).analyze(inp)
        result["experiment_name"] = experiment.name
        result["status"] = experiment.status
        return result

    def summary(self, experiment_id: int) -> dict[str, Any]:
        """Units assigned and results collected per variant (the guide's monitoring query)."""
        experiment, inp, _ = self.snapshot(experiment_id)
        variants = []
        for v in inp.variants:
            results = {name: t.results for name, t in v.metrics.items()}
            variants.append(
                {
                    "variant_id": v.variant_id,
                    "name": v.name,
                    "is_control": v.is_control,
                    "traffic_allocation": v.traffic_allocation,
                    "units_assigned": v.units_assigned,
                    "results_collected": sum(results.values()),
                    "results_by_metric": results,
                }
            )
        latest, _ = self.store.list_insights(experiment_id, limit=1)
        return {
            "experiment_id": experiment.id,
            "name": experiment.name,
            "status": experiment.status,
            "experiment_type": experiment.experiment_type,
            "primary_metric": experiment.primary_metric,
            "days_running": _days_running(experiment, self.service.clock()),
            "users_assigned": sum(v["units_assigned"] for v in variants),
            "results_collected": sum(v["results_collected"] for v in variants),
            "variants": variants,
            "winner_variant_id": experiment.winner_variant_id,
            "latest_insight": _headline(latest[0]) if latest else None,
        }

    def write_insight(self, experiment_id: int) -> dict[str, Any]:
        """Analyses with the sequential method (safe to look at every hour) and stores it."""
        result = self.analyze(experiment_id, method="sequential")
        analysed_at = self.service.clock()
        summary = headline(result)
        self.store.put_insight(
            experiment_id,
            analysed_at,
            {
                **summary,
                "analysis_json": json.dumps(json_safe(result), separators=(",", ":")),
            },
        )
        return {"experiment_id": experiment_id, "analysed_at": analysed_at, **summary}

    def insights(
        self, experiment_id: int, *, limit: str | None = None, cursor: str | None = None
    ) -> dict[str, Any]:
        size = 20 if limit is None else _page_size(limit)
        self.store.get_experiment(experiment_id)  # a 404 for an unknown experiment
        items, next_cursor = self.store.list_insights(experiment_id, limit=size, cursor=cursor)
        insights = []
        for item in items:
            entry = {k: plain(v) for k, v in item.items() if k != "analysis_json"}
            entry["analysis"] = json.loads(item.get("analysis_json") or "null")
            insights.append(entry)
        return {"experiment_id": experiment_id, "insights": insights, "next_cursor": next_cursor}

    def run_scheduled(self) -> dict[str, Any]:
        """Every running experiment, one at a time: a failure is logged and never stops
        the others."""
        analysed: list[dict[str, Any]] = []
        failed: list[dict[str, Any]] = []
        for listed in self.store.list_experiments("running", None):
            experiment_id = int(listed["experiment_id"])
            try:
                analysed.append(self.write_insight(experiment_id))
            except Exception as exc:  # one broken experiment must not stop the run
                logger.exception(
                    "scheduled analysis failed", extra={"experiment_id": experiment_id}
                )
                failed.append({"experiment_id": experiment_id, "error": str(exc)})
        return {
            "analysed": len(analysed),
            "failed": len(failed),
            "skipped": 0,
            "experiments": analysed,
            "failures": failed,
        }

    def reconcile(self, experiment_id: int) -> dict[str, Any]:
        from ab_testing.reconcile import reconcile

        self.store.get_experiment(experiment_id)  # a 404 for an unknown experiment
        return reconcile(self.store, experiment_id)

    def run_reconciliation(self) -> dict[str, Any]:
        """The daily check: running totals against raw results, for every running experiment."""
        from ab_testing.reconcile import reconcile

        reports = []
        for listed in self.store.list_experiments("running", None):
            report = reconcile(self.store, int(listed["experiment_id"]))
            if not report["clean"]:
                logger.error("running totals differ from raw results", extra=report)
            reports.append(report)
        return {
            "reconciled": len(reports),
            "with_differences": sum(1 for r in reports if not r["clean"]),
            "reports": reports,
        }

    def stop(
        self, experiment_id: int, declare_winner: bool = False, promote: bool = False
    ) -> dict[str, Any]:
        """Stops; with declare_winner, stores the analysis's recommended winner (or none, and
        why); with promote, get-variant serves the winner to every unit from then on."""
        changes: dict[str, Any] = {}
        analysis: dict[str, Any] | None = None
        if declare_winner or promote:
            analysis = self.analyze(experiment_id)
            winner = analysis["recommended_winner_id"]
            changes["winner_variant_id"] = winner
            changes["winner_reason"] = analysis["recommendation_reason"]
            changes["promoted"] = bool(promote and winner is not None)
        experiment = self.service.transition(experiment_id, "stop", **changes)
        answer: dict[str, Any] = {
            "message": f"Experiment {experiment_id} stopped successfully",
            "experiment_id": experiment_id,
            "status": experiment.status,
        }
        if analysis is not None:
            answer["winner_variant_id"] = experiment.winner_variant_id
            answer["winner_reason"] = experiment.winner_reason
            answer["p_value"] = analysis["p_value"]
            answer["promoted"] = experiment.promoted
        return answer


def _page_size(raw: str) -> int:
    if not raw.isdigit() or not 1 <= int(raw) <= 100:
        raise InvalidInput("limit must be an integer from 1 to 100", field="limit")
    return int(raw)


def _days_running(experiment: Experiment, now: str) -> float | None:
    if experiment.started_at is None:
        return None
    end = experiment.stopped_at or now
    span = _parse(end) - _parse(experiment.started_at)
    return round(span.total_seconds() / 86400, 3)


def _parse(stamp: str) -> datetime:
    return datetime.fromisoformat(stamp.replace("Z", "+00:00"))


def _headline(item: dict[str, Any]) -> dict[str, Any]:
    keep = (
        "analysed_at",
        "p_value",
        "relative_lift",
        "is_significant",
        "recommended_winner_id",
        "recommendation_reason",
        "srm_flagged",
    )
    return {k: plain(item.get(k)) for k in keep}


def headline(result: dict[str, Any]) -> dict[str, Any]:
    """The few figures worth following over time, taken from a full analysis."""
    lift = None
    primary = result.get("metrics", {}).get(result.get("primary_metric", ""), {})
    comparisons = primary.get("comparisons") or []
    winner = result.get("recommended_winner_id")
    chosen = next((c for c in comparisons if c.get("variant_id") == winner), None) or (
        comparisons[0] if comparisons else None
    )
    if chosen is not None:
        lift = chosen.get("relative_lift")
    return {
        "p_value": result.get("p_value"),
        "is_significant": result.get("is_significant"),
        "relative_lift": lift,
        "recommended_winner_id": winner,
        "recommendation_reason": result.get("recommendation_reason"),
        "srm_flagged": (result.get("srm") or {}).get("flagged"),
    }
