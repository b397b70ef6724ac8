"""EventBridge schedule — analyse every running experiment and write ab_insights."""

from typing import Any

from ab_testing.observability import logger
from ab_testing.runtime import analysis


def handler(event: dict[str, Any], context: Any = None) -> dict[str, Any]:
    summary = analysis().run_scheduled()
    logger.info(
        "scheduled analysis done",
        extra={"analysed": summary["analysed"], "failed": summary["failed"]},
    )
    return summary
