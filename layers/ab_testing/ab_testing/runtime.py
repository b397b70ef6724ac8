"""Per-function singletons for the Lambda handlers, built on first use (after env is set).

In AWS every function runs in its own instances, so each has its own service and its own
experiment cache. The local API hosts every function in one process: it names the function it
is invoking in ``current_function`` and each name keeps its own singletons, so one function's
cached read never answers another's (whose IAM policy might not allow that read).
"""

from __future__ import annotations

from collections.abc import Callable
from contextvars import ContextVar
from typing import TYPE_CHECKING, TypeVar

from ab_testing.service import ExperimentService

if TYPE_CHECKING:
    from ab_testing.analysis import ExperimentAnalysis
    from ab_testing.local_evaluation import LocalEvaluation

current_function: ContextVar[str] = ContextVar("ab_testing_function", default="")

T = TypeVar("T")
_services: dict[str, ExperimentService] = {}
_analyses: dict[str, ExperimentAnalysis] = {}
_evaluations: dict[str, LocalEvaluation] = {}


def _own(registry: dict[str, T], build: Callable[[], T]) -> T:
    """The invoked function's own instance in `registry`, built on its first use."""
    name = current_function.get()
    found = registry.get(name)
    if found is None:
        found = registry.setdefault(name, build())
    return found


def service() -> ExperimentService:
    return _own(_services, ExperimentService)


def analysis() -> ExperimentAnalysis:
    from ab_testing.analysis import ExperimentAnalysis

    return _own(_analyses, lambda: ExperimentAnalysis(service()))


def local_evaluation() -> LocalEvaluation:
    from ab_testing.local_evaluation import LocalEvaluation

    return _own(_evaluations, lambda: LocalEvaluation(service()))


def reset() -> None:
    """Forget the singletons (tests switch tables and settings between cases)."""
    from ab_testing import dynamo, settings

    _services.clear()
    _analyses.clear()
    _evaluations.clear()
    settings.get_settings.cache_clear()
    dynamo.client.cache_clear()
