"""Statistics of the A/B testing service.

Importing this package is cheap: it loads only the input dataclasses. The analyzer (which
uses scipy lazily) is exported on first access through the module-level ``__getattr__``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from .inputs import AnalysisInput, MetricSpec, MetricTotals, VariantInput

if TYPE_CHECKING:
    from .analyzer import StatisticalAnalyzer, to_json_safe

__all__ = [
    "AnalysisInput",
    "MetricSpec",
    "MetricTotals",
    "StatisticalAnalyzer",
    "VariantInput",
    "to_json_safe",
]

_LAZY = {"StatisticalAnalyzer", "to_json_safe"}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        from . import analyzer

        return getattr(analyzer, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
