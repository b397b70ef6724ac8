"""Per-process singletons for the Lambda handlers, built on first use (after env is set)."""

from __future__ import annotations

from functools import lru_cache
from typing import TYPE_CHECKING

from ab_testing.service import ExperimentService

if TYPE_CHECKING:
    from ab_testing.analysis import ExperimentAnalysis
    from ab_testing.local_evaluation import LocalEvaluation


@lru_cache(maxsize=1)
def service() -> ExperimentService:
    return ExperimentService()


@lru_cache(maxsize=1)
def analysis() -> ExperimentAnalysis:
    from ab_testing.analysis import ExperimentAnalysis

    return ExperimentAnalysis(service())


@lru_cache(maxsize=1)
def local_evaluation() -> LocalEvaluation:
    from ab_testing.local_evaluation import LocalEvaluation

    return LocalEvaluation(service())


def reset() -> None:
    """Forget the singletons (tests switch tables and settings between cases)."""
    from ab_testing import dynamo, settings

    service.cache_clear()
    analysis.cache_clear()
    local_evaluation.cache_clear()
    settings.get_settings.cache_clear()
    dynamo.client.cache_clear()
