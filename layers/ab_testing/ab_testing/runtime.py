"""Per-function singletons for the Lambda handlers, built on first use (after env is set).

In AWS every function runs in its own instances, so each has its own service and its own
experiment cache. The local API hosts every function in one process: it names the function it
is invoking in ``current_function`` and each name keeps its own singletons, so one function's
cached read never answers another's (whose IAM policy might not allow that read).
"""

from __future__ import annotations

from contextvars import ContextVar
from typing import TYPE_CHECKING

from ab_testing.service import ExperimentService

if TYPE_CHECKING:
    from ab_testing.analysis import ExperimentAnalysis
    from ab_testing.local_evaluation import LocalEvaluation

current_function: ContextVar[str] = ContextVar("ab_testing_function", default="")

_services: dict[str, ExperimentService] = {}
_analyses: dict[str, ExperimentAnalysis] = {}
_evaluations: dict[str, LocalEvaluation] = {}


def service() -> ExperimentService:
    name = current_function.get()
    found = _services.get(name)
    if found is None:
        found = _services.setdefault(name, ExperimentService())
    return found


def analysis() -> ExperimentAnalysis:
    name = current_function.get()
    found = _analyses.get(name)
    if found is None:
        from ab_testing.analysis import ExperimentAnalysis

        found = _analyses.setdefault(name, ExperimentAnalysis(service()))
    return found


def local_evaluation() -> LocalEvaluation:
    name = current_function.get()
    found = _evaluations.get(name)
    if found is None:
        from ab_testing.local_evaluation import LocalEvaluation

        found = _evaluations.setdefault(name, LocalEvaluation(service()))
    return found


def reset() -> None:
    """Forget the singletons (tests switch tables and settings between cases)."""
    from ab_testing import dynamo, settings

    _services.clear()
    _analyses.clear()
    _evaluations.clear()
    settings.get_settings.cache_clear()
    dynamo.client.cache_clear()
