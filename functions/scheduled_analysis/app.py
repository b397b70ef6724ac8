"""EventBridge schedules — analyse every running experiment and write ab_insights; with
``{"reconcile": true}`` (the daily rule), check running totals against raw results."""

from typing import Any

from ab_testing.observability import logger
from ab_testing.runtime import analysis


def handler(event: dict[str, Any], context: Any = None) -> dict[str, Any]:
    if (event or {}).get("reconcile"):
        report = analysis().run_reconciliation()
        logger.info(
            "reconciliation done", extra={k: report[k] for k in ("reconciled", "with_differences")}
        )
        return report
    summary = analysis().run_scheduled()
    logger.info(
        "scheduled analysis done", extra={k: summary[k] for k in ("analysed", "failed", "skipped")}
    )
    return summary
