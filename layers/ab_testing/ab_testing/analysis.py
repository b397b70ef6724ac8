"""Analysis, summary and stopping with a winner, all from running totals (never a scan).

This module builds the analyzer's inputs from one Query of ab_variants; the statistics live in
ab_testing.stats and load scipy lazily, so nothing here is imported on the hot path.
"""

from __future__ import annotations

import json
import re
from datetime import datetime
from typing import Any

from ab_testing.dynamo import plain
from ab_testing.errors import InvalidInput
from ab_testing.experiment import Experiment
from ab_testing.queries import SegmentsQuery
from ab_testing.records import summed_exposures, summed_ratios, summed_totals
from ab_testing.service import ExperimentService
from ab_testing.stats.inputs import AnalysisInput, VariantInput


class ExperimentAnalysis:
    def __init__(self, service: ExperimentService) -> None:
        self.service = service
        self.store = service.store

    def snapshot(self, experiment_id: int) -> tuple[Experiment, AnalysisInput, int]:
        """The experiment, the analyzer's input, and how many DynamoDB items it took."""
        experiment, items = self.store.experiment_with_items(experiment_id)
        totals, exposures = summed_totals(items), summed_exposures(items)
        ratios = summed_ratios(items)
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
                srm_units=(
                    exposures[v.id] - experiment.srm_baseline.get(str(v.id), 0)
                    if experiment.srm_baseline
                    else None
                ),
                metrics={s.name: totals[(v.id, s.name)] for s in specs},
                ratios={r.name: ratios[(v.id, r.name)] for r in experiment.ratio_metrics},
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
            sequential_tuning_units=experiment.sequential_tuning_units,
            ratio_metrics=tuple(r.spec() for r in experiment.ratio_metrics),
            covariate=experiment.covariate,
            acceptable_regressions=dict(experiment.acceptable_regressions),
        )
        return experiment, inp, len(items)

    def analyze(
        self, experiment_id: int, method: str | None = None, analyzer: Any = None
    ) -> dict[str, Any]:
        """The analysis; ``method`` overrides the experiment's analysis_method."""
        return self.experiment_and_analysis(experiment_id, method, analyzer)[1]

    def experiment_and_analysis(
        self, experiment_id: int, method: str | None = None, analyzer: Any = None
    ) -> tuple[Experiment, dict[str, Any]]:
        """The experiment as read for the analysis, and the analysis (one read of each)."""
        experiment, results = self.experiment_and_analyses(experiment_id, (method,), analyzer)
        return experiment, results[0]

    def experiment_and_analyses(
        self, experiment_id: int, methods: tuple[str | None, ...], analyzer: Any = None
    ) -> tuple[Experiment, list[dict[str, Any]]]:
        """One read of the experiment and its totals, analysed by each of ``methods`` (None is
        the experiment's own analysis_method). Every analysis sees the same numbers, so two
        methods never disagree because traffic arrived between two reads."""
        from dataclasses import replace

        from ab_testing.stats.analyzer import StatisticalAnalyzer

        experiment, snapshot, _ = self.snapshot(experiment_id)
        engine = analyzer or StatisticalAnalyzer()
        results: list[dict[str, Any]] = []
        for method in methods:
            inp = snapshot
            if method is not None:
                inp = replace(snapshot, analysis_method=method)  # type: ignore[arg-type]
            result: dict[str, Any] = engine.analyze(inp)
            result["experiment_name"] = experiment.name
            result["status"] = experiment.status
            when = "Stopped" if experiment.stopped_at else "Read"
            early = early_warnings(experiment, result, self.service.clock(), when, units=False)
            unpriced = [
                f"{count} span(s) of model {model!r} had no price, so they gave no cost_usd: "
                "add the model to the experiment's prices (docs/otlp.md)"
                for model, count in sorted(experiment.unpriced_spans.items())
            ]
            result["warnings"] = [*early, *result["warnings"], *unpriced]
            results.append(result)
        return experiment, results

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
            "days_running": days_running(experiment, self.service.clock()),
            "users_assigned": sum(v["units_assigned"] for v in variants),
            "results_collected": sum(v["results_collected"] for v in variants),
            "variants": variants,
            "winner_variant_id": experiment.winner_variant_id,
            "latest_insight": _headline(latest[0]) if latest else None,
        }

    def insights(
        self, experiment_id: int, *, limit: str | None = None, cursor: str | None = None
    ) -> dict[str, Any]:
        size = 20 if limit is None else _page_size(limit)
        self.store.get_experiment(experiment_id)  # a 404 for an unknown experiment
        items, next_cursor = self.store.list_insights(experiment_id, limit=size, cursor=cursor)
        insights = []
        for item in items:
            # DynamoDB keeps no nulls: a p-value the analysis lacked comes back as a null key.
            entry = dict.fromkeys(("p_value_fixed_horizon", "p_value_sequential"))
            entry.update({k: plain(v) for k, v in item.items() if k != "analysis_json"})
            entry["analysis"] = json.loads(item.get("analysis_json") or "null")
            insights.append(entry)
        return {"experiment_id": experiment_id, "insights": insights, "next_cursor": next_cursor}

    def report(self, experiment_id: int, history_limit: int = 500) -> str:
        """The report page (HTML) of the current analysis and the insight history."""
        from ab_testing.report_page import render_report

        experiment, result = self.experiment_and_analysis(experiment_id)
        history: list[dict[str, Any]] = []
        cursor = None
        while len(history) < history_limit:
            items, cursor = self.store.list_insights(experiment_id, limit=100, cursor=cursor)
            history += [
                {"analysed_at": i.get("analysed_at"), "analysis": json.loads(i["analysis_json"])}
                for i in items
                if i.get("analysis_json")
            ]
            if not cursor:
                break
        shown = {"id", "name", "status", "experiment_type", "target_percentage"}
        shown |= {"targeting", "layer", "segment_attributes"}
        view = {k: v for k, v in experiment.as_fields().items() if k in shown}
        return render_report(view, result, history, self.service.clock())

    def segments(self, experiment_id: int, query: SegmentsQuery) -> dict[str, Any]:
        """One metric by segment (ab_testing.segments)."""
        from ab_testing.segments import breakdown

        experiment = self.store.get_experiment(experiment_id)
        return breakdown(self.store, experiment, query.attribute, query.metric)

    def reconcile(self, experiment_id: int) -> dict[str, Any]:
        from ab_testing.reconcile import reconcile

        experiment = self.store.get_experiment(experiment_id)  # a 404 for an unknown one
        return reconcile(self.store, experiment_id, [r.spec() for r in experiment.ratio_metrics])

    def stop(
        self, experiment_id: int, declare_winner: bool = False, promote: bool = False
    ) -> dict[str, Any]:
        """Stops; with declare_winner, stores the analysis's recommended winner (or none, and
        why); with promote, get-variant serves the winner to every unit from then on."""
        changes: dict[str, Any] = {}
        before, analysis = self.experiment_and_analysis(experiment_id)
        warnings = early_warnings(before, analysis, self.service.clock(), "Stopped")
        if declare_winner or promote:
            warnings += [r["message"] + "." for r in analysis.get("regressions", [])]
            winner = analysis["recommended_winner_id"]
            changes["winner_variant_id"] = winner
            changes["winner_reason"] = analysis["recommendation_reason"]
            changes["promoted"] = bool(promote and winner is not None)
        experiment = self.service.transition(experiment_id, "stop", **changes)
        answer: dict[str, Any] = {
            "message": f"Experiment {experiment_id} stopped successfully",
            "experiment_id": experiment_id,
            "status": experiment.status,
            "warnings": warnings,
        }
        if declare_winner or promote:
            answer["winner_variant_id"] = experiment.winner_variant_id
            answer["winner_reason"] = experiment.winner_reason
            answer["p_value"] = analysis["p_value"]
            answer["promoted"] = experiment.promoted
        return answer


def early_warnings(
    experiment: Experiment, result: dict[str, Any], now: str, when: str, *, units: bool = True
) -> list[str]:
    """Warnings for a read or a stop before min_duration_days or below the planned units."""
    from ab_testing.stats import messages as msg

    out = []
    days = days_running(experiment, now)
    if days is not None and days < experiment.min_duration_days:
        out.append(
            msg.WARN_EARLY_DAYS.format(when=when, days=days, min_days=experiment.min_duration_days)
        )
    if units and not result.get("sufficient_sample_size"):
        stats = result.get("variant_stats", {}).values()
        smallest = min((int(v.get("units") or 0) for v in stats), default=0)
        out.append(
            msg.WARN_EARLY_UNITS.format(
                when=when, units=smallest, required=experiment.min_sample_size
            )
        )
    return out


def _page_size(raw: str) -> int:
    if not re.fullmatch(r"[0-9]{1,3}", raw) or not 1 <= int(raw) <= 100:
        raise InvalidInput("limit must be an integer from 1 to 100", field="limit")
    return int(raw)


def days_running(experiment: Experiment, now: str) -> float | None:
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
