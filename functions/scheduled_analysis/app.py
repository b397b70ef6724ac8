"""EventBridge schedules — analyse every running experiment, write ab_insights, emit metrics,
apply auto-stop; with ``{"reconcile": true}`` (the daily rule), check running totals."""

from typing import Any

from ab_testing.observability import EVENT_BRIDGE, logger, observed
from ab_testing.runtime import analysis
from ab_testing.scheduled import ScheduledAnalysis


def run(event: dict[str, Any], context: Any = None) -> dict[str, Any]:
    job = ScheduledAnalysis(analysis())
    if (event or {}).get("reconcile"):
        report = job.reconcile_all()
        logger.info(
            "reconciliation done", extra={k: report[k] for k in ("reconciled", "with_differences")}
        )
        return report
    summary = job.run()
    logger.info(
        "scheduled analysis done", extra={k: summary[k] for k in ("analysed", "failed", "skipped")}
    )
    return summary


handler = observed(run, EVENT_BRIDGE)
